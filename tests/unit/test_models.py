"""The model layer: resolving model names offline, call errors, usage and its price.

Requests to providers are covered by tests/integration/test_providers.py against a local
server; nothing here opens a connection.
"""

from __future__ import annotations

import pickle
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price
from pydantic_ai import exceptions as pai_errors
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.ollama import OllamaModel
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.profiles import ModelProfile
from pydantic_ai.usage import RequestUsage

from pyworkflow.agents._usage import usage_of
from pyworkflow.agents.models import (
    PLAN_OUTPUT,
    RetryPolicy,
    _transient,
    call_model,
    model_label,
    output_mode,
    resolve_model,
)
from pyworkflow.agents.plan import ToolSignature
from pyworkflow.agents.planner import Planner
from pyworkflow.agents.result import TokenUsage, Usage
from pyworkflow.config import configure, reset_settings
from pyworkflow.exceptions import ModelCallError, ModelResolutionError, RunError

_ENV = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "OLLAMA_API_KEY",
    "VLLM_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_BASE_URL",
    "OLLAMA_BASE_URL",
    "PYWORKFLOW_OPENAI_BASE_URL",
    "PYWORKFLOW_ANTHROPIC_BASE_URL",
    "PYWORKFLOW_OLLAMA_BASE_URL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No provider variables from the shell, and settings read afresh in every test."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    reset_settings()
    yield
    reset_settings()


def base_url(model: Any) -> str:
    return str(model.client.base_url)


