"""From a model string to a pydantic-ai Model: provider prefixes, base URLs and API keys.

Resolution is offline: it builds the client but sends nothing, so a bad name or a missing key
fails before a run starts (and before it spends anything).

Where a base URL comes from, first found wins: `configure(model_base_urls={prefix: url})`,
then `PYWORKFLOW_<PREFIX>_BASE_URL`, then the SDK's own variable (`OPENAI_BASE_URL`,
`ANTHROPIC_BASE_URL`, `OLLAMA_BASE_URL`), then the provider's public endpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pydantic_ai.models import Model

from pyworkflow.exceptions import ModelResolutionError

__all__ = ["KNOWN_PREFIXES", "Endpoint", "build_model", "endpoint", "normalise", "valid_prefixes"]

KNOWN_PREFIXES = ("anthropic", "openai", "openai-chat", "openai-responses", "ollama", "test")
_OPENAI_FAMILY = ("openai", "openai-chat", "openai-responses")
_SDK_BASE_URL_ENV = {
    "anthropic": "ANTHROPIC_BASE_URL",
    "openai": "OPENAI_BASE_URL",
    "ollama": "OLLAMA_BASE_URL",
}
_OLLAMA_DEFAULT = "http://localhost:11434/v1"
# Names that appear in PyWorkflow's own examples but are not the provider's model ids.
_ALIASES = {"claude-sonnet-3-7-20250219": "claude-3-7-sonnet-20250219"}


@dataclass(frozen=True)
class Endpoint:
    """Where one provider prefix sends its requests, and with which key."""

    prefix: str
    base_url: str | None
    api_key: str | None
    key_var: str


def normalise(spec: str, custom: tuple[str, ...] = ()) -> tuple[str, str]:
    """Split a model string into (prefix, model name), inferring the provider of bare names.

    Raises:
        ModelResolutionError: the provider cannot be told, or the prefix is unknown.
    """
    name = spec.strip()
    if name == "test":
        return "test", "test"
    if ":" in name:
        prefix, _, model_name = name.partition(":")
        prefix = prefix.strip().lower()
        if prefix not in KNOWN_PREFIXES and prefix not in custom:
            raise ModelResolutionError(
                f"unknown model provider {prefix!r} in {spec!r}; valid prefixes: "
                f"{', '.join(valid_prefixes(custom))} (an OpenAI-compatible server gets a prefix "
                "of its own with configure(model_base_urls={'<prefix>': '<url>'}))"
            )
        if not model_name.strip():
            raise ModelResolutionError(
                f"model string {spec!r} names no model after {prefix + ':'!r}"
            )
        return prefix, _ALIASES.get(model_name.strip(), model_name.strip())
    if name.startswith("claude"):
        return "anthropic", _ALIASES.get(name, name)
    if name.startswith(("gpt-", "o1", "o3", "o4", "chatgpt")):
        return "openai", name
    raise ModelResolutionError(
        f"cannot tell which provider serves model {spec!r}; write it as 'provider:model' with "
        f"provider one of {', '.join(valid_prefixes(custom))} (e.g. 'anthropic:claude-opus-4-6', "
        "'openai:gpt-4.1-mini'), or pass a pydantic-ai Model instance"
    )


def valid_prefixes(custom: tuple[str, ...] = ()) -> list[str]:
    return [*KNOWN_PREFIXES, *sorted(p for p in custom if p not in KNOWN_PREFIXES)]


def endpoint(prefix: str, configured: dict[str, str]) -> Endpoint:
    """The base URL and API key for `prefix`, from settings and the environment."""
    env = os.environ
    family = "openai" if prefix in _OPENAI_FAMILY else prefix
    base_url = (
        configured.get(prefix)
        or configured.get(family)
        or env.get(f"PYWORKFLOW_{_env_name(prefix)}_BASE_URL")
        or env.get(f"PYWORKFLOW_{_env_name(family)}_BASE_URL")
        or env.get(_SDK_BASE_URL_ENV.get(family, ""), "")
        or None
    )
    key_var = f"{_env_name(family)}_API_KEY"
    return Endpoint(prefix, base_url, env.get(key_var) or None, key_var)


def build_model(spec: str, configured: dict[str, str]) -> Model:
    """Build the pydantic-ai Model for a model string. Sends no request.

    Raises:
        ModelResolutionError: unknown provider, or a missing API key (named in the message).
    """
    custom = tuple(configured)
    prefix, model_name = normalise(spec, custom)
    if prefix == "test":
        from pydantic_ai.models.test import TestModel

        return TestModel()
    where = endpoint(prefix, configured)
    try:
        if prefix == "anthropic":
            return _anthropic(spec, model_name, where)
        if prefix == "ollama":
            return _ollama(model_name, where)
        return _openai(spec, prefix, model_name, where)
    except ImportError as exc:
        extra = "anthropic" if prefix == "anthropic" else "openai"
        raise ModelResolutionError(
            f'model {spec!r} needs the {extra} SDK: pip install "pydantic-ai-slim[{extra}]"'
        ) from exc


def _anthropic(spec: str, model_name: str, where: Endpoint) -> Model:
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.providers.anthropic import AnthropicProvider

    if not where.api_key:
        raise ModelResolutionError(
            f"model {spec!r} needs an API key: set the {where.key_var} environment variable"
        )
    provider = AnthropicProvider(api_key=where.api_key, base_url=where.base_url)
    return AnthropicModel(model_name, provider=provider)


def _ollama(model_name: str, where: Endpoint) -> Model:
    from pydantic_ai.models.ollama import OllamaModel
    from pydantic_ai.providers.ollama import OllamaProvider

    provider = OllamaProvider(base_url=where.base_url or _OLLAMA_DEFAULT, api_key=where.api_key)
    return OllamaModel(model_name, provider=provider)


def _openai(spec: str, prefix: str, model_name: str, where: Endpoint) -> Model:
    from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    official = where.base_url is None
    if official and not where.api_key:
        raise ModelResolutionError(
            f"model {spec!r} needs an API key: set the {where.key_var} environment variable"
            " (or point it at an OpenAI-compatible server with "
            "PYWORKFLOW_OPENAI_BASE_URL / configure(model_base_urls=...))"
        )
    # A local server usually needs no key, but the SDK insists on a non-empty one.
    provider = OpenAIProvider(base_url=where.base_url, api_key=where.api_key or "not-needed")
    # `openai:` follows pydantic-ai (the Responses API) on OpenAI itself; on another server it
    # means Chat Completions, the one wire format every OpenAI-compatible server speaks.
    responses = prefix == "openai-responses" or (prefix == "openai" and official)
    if responses:
        return OpenAIResponsesModel(model_name, provider=provider)
    return OpenAIChatModel(model_name, provider=provider)


def _env_name(prefix: str) -> str:
    return prefix.upper().replace("-", "_").replace(".", "_")
