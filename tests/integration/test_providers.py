"""Real provider adapters against a local server speaking their wire formats.

Every request goes to `tests/support/wire_server.py` on 127.0.0.1, which records what the
provider SDK sent (model, tools and their schemas, system prompt, cache markers) and answers
with scripted replies and provider-style usage — cache reads included — or faults.
"""

from __future__ import annotations

import itertools
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pydantic_ai.models
import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.profiles import ModelProfile
from pydantic_ai.providers.openai import OpenAIProvider

from pyworkflow import EventType, get_events, step
from pyworkflow.agents import PlanExecuteAgent
from pyworkflow.agents.models import PLAN_OUTPUT, RetryPolicy, call_model, resolve_model
from pyworkflow.agents.plan import ToolSignature
from pyworkflow.agents.planner import Planner
from pyworkflow.config import configure, reset_settings
from pyworkflow.exceptions import ModelCallError
from pyworkflow.testing import temporary_runtime
from support.wire_server import (
    ANTHROPIC,
    CHAT,
    RESPONSES,
    RecordedRequest,
    Reply,
    WireServer,
    fault,
    text,
    tool_call,
)

FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=5.0)
PLANNER = "anthropic:claude-sonnet-4-0"
PLANNER_SERVED_AS = "claude-sonnet-4-20250514"  # the dated id Anthropic answers with
EXECUTOR = "openai-chat:gpt-4.1-mini"

SEARCH = ToolSignature(
    "search_web",
    "Search the web for information.",
    {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)
PLAN = [
    {"step": 1, "description": "Search", "tool": "search_web", "params": {"query": "AI labs"}},
    {"step": 2, "description": "Summarise", "tool": None, "depends_on": [1]},
]


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Iterator[WireServer]:
    """The local server, with both providers pointed at it and fake keys set."""
    # Requests are allowed in these tests only: they go to 127.0.0.1 and nowhere else.
    monkeypatch.setattr(pydantic_ai.models, "ALLOW_MODEL_REQUESTS", True)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-local-test")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "PYWORKFLOW_OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with WireServer() as server:
        reset_settings()
        configure(model_base_urls=base_urls(server))
        yield server
    reset_settings()


def base_urls(server: WireServer) -> dict[str, str]:
    return {"anthropic": server.anthropic_base_url, "openai": server.openai_base_url}


def price(provider: str, model: str, usage: Any) -> float:
    """What genai-prices itself says the usage costs."""
    counted = PriceUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )
    return float(calc_price(counted, model, provider_id=provider).total_price)


# --- the planner's structured output and prompt cache -------------------------------------------


async def test_anthropic_planner_gets_the_plan_through_an_output_tool(wire: WireServer) -> None:
    wire.script(
        ANTHROPIC,
        tool_call(
            "submit_plan", {"steps": PLAN}, text="Here is the plan.", model=PLANNER_SERVED_AS
        ),
    )

    outcome = await Planner(PLANNER, instructions="Research carefully.").generate_plan(
        "Research AI labs", [SEARCH]
    )

    assert outcome.plan.to_list()[0]["params"] == {"query": "AI labs"}
    (request,) = wire.requests_to(ANTHROPIC)
    assert request.model == "claude-sonnet-4-0"
    assert set(request.tools) == {"submit_plan"}  # the plan's tool, not the agent's tools
    step_schema = request.tools["submit_plan"]["properties"]["steps"]["items"]
    assert {"step", "description", "tool", "params", "depends_on"} <= set(step_schema["properties"])
    assert request.tool_choice == {"type": "any"}  # the tool must be called
    assert "search_web" in request.system and "Research carefully." in request.system
    assert "Research AI labs" in request.user_text and "Research AI labs" not in request.system
    # The stable prefix — instructions, tool catalogue, the output tool — is marked for caching.
    assert "tool:submit_plan" in request.cache_markers
    assert any(m.startswith("system[") for m in request.cache_markers)
    assert outcome.usage.cache_write_tokens > 0 and outcome.usage.cache_read_tokens == 0
    assert outcome.usage.cost_usd == pytest.approx(
        price("anthropic", PLANNER_SERVED_AS, outcome.usage)
    )


async def test_a_second_anthropic_planner_call_reads_the_cached_prefix(wire: WireServer) -> None:
    wire.always(ANTHROPIC, tool_call("submit_plan", {"steps": PLAN}, model=PLANNER_SERVED_AS))
    planner = Planner(PLANNER, instructions="Research carefully.")

    first = await planner.generate_plan("Research AI labs", [SEARCH])
    second = await planner.generate_plan("Compare chip makers", [SEARCH])

    one, two = wire.requests_to(ANTHROPIC)
    assert one.system == two.system and one.tools == two.tools  # same prefix, new question
    written = first.usage.cache_write_tokens
    assert written > 0 and first.usage.cache_read_tokens == 0
    assert second.usage.cache_read_tokens == written and second.usage.cache_write_tokens == 0
    # Input tokens count cached ones too; the cached call costs less for the same input.
    assert second.usage.input_tokens >= written
    assert second.usage.cost_usd is not None and first.usage.cost_usd is not None
    assert second.usage.cost_usd < first.usage.cost_usd
    assert second.usage.cost_usd == pytest.approx(
        price("anthropic", PLANNER_SERVED_AS, second.usage)
    )


