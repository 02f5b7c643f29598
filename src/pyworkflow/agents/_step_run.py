"""One plan step as its own durable child workflow.

A step may need several recorded operations (an executor-model call, an approval, the tool
call). Run side by side in one workflow they would be numbered in timing order and could be
swapped on recovery (DESIGN.md §7.2), so each step is a child workflow with a deterministic
id, and it reports back — errors included — with one message to its parent.
"""

from __future__ import annotations

from typing import Any

from pyworkflow import engine
from pyworkflow.agents.result import TokenUsage
from pyworkflow.engine import register_target

STEP_TARGET = "pyworkflow.agents._step_run:run_plan_step"
DONE_TOPIC = "pyworkflow.step-done"


async def run_plan_step(agent_name: str, parent_id: str, unit: dict[str, Any]) -> None:
    """Execute one unit of a plan and send the outcome to the parent run."""
    from pyworkflow.agents.plan_execute import agent_named

    message: dict[str, Any] = {"key": unit["key"]}
    started = await engine.now()
    try:
        agent = agent_named(agent_name)
        outcome = await agent.execute_unit(unit)
        message.update(
            ok=True,
            result=outcome.result,
            arguments=outcome.arguments,
            mode=outcome.mode,
            usage=outcome.usage,
        )
    except Exception as exc:  # reported to the parent, which decides: replan or fail
        message.update(
            ok=False, error=describe_error(exc), usage=getattr(exc, "usage", TokenUsage())
        )
    message.update(started_at=started, finished_at=await engine.now())
    await engine.send(parent_id, message, DONE_TOPIC)


def describe_error(exc: BaseException) -> str:
    """'ErrorType: message' for people and planners; retries name the tool's own last error."""
    last = getattr(exc, "last_error", None)
    if isinstance(last, BaseException):
        return f"{describe_error(last)} (after {getattr(exc, 'attempts', '?')} attempts)"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


register_target(STEP_TARGET, run_plan_step)
