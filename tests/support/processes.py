"""Helpers for tests that run PyWorkflow in other processes: spawn, wait, kill, look inside.

A test drives real processes — one is killed with SIGKILL mid-run, another recovers — and
judges them from outside: by files they write, and by reading the database they share with
plain SQL (no runtime in the test process, so the test never becomes a worker itself).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

TESTS_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = TESTS_DIR.parent
INTEGRATION_DIR = TESTS_DIR / "integration"


@dataclass
class Process:
    """A spawned Python process, with its output captured in files for failure messages."""

    name: str
    popen: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self, limit: int = 4000) -> str:
        """The tail of what the process wrote, for assertion messages."""
        parts = []
        for label, path in (("stdout", self.stdout), ("stderr", self.stderr)):
            text = path.read_text(errors="replace") if path.exists() else ""
            if text.strip():
                parts.append(f"--- {self.name} {label} ---\n{text[-limit:]}")
        return "\n".join(parts) or f"({self.name} wrote nothing)"

    def wait(self, timeout: float) -> int:
        """Wait for a normal exit; a non-zero exit code or a timeout fails with the output."""
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.name} (pid {self.pid}) did not finish within {timeout}s\n{self.output()}"
            ) from None
        if code != 0:
            raise AssertionError(f"{self.name} exited with code {code}\n{self.output()}")
        return code

    def kill(self) -> None:
        """SIGKILL the process and reap it.

        Reaping matters: until its parent waits for it, a killed child is a zombie whose pid
        still answers `kill(pid, 0)`, so it would still look alive to other processes.
        """
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)


def spawn(
    name: str,
    code: str,
    *args: str,
    env: dict[str, str],
    log_dir: Path,
    pythonpath: Sequence[Path] = (INTEGRATION_DIR,),
) -> Process:
    """Start `python -c code args...` with `pythonpath` first on its path and `env` added.

    PYWORKFLOW_* variables of the test's own environment are not inherited, so a child only
    ever sees the database the test gives it.
    """
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("PYWORKFLOW_")}
    child_env.update(env)
    paths = [str(p) for p in pythonpath]
    if child_env.get("PYTHONPATH"):
        paths.append(child_env["PYTHONPATH"])
    child_env["PYTHONPATH"] = os.pathsep.join(paths)
    child_env["PYTHONUNBUFFERED"] = "1"
    log_dir.mkdir(parents=True, exist_ok=True)
    stdout = log_dir / f"{name}.stdout"
    stderr = log_dir / f"{name}.stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        popen = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            cwd=log_dir,
            env=child_env,
            stdout=out,
            stderr=err,
        )
    return Process(name, popen, stdout, stderr)


def spawn_main(
    name: str, module: str, *args: str, env: dict[str, str], log_dir: Path, **kwargs: Any
) -> Process:
    """Start `module.main(args)` in a new process, the module imported by its own name.

    Not `python -m module`: that would run it as `__main__`, and runs it records would name
    code no other process can import.
    """
    code = f"import sys, {module}; {module}.main(sys.argv[1:])"
    return spawn(name, code, *args, env=env, log_dir=log_dir, **kwargs)


def wait_for(
    condition: Callable[[], T],
    *,
    timeout: float,
    what: str,
    interval: float = 0.02,
    watch: Sequence[Process] = (),
) -> T:
    """Poll `condition` until it returns something truthy, and return that.

    Fails after `timeout` seconds, or at once when a process in `watch` exits (its output is
    in the message): a crashed child should not cost the whole timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        for process in watch:
            if not process.alive():
                raise AssertionError(
                    f"{process.name} exited (code {process.popen.returncode}) while waiting "
                    f"for {what}\n{process.output()}"
                )
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}\n"
                + "\n".join(p.output() for p in watch)
            )
        time.sleep(interval)


# --- the shared database, read with plain SQL ------------------------------------------------


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://"))


def dbos_table(url: str, table: str) -> str:
    """The qualified name of one of the durable engine's own tables."""
    return f"dbos.{table}" if is_postgres(url) else table


def query(url: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run one read-only query; `?` marks parameters on both backends."""
    if is_postgres(url):
        import psycopg

        conninfo = url.replace("postgresql+psycopg://", "postgresql://")
        try:
            with psycopg.connect(conninfo, connect_timeout=10) as conn:
                return list(conn.execute(sql.replace("?", "%s"), tuple(params)).fetchall())
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            return []  # the process under test has not created it yet
    import sqlite3

    path = url.removeprefix("sqlite:///")
    if not Path(path).exists():
        return []
    conn = sqlite3.connect(path, timeout=10)
    try:
        return list(conn.execute(sql, tuple(params)).fetchall())
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # the process under test has not created it yet
            return []
        raise
    finally:
        conn.close()


class Launcher:
    """Spawns processes for one test and, whatever happens, kills what is left at the end.

    Use as a fixture: a failing assertion must not leave a child waiting forever.
    """

    def __init__(self, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.env = dict(env or {})
        self.processes: list[Process] = []

    def main(
        self, name: str, module: str, *args: str, env: dict[str, str] | None = None, **kwargs: Any
    ) -> Process:
        process = spawn_main(
            name, module, *args, env={**self.env, **(env or {})}, log_dir=self.log_dir, **kwargs
        )
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            process.kill()
