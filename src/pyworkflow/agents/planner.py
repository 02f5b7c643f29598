"""The planner: one strong-model call turns a request into a validated plan.

An invalid reply is sent back with its exact problems for a bounded number of repair rounds;
after that the run fails with a PlanValidationError listing them. Nothing is silently dropped.
Each model call is a recorded operation, so a crash never pays for a plan twice.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pyworkflow import engine
from pyworkflow.agents import prompts
from pyworkflow.agents.models import (
    PLAN_OUTPUT,
    ModelReply,
    ModelSpec,
    call_model,
    output_mode,
    resolve_model,
)
from pyworkflow.agents.plan import Plan, ToolSignature, parse_plan, validate_plan
from pyworkflow.agents.result import TokenUsage
from pyworkflow.exceptions import PlanValidationError

__all__ = ["PlanOutcome", "Planner"]


@dataclass(frozen=True)
class PlanOutcome:
    """A validated plan, what it cost, and how many model calls it took."""

    plan: Plan
    usage: TokenUsage
    attempts: int
    reply: str


class Planner:
    """Writes plans with a strong model.

    Args:
        model: A 'provider:model' string, a bare model name, or a pydantic-ai Model.
        instructions: The agent's own instructions, placed in the system prompt.
        max_repairs: Repair rounds for an invalid plan before giving up.
    """

    def __init__(self, model: ModelSpec, *, instructions: str = "", max_repairs: int = 2) -> None:
        self.model = model
        self.instructions = instructions
        self.max_repairs = max_repairs

    async def generate_plan(
        self,
        query: str,
        tools: Sequence[ToolSignature],
        *,
        feedback: str | None = None,
        request: str | None = None,
        completed: Collection[int] = (),
        max_steps: int | None = None,
        extra_checks: Sequence[Any] = (),
        before_call: Callable[[TokenUsage], None] | None = None,
    ) -> PlanOutcome:
        """Ask for a plan and validate it, repairing it with the model when invalid.

        Args:
            query: The user's request.
            tools: The tools the plan may use; any other tool name is rejected.
            feedback: A reviewer's feedback on a rejected plan.
            request: A complete user message to send instead of the default (replanning).
            completed: Steps finished under an earlier plan; they stay referenceable.
            max_steps: The most steps a plan may have.
            extra_checks: Callables `plan -> list[str]` adding problems of the caller's own.
            before_call: Called before each model call, repair rounds included, with what
                this plan has cost so far; an exception it raises ends the planning (budgets).

        Raises:
            PlanValidationError: still invalid after `max_repairs` repair rounds.
        """
        catalogue = {t.name: t for t in tools}
        system = prompts.planner_system(self.instructions, [_tool_dict(t) for t in tools])
        message = request or prompts.planner_request(query, feedback=feedback)
        usage = TokenUsage()
        errors: list[str] = []
        reply_text = ""
        for attempt in range(1, self.max_repairs + 2):
            if before_call is not None:
                before_call(usage)
            reply = await self._ask(system, message)
            usage = usage + reply.usage
            reply_text = reply.text or _tool_call_text(reply)
            try:
                plan = parse_plan(reply_text)
                errors = validate_plan(plan, catalogue, max_steps=max_steps, completed=completed)
                for check in extra_checks:
                    errors.extend(check(plan))
            except PlanValidationError as exc:
                errors = exc.errors
            if not errors:
                return PlanOutcome(plan, usage, attempt, reply_text)
            message = prompts.repair_request(query, reply_text, errors)
        failure = PlanValidationError(errors, raw=reply_text)
        failure.usage = usage  # type: ignore[attr-defined]  # spent even though it failed
        raise failure

    async def _ask(self, system: str, message: str) -> ModelReply:
        model = resolve_model(self.model)
        mode = output_mode(model)
        structured = mode != "text"
        # Appended, never varied: the system prompt stays one stable, cacheable prefix.
        if mode == "tool":
            system += (
                f"\n\nSubmit the plan by calling the {PLAN_OUTPUT.name} tool with "
                '{"steps": [...]}, the steps being the objects described above.'
            )
        elif mode == "native":
            system += '\n\nAnswer with the JSON object {"steps": [...]} holding those steps.'
        reply: ModelReply = await engine.run_step(
            "pyworkflow.planner",
            call_model,
            model,
            system=system,
            prompt=message,
            output=PLAN_OUTPUT if structured else None,
            cache_prefix=True,
        )
        plan = reply.output
        if plan is None:
            return reply  # plain text: parse_plan reads the JSON in it
        if isinstance(plan, dict) and isinstance(plan.get("steps"), str):
            with contextlib.suppress(ValueError):  # a model sent the array as a JSON string
                plan = {**plan, "steps": json.loads(plan["steps"])}
        return replace(reply, text=json.dumps(plan), tool_calls=())


def _tool_dict(tool: ToolSignature) -> Mapping[str, Any]:
    return {"name": tool.name, "description": tool.description, "parameters": tool.parameters}


def _tool_call_text(reply: ModelReply) -> str:
    # Some models answer with a tool call holding the plan; take its arguments as the plan.
    import json

    for call in reply.tool_calls:
        return json.dumps(call.arguments)
    return ""
