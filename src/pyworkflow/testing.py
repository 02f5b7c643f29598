"""Scripted models and a temporary runtime, for testing agents without a model provider.

```python
from pyworkflow.testing import scripted_planner, scripted_executor, temporary_runtime

planner = scripted_planner([{"step": 1, "description": "Search", "tool": "search_web",
                             "params": {"query": "AI"}}])
with temporary_runtime():
    result = my_agent.run_sync("...")
```

The models are pydantic-ai `FunctionModel`s: the real model layer runs, only the provider is
replaced. `ModelScript.calls` records what each model was asked.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from pyworkflow import engine
from pyworkflow.agents import prompts
from pyworkflow.config import configure, reset_settings

__all__ = [
    "ModelCall",
    "ModelScript",
    "prompt_results",
    "scripted_executor",
    "scripted_planner",
    "temporary_runtime",
]

PlanReply = list[dict[str, Any]] | str


@dataclass(frozen=True)
class ModelCall:
    """One request a scripted model received."""

    kind: str  # "plan", "arguments", "reasoning" or "answer"
    prompt: str
    tool: str | None = None


@dataclass
class ModelScript:
    """A scripted model and the log of what it was asked."""

    model: FunctionModel
    calls: list[ModelCall] = field(default_factory=list)

    def count(self, kind: str | None = None) -> int:
        return sum(1 for c in self.calls if kind is None or c.kind == kind)


def _prompt_text(messages: Sequence[ModelMessage]) -> str:
    parts = []
    for message in messages:
        for part in getattr(message, "parts", ()):
            content = getattr(part, "content", None)
            if isinstance(content, str):
                parts.append(content)
    return "\n".join(parts)


def prompt_results(prompt: str) -> dict[str, Any]:
    """The results an executor prompt shows, by label, for scripted models that answer from them.

    Labels are ``"$1"`` for the inputs of a step, ``"step 2: <description>"`` (and
    ``"step 3a (<element>): <description>"`` for fan-out elements) for the answer. A value that
    is JSON comes back decoded, anything else as its text.
    """
    for marker in ("Results this step depends on:\n", "Results of the executed plan:\n"):
        if marker in prompt:
            blocks = prompts.read_results(prompt.rsplit(marker, 1)[1])
            return {label: _decoded(text) for label, text in blocks.items()}
    return {}


def _decoded(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def scripted_planner(
    *replies: PlanReply | Callable[[str], PlanReply], name: str = "planner"
) -> ModelScript:
    """A planner that answers with each reply in turn (the last one repeats).

    A reply is a plan (list of step dicts, sent as fenced JSON), raw text (to test malformed
    output), or a function of the prompt returning either.
    """
    if not replies:
        raise ValueError("scripted_planner needs at least one reply")
    script = ModelScript(model=FunctionModel(lambda m, i: _respond(m, i), model_name=name))

    def _respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        prompt = _prompt_text(messages)
        reply = replies[min(len(script.calls), len(replies) - 1)]
        script.calls.append(ModelCall("plan", prompt))
        if callable(reply):
            reply = reply(prompt)
        text = (
            reply if isinstance(reply, str) else "```json\n" + json.dumps(reply, indent=1) + "\n```"
        )
        return ModelResponse(parts=[TextPart(text)])

    script.model = FunctionModel(_respond, model_name=name)
    return script


def scripted_executor(
    *,
    arguments: Callable[[str, str], dict[str, Any]] | dict[str, dict[str, Any]] | None = None,
    reasoning: Callable[[str], Any] | str = "done",
    answer: Callable[[str], str] | str = "final answer",
    name: str = "executor",
) -> ModelScript:
    """An executor model.

    Args:
        arguments: Tool arguments to return when asked to fill a tool's arguments: a dict by
            tool name, or a function `(tool_name, prompt) -> dict`.
        reasoning: Result text of reasoning steps (or a function of the prompt).
        answer: The final answer (or a function of the prompt).
    """
    script = ModelScript(model=None)  # type: ignore[arg-type]

    def _respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        prompt = _prompt_text(messages)
        if info.function_tools:
            tool = info.function_tools[0].name
            script.calls.append(ModelCall("arguments", prompt, tool))
            if callable(arguments):
                args = arguments(tool, prompt)
            else:
                args = (arguments or {}).get(tool, {})
            return ModelResponse(parts=[ToolCallPart(tool, args)])
        if info.instructions and info.instructions.startswith(prompts.ANSWER[:40]):
            script.calls.append(ModelCall("answer", prompt))
            text = answer(prompt) if callable(answer) else answer
            return ModelResponse(parts=[TextPart(text)])
        script.calls.append(ModelCall("reasoning", prompt))
        value = reasoning(prompt) if callable(reasoning) else reasoning
        return ModelResponse(
            parts=[TextPart(value if isinstance(value, str) else json.dumps(value))]
        )

    script.model = FunctionModel(_respond, model_name=name)
    return script


@contextmanager
def temporary_runtime(database_url: str | None = None, **settings: Any) -> Iterator[str]:
    """Run PyWorkflow against a throwaway SQLite file (or `database_url`); yields the URL."""
    with tempfile.TemporaryDirectory(prefix="pyworkflow-") as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'runs.sqlite'}"
        engine.shutdown()
        reset_settings()
        configure(database_url=url, **settings)
        try:
            yield url
        finally:
            engine.shutdown()
            engine.close_clients()
            reset_settings()
