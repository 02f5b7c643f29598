"""Durable overhead: the cost of recording every step, and the time to resume after a crash.

1. The same plans run by PyWorkflow (durable: SQLite, and PostgreSQL when a server is found)
   and by a plain in-memory asyncio DAG executor written here — same tools, same eager
   scheduling, same reference resolution, no durability. Tools return at once, so what remains
   is overhead. Per step: the slope over a chain; per run: what a one-step plan costs beyond
   that step.
2. Crash and resume: a process starts a run of a 6-step chain and is killed with SIGKILL after
   two steps; a new process starts, and we time how long until the run's first new event and
   until the run completes.

PostgreSQL is used when PYWORKFLOW_TEST_POSTGRES_URL names a server, or one accepts the
`postgres` role on 127.0.0.1:5432; a fresh database is created for the benchmark and dropped.

    .venv/bin/python bench/overhead.py [--quick] [--no-postgres]
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

from pyworkflow import EventType, configure, get_events_sync, step
from pyworkflow.agents import PlanExecuteAgent
from pyworkflow.agents.plan import Plan, resolve_for_each, resolve_params
from pyworkflow.agents.scheduler import ready_steps
from pyworkflow.testing import scripted_executor, scripted_planner, temporary_runtime

MAX_PARALLEL = 8
CHAIN = 10


@step()
async def noop(label: str) -> str:
    """Return at once."""
    return f"{label}: done"


@step()
async def items(count: int) -> list[str]:
    """List `count` items."""
    return [f"item-{i}" for i in range(count)]


TOOLS = {"noop": noop, "items": items}


def _noop(n: int, deps: list[int]) -> dict[str, Any]:
    return {
        "step": n,
        "description": f"step {n}",
        "tool": "noop",
        "params": {"label": f"step {n}"},
        "depends_on": deps,
    }


PLANS: dict[str, list[dict[str, Any]]] = {
    "1 step": [_noop(1, [])],
    f"chain of {CHAIN}": [_noop(n, [n - 1] if n > 1 else []) for n in range(1, CHAIN + 1)],
    "fan-out of 8": [_noop(n, []) for n in range(1, 9)],
    "for_each over 8": [
        {
            "step": 1,
            "description": "list",
            "tool": "items",
            "params": {"count": 8},
            "depends_on": [],
        },
        {
            "step": 2,
            "description": "each",
            "tool": "noop",
            "for_each": "$1",
            "params": {"label": "${item}"},
            "depends_on": [1],
        },
    ],
}


def units(plan: list[dict[str, Any]]) -> int:
    """Units of work: steps, with each fan-out element counted (as max_steps counts them)."""
    return sum(8 if s.get("for_each") else 1 for s in plan)


# --- the baseline: an in-memory executor with the same scheduling ------------------------------


async def run_in_memory(plan_data: list[dict[str, Any]]) -> dict[int, Any]:
    """Eager DAG execution with no durability: a step starts when its dependencies finish."""
    plan = Plan.from_list(plan_data)
    results: dict[int, Any] = {}
    started: set[int] = set()
    pending: dict[int, dict[int, Any]] = {}
    sizes: dict[int, int] = {}
    queue: list[tuple[int, int | None, Any]] = []
    running: dict[asyncio.Task[Any], tuple[int, int | None]] = {}
    while True:
        for step_id in ready_steps(plan, done=results.keys(), started=started):
            started.add(step_id)
            s = plan.step(step_id)
            if s.for_each is None:
                queue.append((step_id, None, None))
                continue
            elements = resolve_for_each(s.for_each, results)
            sizes[step_id], pending[step_id] = len(elements), {}
            queue.extend((step_id, i, e) for i, e in enumerate(elements))
        while queue and len(running) < MAX_PARALLEL:
            step_id, index, element = queue.pop(0)
            s = plan.step(step_id)
            params = resolve_params(
                s.params, results, **({} if index is None else {"item": element})
            )
            tool = TOOLS[s.tool or ""]
            arguments = tool.validate(params)
            running[asyncio.ensure_future(tool.fn(**arguments))] = (step_id, index)
        if not running:
            return results
        done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        for task in sorted(done, key=lambda t: running[t]):
            step_id, index = running.pop(task)
            if index is None:
                results[step_id] = task.result()
                continue
            pending[step_id][index] = task.result()
            if len(pending[step_id]) == sizes[step_id]:
                results[step_id] = [pending[step_id][i] for i in range(sizes[step_id])]


def time_in_memory(plan: list[dict[str, Any]], repeats: int) -> float:
    async def many() -> list[float]:
        out = []
        for _ in range(repeats):
            start = time.perf_counter()
            await run_in_memory(plan)
            out.append(time.perf_counter() - start)
        return out

    return c.median(asyncio.run(many()))


# --- durable runs ------------------------------------------------------------------------------


def make_agent(name: str, plan: list[dict[str, Any]]) -> PlanExecuteAgent:
    return PlanExecuteAgent(
        planner_model=scripted_planner(plan).model,
        executor_model=scripted_executor().model,
        tools=list(TOOLS.values()),
        answer="last_step",
        max_parallel=MAX_PARALLEL,
        name=f"bench.overhead:{name}",
    )


def time_durable(agent: PlanExecuteAgent, repeats: int) -> tuple[float, float]:
    """Median (wall of run(), span of the run's own events) in seconds."""
    walls, spans = [], []
    for _ in range(repeats):
        with c.stopwatch() as elapsed:
            result = agent.run_sync("run the plan")
        if result.status != "completed":
            raise SystemExit(f"run {result.run_id} ended {result.status}: {result.error}")
        events = get_events_sync(result.run_id)
        walls.append(elapsed[0])
        spans.append(events[-1].timestamp - events[0].timestamp)
    return c.median(walls), c.median(spans)


def overhead_table(backend: str, url: str | None, repeats: int) -> str:
    rows = []
    measured: dict[str, tuple[float, float, float]] = {}
    agents = {
        name: make_agent(f"{backend}-{i}", plan) for i, (name, plan) in enumerate(PLANS.items())
    }
    with temporary_runtime(url):
        time_durable(make_agent(f"{backend}-warm-up", PLANS["1 step"]), 2)
        for name, plan in PLANS.items():
            memory = time_in_memory(plan, repeats)
            wall, span = time_durable(agents[name], repeats)
            measured[name] = (memory, wall, span)
            n = units(plan)
            rows.append(
                [
                    name,
                    n,
                    f"{memory * 1000:.2f}",
                    f"{wall * 1000:.0f}",
                    f"{span * 1000:.0f}",
                    f"{(span - memory) / n * 1000:.1f}",
                ]
            )
    one, chain = measured["1 step"], measured[f"chain of {CHAIN}"]
    per_step = (chain[2] - one[2]) / (CHAIN - 1)
    per_run_span = one[2] - per_step
    per_run_wall = one[1] - per_step
    text = c.table(
        f"Durable overhead — {backend}, tools that return at once, median of {repeats}",
        [
            "plan",
            "units",
            "in-memory ms",
            "durable wall ms",
            "durable run span ms",
            "overhead ms/unit (span)",
        ],
        rows,
    )
    return text + (
        f"\n{backend}: **{per_step * 1000:.1f} ms per step** (chain slope); per run "
        f"**{per_run_span * 1000:.0f} ms** inside the run (start → completed events) and "
        f"{per_run_wall * 1000:.0f} ms as the caller of run() sees it.\n"
    )


# --- PostgreSQL --------------------------------------------------------------------------------


def postgres_server() -> str | None:
    """A server URL (no database) or None."""
    candidates = [
        os.environ.get("PYWORKFLOW_TEST_POSTGRES_URL", ""),
        "postgresql://postgres@127.0.0.1:5432",
    ]
    try:
        import psycopg
    except ImportError:
        return None
    for url in filter(None, candidates):
        parts = urlsplit(url)
        admin = parts._replace(path="/postgres").geturl()
        try:
            with psycopg.connect(admin, connect_timeout=3):
                return parts._replace(path="").geturl()
        except Exception:
            continue
    return None


@contextmanager
def fresh_postgres(server: str) -> Iterator[str]:
    import psycopg
    from psycopg import sql

    name = f"pyworkflow_bench_{uuid.uuid4().hex[:8]}"
    admin = server + "/postgres"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# --- crash and resume --------------------------------------------------------------------------

CRASH_STEPS = 6
CRASH_STEP_SECONDS = 0.4
CRASH_AFTER = 2  # completed steps before the kill


@step()
async def crash_work(label: str, idempotency_key: str) -> str:
    """Work for a while, noting each call in the ledger."""
    ledger = os.environ.get("BENCH_LEDGER")
    if ledger:
        with open(ledger, "a") as f:
            f.write(f"{os.getpid()} {time.time():.6f} {idempotency_key}\n")
    await asyncio.sleep(CRASH_STEP_SECONDS)
    return f"{label}: done"


CRASH_PLAN = [
    {
        "step": n,
        "description": f"step {n}",
        "tool": "crash_work",
        "params": {"label": f"step {n}"},
        "depends_on": [n - 1] if n > 1 else [],
    }
    for n in range(1, CRASH_STEPS + 1)
]


def crash_agent() -> PlanExecuteAgent:
    return PlanExecuteAgent(
        planner_model=scripted_planner(CRASH_PLAN).model,
        executor_model=scripted_executor().model,
        tools=[crash_work],
        answer="last_step",
        name="bench.overhead:crash",
    )


def child(role: str, url: str, run_id: str) -> int:
    """The body of the killed process ('start') and of the one that resumes ('resume')."""
    marks = {"imported": time.time()}
    configure(database_url=url)
    agent = crash_agent()
    if role == "resume":
        from pyworkflow import engine

        engine.get_runtime()
        marks["runtime_ready"] = time.time()
    result = agent.run_sync("crash me", run_id=run_id)
    marks["finished"] = time.time()
    print(json.dumps({"status": result.status, **marks}), flush=True)
    return 0


def _events(store: Any, run_id: str, after: int = 0) -> list[Any]:
    try:
        return store.read_events(run_id, after=after)
    except Exception:  # the tables may not exist yet
        return []


def crash_and_resume(url: str, workdir: Path) -> dict[str, float]:
    from pyworkflow._store import Store

    run_id = f"crash-{uuid.uuid4().hex[:8]}"
    ledger = workdir / f"{run_id}.ledger"
    env = {**os.environ, "BENCH_LEDGER": str(ledger), "PYTHONUNBUFFERED": "1"}
    env.pop("PYWORKFLOW_DATABASE_URL", None)
    cmd = [sys.executable, __file__, "--child", "start", "--database-url", url, "--run-id", run_id]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    store = Store(url)
    deadline = time.monotonic() + 60
    try:
        while True:
            done = [
                e for e in _events(store, run_id) if e.type == EventType.AGENT_STEP_COMPLETED.value
            ]
            if len(done) >= CRASH_AFTER:
                break
            if first.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    f"the first process ended early: {first.stderr.read().decode()[-2000:]}"
                )
            time.sleep(0.005)
    finally:
        first.kill()  # SIGKILL: the crash
        first.wait()  # reaped, so its pid is gone and the next process takes its runs over at once
    last_seq = max(e.seq for e in _events(store, run_id))
    cmd[3] = "resume"
    started = time.time()
    second = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first_new = None
    try:
        while first_new is None:
            if _events(store, run_id, after=last_seq):
                first_new = time.time()
                break
            if second.poll() is not None:
                break
            time.sleep(0.002)
        out, err = second.communicate(timeout=120)
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
        store.dispose()
    if second.returncode != 0:
        raise SystemExit(f"the resuming process failed: {err.decode()[-2000:]}")
    marks = json.loads(out.decode().strip().splitlines()[-1])
    calls = [line.split() for line in ledger.read_text().splitlines()]
    keys = [key for _, _, key in calls]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    resumed = min(float(t) for pid, t, _ in calls if int(pid) == second.pid)
    return {
        "status_ok": float(marks["status"] == "completed"),
        "imported": marks["imported"] - started,
        "runtime_ready": marks["runtime_ready"] - started,
        "first_tool": resumed - started,
        "first_event": (first_new or marks["finished"]) - started,
        "finished": marks["finished"] - started,
        "remaining_work": (CRASH_STEPS - CRASH_AFTER) * CRASH_STEP_SECONDS,
        "repeated": float(len(repeated)),
    }


