"""Scale out: many worker processes, one database.

Three `run_worker` processes share a PostgreSQL database; a client-only process enqueues runs
of `worker_agents.fleet_agent` and waits for them. The tests judge from outside — the tools'
ledger (who ran which call, when) and the shared database read with plain SQL — that every run
completed exactly once, that the runs were spread over the workers, that a tool's cluster-wide
concurrency limit held, and that the runs of a worker killed with SIGKILL finished on the
others without a finished tool call running again.

The in-process tests below run on SQLite and PostgreSQL alike: queue mode in one process, a
tool's limit honoured in the default direct mode, and a database URL that cannot work failing
fast in one line.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import worker_agents
from worker_agents import PLAN, TOOL_CALLS_PER_RUN, fleet_agent, read_ledger

import pyworkflow
from pyworkflow import engine, step
from pyworkflow.agents import PlanExecuteAgent
from pyworkflow.config import configure, reset_settings
from pyworkflow.exceptions import ConfigurationError
from pyworkflow.testing import scripted_executor, scripted_planner, temporary_runtime
from support.processes import Launcher, Process, dbos_table, query, wait_for

TIMEOUT = 180.0
WORKERS = 3
TOOLS = ("search_web", "fetch_page", "combine")
AGENT_QUEUE = f"pyworkflow.agent.{fleet_agent.name}"


# --- processes -------------------------------------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str) -> Iterator[Cluster]:
    launcher = Launcher(
        tmp_path,
        {"PYWORKFLOW_DATABASE_URL": postgres_url, "WORKER_LEDGER": str(tmp_path / "ledger")},
    )
    yield Cluster(launcher, tmp_path, postgres_url)
    launcher.close()


class Cluster:
    """Worker processes and a client on one database, and what they left in it."""

    def __init__(self, launcher: Launcher, tmp: Path, url: str) -> None:
        self.launcher = launcher
        self.tmp = tmp
        self.url = url
        self.workers: dict[str, Process] = {}  # by executor id

    def start_workers(self, count: int, *, first_env: dict[str, str] | None = None) -> None:
        started = []
        for i in range(count):
            ready = self.tmp / f"worker{i}.ready"
            env = first_env if i == 0 else None
            process = self.launcher.main(
                f"worker{i}", "worker_agents", "worker", str(ready), env=env
            )
            started.append((ready, process))
        for ready, process in started:
            wait_for(ready.exists, timeout=60, what=f"{process.name} to serve", watch=[process])
            self.workers[ready.read_text()] = process

    def client(self, count: int) -> tuple[Process, Path]:
        out = self.tmp / "client.json"
        return self.launcher.main("client", "worker_agents", "client", str(count), str(out)), out

    def ledger(self) -> list[tuple[str, int, str, str, float]]:
        return read_ledger(self.tmp / "ledger")

    def workflows(self, pattern: str) -> dict[str, tuple[str, str | None, str | None]]:
        """workflow id → (status, executor id, queue) of the engine's workflows matching."""
        rows = query(
            self.url,
            f"SELECT workflow_uuid, status, executor_id, queue_name "
            f"FROM {dbos_table(self.url, 'workflow_status')} WHERE workflow_uuid LIKE ?",
            (pattern,),
        )
        return {wf: (status, executor, queue) for wf, status, executor, queue in rows}

    def events(self, run_id: str) -> list[tuple[int, str, dict[str, Any]]]:
        rows = query(
            self.url,
            "SELECT seq, type, payload FROM pyworkflow_events WHERE run_id = ? ORDER BY seq",
            (run_id,),
        )
        return [(seq, kind, json.loads(payload)) for seq, kind, payload in rows]

    def recorded_tool_calls(self) -> set[str]:
        """Idempotency keys (= step workflow ids) whose tool call has its result recorded."""
        rows = query(
            self.url,
            f"SELECT workflow_uuid, function_name FROM {dbos_table(self.url, 'operation_outputs')} "
            "WHERE workflow_uuid LIKE ? AND error IS NULL",
            ("run-%/v1/%",),
        )
        return {wf for wf, function in rows if function in TOOLS}


