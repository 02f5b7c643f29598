"""Model resolution, one model call, and its usage and cost.

Everything above this module calls models through `call_model()`; pydantic-ai's direct
`model_request` does the provider work. A call:

- asks for structured output where the provider has it (`output=`): an output tool the model
  must call, else a native JSON-schema response, else plain JSON text that the caller parses;
- can mark the stable system prefix for prompt caching (`cache_prefix=True`: Anthropic
  `cache_control` on the instructions and tool definitions; OpenAI caches by itself);
- retries rate limits (429) and server faults (5xx, overload, dropped connections) with
  exponential backoff, waiting at least as long as the provider's `Retry-After`, and fails fast
  with a `ModelCallError` carrying the provider's message on anything a retry cannot fix
  (401/403 credentials, 400 bad request, exhausted quota);
- returns plain data (`ModelReply`) with its usage normalised and priced (`TokenUsage`), so the
  engine can record it: a finished call is never paid for twice.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic_ai import exceptions as pai_errors
from pydantic_ai import messages as pai_messages
from pydantic_ai.direct import model_request
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.output import OutputObjectDefinition
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition

from pyworkflow.agents._providers import KNOWN_PREFIXES, build_model
from pyworkflow.agents._usage import usage_of
from pyworkflow.agents.result import TokenUsage
from pyworkflow.exceptions import ModelCallError, ModelResolutionError

__all__ = [
    "PLAN_OUTPUT",
    "PROVIDER_PREFIXES",
    "ModelReply",
    "ModelSpec",
    "OutputSpec",
    "RetryPolicy",
    "ToolCall",
    "call_model",
    "model_label",
    "output_mode",
    "resolve_model",
]

ModelSpec = str | Model
PROVIDER_PREFIXES = KNOWN_PREFIXES
OutputMode = Literal["tool", "native", "text"]


def resolve_model(spec: ModelSpec) -> Model:
    """Turn a model specification into a pydantic-ai Model, without any network request.

    Accepts 'provider:model' (`anthropic:`, `openai:`, `openai-chat:`, `openai-responses:`,
    `ollama:`, or a prefix given a base URL with `configure(model_base_urls=...)`), a bare
    name (`claude-…` → Anthropic, `gpt-…`/`o1…`/`o3…`/`o4…` → OpenAI), or a Model instance.

    Raises:
        ModelResolutionError: unknown provider (the message lists the valid prefixes), or a
            missing API key (the message names the environment variable).
    """
    if isinstance(spec, Model):
        return spec
    if not isinstance(spec, str):
        raise ModelResolutionError(
            f"a model is a 'provider:model' string or a pydantic-ai Model, got {spec!r}"
        )
    from pyworkflow.config import current_settings

    return build_model(spec, dict(current_settings().model_base_urls))


def model_label(model: ModelSpec) -> str:
    """A short name for events and logs, e.g. 'anthropic:claude-opus-4-6' or 'function:plan'."""
    if isinstance(model, str):
        return model
    return f"{model.system}:{model.model_name}"


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ModelReply:
    """What one model call returned; plain data so it can be recorded and replayed.

    Attributes:
        text: The reply's text (empty when it answered only with tool calls).
        tool_calls: Calls of the offered tools.
        usage: Tokens and cost of this call.
        model_name: The model that answered, as the provider named it.
        output: The structured output, when one was asked for and given by an output tool or
            a native JSON response; None otherwise (then parse `text`).
    """

    text: str
    tool_calls: tuple[ToolCall, ...]
    usage: TokenUsage
    model_name: str
    output: Any = None


@dataclass(frozen=True)
class OutputSpec:
    """A structured output to ask for: a JSON object schema, named for the output tool."""

    name: str
    description: str
    schema: Mapping[str, Any]


# Our own generator: a library must not advance the application's seeded global one.
_jitter = random.Random()


@dataclass(frozen=True)
class RetryPolicy:
    """How transient provider faults are retried.

    Attributes:
        attempts: Most times a call is sent, the first included.
        base_delay: Wait before the first retry, doubled for each one after (with jitter).
        max_delay: Longest wait between attempts. A provider asking for a longer wait
            (`Retry-After`) fails the call at once rather than being retried early.
    """

    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        backoff: float = self.base_delay * 2.0 ** (attempt - 1) * (0.75 + _jitter.random() / 2)
        return min(max(backoff, retry_after or 0.0), self.max_delay)


DEFAULT_RETRY = RetryPolicy()

_PLAN_STEP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "step": {"type": "integer", "description": "The step's number, unique in the plan."},
        "description": {"type": "string", "description": "What the step does."},
        "tool": {
            "type": ["string", "null"],
            "description": "The tool to call, or null for a reasoning step.",
        },
        "params": {
            "type": "object",
            "description": "The tool's arguments; '$N' is step N's result.",
            "additionalProperties": True,
        },
        "depends_on": {"type": "array", "items": {"type": "integer"}},
        "for_each": {
            "anyOf": [{"type": "string"}, {"type": "array", "minItems": 1}],
            "description": "'$N': run the step once per element of step N's list result; "
            "or the list of elements itself.",
        },
    },
    "required": ["step", "tool"],
}

PLAN_OUTPUT = OutputSpec(
    name="submit_plan",
    description="Submit the plan: its steps, in the format the instructions describe.",
    schema={
        "type": "object",
        "properties": {"steps": {"type": "array", "items": _PLAN_STEP_SCHEMA, "minItems": 1}},
        "required": ["steps"],
    },
)
"""The planner's structured output, `{"steps": [...]}`, as `agents.plan.parse_plan` reads it."""


