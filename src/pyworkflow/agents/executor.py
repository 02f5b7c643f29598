"""The executor: carries out one plan step with a cheap model, or with no model at all.

A step whose arguments are complete and valid after reference resolution calls its tool
directly. Otherwise the executor model is offered exactly that one tool and asked for the
arguments; they are validated, with one corrective retry. A step with no tool is a reasoning
step: the model writes its result from its inputs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pyworkflow import engine
from pyworkflow.agents import prompts
from pyworkflow.agents.models import ModelReply, ModelSpec, call_model, resolve_model
from pyworkflow.agents.result import TokenUsage
from pyworkflow.workflow import Step, ToolArgumentsError

__all__ = ["Executor", "StepOutcome"]


@dataclass(frozen=True)
class StepOutcome:
    """What executing one step produced."""

    result: Any
    arguments: dict[str, Any] | None
    mode: Literal["direct", "model", "reasoning"]
    usage: TokenUsage


class Executor:
    """Executes plan steps.

    Args:
        model: The (cheaper) model that fills arguments, does reasoning steps and writes the
            final answer.
        instructions: The agent's own instructions, given with reasoning steps and the answer
            (not with argument filling, which only transcribes).
        corrective_retries: How many times invalid model-filled arguments are sent back.
    """

    def __init__(
        self, model: ModelSpec, *, instructions: str = "", corrective_retries: int = 1
    ) -> None:
        self.model = model
        self.instructions = instructions
        self.corrective_retries = corrective_retries

    async def prepare_arguments(
        self,
        tool: Step[..., Any],
        description: str,
        known: Mapping[str, Any],
        inputs: Mapping[str, Any],
    ) -> tuple[dict[str, Any], Literal["direct", "model"], TokenUsage]:
        """Validated arguments for `tool`: the plan's own when complete, else model-filled.

        Raises:
            ToolArgumentsError: the model's arguments were still invalid after the retries.
        """
        try:
            return tool.validate(dict(known)), "direct", TokenUsage()
        except ToolArgumentsError:
            pass
        usage = TokenUsage()
        message = prompts.step_request(description, known_arguments=known, inputs=inputs)
        offered = [
            {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
        ]
        problems: list[str] = []
        for _ in range(self.corrective_retries + 1):
            reply = await self._ask(prompts.EXECUTOR_ARGUMENTS, message, offered)
            usage = usage + reply.usage
            arguments = _arguments_from(reply, tool.name)
            if arguments is None:
                problems = [f"no call of tool {tool.name!r} in the reply"]
            else:
                try:
                    return tool.validate({**known, **arguments}), "model", usage
                except ToolArgumentsError as exc:
                    problems = exc.problems
            message = prompts.correction_request(message, problems)
        raise ToolArgumentsError(tool.name, problems)

    async def reason(
        self, description: str, params: Mapping[str, Any], inputs: Mapping[str, Any]
    ) -> StepOutcome:
        """Produce a reasoning step's result with the executor model."""
        message = prompts.step_request(description, known_arguments=params, inputs=inputs)
        system = prompts.with_instructions(prompts.EXECUTOR_REASONING, self.instructions)
        reply = await self._ask(system, message, ())
        return StepOutcome(_maybe_json(reply.text), None, "reasoning", reply.usage)

    async def answer(self, query: str, results: Mapping[str, Any]) -> tuple[str, TokenUsage]:
        """Write the final answer from the query and the step results."""
        system = prompts.with_instructions(prompts.ANSWER, self.instructions)
        reply = await self._ask(system, prompts.answer_request(query, results), ())
        return reply.text, reply.usage

    async def _ask(self, system: str, message: str, tools: Any) -> ModelReply:
        model = resolve_model(self.model)
        return await engine.run_step(
            "pyworkflow.executor",
            call_model,
            model,
            system=system,
            prompt=message,
            tools=list(tools),
            require_tool=bool(tools),
        )


def _arguments_from(reply: ModelReply, tool_name: str) -> dict[str, Any] | None:
    for call in reply.tool_calls:
        if call.name == tool_name:
            return dict(call.arguments)
    text = reply.text.strip()
    if text.startswith("{"):
        try:
            decoded = json.loads(text)
        except ValueError:
            return None
        return decoded if isinstance(decoded, dict) else None
    return None


def _maybe_json(text: str) -> Any:
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.strip("`").removeprefix("json").strip()
    if stripped[:1] in ("[", "{"):
        try:
            return json.loads(stripped)
        except ValueError:
            return text
    return text