def max_overlap(spans: Iterable[tuple[float, float]]) -> int:
    """The most intervals open at one moment."""
    edges = sorted(e for start, end in spans for e in ((start, 1), (end, -1)))
    current = peak = 0
    for _, delta in edges:
        current += delta
        peak = max(peak, current)
    return peak


def tool_spans(
    ledger: list[tuple[str, int, str, str, float]], tool: str, *, open_until: float | None = None
) -> list[tuple[float, float]]:
    """(start, end) of each call of `tool`; a call never finished ends at `open_until`."""
    open_calls: dict[tuple[int, str], float] = {}
    spans = []
    for phase, pid, key, name, at in ledger:
        if name != tool:
            continue
        if phase == "start":
            open_calls[(pid, key)] = at
        else:
            spans.append((open_calls.pop((pid, key)), at))
    if open_until is not None:
        spans.extend((start, open_until) for start in open_calls.values())
    return spans


def mid_run(cluster: Cluster, executor_id: str, pid: int) -> bool:
    """The worker has finished a tool call, has another in flight, and executes a run."""
    mine = [(phase, key) for phase, who, key, _, _ in cluster.ledger() if who == pid]
    done = {key for phase, key in mine if phase == "done"}
    in_flight = {key for phase, key in mine if phase == "start"} - done
    owns_run = any(
        status == "PENDING" and executor == executor_id
        for wf, (status, executor, _) in cluster.workflows("run-%").items()
        if "/" not in wf
    )
    return bool(done and in_flight and owns_run)


def assert_completed_exactly_once(
    cluster: Cluster, report: dict[str, Any], run_ids: list[str]
) -> None:
    """Every run completed with the right answer, each event and step once, in order."""
    results = report["results"]
    assert sorted(results) == sorted(run_ids)
    for run_id in run_ids:
        result = results[run_id]
        assert result["status"] == "completed", result
        assert result["answer"] == worker_agents.ANSWER
        assert sorted(s["label"] for s in result["executed_steps"]) == sorted(
            str(s["step"]) for s in PLAN
        )
        events = cluster.events(run_id)
        assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))
        types = Counter(kind for _, kind, _ in events)
        assert types["AGENT_STARTED"] == types["AGENT_COMPLETED"] == 1, types
        assert types["AGENT_STEP_COMPLETED"] == len(PLAN) and not types["AGENT_STEP_FAILED"], types
    workflows = cluster.workflows("run-%")
    assert {workflows[r][0] for r in run_ids} == {"SUCCESS"}


