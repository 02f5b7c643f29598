"""Agents for tests that kill, restart or cancel a run from other processes.

Imported by name (`replan_agents`) in every process of a test, so a run recorded by one is
resumable by another. Run as a program through `main()` (see `tests/support/processes.py`).

Every tool call and planner call appends a line to the file named by `REPLAN_LEDGER` when it
starts and when it finishes (fsync'd, so a SIGKILL cannot lose a written line):

    start|<pid>|<call key>|<tool>
    done|<pid>|<call key>|<tool>

A tool call's key is the idempotency key PyWorkflow passes, `<run>/v<plan version>/<label>`,
so a test counts from outside how often each call of each plan version really ran.

`replan_agent`: plan version 1 gathers the background (step 1) and asks a source that is down
(step 2, it raises); the planner then replans, choosing by what it is told (never by a call
count, which a new process would start again from zero): a slow backup source (step 4) that
uses step 1's result, then a summary of it (step 5). `slow_agent`: three slow steps in a chain,
for cancellation.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

from pyworkflow import agent, step
from pyworkflow.testing import scripted_executor, scripted_planner

QUERY = "Compare the figures with the background"
BACKUP_SECONDS = 2.5  # long enough for a test to kill the process while step 4 runs


def _ledger(phase: str, key: str, tool: str) -> None:
    path = os.environ.get("REPLAN_LEDGER")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{phase}|{os.getpid()}|{key}|{tool}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class Record(NamedTuple):
    phase: str
    pid: int
    key: str
    tool: str

    @property
    def version(self) -> int | None:
        parts = self.key.rsplit("/", 2)
        return int(parts[1][1:]) if len(parts) == 3 and parts[1].startswith("v") else None

    @property
    def label(self) -> str:
        return self.key.rsplit("/", 1)[-1]


def read_ledger(path: Path) -> list[Record]:
    if not path.exists():
        return []
    return [Record(p, int(pid), key, tool) for p, pid, key, tool in (
        line.split("|") for line in path.read_text().splitlines()
    )]  # fmt: skip


# --- the replanning agent ----------------------------------------------------------------------


@step()
async def gather(topic: str, idempotency_key: str) -> str:
    """Gather what is known about a topic."""
    _ledger("start", idempotency_key, "gather")
    await asyncio.sleep(0.2)
    _ledger("done", idempotency_key, "gather")
    return f"notes on {topic}"


@step()
async def primary_source(topic: str, idempotency_key: str) -> str:
    """Look figures up in the primary source."""
    _ledger("start", idempotency_key, "primary_source")
    await asyncio.sleep(0.3)
    _ledger("done", idempotency_key, "primary_source")
    raise ConnectionError("primary source is down")


@step()
async def backup_source(topic: str, idempotency_key: str) -> str:
    """Look figures up in the slower backup source."""
    _ledger("start", idempotency_key, "backup_source")
    await asyncio.sleep(BACKUP_SECONDS)
    _ledger("done", idempotency_key, "backup_source")
    return f"figures for {topic}"


FIRST_PLAN: list[dict[str, Any]] = [
    {"step": 1, "description": "Background", "tool": "gather", "params": {"topic": "background"}},
    {"step": 2, "description": "Figures", "tool": "primary_source", "params": {"topic": "figures"}},
    {"step": 3, "description": "Compare", "tool": "gather", "params": {"topic": "$2"}},
]
SECOND_PLAN: list[dict[str, Any]] = [
    {"step": 4, "description": "Figures from the backup", "tool": "backup_source",
     "params": {"topic": "figures beside ${1}"}},
    {"step": 5, "description": "Compare", "tool": "gather", "params": {"topic": "$4"}},
]  # fmt: skip


def _plan(prompt: str) -> list[dict[str, Any]]:
    replanning = "This step failed:" in prompt
    _ledger("start", f"planner:{'replan' if replanning else 'plan'}", "planner")
    return SECOND_PLAN if replanning else FIRST_PLAN


@agent(
    pattern="plan_execute",
    planner_model=scripted_planner(_plan).model,
    executor_model=scripted_executor(answer="figures compared").model,
    tools=[gather, primary_source, backup_source],
    max_replans=1,
)
async def replan_agent(query: str) -> None:
    """Compares figures, switching sources when one is down."""


# --- the slow agent, for cancellation ----------------------------------------------------------


@step()
async def work(label: str, seconds: float, idempotency_key: str) -> str:
    """Work on something for a while."""
    _ledger("start", idempotency_key, "work")
    await asyncio.sleep(seconds)
    _ledger("done", idempotency_key, "work")
    return f"worked on {label}"


SLOW_PLAN: list[dict[str, Any]] = [
    {"step": i, "description": f"Work {i}", "tool": "work",
     "params": {"label": str(i), "seconds": 3.0}, "depends_on": [i - 1] if i > 1 else []}
    for i in (1, 2, 3)
]  # fmt: skip


@agent(
    pattern="plan_execute",
    planner_model=scripted_planner(SLOW_PLAN).model,
    executor_model=scripted_executor().model,
    tools=[work],
)
async def slow_agent(query: str) -> None:
    """Works slowly through three steps."""


# --- the program run in subprocesses ---------------------------------------------------------


def main(argv: list[str]) -> None:
    """`run RUN_ID OUT`: run `replan_agent` (or resume the run RUN_ID); `slow RUN_ID OUT`: run
    `slow_agent`; `idle RUN_ID OUT`: start a runtime, give it time to resume anything it would,
    then report. Each writes the result and the run's events to OUT as JSON. The database
    comes from PYWORKFLOW_DATABASE_URL.
    """
    import time

    import pyworkflow
    from pyworkflow import engine

    mode, run_id, out = argv
    report: dict[str, Any] = {"pid": os.getpid(), "mode": mode}
    if mode == "run":
        report["result"] = replan_agent.run_sync(QUERY, run_id=run_id).model_dump(mode="json")
    elif mode == "slow":
        report["result"] = slow_agent.run_sync("Work", run_id=run_id).model_dump(mode="json")
    elif mode == "idle":
        engine.get_runtime()
        time.sleep(5.0)  # recovery of other processes' runs begins within seconds of launch
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    report["events"] = [e.model_dump(mode="json") for e in pyworkflow.get_events_sync(run_id)]
    pyworkflow.shutdown()
    Path(out).write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
