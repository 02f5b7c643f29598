"""Shared fixtures for the whole test suite."""

# --- databases ---------------------------------------------------------------------------
# Database URLs for tests, and the guards that keep tests off real models and off a user's
# own database. The PostgreSQL server comes from PYWORKFLOW_TEST_POSTGRES_URL, which
# scripts/test.sh points at a fresh database created for the run.
# (This block holds imports, so it stays first in the file: ruff forbids imports below code.)

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

try:
    import pydantic_ai.models
except ImportError:  # pragma: no cover - pydantic-ai is a runtime dependency
    pass
else:
    # A test that reaches a real provider would be slow, flaky and billed: fail it instead.
    pydantic_ai.models.ALLOW_MODEL_REQUESTS = False

# Never let a test fall back to the database of the shell that runs pytest.
os.environ.pop("PYWORKFLOW_DATABASE_URL", None)

POSTGRES_URL_ENV = "PYWORKFLOW_TEST_POSTGRES_URL"


def _running_on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite file in the test's own temporary directory."""
    return f"sqlite:///{tmp_path}/pyworkflow.sqlite"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database, created for this test and dropped after it.

    The database lives on the server of ``PYWORKFLOW_TEST_POSTGRES_URL`` and is named after
    that URL's database plus a random suffix. Without the variable the test is skipped,
    except on CI, where it fails: CI must exercise PostgreSQL.
    """
    base = os.environ.get(POSTGRES_URL_ENV, "")
    if not base:
        reason = (
            f"{POSTGRES_URL_ENV} is not set; run the tests with `make test`, which finds or "
            "starts a PostgreSQL server, or point it at a server whose role may CREATE DATABASE"
        )
        if _running_on_ci():
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)

    import psycopg
    from psycopg import sql

    parts = urlsplit(base)
    base_name = parts.path.strip("/")
    name = f"{base_name or 'pyworkflow_test'}_{uuid.uuid4().hex[:8]}"
    # A URL naming only the server is administered through the "postgres" database.
    admin = base if base_name else parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield parts._replace(path=f"/{name}").geturl()
    finally:
        # FORCE: connections the code under test left open must not make the drop fail.
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def database_url(request: pytest.FixtureRequest) -> str:
    """A database URL, once for SQLite and once for PostgreSQL (test ids ``[sqlite]``,
    ``[postgres]``), for behaviour that must hold on both backends."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


# --- end databases -----------------------------------------------------------------------


# --- runtime -----------------------------------------------------------------------------
# A PyWorkflow runtime on the test's own SQLite file, stopped (and its settings forgotten)
# after the test, so every test starts from an empty database.


@pytest.fixture
def runtime(sqlite_url: str) -> Iterator[str]:
    """Run PyWorkflow against the test's own SQLite file for the test; yields the URL."""
    from pyworkflow.testing import temporary_runtime

    with temporary_runtime(sqlite_url) as url:
        yield url


# --- end runtime -------------------------------------------------------------------------