async def test_a_plan_repair_reuses_the_cached_prefix(wire: WireServer) -> None:
    bad = [{"step": 1, "description": "Browse", "tool": "browse", "params": {}}]
    wire.script(
        ANTHROPIC,
        tool_call("submit_plan", {"steps": bad}, model=PLANNER_SERVED_AS),
        tool_call("submit_plan", {"steps": PLAN}, model=PLANNER_SERVED_AS),
    )

    outcome = await Planner(PLANNER).generate_plan("Research AI labs", [SEARCH])

    assert outcome.attempts == 2
    first, repair = wire.requests_to(ANTHROPIC)
    assert "browse" in repair.user_text and first.system == repair.system
    assert outcome.usage.requests == 2
    assert outcome.usage.cache_read_tokens > 0 and outcome.usage.cache_write_tokens > 0


@pytest.mark.parametrize(
    ("spec", "path"), [(EXECUTOR, CHAT), ("openai-responses:gpt-4.1", RESPONSES)]
)
async def test_openai_planner_uses_a_required_tool_and_reports_cached_tokens(
    wire: WireServer, spec: str, path: str
) -> None:
    wire.always(path, tool_call("submit_plan", {"steps": PLAN}))
    planner = Planner(spec)

    first = await planner.generate_plan("Research AI labs", [SEARCH])
    second = await planner.generate_plan("Compare chip makers", [SEARCH])

    assert [s.id for s in second.plan.steps] == [1, 2]
    one, two = wire.requests_to(path)
    assert set(one.tools) == {"submit_plan"} and one.tool_choice == "required"
    assert (two.system, two.tools) == (one.system, one.tools)
    assert one.cache_markers == []  # OpenAI caches by itself: nothing to mark
    assert first.usage.cache_read_tokens == 0
    assert second.usage.cache_read_tokens > 0  # the server saw the same tools and system
    model = spec.split(":", 1)[1]
    assert second.usage.cost_usd == pytest.approx(price("openai", model, second.usage))


async def test_a_model_without_tools_gets_a_native_json_schema(wire: WireServer) -> None:
    wire.script(CHAT, text('{"steps": [{"step": 1, "description": "Think", "tool": null}]}'))
    model = OpenAIChatModel(
        "gpt-4.1-mini",
        provider=OpenAIProvider(base_url=wire.openai_base_url, api_key="sk-local-test"),
        profile=ModelProfile(supports_tools=False, supports_json_schema_output=True),
    )

    outcome = await Planner(model).generate_plan("Think", [])

    assert [s.description for s in outcome.plan.steps] == ["Think"]
    (request,) = wire.requests_to(CHAT)
    assert request.tools == {}
    assert request.native_output_schema is not None
    assert request.native_output_schema["required"] == ["steps"]


async def test_a_plan_sent_as_text_despite_the_tool_is_still_read(wire: WireServer) -> None:
    wire.script(
        ANTHROPIC,
        text('```json\n[{"step": 1, "description": "Think", "tool": null}]\n```'),
    )

    outcome = await Planner(PLANNER).generate_plan("Think", [])

    assert [s.description for s in outcome.plan.steps] == ["Think"]


async def test_an_executor_call_offers_exactly_the_one_tool(wire: WireServer) -> None:
    wire.script(CHAT, tool_call("search_web", {"query": "AI labs"}))
    tool = {"name": SEARCH.name, "description": SEARCH.description, "parameters": SEARCH.parameters}

    reply = await call_model(
        resolve_model(EXECUTOR),
        system="Fill the arguments.",
        prompt="Step: search",
        tools=[tool],
        require_tool=True,
    )

    assert reply.tool_calls[0].arguments == {"query": "AI labs"}
    (request,) = wire.requests_to(CHAT)
    assert set(request.tools) == {"search_web"}
    offered = request.tools["search_web"]
    assert (offered["properties"], offered["required"]) == (
        {"query": {"type": "string"}},
        ["query"],
    )
    assert request.tool_choice == "required"
    assert PLAN_OUTPUT.name not in request.tools


