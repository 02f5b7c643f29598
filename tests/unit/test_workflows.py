"""`@workflow`: durable functions that call steps, agents and hooks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pyworkflow import agent, get_run, resume_hook, step, workflow
from pyworkflow.agents import AgentResult
from pyworkflow.exceptions import HookNotFoundError, RunNotFoundError
from pyworkflow.hooks import hook, list_pending_hooks
from pyworkflow.testing import scripted_executor, scripted_planner

ledger: list[str] = []


@step()
async def double(x: int) -> int:
    """Double a number."""
    ledger.append(f"double:{x}")
    return 2 * x


@step()
def shout(text: str) -> str:
    """Upper-case text."""
    ledger.append(f"shout:{text}")
    return text.upper()


@workflow
async def arithmetic(x: int) -> dict[str, Any]:
    a = await double(x)
    b = await double(a)
    return {"a": a, "b": b, "text": await shout("done")}


@workflow
async def waits_for_a_person(order: str) -> str:
    answer = await hook("confirm", timeout=30, payload={"order": order})
    return f"{order}: {answer['choice']}"


summariser = agent(
    pattern="plan_execute",
    planner_model=scripted_planner(
        [{"step": 1, "description": "Double it", "tool": "double", "params": {"x": 21}}]
    ).model,
    executor_model=scripted_executor().model,
    tools=[double],
    answer="last_step",
)(lambda query: None)


@workflow
async def with_agent(query: str) -> int:
    result = await summariser.run(query)
    assert isinstance(result, AgentResult)
    return int(result.answer) + 1


@pytest.fixture(autouse=True)
def _clear() -> None:
    ledger.clear()


async def test_a_workflow_runs_its_steps_once_and_records_its_run(runtime: str) -> None:
    assert await arithmetic.run(3, run_id="arith-1") == {"a": 6, "b": 12, "text": "DONE"}
    assert ledger == ["double:3", "double:6", "shout:done"]
    # the same run id returns the recorded result without running anything again
    assert await arithmetic.run(3, run_id="arith-1") == {"a": 6, "b": 12, "text": "DONE"}
    assert ledger == ["double:3", "double:6", "shout:done"]
    handle = await get_run("arith-1")
    assert await handle.status() == "completed"
    assert await handle.result() == {"a": 6, "b": 12, "text": "DONE"}


def test_run_sync_twin(runtime: str) -> None:
    assert arithmetic.run_sync(1) == {"a": 2, "b": 4, "text": "DONE"}


async def test_a_workflow_waits_on_a_hook_until_someone_resumes_it(runtime: str) -> None:
    task = asyncio.create_task(waits_for_a_person.run("A-1", run_id="hooked-1"))
    for _ in range(200):
        pending = list_pending_hooks(run_id="hooked-1")
        if pending:
            break
        await asyncio.sleep(0.03)
    assert pending[0]["name"] == "confirm"
    assert pending[0]["payload"] == {"order": "A-1"}
    with pytest.raises(HookNotFoundError):
        await resume_hook("hook_missing", {"choice": "x"})
    await resume_hook(pending[0]["hook_id"], {"choice": "ship it"})
    assert await asyncio.wait_for(task, 20) == "A-1: ship it"


async def test_an_agent_inside_a_workflow_is_a_durable_child(runtime: str) -> None:
    assert await with_agent.run("go", run_id="outer-1") == 43
    assert ledger == ["double:21"]
    assert await with_agent.run("go", run_id="outer-1") == 43
    assert ledger == ["double:21"]


async def test_unknown_run_id(runtime: str) -> None:
    with pytest.raises(RunNotFoundError, match="no run with id 'nope'"):
        await get_run("nope")


def test_workflow_requires_an_async_function() -> None:
    from pyworkflow.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="async function"):
        workflow(lambda: None)  # type: ignore[arg-type, return-value]
