"""Where a run waits for a human: before a plan executes, and before a dangerous tool call.

Fail closed (DESIGN.md §5): with `require_approval=True` no plan executes without an
approval — the first plan, plans rewritten after a rejection, and plans made by
failure-replanning alike. A decision is validated in the deciding process *before* it is
accepted, against the tool schemas stored with the hook, so a bad payload never reaches (or
wedges) the waiting run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any

from pyworkflow import engine
from pyworkflow.agents.plan import Plan, ToolSignature, parse_plan, validate_plan
from pyworkflow.events import EventType
from pyworkflow.exceptions import (
    ApprovalTimeoutError,
    HookTimeoutError,
    InvalidHookPayloadError,
    PlanValidationError,
    RunError,
    ToolCallRejectedError,
)
from pyworkflow.hooks import open_hook, register_validator

if TYPE_CHECKING:
    from pyworkflow.agents._run import AgentRun
    from pyworkflow.workflow import Step

PLAN_APPROVAL = "plan_approval"
TOOL_APPROVAL = "tool_approval"
APPROVAL_TOPIC_KIND = "approval_requested"


class ApprovalGate:
    """Decides whether a plan may run, asking a human when the agent requires it."""

    def __init__(self, run: AgentRun) -> None:
        self.run = run

    async def approve_plan(
        self,
        plan: Plan,
        *,
        reason: str,
        regenerate: Callable[[str], Awaitable[Plan]],
        completed: Collection[int] = (),
    ) -> Plan:
        """Return the plan to execute: `plan`, a human's edit of it, or a replacement.

        A rejection sends the feedback to the planner through `regenerate`, and the new plan
        needs approval in turn; after `max_rejections` rejections the run fails.
        """
        run, agent = self.run, self.run.agent
        if not agent.require_approval:
            return plan
        rejections = 0
        while True:
            steps = plan.to_list()
            payload = {
                "run_id": run.run_id,
                "query": run.query,
                "agent": agent.name,
                "reason": reason,
                "plan": steps,
                "tools": [_signature_dict(s) for s in agent.signatures()],
                "completed": sorted(completed),
                "max_steps": agent.max_steps,
            }
            opened = await open_hook(
                PLAN_APPROVAL,
                timeout=agent.approval_timeout,
                payload=payload,
                kind=PLAN_APPROVAL,
                run_id=run.run_id,
            )
            hook_id = opened.hook_id
            await run.emit(
                EventType.AGENT_PLAN_APPROVAL_REQUESTED,
                {"hook_id": hook_id, "plan": steps, "reason": reason},
            )
            await run.set_status(
                "waiting_for_approval",
                hook_id=hook_id,
                result=run.result("waiting_for_approval", hook_id=hook_id).model_dump(mode="json"),
            )
            try:
                decision = await opened.wait()
            except HookTimeoutError:
                raise ApprovalTimeoutError(
                    f"plan approval {hook_id} was not decided within {agent.approval_timeout:g}s",
                    run_id=run.run_id,
                ) from None
            await run.set_status("running", hook_id=None)
            outcome = {
                "hook_id": hook_id,
                "approved": decision["approved"],
                "feedback": decision["feedback"],
            }
            if decision["approved"]:
                edited = decision.get("plan")
                if edited is None:
                    await run.emit(EventType.AGENT_PLAN_APPROVED, outcome)
                    return plan
                plan = Plan.from_list(edited)
                run.adopt_edit(plan)
                await run.emit(
                    EventType.AGENT_PLAN_APPROVED,
                    {**outcome, "edited": True, "plan": edited, "version": len(run.plans)},
                )
                return plan
            await run.emit(EventType.AGENT_PLAN_REJECTED, outcome)
            rejections += 1
            if rejections > agent.max_rejections:
                raise RunError(
                    f"the plan was rejected {rejections} times (max_rejections={agent.max_rejections}); "
                    f"last feedback: {decision['feedback']!r}",
                    run_id=run.run_id,
                )
            plan = await regenerate(decision["feedback"] or "The reviewer rejected the plan.")


async def approve_tool_call(
    unit: dict[str, Any], tool: Step[..., Any], arguments: dict[str, Any]
) -> None:
    """Wait for a human to approve one call of a dangerous tool (inside the step's workflow).

    Raises:
        ToolCallRejectedError: rejected, or not decided in time; the step fails (and the run
            may replan).
    """
    from pyworkflow.agents._step_run import DONE_TOPIC
    from pyworkflow.agents.plan_execute import agent_named

    agent = agent_named(unit["agent"])
    request = {
        "tool": tool.name,
        "arguments": arguments,
        "step": unit["key"],
        "run_id": unit["run_id"],
    }
    opened = await open_hook(
        f"tool:{tool.name}",
        timeout=agent.approval_timeout,
        payload=request,
        kind=TOOL_APPROVAL,
        run_id=unit["run_id"],
    )
    await engine.send(
        unit["run_id"],
        {"kind": APPROVAL_TOPIC_KIND, "key": unit["key"], "hook_id": opened.hook_id, **request},
        DONE_TOPIC,
    )
    try:
        decision = await opened.wait()
    except HookTimeoutError:
        raise ToolCallRejectedError(
            f"the call of {tool.name!r} was not approved within {agent.approval_timeout:g}s",
            run_id=unit["run_id"],
            step_id=unit["key"],
        ) from None
    if not decision["approved"]:
        raise ToolCallRejectedError(
            f"the call of {tool.name!r} was rejected: {decision['feedback'] or 'no reason given'}",
            run_id=unit["run_id"],
            step_id=unit["key"],
        )


def _signature_dict(signature: ToolSignature) -> dict[str, Any]:
    return {
        "name": signature.name,
        "description": signature.description,
        "parameters": dict(signature.parameters),
    }


_DECISION_SHAPE = "{'approved': true|false, 'feedback': str or None, 'plan': [steps] or None}"


def _decision(payload: Any, *, allow_plan: bool) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise InvalidHookPayloadError(f"an approval decision is {_DECISION_SHAPE}, got {payload!r}")
    unknown = sorted(set(payload) - {"approved", "feedback", "plan"})
    if unknown:
        raise InvalidHookPayloadError(
            f"unknown field(s) {', '.join(map(repr, unknown))} in an approval decision; expected {_DECISION_SHAPE}"
        )
    approved = payload.get("approved")
    if not isinstance(approved, bool):
        raise InvalidHookPayloadError(f"'approved' must be true or false, got {approved!r}")
    feedback = payload.get("feedback")
    if feedback is not None and not isinstance(feedback, str):
        raise InvalidHookPayloadError(f"'feedback' must be text or None, got {feedback!r}")
    plan = payload.get("plan")
    if plan is not None and not allow_plan:
        raise InvalidHookPayloadError("a tool-call approval takes no 'plan'")
    if plan is not None and not approved:
        raise InvalidHookPayloadError(
            "an edited 'plan' comes with approved=True; to reject, give feedback"
        )
    return {"approved": approved, "feedback": feedback, "plan": plan}


def validate_plan_decision(row: dict[str, Any], payload: Any) -> dict[str, Any]:
    """Check a plan decision, including an edited plan, against the waiting run's tools."""
    decision = _decision(payload, allow_plan=True)
    if decision["plan"] is not None:
        context = row["payload"]
        tools = {
            t["name"]: ToolSignature(t["name"], t["description"], t["parameters"])
            for t in context["tools"]
        }
        try:
            edited = parse_plan(decision["plan"])
            errors = validate_plan(
                edited,
                tools,
                max_steps=context.get("max_steps"),
                completed=context.get("completed", ()),
            )
        except PlanValidationError as exc:
            errors = exc.errors
        if errors:
            raise InvalidHookPayloadError(
                "the edited plan is invalid; the run keeps waiting:\n"
                + "\n".join(f"  - {e}" for e in errors)
            )
        decision["plan"] = edited.to_list()
    return decision


def validate_tool_decision(row: dict[str, Any], payload: Any) -> dict[str, Any]:
    return _decision(payload, allow_plan=False)


register_validator(PLAN_APPROVAL, validate_plan_decision)
register_validator(TOOL_APPROVAL, validate_tool_decision)
