"""What every command shares: exit codes, one-line errors, the database, output helpers."""

from __future__ import annotations

import enum
import json
import os
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from pyworkflow.config import DEFAULT_DATABASE_URL, configure, mask_password, sqlite_path


class Exit(enum.IntEnum):
    """Exit codes scripts can rely on (documented in docs/cli.md)."""

    OK = 0  # success; for `run`: the run completed
    RUN_FAILED = 1  # the run failed or was cancelled (or an unexpected error)
    USAGE = 2  # bad arguments, an agent that cannot be imported, an unusable database URL
    NOT_FOUND = 3  # no such run, hook or database
    WAITING = 4  # the run is waiting for a human's approval
    CONFLICT = 5  # hook already decided or expired, invalid decision payload, run already over
    INTERRUPTED = 130  # Ctrl-C: the run stays resumable


class CommandError(Exception):
    """An error the command reports in one line, with the exit code it implies."""

    def __init__(self, message: str, code: Exit) -> None:
        self.code = code
        super().__init__(message)


def database_url(given: str | None) -> str:
    """The database the command works on: --database-url, else the environment, else default."""
    return given or os.environ.get("PYWORKFLOW_DATABASE_URL") or DEFAULT_DATABASE_URL


def use_database(given: str | None, *, must_exist: bool, recover: bool = True) -> str:
    """Point PyWorkflow at the command's database.

    Commands that only read (or decide hooks) pass `must_exist`: a SQLite file that is not
    there is reported instead of being created empty, so a typo in a path is not mistaken for
    "no runs".
    """
    url = database_url(given)
    path = sqlite_path(url)
    if must_exist and path is not None and not path.is_file():
        where = (
            "--database-url"
            if given
            else (
                "PYWORKFLOW_DATABASE_URL"
                if os.environ.get("PYWORKFLOW_DATABASE_URL")
                else "the default"
            )
        )
        raise CommandError(
            f"database {str(path)!r} does not exist (from {where}); point --database-url or "
            "PYWORKFLOW_DATABASE_URL at the database your runs use",
            Exit.NOT_FOUND,
        )
    configure(
        database_url=url, recover=recover, log_level=os.environ.get("PYWORKFLOW_LOG_LEVEL", "ERROR")
    )
    return url


def shown_url(url: str) -> str:
    return mask_password(url)


def print_json(value: Any, out: TextIO | None = None) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, default=repr), file=out or sys.stdout)


def table(headers: list[str], rows: Iterable[list[str]], out: TextIO | None = None) -> None:
    """Columns padded to their widest cell; the last column is not padded."""
    rows = list(rows)
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    stream = out or sys.stdout
    for line in [headers, *rows]:
        cells = [c.ljust(w) for c, w in zip(line[:-1], widths[:-1], strict=True)] + [line[-1]]
        print("  ".join(cells).rstrip(), file=stream)


def module_of(agent_name: str) -> str:
    """The module a recorded agent name (`module:qualname`) lives in."""
    return agent_name.partition(":")[0] or agent_name


def colour_wanted(stream: TextIO) -> bool:
    """Colour for terminals, unless NO_COLOR is set (https://no-color.org)."""
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def quiet_engine_shutdown() -> None:
    """Silence the engine's logger before stopping with runs in flight.

    Stopping DBOS while workflows are mid-step makes it log each abandoned one as an error with
    a traceback; those runs are intact and resume in the next process, so this is only noise.
    """
    import logging

    logging.getLogger("dbos").setLevel(logging.CRITICAL)
