"""Model resolution, one model call, and its usage and cost.

Everything above this module calls models through `call_model()`; pydantic-ai's direct
`model_request` does the provider work. Usage is normalised per call into `TokenUsage`, with
the cost from genai-prices — an unknown price is None, never zero.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_ai import messages as pai_messages
from pydantic_ai.direct import model_request
from pydantic_ai.models import Model, ModelRequestParameters, infer_model
from pydantic_ai.tools import ToolDefinition

from pyworkflow.agents.result import TokenUsage
from pyworkflow.exceptions import ModelResolutionError

__all__ = ["ModelReply", "ModelSpec", "ToolCall", "call_model", "model_label", "resolve_model"]

ModelSpec = str | Model

PROVIDER_PREFIXES = ("anthropic", "openai", "openai-chat", "openai-responses", "ollama", "test")
_API_KEYS = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}


def _normalise(spec: str) -> str:
    name = spec.strip()
    if ":" in name:
        return name
    if name == "test":
        return name
    if name.startswith("claude"):
        return f"anthropic:{name}"
    if name.startswith(("gpt-", "o1", "o3", "o4", "chatgpt")):
        return f"openai:{name}"
    raise ModelResolutionError(
        f"cannot tell which provider serves model {spec!r}; write it as 'provider:model' with "
        f"provider one of {', '.join(PROVIDER_PREFIXES)} (e.g. 'anthropic:claude-opus-4-6', "
        "'openai:gpt-4.1-mini'), or pass a pydantic-ai Model instance"
    )


def resolve_model(spec: ModelSpec) -> Model:
    """Turn a model specification into a pydantic-ai Model.

    Raises:
        ModelResolutionError: unknown provider, or a missing API key (named in the message).
    """
    if isinstance(spec, Model):
        return spec
    if not isinstance(spec, str):
        raise ModelResolutionError(
            f"a model is a 'provider:model' string or a pydantic-ai Model, got {spec!r}"
        )
    name = _normalise(spec)
    provider = name.split(":", 1)[0]
    if provider not in PROVIDER_PREFIXES:
        raise ModelResolutionError(
            f"unknown model provider {provider!r} in {spec!r}; supported: "
            f"{', '.join(PROVIDER_PREFIXES)}"
        )
    key_var = _API_KEYS.get(provider.split("-")[0])
    if key_var and not os.environ.get(key_var):
        raise ModelResolutionError(
            f"model {spec!r} needs an API key: set the {key_var} environment variable"
        )
    if provider == "ollama" and not os.environ.get("OLLAMA_BASE_URL"):
        raise ModelResolutionError(
            f"model {spec!r} needs the server's address: set OLLAMA_BASE_URL "
            "(e.g. http://localhost:11434/v1)"
        )
    try:
        return infer_model(name)
    except Exception as exc:
        raise ModelResolutionError(f"cannot create model {spec!r}: {exc}") from exc


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
    """What one model call returned; plain data so it can be recorded and replayed."""

    text: str
    tool_calls: tuple[ToolCall, ...]
    usage: TokenUsage
    model_name: str


async def call_model(
    model: Model,
    *,
    system: str,
    prompt: str,
    tools: Sequence[Mapping[str, Any]] = (),
    require_tool: bool = False,
) -> ModelReply:
    """One request: a system prompt, one user message, optionally tools to call.

    Args:
        tools: `{"name", "description", "parameters"}` dicts offered to the model.
        require_tool: The model must answer with a tool call rather than text.
    """
    definitions = [
        ToolDefinition(
            name=tool["name"],
            description=tool.get("description"),
            parameters_json_schema=dict(tool["parameters"]),
        )
        for tool in tools
    ]
    request = pai_messages.ModelRequest(
        parts=[pai_messages.UserPromptPart(content=prompt)], instructions=system
    )
    params = ModelRequestParameters(
        function_tools=definitions, allow_text_output=not (require_tool and definitions)
    )
    response = await model_request(model, [request], model_request_parameters=params)
    text = "".join(p.content for p in response.parts if isinstance(p, pai_messages.TextPart))
    calls = tuple(
        ToolCall(p.tool_name, p.args_as_dict())
        for p in response.parts
        if isinstance(p, pai_messages.ToolCallPart)
    )
    return ModelReply(text, calls, usage_of(response), response.model_name or "")


def usage_of(response: pai_messages.ModelResponse) -> TokenUsage:
    """Normalise a response's usage; price it with genai-prices when the model is known."""
    usage = response.usage
    cost: float | None
    try:
        cost = float(response.cost().total_price)
    except Exception:  # unknown model or provider in the price table: unknown, not free
        cost = None
    return TokenUsage(
        requests=1,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cost_usd=cost,
        unpriced_requests=0 if cost is not None else 1,
    )
