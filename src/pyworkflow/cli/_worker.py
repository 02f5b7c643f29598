"""`pyworkflow worker`: a long-running process that resumes and serves runs.

It imports the modules that define agents, starts the durable runtime and keeps taking over
the runs of processes that stopped — a `pyworkflow run` interrupted with Ctrl-C or waiting for
approval, a crashed application — until SIGTERM or SIGINT. It reports what it resumed and
how those runs end.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from typing import Any

from pyworkflow.cli._common import (
    CommandError,
    Exit,
    quiet_engine_shutdown,
    shown_url,
    use_database,
)

_TAKEOVER_SECONDS = 1.0
_OVER = ("completed", "failed", "cancelled")


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    worker = commands.add_parser(
        "worker",
        parents=[common],
        help="resume suspended and crashed runs and serve them until stopped",
        description="Import the modules that define your agents, resume the runs that stopped "
        "processes left, and keep serving until SIGTERM or Ctrl-C.",
    )
    worker.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module defining agents or workflows (repeatable); the current directory is on the path",
    )
    worker.set_defaults(handler=worker_command)


class _Once(logging.Filter):
    """Let each distinct message through once: the takeover check repeats every second."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def worker_command(args: argparse.Namespace) -> int:
    # Takeover is driven from the loop below (recover=False) so that each run resumed is seen.
    url = use_database(args.database_url, must_exist=False, recover=False)
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    for module in args.imports:
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise CommandError(
                f"cannot import {module!r}: {type(exc).__name__}: {exc}", Exit.USAGE
            ) from None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("worker: %(levelname)s: %(message)s"))
    handler.addFilter(_Once())
    logging.getLogger("pyworkflow").addHandler(handler)

    from pyworkflow import shutdown, worker
    from pyworkflow.runs import shared_store

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    runtime = worker.start_worker()  # joins the queues: runs and steps spread over workers
    imported = ", ".join(args.imports) or "nothing (modules are imported by name as runs need them)"
    _say(f"worker {runtime.executor_id} serving {shown_url(url)}")
    _say(f"imported {imported}; stop with Ctrl-C or SIGTERM")
    watched: dict[str, tuple[str, str | None]] = {}  # run id → (status, hook id) last seen
    store = shared_store()
    try:
        while not stop.is_set():
            resumed = sorted(
                {workflow_id.split("/")[0] for workflow_id in runtime.take_over_dead_executors()}
            )
            for run_id in resumed:
                row = store.get_run(run_id)
                name = row["name"] if row else "?"
                status = row["status"] if row else "running"
                _say(f"resumed {run_id} ({name}, {status.replace('_', ' ')})")
                watched[run_id] = (status, row["hook_id"] if row else None)
            for run_id, before in list(watched.items()):
                row = store.get_run(run_id)
                # The hook id tells one wait for approval from the next (plan, then a tool call).
                if row is None or (row["status"], row["hook_id"]) == before:
                    continue
                watched[run_id] = (row["status"], row["hook_id"])
                if row["status"] in ("running", "queued"):
                    continue  # back at work after an approval: the next change is worth a line
                _say(_transition(run_id, row))
                if row["status"] in _OVER:
                    del watched[run_id]
            stop.wait(_TAKEOVER_SECONDS)
    finally:
        _say("stopping; runs in progress stay resumable")
        quiet_engine_shutdown()
        shutdown()
    return Exit.OK


def _transition(run_id: str, row: dict[str, Any]) -> str:
    status = row["status"]
    if status == "failed":
        return f"{run_id} failed: {row['error']}"
    if status == "waiting_for_approval":
        return f"{run_id} waiting for approval: hook {row['hook_id']}"
    return f"{run_id} {status}"


def _say(message: str) -> None:
    print(message, flush=True)
