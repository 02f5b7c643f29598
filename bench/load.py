"""Load: many concurrent agent runs across 1, 2 and 3 worker processes on one PostgreSQL database.

For each worker count, a fresh database, that many `run_worker` processes, and one client
process (`run_mode="client"`) that enqueues every run at once and waits for all of them. Each
run plans (a scripted planner that takes 0.5 s), searches twice in parallel (0.6 s each), reads
both pages (0.4 s each), and has its answer written (a scripted executor model, 0.3 s): a
critical path of 1.8 s of simulated latency, six durable steps, eleven recorded operations.

Reported per worker count:
  runs/s    runs ÷ (last completion − first submission)
  p50, p99  run latency: submission by the client → AGENT_COMPLETED, as recorded in the database
            (waiting in the queue for a worker's free slot included)
  started→done  AGENT_STARTED → AGENT_COMPLETED: the run itself, once a worker took it
  spread    runs completed by each worker
  once      every run completed exactly once (one AGENT_COMPLETED each) and every tool call
            ran exactly once (a ledger the tools append to, from every process)
The exit status is 0 unless a run failed or something ran twice. Without a PostgreSQL server the
benchmark says so and exits 0.

    .venv/bin/python bench/load.py [--quick] [--runs N] [--workers 1,2,3]

The server: PYWORKFLOW_BENCH_POSTGRES_URL, else PYWORKFLOW_TEST_POSTGRES_URL, else
postgresql://postgres@127.0.0.1:5432/postgres (`bash scripts/postgres.sh` finds or starts one).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

from pyworkflow import agent, step

BENCH_DIR = Path(__file__).resolve().parent
PLANNER_SECONDS = 0.5
SEARCH_SECONDS = 0.6
READ_SECONDS = 0.4
ANSWER_SECONDS = 0.3
RUNS_PER_WORKER = 16  # max_runs_per_worker: what one process takes on at once
CRITICAL_PATH = PLANNER_SECONDS + SEARCH_SECONDS + READ_SECONDS + ANSWER_SECONDS

PLAN: list[dict[str, Any]] = [
    {"step": 1, "description": "Search the news", "tool": "search", "params": {"query": "news"}},
    {
        "step": 2,
        "description": "Search the filings",
        "tool": "search",
        "params": {"query": "filings"},
    },
    {
        "step": 3,
        "description": "Read the news",
        "tool": "read",
        "params": {"url": "$1"},
        "depends_on": [1],
    },
    {
        "step": 4,
        "description": "Read the filings",
        "tool": "read",
        "params": {"url": "$2"},
        "depends_on": [2],
    },
]


# --- the workload (imported by name, `load`, in every process) --------------------------------


def _ledger(key: str) -> None:
    path = os.environ.get("LOAD_LEDGER")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{key}\n".encode())
        finally:
            os.close(fd)


@step()
async def search(query: str, idempotency_key: str) -> str:
    """Search the web."""
    await asyncio.sleep(SEARCH_SECONDS)
    _ledger(idempotency_key)
    return f"https://example.com/{query}"


@step()
async def read(url: str, idempotency_key: str) -> str:
    """Read a page."""
    await asyncio.sleep(READ_SECONDS)
    _ledger(idempotency_key)
    return c.filler(url, 120)


def _planner() -> Any:
    from pydantic_ai.messages import ModelResponse, TextPart
    from pydantic_ai.models.function import FunctionModel

    async def plan(messages: Any, info: Any) -> ModelResponse:
        await asyncio.sleep(PLANNER_SECONDS)
        return ModelResponse(parts=[TextPart("```json\n" + json.dumps(PLAN) + "\n```")])

    return FunctionModel(plan, model_name="load-planner")


def _executor() -> Any:
    from pydantic_ai.messages import ModelResponse, TextPart
    from pydantic_ai.models.function import FunctionModel

    async def answer(messages: Any, info: Any) -> ModelResponse:  # the only executor call
        await asyncio.sleep(ANSWER_SECONDS)
        return ModelResponse(parts=[TextPart("the summary")])

    return FunctionModel(answer, model_name="load-executor")


@agent(
    pattern="plan_execute",
    planner_model=_planner(),
    executor_model=_executor(),
    tools=[search, read],
    max_runs_per_worker=RUNS_PER_WORKER,
)
async def load_agent(query: str) -> None:
    """Research a company: search twice, read both, summarise."""


def _quiet() -> None:
    # Not `_common.quiet()`: it drops PYWORKFLOW_DATABASE_URL, which names this run's database.
    import logging

    for name in ("dbos", "pyworkflow", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.ERROR)


def worker(ready: str) -> None:
    """A worker process: serve until SIGTERM; write the executor id to `ready` once serving."""
    from pyworkflow.worker import run_worker

    _quiet()
    run_worker(on_start=lambda executor_id: Path(ready).write_text(executor_id))


def client(count: int, out: str) -> None:
    """The client process: enqueue `count` runs at once, wait for all, write submit times."""
    import pyworkflow

    _quiet()
    pyworkflow.configure(run_mode="client")

    async def go() -> dict[str, float]:
        submitted: dict[str, float] = {}

        async def submit(i: int) -> Any:
            run_id = f"load-{i}"
            submitted[run_id] = time.time()
            return await load_agent.start(f"company {i}", run_id=run_id)

        handles = await asyncio.gather(*(submit(i) for i in range(count)))
        for handle in handles:
            await handle.wait(timeout=600)
        return submitted

    submitted = asyncio.run(go())
    pyworkflow.shutdown()
    Path(out).write_text(json.dumps(submitted))


# --- the harness (the `python bench/load.py` process) ------------------------------------------


def server_url() -> str | None:
    """A reachable PostgreSQL server's URL, or None."""
    import psycopg

    env = os.environ
    url = (
        env.get("PYWORKFLOW_BENCH_POSTGRES_URL")
        or env.get("PYWORKFLOW_TEST_POSTGRES_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    admin = (
        url if urlsplit(url).path.strip("/") else urlsplit(url)._replace(path="/postgres").geturl()
    )
    try:
        psycopg.connect(admin, connect_timeout=3, autocommit=True).close()
    except Exception as exc:
        c.emit(
            f"load.py: skipped — no PostgreSQL server at {admin!r} ({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}). Set "
            "PYWORKFLOW_BENCH_POSTGRES_URL, e.g. to the output of `bash scripts/postgres.sh`."
        )
        return None
    return admin


class Database:
    """A database created for one measurement and dropped after it."""

    def __init__(self, admin: str) -> None:
        self.admin = admin
        self.name = f"pyworkflow_bench_{uuid.uuid4().hex[:8]}"
        self.url = urlsplit(admin)._replace(path=f"/{self.name}").geturl()

    def __enter__(self) -> Database:
        self._execute(f'CREATE DATABASE "{self.name}"')
        return self

    def __exit__(self, *_: object) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def _execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url, connect_timeout=10) as conn:
            return list(conn.execute(sql).fetchall())  # type: ignore[arg-type]


