"""Cancelling a run: no new step starts, and the outcome is recorded (status and event).

`(await get_run(run_id)).cancel()` from the process running the agent, and from another
process while a third one later starts a runtime on the same database: a cancelled run stays
cancelled, and nothing it had not started ever runs.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import replan_agents

from pyworkflow import EventType, get_events, get_run, step
from pyworkflow.agents import PlanExecuteAgent
from pyworkflow.testing import scripted_executor, scripted_planner
from support.processes import query, spawn, spawn_main, wait_for


class SlowTools:
    """A tool that takes `seconds`; calls are recorded, and `started` is set by the first."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.started = threading.Event()  # set from the runtime's own loop

        @step()
        async def work(label: str, seconds: float) -> str:
            """Work on something for a while."""
            self.calls.append(label)
            self.started.set()
            await asyncio.sleep(seconds)
            return f"worked on {label}"

        self.work = work


def slow_agent(tools: SlowTools, plan: list[dict[str, Any]], **options: Any) -> PlanExecuteAgent:
    return PlanExecuteAgent(
        planner_model=scripted_planner(plan).model,
        executor_model=scripted_executor().model,
        tools=[tools.work],
        name=f"tests.cancel:{uuid.uuid4().hex}",
        **options,
    )


CHAIN = [
    {"step": 1, "description": "First", "tool": "work", "params": {"label": "one", "seconds": 1.5}},
    {"step": 2, "description": "Second", "tool": "work", "params": {"label": "two", "seconds": 0.1},
     "depends_on": [1]},
    {"step": 3, "description": "Third", "tool": "work", "params": {"label": "three", "seconds": 0.1},
     "depends_on": [2]},
]  # fmt: skip


async def wait_until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.usefixtures("runtime")
async def test_cancelling_while_step_one_runs_starts_nothing_more() -> None:
    tools = SlowTools()
    agent = slow_agent(tools, CHAIN)
    run_id = f"cancel-{uuid.uuid4().hex[:8]}"

    running = asyncio.create_task(agent.run("Do three things", run_id=run_id))
    await wait_until(tools.started.is_set)
    handle = await get_run(run_id)
    await handle.cancel()

    # The caller waiting in run() learns the outcome.
    result = await asyncio.wait_for(running, 30)
    assert result.status == "cancelled"
    assert result.run_id == run_id
    # Step 1 was in flight and is abandoned; well after it would have finished, steps 2 and 3
    # have still not started.
    await asyncio.sleep(2.0)
    assert tools.calls == ["one"]
    assert await handle.status() == "cancelled"
    final = await handle.result()
    assert final.status == "cancelled"
    assert final.answer is None

    events = await get_events(run_id)
    types = [e.type for e in events]
    assert types[-1] is EventType.AGENT_CANCELLED
    assert types.count(EventType.AGENT_CANCELLED) == 1
    assert [e["label"] for e in events if e.type is EventType.AGENT_STEP_STARTED] == ["1"]
    assert not {EventType.AGENT_COMPLETED, EventType.AGENT_FAILED} & set(types)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))

    # Running the same id again returns the cancelled run; nothing runs.
    again = await asyncio.wait_for(agent.run("Do three things", run_id=run_id), 30)
    assert again.status == "cancelled"
    await asyncio.sleep(0.5)
    assert tools.calls == ["one"]
    assert [e.type for e in await get_events(run_id)] == types


@pytest.mark.usefixtures("runtime")
async def test_cancelling_a_fan_out_starts_none_of_its_queued_elements() -> None:
    tools = SlowTools()
    plan = [
        {"step": 1, "description": "Each", "tool": "work", "for_each": "$2",
         "params": {"label": "${item}", "seconds": 1.0}},
        {"step": 2, "description": "List", "tool": None},
    ]  # fmt: skip
    executor = scripted_executor(reasoning=json.dumps([f"item {i}" for i in range(6)]))
    agent = PlanExecuteAgent(
        planner_model=scripted_planner(plan).model,
        executor_model=executor.model,
        tools=[tools.work],
        name=f"tests.cancel:{uuid.uuid4().hex}",
        max_parallel=2,
    )

    run_id = f"cancel-{uuid.uuid4().hex[:8]}"
    running = asyncio.create_task(agent.run("Work on each item", run_id=run_id))
    await wait_until(lambda: len(tools.calls) == 2)
    await (await get_run(run_id)).cancel()

    assert (await asyncio.wait_for(running, 30)).status == "cancelled"
    await asyncio.sleep(1.5)
    assert sorted(tools.calls) == ["item 0", "item 1"]


@pytest.mark.usefixtures("runtime")
async def test_cancelling_a_finished_run_changes_nothing() -> None:
    tools = SlowTools()
    plan = [
        {"step": 1, "description": "Quick", "tool": "work", "params": {"label": "q", "seconds": 0}}
    ]
    agent = slow_agent(tools, plan)

    result = await agent.run("Quick")
    handle = await get_run(result.run_id)
    await handle.cancel()

    assert await handle.status() == "completed"
    assert (await handle.result()).answer == result.answer
    types = [e.type for e in await get_events(result.run_id)]
    assert types[-1] is EventType.AGENT_COMPLETED
    assert EventType.AGENT_CANCELLED not in types


# --- across processes -----------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_cancelled_from_another_process_stays_cancelled_after_a_restart(
    database_url: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    env = {"PYWORKFLOW_DATABASE_URL": database_url, "REPLAN_LEDGER": str(ledger)}
    run_id = f"cancel-{uuid.uuid4().hex[:8]}"

    runner = spawn_main(
        "runner", "replan_agents", "slow", run_id, str(tmp_path / "runner.json"),
        env=env, log_dir=tmp_path,
    )  # fmt: skip
    wait_for(
        lambda: any(r.tool == "work" for r in replan_agents.read_ledger(ledger)),
        timeout=120, what="step 1 to start", watch=[runner],
    )  # fmt: skip

    canceller = spawn(
        "canceller",
        "import asyncio, sys, pyworkflow\n"
        "async def main():\n"
        "    await (await pyworkflow.get_run(sys.argv[1])).cancel()\n"
        "asyncio.run(main())\n"
        "pyworkflow.shutdown()\n",
        run_id,
        env=env,
        log_dir=tmp_path,
    )
    canceller.wait(timeout=120)
    runner.wait(timeout=120)
    report = json.loads((tmp_path / "runner.json").read_text())
    assert report["result"]["status"] == "cancelled"

    # A new process with a runtime on the same database: it must not resume the run.
    restarted = spawn_main(
        "restarted", "replan_agents", "idle", run_id, str(tmp_path / "restarted.json"),
        env=env, log_dir=tmp_path,
    )  # fmt: skip
    restarted.wait(timeout=120)

    labels = [r.label for r in replan_agents.read_ledger(ledger) if r.phase == "start"]
    assert labels == ["1"], labels
    (status,) = query(
        database_url, "SELECT status FROM pyworkflow_runs WHERE run_id = ?", (run_id,)
    )[0]
    assert status == "cancelled"
    events = json.loads((tmp_path / "restarted.json").read_text())["events"]
    types = [e["type"] for e in events]
    assert types[-1] == "AGENT_CANCELLED"
    assert [e["payload"]["label"] for e in events if e["type"] == "AGENT_STEP_STARTED"] == ["1"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
