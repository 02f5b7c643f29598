"""An agent whose runs a client enqueues and several worker processes share.

Imported by name (`worker_agents`) in every process of a multi-worker test: the workers
(`main(["worker", READY])`), the client (`main(["client", COUNT, OUT])`) and the test itself.

Every tool call appends two lines to the ledger file named by `WORKER_LEDGER`, when it starts
and when it finishes (fsync'd, so a SIGKILL cannot lose a written line):

    start|<pid>|<idempotency key>|<tool>|<time.time()>
    done|<pid>|<idempotency key>|<tool>|<time.time()>

The key is `<run>/v<plan version>/<step label>`, the same on every attempt of one call, so the
test counts from outside how often each call really ran and, from the times, how many calls of
one tool overlapped across all processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from pyworkflow import agent, step
from pyworkflow.testing import scripted_executor, scripted_planner

SEARCH_LIMIT = 2  # search_web calls at once across the whole cluster
SEARCH_SECONDS = float(os.environ.get("WORKER_SEARCH_SECONDS", "0.4"))
FETCH_SECONDS = float(os.environ.get("WORKER_FETCH_SECONDS", "0.3"))
RUNS_PER_WORKER = 2


def _ledger(phase: str, key: str, tool: str) -> None:
    path = os.environ.get("WORKER_LEDGER")
    if not path:
        return
    line = f"{phase}|{os.getpid()}|{key}|{tool}|{time.time():.6f}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


async def _tracked(key: str, tool: str, seconds: float) -> None:
    _ledger("start", key, tool)
    await asyncio.sleep(seconds)
    _ledger("done", key, tool)


@step(concurrency=SEARCH_LIMIT)
async def search_web(query: str, idempotency_key: str) -> str:
    """Search the web (a rate-limited API: at most two calls at once)."""
    await _tracked(idempotency_key, "search_web", SEARCH_SECONDS)
    return f"results for {query}"


@step()
async def fetch_page(url: str, idempotency_key: str) -> str:
    """Fetch a page (no limit)."""
    await _tracked(idempotency_key, "fetch_page", FETCH_SECONDS)
    return f"page {url}"


@step()
async def combine(parts: list[str], idempotency_key: str) -> str:
    """Combine results."""
    await _tracked(idempotency_key, "combine", 0.05)
    return " + ".join(parts)


PLAN: list[dict[str, Any]] = [
    {"step": 1, "description": "Search a", "tool": "search_web", "params": {"query": "a"}},
    {"step": 2, "description": "Search b", "tool": "search_web", "params": {"query": "b"}},
    {"step": 3, "description": "Fetch x", "tool": "fetch_page", "params": {"url": "x"}},
    {"step": 4, "description": "Fetch y", "tool": "fetch_page", "params": {"url": "y"}},
    {"step": 5, "description": "Fetch z", "tool": "fetch_page", "params": {"url": "z"}},
    {
        "step": 6,
        "description": "Combine",
        "tool": "combine",
        "params": {"parts": ["$1", "$2", "$3", "$4", "$5"]},
        "depends_on": [1, 2, 3, 4, 5],
    },
]
TOOL_CALLS_PER_RUN = len(PLAN)
ANSWER = "results for a + results for b + page x + page y + page z"


@agent(
    pattern="plan_execute",
    planner_model=scripted_planner(PLAN).model,
    executor_model=scripted_executor().model,
    tools=[search_web, fetch_page, combine],
    answer="last_step",
    max_runs_per_worker=RUNS_PER_WORKER,
)
async def fleet_agent(query: str) -> None:
    """Search, fetch and combine, with searches limited across the cluster."""


def read_ledger(path: Path) -> list[tuple[str, int, str, str, float]]:
    """The ledger as (phase, pid, key, tool, time) tuples."""
    if not path.exists():
        return []
    rows = []
    for raw in path.read_text().splitlines():
        phase, pid, key, tool, at = raw.split("|")
        rows.append((phase, int(pid), key, tool, float(at)))
    return rows


def main(argv: list[str]) -> None:
    """`worker READY`: serve until SIGTERM, writing the executor id to READY once serving
    (as if on the host WORKER_HOSTNAME, when set).
    `client COUNT OUT`: enqueue COUNT runs (ids run-0 …) from a client-only process, wait for
    every one and write their results to OUT. The database comes from PYWORKFLOW_DATABASE_URL.
    """
    import pyworkflow

    mode, *rest = argv
    if mode == "worker":
        from pyworkflow.worker import run_worker

        (ready,) = rest
        if hostname := os.environ.get("WORKER_HOSTNAME"):
            # Poses as a process on another machine: its pid means nothing to its neighbours,
            # so only its silence can make them take its runs over.
            import socket

            socket.gethostname = lambda: hostname
        run_worker(on_start=lambda executor_id: Path(ready).write_text(executor_id))
        return
    if mode != "client":
        raise SystemExit(f"unknown mode {mode!r}")
    count, out = int(rest[0]), rest[1]
    pyworkflow.configure(run_mode="client")

    async def enqueue_and_wait() -> dict[str, Any]:
        handles = [await fleet_agent.start(f"query {i}", run_id=f"run-{i}") for i in range(count)]
        statuses = {h.run_id: await h.status() for h in handles}
        results = [await h.wait(timeout=240) for h in handles]
        return {
            "statuses_after_start": statuses,
            "results": {r.run_id: r.model_dump(mode="json") for r in results},
        }

    report = asyncio.run(enqueue_and_wait())
    report["runtime_started"] = pyworkflow.engine.active_runtime() is not None
    pyworkflow.shutdown()
    Path(out).write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
