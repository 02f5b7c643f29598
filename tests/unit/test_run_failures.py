"""A run always ends: unexpected errors and unpicklable results still produce a failed run."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from pyworkflow import agent, get_events, step
from pyworkflow.agents import _run
from pyworkflow.testing import scripted_executor, scripted_planner

PLAN = [{"step": 1, "description": "Echo", "tool": "echo", "params": {"x": 1}}]


@step()
async def echo(x: int) -> int:
    """Return x."""
    return x


@step()
async def unpicklable(x: int) -> object:
    """Return something that cannot be recorded."""
    return threading.Lock()


def build(name: str, tool: Any, plan: list[dict[str, Any]]) -> Any:
    async def body(query: str) -> None:
        """Test agent."""

    body.__qualname__ = name
    return agent(
        pattern="plan_execute",
        planner_model=scripted_planner(plan).model,
        executor_model=scripted_executor().model,
        tools=[tool],
        enable_replanning=False,
    )(body)


async def test_an_unexpected_error_fails_the_run_instead_of_leaving_it_running(
    runtime: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_answer(self: Any, progress: Any) -> Any:
        raise KeyError("surprise")

    monkeypatch.setattr(_run.AgentRun, "answer", broken_answer)
    result = await asyncio.wait_for(build("unexpected", echo, PLAN).run("q"), 30)
    assert result.status == "failed"
    assert result.error_type == "KeyError"
    assert "surprise" in (result.error or "")
    events = await get_events(result.run_id)
    assert events[-1].type.value == "AGENT_FAILED"
    assert events[-1].payload["error_type"] == "KeyError"


async def test_a_result_that_cannot_be_recorded_fails_the_step_clearly(runtime: str) -> None:
    plan = [{"step": 1, "description": "Lock", "tool": "unpicklable", "params": {"x": 1}}]
    result = await asyncio.wait_for(build("unrecordable", unpicklable, plan).run("q"), 30)
    assert result.status == "failed"
    assert "cannot pickle" in (result.error or "")