# --- many workers ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.postgres
def test_runs_enqueued_by_a_client_complete_once_spread_over_three_workers(
    cluster: Cluster,
) -> None:
    cluster.start_workers(WORKERS)
    run_ids = [f"run-{i}" for i in range(9)]
    client, out = cluster.client(len(run_ids))
    client.wait(timeout=TIMEOUT)
    report = json.loads(out.read_text())

    # The client only enqueued: it never started a runtime of its own.
    assert report["runtime_started"] is False
    assert set(report["statuses_after_start"].values()) <= {"queued", "running", "completed"}
    assert_completed_exactly_once(cluster, report, run_ids)

    # Every tool call ran exactly once, across all the processes.
    ledger = cluster.ledger()
    starts = Counter(key for phase, _, key, _, _ in ledger if phase == "start")
    dones = Counter(key for phase, _, key, _, _ in ledger if phase == "done")
    assert len(starts) == len(run_ids) * TOOL_CALLS_PER_RUN
    assert set(starts.values()) == set(dones.values()) == {1}, starts
    worker_pids = {p.pid for p in cluster.workers.values()}
    assert {pid for _, pid, _, _, _ in ledger} <= worker_pids  # the client ran no tool

    # The runs were spread over all three workers, each within its two-runs-per-worker limit;
    # their plan steps went through the tools' queues, to any worker.
    workflows = cluster.workflows("run-%")
    runs_by_worker: dict[str, list[str]] = defaultdict(list)
    for run_id in run_ids:
        _, executor, queue = workflows[run_id]
        assert queue == AGENT_QUEUE
        runs_by_worker[str(executor)].append(run_id)
    assert set(runs_by_worker) == set(cluster.workers), runs_by_worker
    # A run's own events bound the time it held its worker's slot.
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for executor, ids in runs_by_worker.items():
        rows = query(
            cluster.url,
            "SELECT run_id, MIN(created_at), MAX(created_at) FROM pyworkflow_events "
            f"WHERE run_id IN ({', '.join('?' for _ in ids)}) GROUP BY run_id",
            ids,
        )
        spans[executor] = [(float(start), float(end)) for _, start, end in rows]
    assert max(max_overlap(s) for s in spans.values()) <= worker_agents.RUNS_PER_WORKER
    steps = {wf: v for wf, v in workflows.items() if "/v1/" in wf}
    assert len(steps) == len(run_ids) * TOOL_CALLS_PER_RUN
    assert {queue for _, _, queue in steps.values()} == {
        "pyworkflow.tool.search_web",
        "pyworkflow.steps",
    }
    assert len({executor for _, executor, _ in steps.values()}) >= 2

    # search_web is limited to two calls at once across the cluster; fetch_page is not, and
    # overlaps more — so the ledger would have shown a breach.
    assert max_overlap(tool_spans(ledger, "search_web")) == worker_agents.SEARCH_LIMIT
    assert max_overlap(tool_spans(ledger, "fetch_page")) > worker_agents.SEARCH_LIMIT

    # Workers stop cleanly on SIGTERM.
    for process in cluster.workers.values():
        process.popen.send_signal(signal.SIGTERM)
    for process in cluster.workers.values():
        process.wait(timeout=60)