def crash_table(results: dict[str, dict[str, float]]) -> str:
    rows = []
    for backend, r in results.items():
        rows.append(
            [
                backend,
                f"{r['imported']:.2f}",
                f"{r['runtime_ready']:.2f}",
                f"{r['first_tool']:.2f}",
                f"{r['first_event']:.2f}",
                f"{r['finished']:.2f}",
                f"{r['remaining_work']:.1f}",
                f"{r['finished'] - r['remaining_work']:.2f}",
                f"{int(r['repeated'])} (the one in flight)"
                if r["repeated"] == 1
                else f"{int(r['repeated'])}",
                "completed" if r["status_ok"] else "**not completed**",
            ]
        )
    return c.table(
        f"Crash and resume — {CRASH_STEPS}-step chain, {CRASH_STEP_SECONDS:g} s a step, SIGKILL after "
        f"{CRASH_AFTER} steps; seconds from the new process's start",
        [
            "database",
            "imports done",
            "runtime up",
            "first tool call",
            "first new event",
            "run completed",
            "work left",
            "completed − work left",
            "tool calls run twice",
            "outcome",
        ],
        rows,
    )


def main() -> int:
    if "--child" in sys.argv:
        args = dict(zip(sys.argv[1::2], sys.argv[2::2], strict=True))
        return child(args["--child"], args["--database-url"], args["--run-id"])

    def extra(parser: Any) -> None:
        parser.add_argument("--no-postgres", action="store_true")
        parser.add_argument("--repeats", type=int, default=None)

    args = c.arguments(__doc__.splitlines()[0], extra)
    # Stopped from outside, still drop the PostgreSQL database and stop the child processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    c.quiet()
    repeats = args.repeats or (1 if args.quick else 7)
    server = None if args.no_postgres else postgres_server()
    with tempfile.TemporaryDirectory(prefix="pyworkflow-bench-") as tmp:
        workdir = Path(tmp)
        c.emit(overhead_table("SQLite", None, repeats))
        crashes = {"SQLite": crash_and_resume(f"sqlite:///{workdir / 'crash.sqlite'}", workdir)}
        if server is not None:
            with fresh_postgres(server) as url:
                c.emit(overhead_table("PostgreSQL", url, repeats))
            with fresh_postgres(server) as url:
                crashes["PostgreSQL"] = crash_and_resume(url, workdir)
        else:
            why = (
                "--no-postgres"
                if args.no_postgres
                else "no server found (PYWORKFLOW_TEST_POSTGRES_URL)"
            )
            c.emit(f"PostgreSQL skipped: {why}.\n")
    c.emit(crash_table(crashes))
    c.emit(f"Machine: {c.machine()}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
