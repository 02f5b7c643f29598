"""Bad input: clear errors, raised early, and invalid plans that never run a tool."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from pyworkflow import EventType, agent, configure, get_events, list_runs, step
from pyworkflow.agents import PlanExecuteAgent, parse_plan, validate_plan
from pyworkflow.config import reset_settings
from pyworkflow.exceptions import ConfigurationError, ModelResolutionError
from pyworkflow.testing import ModelScript, scripted_executor, scripted_planner, temporary_runtime


class Searches:
    """A `search_web` tool that records every call."""

    def __init__(self) -> None:
        self.calls: list[str] = []

        @step()
        def search_web(query: str) -> str:
            """Search the web."""
            self.calls.append(query)
            return f"results for {query}"

        self.tool = search_web


def planned_agent(
    *replies: Any, tools: list[Any], **options: Any
) -> tuple[PlanExecuteAgent, ModelScript]:
    planner = scripted_planner(*replies)
    made = PlanExecuteAgent(
        planner_model=planner.model,
        executor_model=scripted_executor().model,
        tools=tools,
        name=f"tests.errors:{uuid.uuid4().hex}",
        **options,
    )
    return made, planner


# --- the agent's definition -------------------------------------------------------------------


def test_an_unknown_pattern_lists_the_supported_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"'react'.*supported patterns: plan_execute"):
        agent(pattern="react", planner_model="test")


def test_an_unknown_agent_option_is_named_with_the_valid_ones() -> None:
    with pytest.raises(ConfigurationError) as info:
        agent(pattern="plan_execute", planner_model="test", enable_replaning=True)
    message = str(info.value)
    assert "enable_replaning" in message
    assert "enable_replanning" in message  # the option that was meant is listed


@pytest.mark.parametrize("bad_tool", [42, "search", None, {"name": "search"}])
def test_a_tool_that_is_not_a_function_is_refused(bad_tool: object) -> None:
    with pytest.raises(ConfigurationError, match="tools must be functions") as info:
        PlanExecuteAgent(planner_model="test", tools=[bad_tool], name="tests.errors:bad-tool")
    assert repr(bad_tool) in str(info.value)
    with pytest.raises(ConfigurationError, match="tools must be functions"):

        @agent(pattern="plan_execute", planner_model="test", tools=[bad_tool])
        async def research(query: str) -> None:
            """Research."""


def test_two_tools_with_one_name_are_refused() -> None:
    @step(name="search")
    def web(query: str) -> str:
        """Search the web."""
        return query

    @step(name="search")
    def news(query: str) -> str:
        """Search the news."""
        return query

    with pytest.raises(ConfigurationError, match="two tools are named 'search'"):
        PlanExecuteAgent(planner_model="test", tools=[web, news], name="tests.errors:dupes")


@pytest.mark.parametrize("timeout", ["soon", "10 parsecs", 0, -5, "0s", True])
def test_a_bad_approval_timeout_is_refused(timeout: object) -> None:
    with pytest.raises(ConfigurationError, match="duration"):
        PlanExecuteAgent(
            planner_model="test", approval_timeout=timeout, name="tests.errors:timeout"
        )


@pytest.mark.parametrize(
    "options",
    [{"timeout": 0}, {"timeout": -1.5}, {"retries": -1}],
    ids=["zero-timeout", "negative-timeout", "negative-retries"],
)
def test_bad_step_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        step(**options)


@pytest.mark.parametrize(
    "options",
    [{"max_parallel": 0}, {"max_steps": 0}, {"max_replans": -1}, {"answer": "first_step"}],
)
def test_bad_agent_limits_are_refused(options: dict[str, Any]) -> None:
    name = next(iter(options))
    with pytest.raises(ConfigurationError, match=name):
        PlanExecuteAgent(planner_model="test", name="tests.errors:limits", **options)


# --- models -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("runtime")
@pytest.mark.parametrize(
    ("model", "named"),
    [("foo-model", "foo-model"), ("bogus:thing", "bogus")],
)
async def test_a_model_no_provider_serves_fails_run_before_anything_is_spent(
    model: str, named: str
) -> None:
    searches = Searches()
    made = PlanExecuteAgent(
        planner_model=model, tools=[searches.tool], name=f"tests.errors:{uuid.uuid4().hex}"
    )

    with pytest.raises(ModelResolutionError, match=named):
        await made.run("Research AI")

    assert list_runs() == []  # no run was started
    assert searches.calls == []


@pytest.mark.usefixtures("runtime")
async def test_a_bad_executor_model_fails_before_the_planner_is_paid() -> None:
    planner = scripted_planner([{"step": 1, "description": "Think", "tool": None}])
    made = PlanExecuteAgent(
        planner_model=planner.model,
        executor_model="foo-model",
        name=f"tests.errors:{uuid.uuid4().hex}",
    )

    with pytest.raises(ModelResolutionError, match="foo-model"):
        await made.run("Think")

    assert planner.count() == 0
    assert list_runs() == []


@pytest.mark.usefixtures("runtime")
@pytest.mark.parametrize(
    ("model", "variable"),
    [("claude-opus-4-6", "ANTHROPIC_API_KEY"), ("gpt-4.1-mini", "OPENAI_API_KEY")],
)
async def test_a_missing_api_key_is_named(
    monkeypatch: pytest.MonkeyPatch, model: str, variable: str
) -> None:
    monkeypatch.delenv(variable, raising=False)
    made = PlanExecuteAgent(planner_model=model, name=f"tests.errors:{uuid.uuid4().hex}")

    with pytest.raises(ModelResolutionError, match=variable):
        await made.run("Research AI")

    assert list_runs() == []


# --- invalid plans ------------------------------------------------------------------------------

SEARCH = {"step": 1, "description": "Search", "tool": "search_web", "params": {"query": "AI"}}
MISSING_STEP = [SEARCH, {"step": 2, "description": "Use step 7", "tool": None, "depends_on": [7]}]
CYCLE = [
    {**SEARCH, "depends_on": [2]},
    {"step": 2, "description": "Think", "tool": None, "depends_on": [1]},
]
UNKNOWN_TOOL = [
    SEARCH,
    {"step": 2, "description": "Wipe", "tool": "delete_everything", "params": {}},
]
ALL_THREE = [
    {**SEARCH, "depends_on": [2]},
    {"step": 2, "description": "Think", "tool": None, "depends_on": [1, 7]},
    {"step": 3, "description": "Wipe", "tool": "delete_everything", "params": {}},
]


@pytest.mark.usefixtures("runtime")
@pytest.mark.parametrize(
    ("plan", "problems"),
    [
        (MISSING_STEP, ["step 2: depends on step 7, which is not in the plan"]),
        (CYCLE, ["the plan has a cycle: 1 → 2 → 1"]),
        (
            UNKNOWN_TOOL,
            ["step 2: unknown tool 'delete_everything'; the agent's tools are: search_web"],
        ),
        (
            ALL_THREE,
            [
                "step 2: depends on step 7, which is not in the plan",
                "the plan has a cycle: 1 → 2 → 1",
                "step 3: unknown tool 'delete_everything'",
            ],
        ),
    ],
    ids=["missing-step", "cycle", "unknown-tool", "all-three"],
)
async def test_a_plan_still_invalid_after_repairs_fails_the_run_and_runs_nothing(
    plan: list[dict[str, Any]], problems: list[str]
) -> None:
    searches = Searches()
    made, planner = planned_agent(plan, tools=[searches.tool])

    result = await made.run("Research AI")

    assert result.status == "failed"
    assert result.error_type == "PlanValidationError"
    for problem in problems:
        assert problem in (result.error or "")
    assert planner.count() == 3  # the first plan and two repair rounds
    assert result.usage.planner.requests == 3  # what the failed attempts cost is reported
    assert searches.calls == []
    events = await get_events(result.run_id)
    types = [e.type for e in events]
    assert types == [EventType.AGENT_STARTED, EventType.AGENT_FAILED]
    assert all(problem in events[-1]["error"] for problem in problems)


@pytest.mark.usefixtures("runtime")
async def test_a_repair_round_sends_the_exact_errors_and_the_repaired_plan_runs() -> None:
    searches = Searches()
    good = [SEARCH, {"step": 2, "description": "Summarise", "tool": None, "depends_on": [1]}]
    made, planner = planned_agent(ALL_THREE, good, tools=[searches.tool])
    expected = validate_plan(parse_plan(ALL_THREE), {t.name: t for t in made.signatures()})
    assert len(expected) >= 3

    result = await made.run("Research AI")

    assert result.status == "completed", result.error
    assert planner.count() == 2
    repair_prompt = planner.calls[1].prompt
    for problem in expected:
        assert problem in repair_prompt
    assert "Research AI" in repair_prompt
    assert searches.calls == ["AI"]
    assert [s["step"] for s in result.plan] == [1, 2]
    events = await get_events(result.run_id)
    generated = [e for e in events if e.type is EventType.AGENT_PLAN_GENERATED]
    assert len(generated) == 1 and generated[0]["attempts"] == 2


@pytest.mark.usefixtures("runtime")
async def test_a_reply_that_is_not_a_plan_is_repaired_too() -> None:
    searches = Searches()
    made, planner = planned_agent("I would search the web first.", [SEARCH], tools=[searches.tool])

    result = await made.run("Research AI")

    assert result.status == "completed", result.error
    assert "contains no JSON" in planner.calls[1].prompt
    assert searches.calls == ["AI"]


# --- the database -------------------------------------------------------------------------------


@pytest.fixture
def forget_settings() -> Any:
    yield
    reset_settings()


@pytest.mark.usefixtures("forget_settings")
def test_an_unsupported_database_url_is_refused_with_its_password_masked() -> None:
    with pytest.raises(ConfigurationError) as info:
        configure(database_url="mysql://admin:s3cret@db.example.com/runs")
    message = str(info.value)
    assert "admin:***@db.example.com" in message
    assert "s3cret" not in message
    assert "sqlite:///" in message and "postgresql://" in message  # what would be valid


def test_an_unreachable_database_is_a_clear_error_with_its_password_masked() -> None:
    url = "postgresql://admin:s3cret@127.0.0.1:1/runs"
    made = PlanExecuteAgent(planner_model="test", name=f"tests.errors:{uuid.uuid4().hex}")
    with temporary_runtime(url), pytest.raises(ConfigurationError) as info:
        made.run_sync("Research AI")
    message = str(info.value)
    assert "admin:***@127.0.0.1:1" in message
    assert "s3cret" not in message