OTHER_HOST_TAKEOVER_AFTER = 8.0


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("host", ["same host", "other host"])
def test_a_worker_killed_mid_run_has_its_runs_finished_by_the_others(
    cluster: Cluster, host: str
) -> None:
    # On this host a dead worker's pid is gone, so its runs are taken over at once; a worker
    # elsewhere is only presumed dead once its heartbeat is older than takeover_after.
    if host == "other host":
        cluster.launcher.env["PYWORKFLOW_TAKEOVER_AFTER"] = str(OTHER_HOST_TAKEOVER_AFTER)
        cluster.start_workers(WORKERS, first_env={"WORKER_HOSTNAME": "elsewhere"})
    else:
        cluster.start_workers(WORKERS)
    victim_id, victim = next(iter(cluster.workers.items()))
    assert victim_id.startswith("elsewhere-") == (host == "other host")
    run_ids = [f"run-{i}" for i in range(6)]
    client, out = cluster.client(len(run_ids))

    wait_for(
        lambda: mid_run(cluster, victim_id, victim.pid),
        timeout=TIMEOUT,
        what="the victim to be mid-run",
        watch=[client, victim],
    )
    recorded_before_kill = cluster.recorded_tool_calls()
    victim.kill()
    killed_at = time.time()
    # The victim's last heartbeat, read after it died: the takeover policy counts from it.
    (last_seen,) = query(
        cluster.url,
        "SELECT last_seen FROM pyworkflow_executors WHERE executor_id = ?",
        (victim_id,),
    )[0]
    # What the victim held when it died (a takeover puts it back on its queue, ENQUEUED).
    owned = {
        wf
        for wf, (status, executor, _) in cluster.workflows("run-%").items()
        if status in ("PENDING", "ENQUEUED") and executor == victim_id
    }
    started_by_victim = {key for phase, pid, key, _, _ in cluster.ledger() if pid == victim.pid}

    # The survivors claim the victim (its heartbeat row goes) when the policy says.
    def victim_claimed() -> bool:
        rows = query(
            cluster.url, "SELECT 1 FROM pyworkflow_executors WHERE executor_id = ?", (victim_id,)
        )
        return not rows

    wait_for(victim_claimed, timeout=60, what="the victim to be taken over", watch=[client])
    claimed_at = time.time()
    claimed_after = claimed_at - killed_at
    if host == "same host":
        assert claimed_after < 4, claimed_after
    else:
        # Never before the heartbeat is takeover_after old, however late the victim's last
        # heartbeat came on a loaded machine; and soon after.
        silent = claimed_at - last_seen
        assert silent > OTHER_HOST_TAKEOVER_AFTER, (silent, claimed_after)
        assert claimed_after < OTHER_HOST_TAKEOVER_AFTER + 4, claimed_after

    client.wait(timeout=TIMEOUT)
    report = json.loads(out.read_text())
    assert_completed_exactly_once(cluster, report, run_ids)

    # The runs and steps the victim held finished on the other workers.
    after = cluster.workflows("run-%")
    assert any("/" not in wf for wf in owned), owned
    for wf in owned:
        status, executor, _ = after[wf]
        assert status == "SUCCESS" and executor in cluster.workers and executor != victim_id, (
            wf,
            after[wf],
        )

    # No finished tool call ran again. Only a call the victim had started and whose result was
    # not yet recorded may have run a second time (at-least-once, as documented).
    ledger = cluster.ledger()
    starts = Counter(key for phase, _, key, _, _ in ledger if phase == "start")
    assert len(starts) == len(run_ids) * TOOL_CALLS_PER_RUN
    assert all(starts[key] == 1 for key in recorded_before_kill), {
        key: starts[key] for key in recorded_before_kill if starts[key] != 1
    }
    repeated = {key for key, n in starts.items() if n > 1}
    assert repeated <= started_by_victim - recorded_before_kill, repeated
    assert all(any(phase == "done" and k == key for phase, _, k, _, _ in ledger) for key in starts)
    # The limit held through the takeover too (the victim's open calls count until it died).
    assert (
        max_overlap(tool_spans(ledger, "search_web", open_until=killed_at))
        <= worker_agents.SEARCH_LIMIT
    )


@pytest.mark.slow
@pytest.mark.postgres
def test_a_worker_restarted_under_its_executor_id_resumes_its_own_runs(cluster: Cluster) -> None:
    identity = {"PYWORKFLOW_EXECUTOR_ID": "worker-a"}
    cluster.start_workers(1, first_env=identity)
    (victim,) = cluster.workers.values()
    run_ids = [f"run-{i}" for i in range(3)]
    client, out = cluster.client(len(run_ids))
    wait_for(
        lambda: mid_run(cluster, "worker-a", victim.pid),
        timeout=TIMEOUT,
        what="the worker to be mid-run",
        watch=[client, victim],
    )
    recorded_before_kill = cluster.recorded_tool_calls()
    victim.kill()
    cluster.workers.clear()

    cluster.start_workers(1, first_env=identity)  # no other worker: nobody else could resume
    client.wait(timeout=TIMEOUT)
    assert_completed_exactly_once(cluster, json.loads(out.read_text()), run_ids)
    assert {executor for _, executor, _ in cluster.workflows("run-%").values()} == {"worker-a"}
    starts = Counter(key for phase, _, key, _, _ in cluster.ledger() if phase == "start")
    assert len(starts) == len(run_ids) * TOOL_CALLS_PER_RUN
    assert all(starts[key] == 1 for key in recorded_before_kill)


