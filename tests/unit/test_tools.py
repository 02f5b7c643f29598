"""`@step` tools: schemas from signatures and docstrings, calls, validation, idempotency keys."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from pyworkflow import Step, step
from pyworkflow.agents import PlanExecuteAgent
from pyworkflow.exceptions import ConfigurationError
from pyworkflow.testing import scripted_executor, scripted_planner
from pyworkflow.workflow import ToolArgumentsError


@step()
async def search_web(query: str, max_results: int = 5, site: str | None = None) -> str:
    """Search the web for information.

    Returns the best pages.

    Args:
        query: What to look for.
        max_results: How many pages to return,
            at most 20.
        site: Only pages from this site.

    Returns:
        One line per page.
    """
    await asyncio.sleep(0)
    return f"{max_results} pages about {query}" + (f" on {site}" if site else "")


@step()
def create_table(data: list[dict[str, Any]]) -> str:
    """Create a markdown table from data."""
    return f"{len(data)} rows"


# --- schemas ----------------------------------------------------------------------------------


def test_the_schema_comes_from_the_signature_and_the_google_docstring() -> None:
    assert isinstance(search_web, Step)
    assert search_web.name == "search_web"
    # The description is the docstring's text before its sections.
    assert search_web.description == "Search the web for information.\n\nReturns the best pages."
    assert search_web.parameters == {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "query": {"type": "string", "description": "What to look for."},
            "max_results": {
                "type": "integer",
                "default": 5,
                "description": "How many pages to return, at most 20.",
            },
            "site": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "default": None,
                "description": "Only pages from this site.",
            },
        },
        "required": ["query"],
    }


def test_container_types_are_described_in_the_schema() -> None:
    assert create_table.description == "Create a markdown table from data."
    data = create_table.parameters["properties"]["data"]
    assert data["type"] == "array"
    assert data["items"]["type"] == "object"
    assert create_table.parameters["required"] == ["data"]


def test_a_name_can_be_given_and_a_missing_docstring_falls_back_to_the_name() -> None:
    @step(name="lookup_order")
    def find(order_id: str) -> str:
        return order_id

    @step()
    def fetch_company_facts(company: str) -> str:
        return company

    assert find.name == "lookup_order"
    assert fetch_company_facts.description == "fetch company facts"


# --- calling tools ----------------------------------------------------------------------------


async def test_sync_and_async_tools_are_awaited_alike() -> None:
    assert await search_web("AI") == "5 pages about AI"
    assert await search_web("AI", max_results=2, site="example.com") == (
        "2 pages about AI on example.com"
    )
    assert await create_table([{"a": 1}, {"a": 2}]) == "2 rows"
    assert await create_table.invoke({"data": []}) == "0 rows"


# --- validation -------------------------------------------------------------------------------


def test_arguments_are_validated_and_coerced() -> None:
    assert search_web.validate({"query": "AI", "max_results": "3"}) == {
        "query": "AI",
        "max_results": 3,
        "site": None,
    }


def test_validation_errors_name_each_problem_readably() -> None:
    with pytest.raises(ToolArgumentsError) as info:
        search_web.validate({"query": 3, "max_results": "many", "extra": 1})
    error = info.value
    assert error.tool == "search_web"
    assert error.problems == [
        "query: Input should be a valid string (got 3)",
        "max_results: Input should be a valid integer, unable to parse string as an integer "
        "(got 'many')",
        "extra: unknown argument",
    ]
    assert str(error).startswith("invalid arguments for tool 'search_web': query:")

    with pytest.raises(ToolArgumentsError) as missing:
        search_web.validate({})
    assert missing.value.problems == ["query: required argument is missing"]


# --- idempotency keys -------------------------------------------------------------------------


def test_idempotency_key_is_left_out_of_the_schema() -> None:
    @step()
    def charge(order_id: str, amount: float, idempotency_key: str) -> str:
        """Charge a card."""
        return idempotency_key

    assert set(charge.parameters["properties"]) == {"order_id", "amount"}
    assert "idempotency_key" not in charge.parameters["required"]
    # A plan need not (and cannot) supply it: complete arguments validate without it.
    assert charge.validate({"order_id": "A1", "amount": 5}) == {"order_id": "A1", "amount": 5.0}


async def test_idempotency_key_is_passed_on_outside_a_run() -> None:
    @step()
    def charge(order_id: str, idempotency_key: str) -> str:
        """Charge a card."""
        return idempotency_key

    assert await charge.invoke({"order_id": "A1"}, idempotency_key="key-1") == "key-1"
    fresh = await charge.invoke({"order_id": "A1"})
    assert isinstance(fresh, str) and fresh


@pytest.mark.usefixtures("runtime")
async def test_idempotency_key_is_stable_across_retries_and_differs_between_calls() -> None:
    keys: list[tuple[str, str]] = []

    @step(retries=1, retry_interval=0.05)
    def charge(order_id: str, idempotency_key: str) -> str:
        """Charge a card; the first attempt for each order fails after sending."""
        keys.append((order_id, idempotency_key))
        if sum(1 for o, _ in keys if o == order_id) == 1:
            raise ConnectionError("the response was lost")
        return f"charged {order_id}"

    plan = [
        {"step": 1, "description": "Charge A1", "tool": "charge", "params": {"order_id": "A1"}},
        {"step": 2, "description": "Charge B2", "tool": "charge", "params": {"order_id": "B2"}},
    ]
    agent = PlanExecuteAgent(
        planner_model=scripted_planner(plan).model,
        executor_model=scripted_executor().model,
        tools=[charge],
        name=f"tests.tools:{uuid.uuid4().hex}",
        enable_replanning=False,
    )

    result = await agent.run("Charge both", run_id="run-keys")

    assert result.status == "completed", result.error
    by_order: dict[str, set[str]] = {}
    for order, key in keys:
        by_order.setdefault(order, set()).add(key)
    assert len(keys) == 4  # each order: a failed attempt and its retry
    assert all(len(k) == 1 for k in by_order.values()), by_order  # same key on the retry
    assert by_order["A1"] != by_order["B2"]  # each call has its own key
    assert all("run-keys" in key for key in by_order["A1"] | by_order["B2"])


# --- what can be a tool -----------------------------------------------------------------------


@pytest.mark.parametrize("thing", [42, "search_web", None])
def test_step_refuses_what_is_not_a_function(thing: object) -> None:
    with pytest.raises(ConfigurationError, match="decorates a function") as info:
        step()(thing)  # type: ignore[arg-type]
    assert repr(thing) in str(info.value)
    if thing is not None:  # bare `step(None)` is `step()`, the decorator factory
        with pytest.raises(ConfigurationError, match="decorates a function"):
            step(thing)  # type: ignore[call-overload]


def test_decorating_a_step_again_keeps_it() -> None:
    assert step()(search_web) is search_web


@pytest.mark.usefixtures("runtime")
async def test_a_plain_function_is_accepted_as_a_tool() -> None:
    def word_count(text: str) -> int:
        """Count the words in a text.

        Args:
            text: The text to count.
        """
        return len(text.split())

    plan = [{"step": 1, "description": "Count", "tool": "word_count", "params": {"text": "a b c"}}]
    agent = PlanExecuteAgent(
        planner_model=scripted_planner(plan).model,
        executor_model=scripted_executor().model,
        tools=[word_count],
        name=f"tests.tools:{uuid.uuid4().hex}",
        answer="last_step",
    )

    tool = agent.tools["word_count"]
    assert isinstance(tool, Step)
    assert tool.description == "Count the words in a text."
    assert tool.parameters["properties"]["text"] == {
        "type": "string",
        "description": "The text to count.",
    }

    result = await agent.run("Count words")

    assert result.status == "completed", result.error
    assert result.answer == 3
