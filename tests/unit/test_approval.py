"""Plan and tool approvals inside one process: every decision path and every bad payload."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest

from pyworkflow import agent, approve_workflow_hook, get_events, get_run, resume_hook, step
from pyworkflow.agents import AgentResult
from pyworkflow.exceptions import (
    HookAlreadyDecidedError,
    HookNotFoundError,
    InvalidHookPayloadError,
)
from pyworkflow.hooks import list_pending_hooks
from pyworkflow.testing import scripted_executor, scripted_planner

calls: list[str] = []


@step()
async def lookup(order_id: str) -> dict[str, Any]:
    """Look up an order."""
    calls.append(f"lookup:{order_id}")
    return {"order_id": order_id, "amount": 10.0}


@step(requires_approval=True)
async def pay_out(order_id: str, amount: float) -> str:
    """Send money back to a customer."""
    calls.append(f"pay_out:{order_id}:{amount}")
    return f"paid {amount}"


@step()
async def notify(order_id: str) -> str:
    """Tell the customer."""
    calls.append(f"notify:{order_id}")
    return "notified"


PLAN = [
    {"step": 1, "description": "Find the order", "tool": "lookup", "params": {"order_id": "7"}},
    {
        "step": 2,
        "description": "Notify",
        "tool": "notify",
        "params": {"order_id": "7"},
        "depends_on": [1],
    },
]


def make_agent(name: str, *plans: Any, **options: Any) -> Any:
    options.setdefault("answer", "last_step")
    return agent(
        pattern="plan_execute",
        planner_model=scripted_planner(*plans).model,
        executor_model=scripted_executor().model,
        tools=[lookup, pay_out, notify],
        require_approval=options.pop("require_approval", True),
        **options,
    )(_named(name))


def _named(name: str) -> Any:
    async def body(query: str) -> None:
        """Billing."""

    body.__qualname__ = name
    return body


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    calls.clear()


async def settle(
    run_id: str, *, not_hook: set[str] = frozenset(), timeout: float = 20
) -> AgentResult:  # type: ignore[assignment]
    """Wait until the run finishes or waits on a hook other than those in `not_hook`."""
    handle = await get_run(run_id)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await handle.result()
        if result.status in ("completed", "failed", "cancelled"):
            return result
        if result.status == "waiting_for_approval" and result.hook_id not in not_hook:
            return result
        assert asyncio.get_running_loop().time() < deadline, f"run stuck: {result}"
        await asyncio.sleep(0.03)


async def test_nothing_runs_before_approval_and_approval_runs_the_plan(runtime: str) -> None:
    billing = make_agent("approve_basic", PLAN)
    first = await billing.run("refund order 7")
    assert first.status == "waiting_for_approval"
    assert first.hook_id and first.hook_id.startswith("hook_") and len(first.hook_id) >= 37
    assert [s["tool"] for s in first.plan] == ["lookup", "notify"]
    await asyncio.sleep(0.2)
    assert calls == []
    pending = list_pending_hooks(run_id=first.run_id)
    assert [h["hook_id"] for h in pending] == [first.hook_id]
    assert pending[0]["payload"]["plan"] == first.plan

    await approve_workflow_hook(first.hook_id, approved=True, feedback="Looks good")
    final = await settle(first.run_id, not_hook={first.hook_id})
    assert final.status == "completed"
    assert calls == ["lookup:7", "notify:7"]
    events = await get_events(first.run_id)
    approved = [e for e in events if e.type.value == "AGENT_PLAN_APPROVED"]
    assert approved[0].payload["hook_id"] == first.hook_id
    assert approved[0].payload["approved"] is True
    assert approved[0].payload["feedback"] == "Looks good"
    requested = [e for e in events if e.type.value == "AGENT_PLAN_APPROVAL_REQUESTED"]
    assert requested[0].payload["plan"] == first.plan


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ("yes", "approval decision is"),
        ({"approved": "yes"}, "'approved' must be true or false"),
        ({"approved": True, "feedback": 3}, "'feedback' must be text"),
        ({"approved": True, "comment": "x"}, "unknown field"),
        ({"approved": False, "plan": PLAN}, "comes with approved=True"),
        ({"approved": True, "plan": "not a plan"}, "edited plan is invalid"),
        (
            {"approved": True, "plan": [{"step": 1, "description": "x", "tool": "rm_rf"}]},
            "unknown tool 'rm_rf'",
        ),
        (
            {
                "approved": True,
                "plan": [
                    {"step": 1, "description": "x", "tool": "lookup", "params": {"order_id": 7}}
                ],
            },
            "order_id",
        ),
        (
            {
                "approved": True,
                "plan": [{"step": 1, "description": "x", "tool": "lookup", "depends_on": [1]}],
            },
            "itself",
        ),
    ],
)
async def test_bad_decisions_are_refused_and_the_run_keeps_waiting(
    runtime: str, payload: Any, words: str
) -> None:
    billing = make_agent(f"approve_bad_{abs(hash(words))}", PLAN)
    first = await billing.run("refund order 7")
    with pytest.raises(InvalidHookPayloadError, match=words):
        await resume_hook(first.hook_id, payload)  # type: ignore[arg-type]
    assert (await (await get_run(first.run_id)).result()).status == "waiting_for_approval"
    # The run is unharmed: a good decision still goes through.
    await approve_workflow_hook(first.hook_id, approved=True)  # type: ignore[arg-type]
    assert (await settle(first.run_id, not_hook={first.hook_id})).status == "completed"  # type: ignore[arg-type]


async def test_an_edited_plan_is_validated_recorded_and_executed(runtime: str) -> None:
    billing = make_agent("approve_edit", PLAN)
    first = await billing.run("refund order 7")
    edited = [
        {"step": 1, "description": "Only notify", "tool": "notify", "params": {"order_id": "8"}}
    ]
    await approve_workflow_hook(first.hook_id, approved=True, feedback="just notify", plan=edited)  # type: ignore[arg-type]
    final = await settle(first.run_id, not_hook={first.hook_id})  # type: ignore[arg-type]
    assert final.status == "completed"
    assert calls == ["notify:8"]
    assert [s["description"] for s in final.plan] == ["Only notify"]
    assert len(final.plans) == 2
    approved = [e for e in await get_events(first.run_id) if e.type.value == "AGENT_PLAN_APPROVED"]
    assert approved[0].payload["edited"] is True
    assert approved[0].payload["plan"][0]["params"] == {"order_id": "8"}


async def test_rejection_replans_with_feedback_and_needs_approval_again(runtime: str) -> None:
    planner = scripted_planner(PLAN, PLAN[:1])
    billing = agent(
        pattern="plan_execute",
        planner_model=planner.model,
        executor_model=scripted_executor().model,
        tools=[lookup, notify],
        require_approval=True,
        answer="last_step",
    )(_named("approve_reject"))
    first = await billing.run("refund order 7")
    await approve_workflow_hook(first.hook_id, approved=False, feedback="do not notify anyone")  # type: ignore[arg-type]
    second = await settle(first.run_id, not_hook={first.hook_id})  # type: ignore[arg-type]
    assert second.status == "waiting_for_approval"
    assert "do not notify anyone" in planner.calls[1].prompt
    assert [s["tool"] for s in second.plan] == ["lookup"]
    assert calls == []
    # a duplicate of the accepted decision is a no-op; a different one is refused
    await approve_workflow_hook(first.hook_id, approved=False, feedback="do not notify anyone")  # type: ignore[arg-type]
    with pytest.raises(HookAlreadyDecidedError):
        await approve_workflow_hook(first.hook_id, approved=True)  # type: ignore[arg-type]
    await approve_workflow_hook(second.hook_id, approved=True)  # type: ignore[arg-type]
    final = await settle(first.run_id, not_hook={first.hook_id, second.hook_id})  # type: ignore[arg-type]
    assert final.status == "completed"
    assert calls == ["lookup:7"]
    types = [e.type.value for e in await get_events(first.run_id)]
    assert types.count("AGENT_PLAN_APPROVAL_REQUESTED") == 2
    assert types.count("AGENT_PLAN_REJECTED") == 1


async def test_rejections_are_bounded(runtime: str) -> None:
    billing = make_agent("approve_bounded", PLAN, max_rejections=1)
    first = await billing.run("refund order 7")
    await approve_workflow_hook(first.hook_id, approved=False, feedback="no")  # type: ignore[arg-type]
    second = await settle(first.run_id, not_hook={first.hook_id})  # type: ignore[arg-type]
    await approve_workflow_hook(second.hook_id, approved=False, feedback="still no")  # type: ignore[arg-type]
    final = await settle(first.run_id, not_hook={first.hook_id, second.hook_id})  # type: ignore[arg-type]
    assert final.status == "failed"
    assert "rejected 2 times" in (final.error or "")
    assert calls == []


async def test_unknown_hook_is_a_clear_error(runtime: str) -> None:
    with pytest.raises(HookNotFoundError, match="no hook with id 'hook_nope'"):
        await approve_workflow_hook("hook_nope", approved=True)


async def test_a_dangerous_tool_waits_for_its_own_approval_and_rejection_triggers_replanning(
    runtime: str,
) -> None:
    dangerous = [
        {
            "step": 1,
            "description": "Pay",
            "tool": "pay_out",
            "params": {"order_id": "7", "amount": 10.0},
        }
    ]
    safe = [
        {"step": 2, "description": "Notify instead", "tool": "notify", "params": {"order_id": "7"}}
    ]
    billing = agent(
        pattern="plan_execute",
        planner_model=scripted_planner(dangerous, safe).model,
        executor_model=scripted_executor().model,
        tools=[pay_out, notify],
        require_approval=False,
        answer="last_step",
    )(_named("approve_tool"))
    first = await billing.run("pay order 7")
    assert first.status == "waiting_for_approval"
    pending = list_pending_hooks(run_id=first.run_id)
    assert pending[0]["kind"] == "tool_approval"
    assert pending[0]["payload"]["tool"] == "pay_out"
    assert pending[0]["payload"]["arguments"] == {"order_id": "7", "amount": 10.0}
    assert calls == []
    with pytest.raises(InvalidHookPayloadError, match="takes no 'plan'"):
        await approve_workflow_hook(first.hook_id, approved=True, plan=safe)  # type: ignore[arg-type]
    await approve_workflow_hook(first.hook_id, approved=False, feedback="too much")  # type: ignore[arg-type]
    final = await settle(first.run_id, not_hook={first.hook_id})  # type: ignore[arg-type]
    assert final.status == "completed", final.error
    assert calls == ["notify:7"]
    failed = [s for s in final.executed_steps if s.status == "failed"]
    assert "rejected: too much" in (failed[0].error or "")
    types = [e.type.value for e in await get_events(first.run_id)]
    assert "AGENT_STEP_APPROVAL_REQUESTED" in types
    assert "AGENT_REPLANNING" in types


def test_a_process_that_never_imported_the_agents_still_checks_approval_decisions() -> None:
    # The CLI's `approve` imports only what it needs; an approval hook must be judged by its
    # own validator there too, never by the generic one that accepts any JSON.
    code = """
import sys
from pyworkflow import hooks
assert "pyworkflow.agents._approval" not in sys.modules
plan_check, tool_check = hooks._validator("plan_approval"), hooks._validator("tool_approval")
from pyworkflow.agents._approval import validate_plan_decision, validate_tool_decision
assert (plan_check, tool_check) == (validate_plan_decision, validate_tool_decision)
try:
    hooks._validator("launch_codes")
except hooks.InvalidHookPayloadError as exc:
    print(exc)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "cannot check a delivery to a hook of kind 'launch_codes' (known kinds: hook, "
        "plan_approval, tool_approval); nothing was delivered"
    )