@pytest.mark.slow
@pytest.mark.postgres
def test_a_run_enqueued_while_no_worker_runs_waits_until_one_starts(
    cluster: Cluster, postgres_url: str
) -> None:
    with temporary_runtime(postgres_url, run_mode="client"):
        handle = fleet_agent.start_sync("query alone", run_id="run-alone")
        assert engine.active_runtime() is None  # a client executes nothing
        assert asyncio.run(handle.status()) == "queued"
        time.sleep(1.0)
        assert asyncio.run(handle.status()) == "queued"  # nobody to take it
        assert fleet_agent.start_sync("query alone", run_id="run-alone").run_id == "run-alone"

        cluster.start_workers(1)
        # A couple of seconds of work: a step completion that waited for a polling fallback
        # instead of a notification (once the case when a client created the tables) shows.
        result = asyncio.run(handle.wait(timeout=30))
    assert result.status == "completed" and result.answer == worker_agents.ANSWER
    (worker_id,) = cluster.workers
    assert cluster.workflows("run-alone")["run-alone"][1] == worker_id
    starts = Counter(key for phase, _, key, _, _ in cluster.ledger() if phase == "start")
    assert len(starts) == TOOL_CALLS_PER_RUN and set(starts.values()) == {1}


# --- one process, either database ----------------------------------------------------------


class Spans:
    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []

    async def hold(self, seconds: float) -> None:
        start = time.monotonic()
        await asyncio.sleep(seconds)
        self.spans.append((start, time.monotonic()))


LIMITED = Spans()
FREE = Spans()


@step(concurrency=1)
async def one_at_a_time(item: str) -> str:
    """A tool its API allows one call of at a time."""
    await LIMITED.hold(0.15)
    return f"one:{item}"


@step()
async def any_number(item: str) -> str:
    """A tool with no limit."""
    await FREE.hold(0.15)
    return f"any:{item}"


FAN_OUT_PLAN = [
    {"step": 1, "description": "List", "tool": None, "params": {}},
    {
        "step": 2,
        "description": "Limited",
        "tool": "one_at_a_time",
        "for_each": "$1",
        "params": {"item": "${item}"},
        "depends_on": [1],
    },
    {
        "step": 3,
        "description": "Free",
        "tool": "any_number",
        "for_each": "$1",
        "params": {"item": "${item}"},
        "depends_on": [1],
    },
]
ITEMS = ["a", "b", "c", "d"]


def fan_out_agent() -> PlanExecuteAgent:
    return PlanExecuteAgent(
        planner_model=scripted_planner(FAN_OUT_PLAN).model,
        executor_model=scripted_executor(reasoning=json.dumps(ITEMS), answer="done").model,
        tools=[one_at_a_time, any_number],
        name=f"tests.workers:{uuid.uuid4().hex[:12]}",
    )


def queues_of(url: str, run_id: str) -> dict[str, str | None]:
    rows = query(
        url,
        f"SELECT workflow_uuid, queue_name FROM {dbos_table(url, 'workflow_status')} "
        "WHERE workflow_uuid = ? OR workflow_uuid LIKE ?",
        (run_id, f"{run_id}/%"),
    )
    return {wf.removeprefix(run_id).lstrip("/") or "run": queue for wf, queue in rows}


@pytest.mark.parametrize("run_mode", ["direct", "queue"])
def test_a_tools_limit_holds_in_one_process_in_either_run_mode(
    database_url: str, run_mode: str
) -> None:
    LIMITED.spans.clear()
    FREE.spans.clear()
    made = fan_out_agent()
    with temporary_runtime(database_url, run_mode=run_mode):
        result = made.run_sync("Work on every item", run_id="fan")
    assert result.status == "completed", result.error
    results = {s.label: s.result for s in result.executed_steps}
    assert [results[f"2{c}"] for c in "abcd"] == [f"one:{i}" for i in ITEMS]
    assert [results[f"3{c}"] for c in "abcd"] == [f"any:{i}" for i in ITEMS]
    assert len(LIMITED.spans) == len(FREE.spans) == len(ITEMS)
    assert max_overlap(LIMITED.spans) == 1
    assert max_overlap(FREE.spans) > 1  # the same fan-out without a limit overlaps

    queues = queues_of(database_url, "fan")
    assert {queues[f"v1/2{c}"] for c in "abcd"} == {"pyworkflow.tool.one_at_a_time"}
    if run_mode == "direct":  # only what has a limit goes through a queue
        assert queues["run"] is None and queues["v1/1"] is None
        assert {queues[f"v1/3{c}"] for c in "abcd"} == {None}
    else:
        assert queues["run"] == f"pyworkflow.agent.{made.name}"
        assert queues["v1/1"] == "pyworkflow.steps"
        assert {queues[f"v1/3{c}"] for c in "abcd"} == {"pyworkflow.steps"}