# --- resolution ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "kind", "name"),
    [
        ("claude-opus-4-6", AnthropicModel, "claude-opus-4-6"),
        ("anthropic:claude-sonnet-4-0", AnthropicModel, "claude-sonnet-4-0"),
        # The seed's name for Claude 3.7 Sonnet; Anthropic's id puts the version first.
        ("claude-sonnet-3-7-20250219", AnthropicModel, "claude-3-7-sonnet-20250219"),
        ("gpt-4.1-mini", OpenAIResponsesModel, "gpt-4.1-mini"),
        ("o3-mini", OpenAIResponsesModel, "o3-mini"),
        ("openai:gpt-4.1", OpenAIResponsesModel, "gpt-4.1"),
        ("openai-responses:gpt-4.1", OpenAIResponsesModel, "gpt-4.1"),
        ("openai-chat:gpt-4.1-mini", OpenAIChatModel, "gpt-4.1-mini"),
    ],
)
def test_model_strings_resolve_to_their_provider(
    monkeypatch: pytest.MonkeyPatch, spec: str, kind: type, name: str
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")

    model = resolve_model(spec)

    assert type(model) is kind
    assert model.model_name == name


def test_resolution_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("model resolution opened a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    for spec in ("claude-opus-4-6", "gpt-4.1-mini", "openai-chat:gpt-4.1", "ollama:llama3.2"):
        resolve_model(spec)


@pytest.mark.parametrize(
    ("spec", "variable"),
    [
        ("claude-opus-4-6", "ANTHROPIC_API_KEY"),
        ("anthropic:claude-sonnet-4-0", "ANTHROPIC_API_KEY"),
        ("gpt-4.1-mini", "OPENAI_API_KEY"),
        ("openai-chat:gpt-4.1-mini", "OPENAI_API_KEY"),
        ("openai-responses:gpt-4.1-mini", "OPENAI_API_KEY"),
    ],
)
def test_a_missing_api_key_names_the_variable(spec: str, variable: str) -> None:
    with pytest.raises(ModelResolutionError, match=f"set the {variable} environment variable"):
        resolve_model(spec)


@pytest.mark.parametrize(
    "spec", ["bogus:thing", "gemini:gemini-2.5-pro", "llama3", "mistral-large"]
)
def test_an_unknown_provider_lists_the_valid_prefixes(spec: str) -> None:
    with pytest.raises(ModelResolutionError) as info:
        resolve_model(spec)
    message = str(info.value)
    assert repr(spec) in message or repr(spec.split(":")[0]) in message
    for prefix in ("anthropic", "openai", "openai-chat", "openai-responses", "ollama"):
        assert prefix in message


def test_a_model_string_without_a_model_is_refused() -> None:
    with pytest.raises(ModelResolutionError, match="names no model"):
        resolve_model("anthropic:")


@pytest.mark.parametrize("value", [42, None, ["openai:gpt-4.1"]])
def test_a_model_that_is_neither_string_nor_model_is_refused(value: Any) -> None:
    with pytest.raises(ModelResolutionError, match=repr(value).replace("[", r"\[")):
        resolve_model(value)


def test_a_model_instance_is_used_as_given() -> None:
    model = TestModel()
    assert resolve_model(model) is model
    assert model_label(model) == "test:test"
    assert model_label("claude-opus-4-6") == "claude-opus-4-6"


def test_an_openai_compatible_server_from_configure_needs_no_key() -> None:
    configure(model_base_urls={"openai": "http://gpu-box:8000/v1"})

    model = resolve_model("openai:meta-llama/Llama-3.1-8B-Instruct")

    # On a server other than OpenAI's, `openai:` speaks Chat Completions: every
    # OpenAI-compatible server has it, few have the Responses API.
    assert type(model) is OpenAIChatModel
    assert base_url(model) == "http://gpu-box:8000/v1/"
    assert type(resolve_model("openai-responses:some-model")) is OpenAIResponsesModel


@pytest.mark.parametrize("variable", ["PYWORKFLOW_OPENAI_BASE_URL", "OPENAI_BASE_URL"])
def test_an_openai_base_url_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "http://127.0.0.1:9/v1")

    model = resolve_model("openai-chat:qwen2.5")

    assert base_url(model) == "http://127.0.0.1:9/v1/"


def test_configure_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://from-env:1/v1")
    configure(model_base_urls={"openai": "http://from-configure:2/v1"})

    assert base_url(resolve_model("openai-chat:m")) == "http://from-configure:2/v1/"


def test_a_custom_prefix_names_an_openai_compatible_server(monkeypatch: pytest.MonkeyPatch) -> None:
    configure(model_base_urls={"vllm": "http://gpu-box:8000/v1"})
    monkeypatch.setenv("VLLM_API_KEY", "vllm-secret")

    model = resolve_model("vllm:Qwen/Qwen2.5-7B-Instruct")

    assert type(model) is OpenAIChatModel
    assert model.model_name == "Qwen/Qwen2.5-7B-Instruct"
    assert base_url(model) == "http://gpu-box:8000/v1/"
    assert model.client.api_key == "vllm-secret"
    with pytest.raises(ModelResolutionError, match="vllm"):  # listed among the valid prefixes
        resolve_model("sglang:some-model")


def test_the_openai_key_is_not_sent_to_another_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")
    configure(model_base_urls={"vllm": "http://gpu-box:8000/v1"})

    assert resolve_model("vllm:m").client.api_key != "sk-openai-secret"


def test_ollama_defaults_to_the_local_server(monkeypatch: pytest.MonkeyPatch) -> None:
    model = resolve_model("ollama:llama3.2")
    assert type(model) is OllamaModel
    assert base_url(model) == "http://localhost:11434/v1/"

    monkeypatch.setenv("OLLAMA_BASE_URL", "http://ollama-box:11434/v1")
    assert base_url(resolve_model("ollama:llama3.2")) == "http://ollama-box:11434/v1/"


def test_an_anthropic_base_url_can_be_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    configure(model_base_urls={"anthropic": "http://proxy:8080"})

    assert base_url(resolve_model("claude-opus-4-6")).startswith("http://proxy:8080")


# --- how plans are asked for --------------------------------------------------------------------


def test_providers_with_tools_are_asked_for_an_output_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")

    assert output_mode(resolve_model("claude-opus-4-6")) == "tool"
    assert output_mode(resolve_model("gpt-4.1-mini")) == "tool"
    assert output_mode(resolve_model("openai-chat:gpt-4.1-mini")) == "tool"
    no_tools = OpenAIChatModel(
        "m",
        provider=resolve_model("openai-chat:m").provider,  # type: ignore[arg-type]
        profile=ModelProfile(supports_tools=False, supports_json_schema_output=True),
    )
    assert output_mode(no_tools) == "native"


def test_scripted_models_answer_in_text() -> None:
    assert output_mode(TestModel()) == "text"
    assert output_mode(FunctionModel(lambda m, i: ModelResponse(parts=[TextPart("x")]))) == "text"


async def test_a_function_model_planner_gets_plain_json_text() -> None:
    seen: list[AgentInfo] = []

    def plan(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append(info)
        return ModelResponse(
            parts=[TextPart('```json\n[{"step": 1, "description": "Think", "tool": null}]\n```')]
        )

    outcome = await Planner(FunctionModel(plan)).generate_plan("Think", [])

    assert [s.description for s in outcome.plan.steps] == ["Think"]
    assert seen[0].output_tools == [] and seen[0].allow_text_output
    assert "Answer with a JSON array" in (seen[0].instructions or "")
    assert PLAN_OUTPUT.name not in (seen[0].instructions or "")


async def test_call_model_offers_tools_and_reads_the_call() -> None:
    offered: list[Any] = []

    def fill(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        offered.extend(info.function_tools)
        return ModelResponse(parts=[ToolCallPart("search_web", {"query": "AI"})])

    tool = {"name": "search_web", "description": "Search.", "parameters": {"type": "object"}}
    reply = await call_model(
        FunctionModel(fill), system="s", prompt="p", tools=[tool], require_tool=True
    )

    assert [t.name for t in offered] == ["search_web"]
    assert reply.tool_calls[0].name == "search_web"
    assert reply.tool_calls[0].arguments == {"query": "AI"}
    assert reply.usage.cost_usd is None and reply.usage.unpriced_requests == 1


async def test_planner_tools_reach_the_system_prompt_unchanged_between_calls() -> None:
    prompts: list[str] = []

    def plan(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        prompts.append(info.instructions or "")
        return ModelResponse(
            parts=[TextPart('[{"step": 1, "description": "Look", "tool": "look"}]')]
        )

    planner = Planner(FunctionModel(plan), instructions="Be brief.")
    tools = [ToolSignature("look", "Look around.", {"type": "object", "properties": {}})]
    await planner.generate_plan("first query", tools)
    await planner.generate_plan("another query", tools)

    # The system prompt is the cacheable prefix: the query must never leak into it.
    assert prompts[0] == prompts[1]
    assert "look" in prompts[0] and "first query" not in prompts[0]


# --- errors -------------------------------------------------------------------------------------


def test_model_call_errors_survive_being_recorded() -> None:
    error = ModelCallError("refused", model="anthropic:claude", status_code=401, attempts=1)

    copy = pickle.loads(pickle.dumps(error))

    assert isinstance(copy, RunError)
    assert (copy.model, copy.status_code, copy.attempts) == ("anthropic:claude", 401, 1)
    assert str(copy) == str(error)


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (529, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (422, False),
    ],
)
def test_which_http_errors_are_retried(status: int, transient: bool) -> None:
    error = pai_errors.ModelHTTPError(status, "m", {"error": {"message": "x"}})
    assert _transient(error) is transient


def test_backoff_grows_honours_retry_after_and_is_capped() -> None:
    policy = RetryPolicy(attempts=4, base_delay=1.0, max_delay=10.0)

    first, second, third = (policy.delay(n, None) for n in (1, 2, 3))

    assert 0.75 <= first <= 1.25 and 1.5 <= second <= 2.5 and 3.0 <= third <= 5.0
    assert policy.delay(1, 7.0) == 7.0  # never earlier than the provider asked
    assert policy.delay(10, None) == 10.0


async def test_an_unreadable_reply_is_a_model_call_error() -> None:
    def broken(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise pai_errors.UnexpectedModelBehavior("empty response")

    with pytest.raises(ModelCallError, match="empty response"):
        await call_model(FunctionModel(broken), system="s", prompt="p")


# --- usage and cost -----------------------------------------------------------------------------


def response(provider: str | None, model: str, **usage: int) -> ModelResponse:
    return ModelResponse(
        parts=[TextPart("ok")],
        usage=RequestUsage(**usage),
        model_name=model,
        provider_name=provider,
    )


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        # 700 uncached input x $3/M + 200 cache reads x $0.30/M + 100 cache writes x $3.75/M
        # + 500 output x $15/M
        ("anthropic", "claude-sonnet-4-20250514", 0.0021 + 0.00006 + 0.000375 + 0.0075),
        # 800 uncached input x $0.40/M + 200 cached x $0.10/M + 500 output x $1.60/M
        ("openai", "gpt-4.1-mini", 0.00032 + 0.00002 + 0.0008),
    ],
)
def test_known_models_are_priced(provider: str, model: str, expected: float) -> None:
    writes = 100 if provider == "anthropic" else 0
    usage = usage_of(
        response(
            provider,
            model,
            input_tokens=1000,
            output_tokens=500,
            cache_read_tokens=200,
            cache_write_tokens=writes,
        )
    )

    direct = calc_price(
        PriceUsage(
            input_tokens=1000, output_tokens=500, cache_read_tokens=200, cache_write_tokens=writes
        ),
        model,
        provider_id=provider,
    )
    assert usage.cost_usd == pytest.approx(float(direct.total_price))
    assert usage.cost_usd == pytest.approx(expected)
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens) == (1000, 500, 200)
    assert usage.unpriced_requests == 0


@pytest.mark.parametrize(
    ("provider", "model"),
    [("openai", "my-finetune-that-does-not-exist"), ("ollama", "llama3.2"), (None, "planner")],
)
def test_an_unknown_price_is_none_never_zero(provider: str | None, model: str) -> None:
    usage = usage_of(response(provider, model, input_tokens=10, output_tokens=5))

    assert usage.cost_usd is None
    assert usage.unpriced_requests == 1
    assert usage.total_tokens == 15


def test_one_unpriced_call_makes_the_total_unknown() -> None:
    priced = usage_of(response("openai", "gpt-4.1-mini", input_tokens=10, output_tokens=5))
    unpriced = usage_of(response("openai", "no-such-model", input_tokens=10, output_tokens=5))

    total = Usage().add("planner", priced).add("executor", unpriced).total

    assert priced.cost_usd is not None and priced.cost_usd > 0
    assert total.cost_usd is None and total.unpriced_requests == 1
    assert total.requests == 2 and total.total_tokens == 30


def test_the_requested_name_prices_a_response_without_one() -> None:
    unnamed = response("openai", "", input_tokens=1000, output_tokens=0)
    assert usage_of(unnamed, "gpt-4.1-mini").cost_usd == pytest.approx(0.0004)
    assert usage_of(unnamed).cost_usd is None


def test_token_usage_defaults_to_nothing_spent() -> None:
    assert TokenUsage().cost_usd == 0.0 and TokenUsage().unpriced_requests == 0