def output_mode(model: Model) -> OutputMode:
    """How `model` is asked for structured output: an output tool, native JSON, or text."""
    from pydantic_ai.models.function import FunctionModel
    from pydantic_ai.models.test import TestModel

    if isinstance(model, (FunctionModel, TestModel)):
        return "text"  # scripted models answer in text; their scripts parse nothing else
    try:
        profile = model.profile
    except NotImplementedError:  # routers such as FallbackModel have no single profile
        return "text"
    if profile.get("supports_tools", True):
        return "tool"
    if profile.get("supports_json_schema_output", False):
        return "native"
    return "text"


async def call_model(
    model: Model,
    *,
    system: str,
    prompt: str,
    tools: Sequence[Mapping[str, Any]] = (),
    require_tool: bool = False,
    output: OutputSpec | None = None,
    cache_prefix: bool = False,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> ModelReply:
    """One request: a system prompt, one user message, optionally tools or a structured output.

    Args:
        tools: `{"name", "description", "parameters"}` dicts offered to the model.
        require_tool: The model must answer with a tool call rather than text.
        output: Ask for this structured output (see `output_mode` for how); the reply's
            `output` holds it when the model gave it that way.
        cache_prefix: Mark the system prompt and tool definitions for prompt caching.
        retry: Retries of rate limits and transient faults.

    Raises:
        ModelCallError: the provider refused the call or kept failing.
    """
    mode = output_mode(model) if output is not None else "text"
    params = _parameters(tools, require_tool, output, mode)
    # The SDKs' own retries are off: one policy, ours, that can be tested and reasoned about.
    settings: ModelSettings = {"max_retries": 0}
    if cache_prefix:
        settings["cache"] = {"messages": False}
    request = pai_messages.ModelRequest(
        parts=[pai_messages.UserPromptPart(content=prompt)], instructions=system
    )
    response = await _send(model, request, settings, params, retry)
    text = "".join(p.content for p in response.parts if isinstance(p, pai_messages.TextPart))
    calls = tuple(
        ToolCall(p.tool_name, p.args_as_dict())
        for p in response.parts
        if isinstance(p, pai_messages.ToolCallPart)
    )
    structured: Any = None
    if output is not None and mode == "tool":
        structured = next((c.arguments for c in calls if c.name == output.name), None)
        calls = tuple(c for c in calls if c.name != output.name)
    elif output is not None and mode == "native":
        structured = _decode_object(text)
    return ModelReply(
        text, calls, usage_of(response, model.model_name), response.model_name or "", structured
    )


def _parameters(
    tools: Sequence[Mapping[str, Any]],
    require_tool: bool,
    output: OutputSpec | None,
    mode: OutputMode,
) -> ModelRequestParameters:
    definitions = [
        ToolDefinition(
            name=tool["name"],
            description=tool.get("description"),
            parameters_json_schema=dict(tool["parameters"]),
        )
        for tool in tools
    ]
    if output is not None and mode == "tool":
        tool = ToolDefinition(
            name=output.name,
            description=output.description,
            parameters_json_schema=dict(output.schema),
            kind="output",
            strict=False,  # a plan's params are free-form objects, which strict mode forbids
        )
        return ModelRequestParameters(
            function_tools=definitions,
            output_mode="tool",
            output_tools=[tool],
            allow_text_output=False,
        )
    if output is not None and mode == "native":
        schema = OutputObjectDefinition(
            json_schema=dict(output.schema),
            name=output.name,
            description=output.description,
            strict=False,
        )
        return ModelRequestParameters(
            function_tools=definitions, output_mode="native", output_object=schema
        )
    return ModelRequestParameters(
        function_tools=definitions, allow_text_output=not (require_tool and definitions)
    )


async def _send(
    model: Model,
    request: pai_messages.ModelRequest,
    settings: ModelSettings,
    params: ModelRequestParameters,
    retry: RetryPolicy,
) -> pai_messages.ModelResponse:
    label = model_label(model)
    who = label + _where(model)
    for attempt in range(1, retry.attempts + 1):
        try:
            # Entering the model lets its provider close the HTTP client it opened.
            async with model:
                return await model_request(
                    model, [request], model_settings=settings, model_request_parameters=params
                )
        except pai_errors.ModelAPIError as exc:
            status = getattr(exc, "status_code", None)
            message = _provider_message(exc)
            if not _transient(exc):
                raise ModelCallError(
                    f"{who} refused the call{_status(status)}: {message}{_advice(exc)}",
                    model=label,
                    status_code=status,
                    attempts=attempt,
                ) from exc
            if attempt == retry.attempts:
                raise ModelCallError(
                    f"{who} failed {attempt} times{_status(status)}; last error: {message}",
                    model=label,
                    status_code=status,
                    attempts=attempt,
                ) from exc
            if exc.retry_after is not None and exc.retry_after > retry.max_delay:
                raise ModelCallError(
                    f"{who} is rate limited{_status(status)} and asks to wait "
                    f"{exc.retry_after:g}s, longer than the {retry.max_delay:g}s PyWorkflow "
                    f"waits: {message}",
                    model=label,
                    status_code=status,
                    attempts=attempt,
                ) from exc
            await asyncio.sleep(retry.delay(attempt, exc.retry_after))
        except pai_errors.UnexpectedModelBehavior as exc:  # e.g. a reply the SDK cannot read
            raise ModelCallError(
                f"{who} answered with something unusable: {exc.message}",
                model=label,
                attempts=attempt,
            ) from exc
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


def _where(model: Model) -> str:
    """' at <base URL>' for a server other than the provider's own, to debug a wrong address."""
    try:
        url = model.base_url
    except (AttributeError, NotImplementedError):
        return ""
    if not url or any(host in url for host in ("api.openai.com", "api.anthropic.com")):
        return ""
    return f" at {url}"


def _transient(exc: pai_errors.ModelAPIError) -> bool:
    if isinstance(exc, (pai_errors.ModelRequestRejectedError, pai_errors.ModelQuotaExceededError)):
        return False
    if isinstance(
        exc,
        (
            pai_errors.ModelRateLimitError,
            pai_errors.ModelUnavailableError,
            pai_errors.ModelServerError,
            pai_errors.ModelConnectionError,
        ),
    ):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and (status == 429 or status >= 500)


def _provider_message(exc: pai_errors.ModelAPIError) -> str:
    """The provider's own words: the `message` of its error body, else the whole error."""
    body = exc.body
    if isinstance(body, Mapping):
        error = body.get("error", body)
        for source in (error, body):
            message = source.get("message") if isinstance(source, Mapping) else None
            if isinstance(message, str):
                return message
    return str(exc)


def _status(status: int | None) -> str:
    return f" (HTTP {status})" if status is not None else ""


def _advice(exc: pai_errors.ModelAPIError) -> str:
    if isinstance(exc, pai_errors.ModelAuthenticationError):
        return " — check the API key and that it may use this model"
    if isinstance(exc, pai_errors.ModelNotFoundError):
        return " — check the model name and the provider's base URL"
    if isinstance(exc, pai_errors.ModelQuotaExceededError):
        return " — the account's quota or credit is exhausted"
    return ""


def _decode_object(text: str) -> Any:
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.strip("`").removeprefix("json").strip()
    try:
        return json.loads(stripped)
    except ValueError:
        return None