async def test_a_local_model_is_unpriced_not_free(wire: WireServer) -> None:
    configure(model_base_urls={**base_urls(wire), "vllm": wire.openai_base_url})
    wire.script(CHAT, text("hello"))

    reply = await call_model(resolve_model("vllm:llama-3.1-8b-local"), system="s", prompt="p")

    assert reply.usage.total_tokens > 0
    assert reply.usage.cost_usd is None and reply.usage.unpriced_requests == 1


# --- provider faults ----------------------------------------------------------------------------

WIRES = [
    ("anthropic:claude-sonnet-4-0", ANTHROPIC),
    (EXECUTOR, CHAT),
    ("openai-responses:gpt-4.1", RESPONSES),
]


def gaps(requests: list[RecordedRequest]) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(requests)]


@pytest.mark.parametrize(("spec", "path"), WIRES)
async def test_a_rate_limit_is_retried_after_the_wait_the_provider_asks(
    wire: WireServer, spec: str, path: str
) -> None:
    wire.script(path, fault(429, "slow down", retry_after_ms=300), text("done"))

    reply = await call_model(resolve_model(spec), system="s", prompt="p", retry=FAST)

    assert reply.text == "done"
    requests = wire.requests_to(path)
    assert len(requests) == 2
    assert gaps(requests)[0] >= 0.28  # asked for 0.3 s; the backoff alone would be ~0.01 s


async def test_a_retry_after_in_seconds_is_honoured(wire: WireServer) -> None:
    wire.script(CHAT, fault(429, "slow down", retry_after=1), text("done"))

    await call_model(resolve_model(EXECUTOR), system="s", prompt="p", retry=FAST)

    assert gaps(wire.requests_to(CHAT))[0] >= 0.95


@pytest.mark.parametrize(("spec", "path"), WIRES)
async def test_server_errors_are_retried_with_backoff(
    wire: WireServer, spec: str, path: str
) -> None:
    wire.script(path, fault(500, "internal"), fault(503, "unavailable"), text("done"))

    reply = await call_model(
        resolve_model(spec),
        system="s",
        prompt="p",
        retry=RetryPolicy(attempts=4, base_delay=0.1, max_delay=5.0),
    )

    assert reply.text == "done"
    first, second = gaps(wire.requests_to(path))
    assert first >= 0.07 and second >= 0.15 and second > first  # 0.1 s then 0.2 s, with jitter


async def test_retries_are_bounded(wire: WireServer) -> None:
    wire.always(ANTHROPIC, fault(500, "the server is on fire"))

    with pytest.raises(ModelCallError) as info:
        await call_model(resolve_model(PLANNER), system="s", prompt="p", retry=FAST)

    assert len(wire.requests_to(ANTHROPIC)) == 4
    assert info.value.attempts == 4 and info.value.status_code == 500
    assert "failed 4 times" in str(info.value) and "the server is on fire" in str(info.value)


async def test_an_unreachable_server_is_retried_then_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pydantic_ai.models, "ALLOW_MODEL_REQUESTS", True)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    reset_settings()
    configure(model_base_urls={"dead": f"http://127.0.0.1:{port}/v1"})
    try:
        with pytest.raises(ModelCallError, match="failed 4 times") as info:
            await call_model(resolve_model("dead:some-model"), system="s", prompt="p", retry=FAST)
    finally:
        reset_settings()

    assert info.value.attempts == 4 and info.value.status_code is None
    assert info.value.model.endswith(":some-model")
    assert f"127.0.0.1:{port}" in str(info.value)  # where it was looking


async def test_a_wait_longer_than_the_cap_fails_at_once(wire: WireServer) -> None:
    wire.always(CHAT, fault(429, "daily limit", retry_after=3600))

    with pytest.raises(ModelCallError, match="3600s") as info:
        await call_model(resolve_model(EXECUTOR), system="s", prompt="p", retry=FAST)

    assert len(wire.requests_to(CHAT)) == 1
    assert "daily limit" in str(info.value)


async def test_an_exhausted_quota_is_not_retried_though_sent_as_429(wire: WireServer) -> None:
    # OpenAI sends `insufficient_quota` with status 429; waiting will not bring credit back.
    wire.always(CHAT, fault(429, "You exceeded your current quota", code="insufficient_quota"))

    with pytest.raises(ModelCallError, match="quota") as info:
        await call_model(resolve_model(EXECUTOR), system="s", prompt="p", retry=FAST)

    assert len(wire.requests_to(CHAT)) == 1
    assert info.value.status_code == 429


@pytest.mark.parametrize(("spec", "path"), WIRES)
@pytest.mark.parametrize(
    ("status", "message"),
    [(401, "invalid x-api-key"), (403, "no access to this model"), (400, "max_tokens too large")],
)
async def test_auth_and_bad_request_errors_fail_fast_with_the_providers_words(
    wire: WireServer, spec: str, path: str, status: int, message: str
) -> None:
    wire.always(path, fault(status, message))

    with pytest.raises(ModelCallError) as info:
        await call_model(resolve_model(spec), system="s", prompt="p", retry=FAST)

    assert len(wire.requests_to(path)) == 1  # not retried
    error = info.value
    assert error.status_code == status and error.attempts == 1
    assert message in str(error) and f"HTTP {status}" in str(error)
    assert error.model.endswith(spec.split(":", 1)[1])  # which model refused
    if status == 401:
        assert "check the API key" in str(error)