def spawn(code: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    # PYWORKFLOW_* settings pass through (e.g. PYWORKFLOW_DATABASE_POOL_SIZE); the database
    # is always this measurement's own.
    child_env = {k: v for k, v in os.environ.items() if k != "PYWORKFLOW_DATABASE_URL"}
    child_env.update(
        env, PYTHONPATH=os.pathsep.join([str(BENCH_DIR), child_env.get("PYTHONPATH", "")])
    )
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code], env=child_env, stdout=out, stderr=subprocess.STDOUT
        )


def measure(admin: str, workers: int, runs: int, tmp: Path) -> dict[str, Any]:
    with Database(admin) as db:
        env = {"PYWORKFLOW_DATABASE_URL": db.url, "LOAD_LEDGER": str(tmp / f"ledger{workers}")}
        procs: list[subprocess.Popen[bytes]] = []
        try:
            ready = [tmp / f"ready{workers}-{i}" for i in range(workers)]
            for i, path in enumerate(ready):
                code = f"import load; load.worker({str(path)!r})"
                procs.append(spawn(code, env, tmp / f"worker{workers}-{i}.log"))
            deadline = time.monotonic() + 120
            while not all(p.exists() for p in ready):
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise RuntimeError(f"workers did not start; see {tmp}")
                time.sleep(0.1)
            out = tmp / f"client{workers}.json"
            client_proc = spawn(
                f"import load; load.client({runs}, {str(out)!r})", env, tmp / f"client{workers}.log"
            )
            if client_proc.wait(timeout=900) != 0:
                raise RuntimeError(f"the client failed; see {tmp / f'client{workers}.log'}")
            submitted: dict[str, float] = json.loads(out.read_text())
            completed = {
                run_id: float(at)
                for run_id, at in db.rows(
                    "SELECT run_id, created_at FROM pyworkflow_events WHERE type = 'AGENT_COMPLETED'"
                )
            }
            began = {
                run_id: float(at)
                for run_id, at in db.rows(
                    "SELECT run_id, created_at FROM pyworkflow_events WHERE type = 'AGENT_STARTED'"
                )
            }
            finals = Counter(
                run_id
                for (run_id,) in db.rows(
                    "SELECT run_id FROM pyworkflow_events WHERE type IN ('AGENT_COMPLETED', 'AGENT_FAILED')"
                )
            )
            executors = Counter(
                executor
                for (executor,) in db.rows(
                    "SELECT executor_id FROM dbos.workflow_status WHERE workflow_uuid NOT LIKE '%/%'"
                )
            )
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
    calls = Counter((tmp / f"ledger{workers}").read_text().split())
    latencies = sorted(completed[r] - submitted[r] for r in submitted if r in completed)
    in_run = sorted(completed[r] - began[r] for r in completed if r in began)
    once = (
        set(completed) == set(submitted)
        and all(finals[r] == 1 for r in submitted)
        and len(calls) == runs * len(PLAN)
        and set(calls.values()) == {1}
    )
    elapsed = max(completed.values()) - min(submitted.values()) if completed else float("nan")
    return {
        "workers": workers,
        "runs": runs,
        "completed": len(completed),
        "runs_per_s": len(completed) / elapsed,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": _percentile(latencies, 0.99),
        "in_run_p50": statistics.median(in_run) if in_run else float("nan"),
        "spread": sorted(executors.values(), reverse=True),
        "once": once,
    }


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main() -> int:
    def extra(parser: Any) -> None:
        parser.add_argument(
            "--runs",
            type=int,
            default=None,
            help="runs per measurement (default 96; 32 with --quick)",
        )
        parser.add_argument(
            "--workers", default="1,2,3", help="worker counts to measure, e.g. 1,2,3"
        )

    args = c.arguments(__doc__.splitlines()[0], extra)
    c.quiet()
    admin = server_url()
    if admin is None:
        return 0
    runs = args.runs or (32 if args.quick else 96)
    counts = [int(n) for n in args.workers.split(",")]
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"pyworkflow-load-{uuid.uuid4().hex[:6]}"
    tmp.mkdir(parents=True)
    c.emit(
        f"{runs} runs enqueued at once by a client; each run: critical path {CRITICAL_PATH:g} s "
        f"of simulated model and tool latency, 4 tool calls; max_runs_per_worker={RUNS_PER_WORKER}"
    )
    c.emit(f"machine: {c.machine()}; PostgreSQL on {urlsplit(admin).hostname}\n")
    rows = []
    ok = True
    for workers in counts:
        result = measure(admin, workers, runs, tmp)
        ok = ok and result["once"] and result["completed"] == runs
        rows.append(
            [
                result["workers"],
                f"{result['completed']}/{runs}",
                f"{result['runs_per_s']:.1f}",
                f"{result['p50']:.2f}",
                f"{result['p99']:.2f}",
                f"{result['in_run_p50']:.2f}",
                " / ".join(map(str, result["spread"])),
                "yes" if result["once"] else "NO",
            ]
        )
    c.emit(
        c.table(
            "Runs across worker processes (PostgreSQL)",
            [
                "workers",
                "completed",
                "runs/s",
                "p50 s",
                "p99 s",
                "started→done p50 s",
                "runs per worker",
                "exactly once",
            ],
            rows,
        )
    )
    if not ok:
        c.emit(f"load.py: a run did not complete exactly once; logs in {tmp}")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