def test_an_agent_with_max_concurrent_runs_runs_that_many_at_once(database_url: str) -> None:
    LIMITED.spans.clear()
    FREE.spans.clear()
    plan = [{"step": 1, "description": "Work", "tool": "any_number", "params": {"item": "x"}}]
    made = PlanExecuteAgent(
        planner_model=scripted_planner(plan).model,
        executor_model=scripted_executor().model,
        tools=[any_number],
        answer="last_step",
        max_concurrent_runs=1,
        name=f"tests.workers:{uuid.uuid4().hex[:12]}",
    )

    async def three() -> list[Any]:
        return await asyncio.gather(*(made.run(f"q{i}", run_id=f"r{i}") for i in range(3)))

    with temporary_runtime(database_url):
        results = asyncio.run(three())
    assert [r.status for r in results] == ["completed"] * 3
    assert max_overlap(FREE.spans) == 1
    assert {queues_of(database_url, f"r{i}")["run"] for i in range(3)} == {made.queue.name}


@pytest.mark.parametrize(
    "options",
    [
        {"concurrency": 0},
        {"worker_concurrency": -1},
        {"concurrency": 2, "worker_concurrency": 3},
        {"concurrency": 1.5},
    ],
)
def test_bad_concurrency_limits_are_refused_at_definition(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="concurrency"):
        step(**options)(any_number.fn)
    limits = {
        {"concurrency": "max_concurrent_runs", "worker_concurrency": "max_runs_per_worker"}[k]: v
        for k, v in options.items()
    }
    with pytest.raises(ConfigurationError, match="concurrency"):
        PlanExecuteAgent(planner_model="test", name=f"tests.workers:{uuid.uuid4().hex}", **limits)


def test_a_client_process_refuses_to_become_a_worker(sqlite_url: str) -> None:
    with (
        temporary_runtime(sqlite_url, run_mode="client"),
        pytest.raises(ConfigurationError, match="run_mode='client'"),
    ):
        engine.get_runtime()


# --- database URLs that cannot work ------------------------------------------------------------


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts connections and never answers (a firewall dropping packets)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def failure_of(url: str, *, run_mode: str = "direct") -> tuple[str, float]:
    """The ConfigurationError message of starting PyWorkflow on `url`, and how long it took."""
    started = time.monotonic()
    try:
        configure(database_url=url, run_mode=run_mode)  # type: ignore[arg-type]
        if run_mode == "client":
            fleet_agent.start_sync("q", run_id="unreachable")
        else:
            engine.get_runtime()
    except ConfigurationError as exc:
        return str(exc), time.monotonic() - started
    finally:
        pyworkflow.shutdown()
        engine.close_clients()
        reset_settings()
    raise AssertionError(f"{url!r} was accepted")


def server_of(postgres_url: str, **parts: str) -> str:
    split = urlsplit(postgres_url)
    host = f"{split.hostname}:{split.port or 5432}"
    user = parts.get("user", split.username or "postgres")
    password = parts.get("password", "")
    credentials = f"{user}:{password}" if password else user
    return f"postgresql://{credentials}@{host}/{parts.get('database', split.path.strip('/'))}"