# --- a whole run ------------------------------------------------------------------------------


def fresh_name() -> str:
    return f"tests.providers:{uuid.uuid4().hex}"


async def test_an_anthropic_planner_and_an_openai_executor_run_an_agent(wire: WireServer) -> None:
    searched: list[str] = []

    @step()
    def search_web(query: str) -> str:
        """Search the web for information."""
        searched.append(query)
        return f"three labs found for {query!r}"

    @step()
    def write_report(title: str, body: str) -> str:
        """Write a report with a title."""
        return f"# {title}\n{body}"

    plan = [
        {"step": 1, "description": "Search", "tool": "search_web", "params": {"query": "AI labs"}},
        # `title` is missing: the executor model is asked for it, offered only this tool.
        {
            "step": 2,
            "description": "Report on the labs",
            "tool": "write_report",
            "params": {"body": "$1"},
            "depends_on": [1],
        },
    ]
    wire.script(ANTHROPIC, tool_call("submit_plan", {"steps": plan}, model=PLANNER_SERVED_AS))

    def executor(request: RecordedRequest) -> Reply:
        if request.tools:
            return tool_call("write_report", {"title": "AI labs"})
        return text("Three labs lead; the report is written.")

    wire.always(CHAT, executor)
    made = PlanExecuteAgent(
        planner_model=PLANNER,
        executor_model=EXECUTOR,
        tools=[search_web, write_report],
        instructions="Research agent.",
        name=fresh_name(),
    )

    with temporary_runtime(model_base_urls=base_urls(wire)):
        result = await made.run("Research the top AI labs")
        events = await get_events(result.run_id)

    assert result.status == "completed", result.error
    assert result.answer == "Three labs lead; the report is written."
    assert searched == ["AI labs"]
    assert {s.step: s.mode for s in result.executed_steps} == {1: "direct", 2: "model"}
    assert [s.result for s in result.executed_steps if s.step == 2] == [
        "# AI labs\nthree labs found for 'AI labs'"
    ]

    (planned,) = wire.requests_to(ANTHROPIC)
    assert planned.model == "claude-sonnet-4-0"
    assert set(planned.tools) == {"submit_plan"}
    assert "write_report" in planned.system
    filling, answering = wire.requests_to(CHAT)
    assert filling.model == "gpt-4.1-mini"
    assert set(filling.tools) == {"write_report"}  # exactly the one tool
    assert filling.tools["write_report"]["required"] == ["title", "body"]
    assert answering.tools == {}
    assert wire.requests_to(RESPONSES) == []

    usage = result.usage
    assert usage.planner.requests == 1 and usage.executor.requests == 2
    assert usage.planner.cost_usd == pytest.approx(
        price("anthropic", PLANNER_SERVED_AS, usage.planner)
    )
    assert usage.executor.cost_usd == pytest.approx(price("openai", "gpt-4.1-mini", usage.executor))
    assert usage.total.cost_usd == pytest.approx(usage.planner.cost_usd + usage.executor.cost_usd)
    assert usage.total.unpriced_requests == 0

    by_type = {e.type: e for e in events}
    assert by_type[EventType.AGENT_PLAN_GENERATED]["planner_tokens"] == usage.planner.total_tokens
    step_tokens = {
        e["step"]: e["executor_tokens"] for e in events if e.type == EventType.AGENT_STEP_COMPLETED
    }
    assert step_tokens[1] == 0 and step_tokens[2] > 0
    completed = by_type[EventType.AGENT_COMPLETED]["usage"]
    assert completed["planner"]["cost_usd"] == pytest.approx(usage.planner.cost_usd)


async def test_a_rejected_key_fails_the_run_with_the_providers_message(wire: WireServer) -> None:
    wire.always(ANTHROPIC, fault(401, "invalid x-api-key"))
    made = PlanExecuteAgent(planner_model=PLANNER, executor_model=EXECUTOR, name=fresh_name())

    with temporary_runtime(model_base_urls=base_urls(wire)):
        result = await made.run("Research the top AI labs")
        events = await get_events(result.run_id)

    assert result.status == "failed"
    assert result.error_type == "ModelCallError"
    assert "invalid x-api-key" in (result.error or "")
    assert len(wire.requests_to(ANTHROPIC)) == 1
    assert wire.requests_to(CHAT) == []
    assert events[-1].type == EventType.AGENT_FAILED
