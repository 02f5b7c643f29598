"""The test infrastructure itself: database fixtures and scripts/postgres.sh.

If these fail, every PostgreSQL result of the suite is suspect, so they check what the
other tests take for granted: a fresh, writable, isolated database per test, dropped
afterwards, and a server found (or started) by the script that the tests can reach.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
POSTGRES_SCRIPT = REPO_ROOT / "scripts" / "postgres.sh"


def _database_name(url: str) -> str:
    return urlsplit(url).path.strip("/")


def _admin_url(url: str) -> str:
    """The same server, through the maintenance database."""
    return urlsplit(url)._replace(path="/postgres").geturl()


def _database_exists(url: str, name: str) -> bool:
    with psycopg.connect(_admin_url(url), connect_timeout=10) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def _run_postgres_script(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(POSTGRES_SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_sqlite_url_is_a_writable_file_in_the_test_directory(
    sqlite_url: str, tmp_path: Path
) -> None:
    assert sqlite_url.startswith("sqlite:///")
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    assert path.parent == tmp_path

    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.execute("INSERT INTO t VALUES ('hello')")
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [("hello",)]


@pytest.mark.postgres
def test_postgres_url_is_a_fresh_writable_database(postgres_url: str) -> None:
    base = os.environ["PYWORKFLOW_TEST_POSTGRES_URL"]
    name = _database_name(postgres_url)
    assert name != _database_name(base)
    assert name.startswith(_database_name(base) + "_")

    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (name,)
        # Fresh: no user tables yet.
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)
        conn.execute("CREATE TABLE t (id serial PRIMARY KEY, v text NOT NULL)")
        conn.execute("INSERT INTO t (v) VALUES ('a'), ('b')")
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT v FROM t ORDER BY id").fetchall() == [("a",), ("b",)]


_seen_databases: list[str] = []


@pytest.mark.postgres
@pytest.mark.parametrize("turn", ["first", "second"])
def test_each_test_gets_its_own_database_dropped_after_it(postgres_url: str, turn: str) -> None:
    name = _database_name(postgres_url)
    with psycopg.connect(postgres_url) as conn:
        # Both turns create the same table: that only works if they do not share a database.
        conn.execute("CREATE TABLE marker (turn text)")
        conn.execute("INSERT INTO marker VALUES (%s)", (turn,))

    if turn == "first":
        _seen_databases.append(name)
        return
    if not _seen_databases:
        pytest.skip("needs the [first] case to have run before it in this session")
    previous = _seen_databases[-1]
    assert previous != name
    assert not _database_exists(postgres_url, previous), f"{previous} was not dropped"


def test_database_url_runs_on_each_backend(
    database_url: str, request: pytest.FixtureRequest
) -> None:
    backend = request.node.callspec.id
    if backend == "sqlite":
        assert database_url.startswith("sqlite:///")
        assert request.node.get_closest_marker("postgres") is None
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            conn.execute("CREATE TABLE t (v TEXT)")
            conn.execute("INSERT INTO t VALUES ('x')")
            assert conn.execute("SELECT v FROM t").fetchall() == [("x",)]
    else:
        assert backend == "postgres"
        assert urlsplit(database_url).scheme in ("postgresql", "postgres")
        # Selecting tests with -m postgres / -m "not postgres" must split the two cases.
        assert request.node.get_closest_marker("postgres") is not None
        with psycopg.connect(database_url) as conn:
            conn.execute("CREATE TABLE t (v text)")
            conn.execute("INSERT INTO t VALUES ('x')")
            assert conn.execute("SELECT v FROM t").fetchall() == [("x",)]


@pytest.mark.slow
@pytest.mark.parametrize(("ci", "outcome"), [("true", "1 error"), ("", "1 skipped")])
def test_postgres_fixture_without_a_server_skips_locally_and_fails_on_ci(
    ci: str, outcome: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYWORKFLOW_TEST_POSTGRES_URL", "CI")}
    if ci:
        env["CI"] = ci
    node = (
        f"{Path(__file__).relative_to(REPO_ROOT)}::test_postgres_url_is_a_fresh_writable_database"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "no:cacheprovider", node],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = result.stdout + result.stderr
    assert outcome in output, output
    assert "PYWORKFLOW_TEST_POSTGRES_URL is not set" in output, output
    assert result.returncode == (1 if ci else 0), output


@pytest.mark.postgres
def test_postgres_script_prints_a_url_psycopg_can_connect_to(postgres_url: str) -> None:
    # With the variable set, as under scripts/test.sh; and without it, so that the script
    # has to find the server itself (as `make test` makes it do).
    with_var = dict(os.environ)
    without_var = {k: v for k, v in os.environ.items() if k != "PYWORKFLOW_TEST_POSTGRES_URL"}
    state = REPO_ROOT / ".pytest-postgres" / "cluster.env"
    had_cluster = state.exists()
    try:
        for env in (with_var, without_var):
            result = _run_postgres_script(env=env)
            assert result.returncode == 0, result.stderr
            lines = result.stdout.splitlines()
            assert len(lines) == 1, f"stdout must hold only the URL: {result.stdout!r}"
            url = lines[0]
            assert urlsplit(url).scheme == "postgresql"
            with psycopg.connect(url, dbname="postgres", connect_timeout=10) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        if state.exists() and not had_cluster:
            _run_postgres_script("stop", env=without_var)


def _postgres_binaries_available() -> bool:
    return bool(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or (
        shutil.which("initdb") is not None and shutil.which("pg_ctl") is not None
    )


@pytest.mark.slow
@pytest.mark.skipif(
    not _postgres_binaries_available(), reason="PostgreSQL server binaries (initdb) not installed"
)
def test_postgres_script_starts_and_stops_a_private_cluster(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYWORKFLOW_TEST_POSTGRES_URL"}
    # Nothing listens on the probe port, so the script must start its own cluster there.
    env |= {
        "PYWORKFLOW_PG_PROBE_PORT": str(port),
        "PYWORKFLOW_PG_STATE_DIR": str(tmp_path / "state"),
        "PYWORKFLOW_PG_NO_INSTALL": "1",
    }
    started = _run_postgres_script(env=env)
    state_file = tmp_path / "state" / "cluster.env"
    try:
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip()
        assert url == f"postgresql://postgres@127.0.0.1:{port}"
        state = dict(
            line.split("=", 1) for line in state_file.read_text().splitlines() if "=" in line
        )
        pid = int(state["PG_PID"].strip("'"))
        datadir = Path(state["PG_DATADIR"].strip("'"))
        assert datadir.is_dir()

        with psycopg.connect(url, dbname="postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE scratch")
        with psycopg.connect(url, dbname="scratch") as conn:
            conn.execute("CREATE TABLE t (v int)")
            conn.execute("INSERT INTO t VALUES (42)")
            assert conn.execute("SELECT v FROM t").fetchone() == (42,)

        # A second call reuses the running cluster instead of starting another.
        again = _run_postgres_script(env=env)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == url
        assert "reusing" in again.stderr
    finally:
        stopped = _run_postgres_script("stop", env=env)

    assert stopped.returncode == 0, stopped.stderr
    assert not Path(f"/proc/{pid}").exists(), "the postmaster still runs"
    assert not datadir.exists()
    assert not state_file.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, dbname="postgres", connect_timeout=3)