@pytest.mark.postgres
@pytest.mark.parametrize("run_mode", ["direct", "client"])
@pytest.mark.parametrize("problem", ["no such database", "no such role", "refused", "black hole"])
def test_an_unusable_postgres_url_fails_fast_in_one_line_naming_the_masked_url(
    postgres_url: str, black_hole: int, problem: str, run_mode: str
) -> None:
    url, expected = {
        "no such database": (
            server_of(postgres_url, password="s3cret", database="no_such_db_x"),
            'database "no_such_db_x" does not exist',
        ),
        "no such role": (
            server_of(postgres_url, user="nobody_x", password="s3cret"),
            'role "nobody_x" does not exist',
        ),
        "refused": ("postgresql://admin:s3cret@127.0.0.1:1/runs", "refused"),
        # The connect timeout bounds the wait; the default is 10 s, the URL may shorten it.
        "black hole": (
            f"postgresql://admin:s3cret@127.0.0.1:{black_hole}/runs?connect_timeout=2",
            "timeout",
        ),
    }[problem]
    message, seconds = failure_of(url, run_mode=run_mode)
    assert seconds < 8, (problem, seconds)
    assert "\n" not in message
    assert expected in message.lower() or expected in message, message
    assert ":***@" in message and "s3cret" not in message
    assert url.split("@", 1)[1].split("?")[0] in message  # host, port and database named


@pytest.mark.slow
def test_an_unanswering_server_times_out_by_default(black_hole: int) -> None:
    message, seconds = failure_of(f"postgresql://admin:s3cret@127.0.0.1:{black_hole}/runs")
    assert seconds < 20, seconds
    assert "timeout" in message.lower() and f"127.0.0.1:{black_hole}/runs" in message


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgresql://admin:s3cret@127.0.0.1:notaport/runs", "malformed"),
        ("postgresql://admin:s3cret@127.0.0.1:5432", "names no database"),
        ("postgresql://admin:s3cret@127.0.0.1:5432/", "names no database"),
    ],
)
def test_a_malformed_postgres_url_is_refused_by_configure(url: str, expected: str) -> None:
    try:
        with pytest.raises(ConfigurationError, match=expected) as info:
            configure(database_url=url)
    finally:
        reset_settings()
    assert "s3cret" not in str(info.value) and "\n" not in str(info.value)


# --- a database that is briefly unavailable ----------------------------------------------------


def test_a_runs_write_waits_out_a_transient_database_error_but_not_a_real_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sqlalchemy as sa

    from pyworkflow import _store

    monkeypatch.setattr(_store.time, "sleep", lambda _: None)
    full = sa.exc.OperationalError(
        "INSERT", {}, Exception("FATAL: sorry, too many clients already")
    )
    wrong = sa.exc.OperationalError("INSERT", {}, Exception('relation "x" does not exist'))
    calls: list[str] = []

    @_store.retry_transient
    def write(failures: list[Exception]) -> str:
        calls.append("attempt")
        if failures:
            raise failures.pop(0)
        return "written"

    assert write([full, full, full]) == "written" and len(calls) == 4
    calls.clear()
    with pytest.raises(sa.exc.OperationalError, match="does not exist"):
        write([wrong])
    assert len(calls) == 1  # a statement that cannot work is not retried


@pytest.mark.slow
@pytest.mark.postgres
def test_a_client_cancels_a_queued_run_and_no_worker_runs_it(
    cluster: Cluster, postgres_url: str
) -> None:
    with temporary_runtime(postgres_url, run_mode="client"):
        handle = fleet_agent.start_sync("never mind", run_id="run-cancelled")
        asyncio.run(handle.cancel())
        assert engine.active_runtime() is None
        assert asyncio.run(handle.status()) == "cancelled"
        cluster.start_workers(1)
        time.sleep(2.0)  # twenty queue polls: time enough for a worker to take it, were it there
        assert asyncio.run(handle.status()) == "cancelled"
    assert cluster.workflows("run-cancelled")["run-cancelled"][0] == "CANCELLED"
    assert cluster.ledger() == []
