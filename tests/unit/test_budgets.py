"""Budgets (DESIGN.md §3): checked before every model call and every step.

`max_steps` counts executed units (each fan-out element is one), `max_replans` bounds replanning,
`max_parallel` bounds the tools running at once, and token and cost limits apply to the planner
and the executor apart (`max_planner_tokens`, `max_executor_tokens`) and together (`max_tokens`,
`max_cost_usd`). A breach ends the run with a `BudgetExceededError`, the usage so far in the
result, and nothing silently cut short.

The models here report fixed usage per call, so every limit is crossed at a known call.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from pyworkflow import EventType, get_events, step
from pyworkflow.agents import PlanExecuteAgent
from pyworkflow.agents.result import AgentResult
from pyworkflow.exceptions import ConfigurationError

pytestmark = pytest.mark.usefixtures("runtime")

# A model genai-prices knows, so its calls have a price; any other name is unpriced.
PRICED_MODEL = ("anthropic", "claude-opus-4-1")


class Metered:
    """A scripted model whose every call reports `tokens` (input, output) of usage."""

    def __init__(
        self,
        reply: Callable[[str], Any] | Any,
        *,
        tokens: tuple[int, int],
        priced: bool = False,
    ) -> None:
        self.prompts: list[str] = []

        def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            prompt = "\n".join(
                part.content
                for message in messages
                for part in getattr(message, "parts", ())
                if isinstance(getattr(part, "content", None), str)
            )
            self.prompts.append(prompt)
            value = reply(prompt) if callable(reply) else reply
            text = value if isinstance(value, str) else json.dumps(value)
            provider, name = PRICED_MODEL if priced else (None, "unpriced")
            return ModelResponse(
                parts=[TextPart(text)],
                usage=RequestUsage(input_tokens=tokens[0], output_tokens=tokens[1]),
                model_name=name,
                provider_name=provider,
            )

        self.model = FunctionModel(respond, model_name=PRICED_MODEL[1] if priced else "unpriced")

    @property
    def calls(self) -> int:
        return len(self.prompts)


def make_agent(
    planner: Metered, executor: Metered, tools: Sequence[Any] = (), **options: Any
) -> PlanExecuteAgent:
    return PlanExecuteAgent(
        planner_model=planner.model,
        executor_model=executor.model,
        tools=list(tools),
        name=f"tests.budgets:{uuid.uuid4().hex}",
        **options,
    )


def chain(n: int) -> list[dict[str, Any]]:
    """n reasoning steps, each needing the one before: one executor call each, in order."""
    return [
        {
            "step": i,
            "description": f"Think {i}",
            "tool": None,
            "depends_on": [i - 1] if i > 1 else [],
        }
        for i in range(1, n + 1)
    ]


async def assert_failed_on_budget(result: AgentResult, *phrases: str) -> None:
    """Failed with a BudgetExceededError naming `phrases`, recorded with the usage so far."""
    assert result.status == "failed", result
    assert result.error_type == "BudgetExceededError"
    for phrase in phrases:
        assert phrase in (result.error or ""), result.error
    events = await get_events(result.run_id)
    assert events[-1].type is EventType.AGENT_FAILED
    assert events[-1]["error_type"] == "BudgetExceededError"
    assert events[-1]["usage"] == result.usage.model_dump(mode="json")
    assert EventType.AGENT_COMPLETED not in [e.type for e in events]


class Calls:
    """Tools that record their calls and how many run at the same moment."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.running = 0
        self.peak = 0

        @step()
        async def busy(label: str) -> str:
            """Do some work that takes a while."""
            self.calls.append(label)
            self.running += 1
            self.peak = max(self.peak, self.running)
            try:
                await asyncio.sleep(0.15)
            finally:
                self.running -= 1
            return f"did {label}"

        @step()
        def numbers(count: int) -> list[int]:
            """List the numbers below `count`."""
            self.calls.append(f"numbers({count})")
            return list(range(count))

        @step()
        def flaky(label: str) -> str:
            """A source that is down."""
            self.calls.append(f"flaky({label})")
            raise ConnectionError("source down")

        self.busy, self.numbers, self.flaky = busy, numbers, flaky

    @property
    def tools(self) -> list[Any]:
        return [self.busy, self.numbers, self.flaky]


# --- max_steps ---------------------------------------------------------------------------------


def fan_out_plan(count: int) -> list[dict[str, Any]]:
    return [
        {"step": 1, "description": "List items", "tool": "numbers", "params": {"count": count}},
        {
            "step": 2,
            "description": "Work on each",
            "tool": "busy",
            "for_each": "$1",
            "params": {"label": "item ${item}"},
        },
    ]


async def test_a_fan_out_too_large_for_max_steps_fails_before_any_element_runs() -> None:
    calls = Calls()
    agent = make_agent(
        Metered(fan_out_plan(50), tokens=(10, 10)),
        Metered("ok", tokens=(1, 1)),
        calls.tools,
        max_steps=10,
    )

    result = await agent.run("Work on every item")

    await assert_failed_on_budget(result, "max_steps=10", "step 2 fans out over 50 items")
    # Not 9 of the 50 quietly done: none of them ran.
    assert calls.calls == ["numbers(50)"]
    assert [s.label for s in result.executed_steps] == ["1"]
    types = [e.type for e in await get_events(result.run_id)]
    assert types.count(EventType.AGENT_STEP_STARTED) == 1


async def test_a_run_that_fits_max_steps_exactly_completes() -> None:
    calls = Calls()
    agent = make_agent(
        Metered(fan_out_plan(9), tokens=(10, 10)),
        Metered("ok", tokens=(1, 1)),
        calls.tools,
        max_steps=10,
        answer="last_step",
    )

    result = await agent.run("Work on every item")

    assert result.status == "completed", result.error
    assert len(result.executed_steps) == 10
    assert result.answer == [f"did item {i}" for i in range(9)]


async def test_max_steps_counts_units_of_every_plan_version_and_lets_running_ones_finish() -> None:
    calls = Calls()
    first = [
        {"step": 1, "description": "Work", "tool": "busy", "params": {"label": "one"}},
        {"step": 2, "description": "Fetch", "tool": "flaky", "params": {"label": "two"}},
    ]
    second = [
        {"step": i, "description": f"Work {i}", "tool": "busy", "params": {"label": f"v2-{i}"}}
        for i in (3, 4, 5)
    ]
    planner = Metered(lambda p: second if "This step failed" in p else first, tokens=(10, 10))
    agent = make_agent(planner, Metered("ok", tokens=(1, 1)), calls.tools, max_steps=4)

    result = await agent.run("Work")

    # Units 1 and 2, then 3 and 4 of the new plan; the fifth would pass max_steps.
    await assert_failed_on_budget(result, "max_steps=4")
    assert sorted(calls.calls) == ["flaky(two)", "one", "v2-3", "v2-4"]
    # The two steps running at the breach finished and are in the log, with their events.
    assert sorted((s.label, s.status) for s in result.executed_steps) == [
        ("1", "completed"),
        ("2", "failed"),
        ("3", "completed"),
        ("4", "completed"),
    ]
    events = await get_events(result.run_id)
    completed = [e["label"] for e in events if e.type is EventType.AGENT_STEP_COMPLETED]
    assert sorted(completed) == ["1", "3", "4"]


# --- max_replans ---------------------------------------------------------------------------------


async def test_max_replans_zero_ends_the_run_at_the_first_failure() -> None:
    calls = Calls()
    plan = [{"step": 1, "description": "Fetch", "tool": "flaky", "params": {"label": "x"}}]
    planner = Metered(plan, tokens=(10, 10))
    agent = make_agent(planner, Metered("ok", tokens=(1, 1)), calls.tools, max_replans=0)

    result = await agent.run("Fetch")

    await assert_failed_on_budget(result, "max_replans=0", "ConnectionError: source down")
    assert planner.calls == 1
    assert result.usage.planner.requests == 1


# --- max_parallel --------------------------------------------------------------------------------


async def test_max_parallel_bounds_independent_steps() -> None:
    calls = Calls()
    plan = [
        {"step": i, "description": f"Work {i}", "tool": "busy", "params": {"label": str(i)}}
        for i in range(1, 7)
    ]
    agent = make_agent(
        Metered(plan, tokens=(10, 10)), Metered("ok", tokens=(1, 1)), calls.tools, max_parallel=2
    )

    result = await agent.run("Work")

    assert result.status == "completed", result.error
    assert sorted(calls.calls) == [str(i) for i in range(1, 7)]
    assert calls.peak == 2


async def test_max_parallel_bounds_fan_out_elements() -> None:
    calls = Calls()
    agent = make_agent(
        Metered(fan_out_plan(7), tokens=(10, 10)),
        Metered("ok", tokens=(1, 1)),
        calls.tools,
        max_parallel=3,
    )

    result = await agent.run("Work on every item")

    assert result.status == "completed", result.error
    assert len(calls.calls) == 8
    assert calls.peak == 3


# --- tokens ----------------------------------------------------------------------------------------


async def test_max_planner_tokens_stops_the_planner_but_not_the_steps() -> None:
    calls = Calls()
    plan = [
        {"step": 1, "description": "Think", "tool": None},
        {
            "step": 2,
            "description": "Fetch",
            "tool": "flaky",
            "params": {"label": "x"},
            "depends_on": [1],
        },
    ]
    planner = Metered(plan, tokens=(800, 200))
    executor = Metered("thought", tokens=(5000, 5000))
    agent = make_agent(planner, executor, calls.tools, max_planner_tokens=1000)

    result = await agent.run("Think, then fetch")

    # The executor's 10000 tokens are not the planner's: the steps ran. The replan did not.
    await assert_failed_on_budget(result, "max_planner_tokens=1000", "1000 tokens")
    assert planner.calls == 1
    assert executor.calls == 1
    assert calls.calls == ["flaky(x)"]
    assert result.usage.planner.total_tokens == 1000
    assert result.usage.executor.total_tokens == 10000
    assert EventType.AGENT_REPLANNING not in [e.type for e in await get_events(result.run_id)]


async def test_max_planner_tokens_is_checked_before_each_repair_round() -> None:
    planner = Metered("no plan here", tokens=(900, 100))
    agent = make_agent(planner, Metered("ok", tokens=(1, 1)), max_planner_tokens=1500)

    result = await agent.run("Plan something")

    # Without the budget the planner would be asked three times (two repair rounds).
    await assert_failed_on_budget(result, "max_planner_tokens=1500", "2000 tokens")
    assert planner.calls == 2
    assert result.usage.planner.requests == 2
    assert result.usage.planner.total_tokens == 2000


async def test_max_executor_tokens_stops_the_steps_but_not_the_planner() -> None:
    planner = Metered(chain(4), tokens=(4000, 1000))
    executor = Metered("thought", tokens=(300, 100))
    agent = make_agent(planner, executor, max_executor_tokens=1000)

    result = await agent.run("Think four times")

    # 400 tokens a step: after three (1200) the fourth may not start. The planner's 5000
    # tokens are its own.
    await assert_failed_on_budget(result, "max_executor_tokens=1000", "1200 tokens")
    assert executor.calls == 3
    assert [s.label for s in result.executed_steps] == ["1", "2", "3"]
    assert result.usage.executor.total_tokens == 1200
    assert result.usage.planner.total_tokens == 5000


async def test_max_executor_tokens_is_checked_before_the_answer() -> None:
    executor = Metered("thought", tokens=(300, 100))
    agent = make_agent(Metered(chain(1), tokens=(10, 10)), executor, max_executor_tokens=400)

    result = await agent.run("Think once")

    await assert_failed_on_budget(result, "max_executor_tokens=400")
    assert executor.calls == 1  # the step; the answer was not asked for
    assert [(s.label, s.status) for s in result.executed_steps] == [("1", "completed")]


async def test_max_tokens_counts_planner_and_executor_together() -> None:
    def run_with(**limits: Any) -> tuple[PlanExecuteAgent, Metered]:
        executor = Metered("thought", tokens=(200, 100))
        return make_agent(
            Metered(chain(3), tokens=(500, 100)), executor, answer="last_step", **limits
        ), executor

    together, executor = run_with(max_tokens=1000)
    result = await together.run("Think three times")

    # 600 (planner) + 300 + 300: the third step may not start.
    await assert_failed_on_budget(result, "max_tokens=1000", "1200 tokens")
    assert executor.calls == 2
    assert result.usage.total.total_tokens == 1200

    # The same spending under limits of 1000 each, apart, is within budget.
    apart, executor = run_with(max_planner_tokens=1000, max_executor_tokens=1000)
    result = await apart.run("Think three times")
    assert result.status == "completed", result.error
    assert executor.calls == 3


async def test_a_budget_stop_lets_steps_in_flight_finish_and_counts_them() -> None:
    calls = Calls()
    plan = [
        {"step": 1, "description": "Think", "tool": None},
        {"step": 2, "description": "Work", "tool": "busy", "params": {"label": "in flight"}},
        {"step": 3, "description": "Think more", "tool": None, "depends_on": [1]},
    ]
    executor = Metered("thought", tokens=(300, 100))
    agent = make_agent(
        Metered(plan, tokens=(10, 10)), executor, calls.tools, max_executor_tokens=400
    )

    result = await agent.run("Think and work")

    await assert_failed_on_budget(result, "max_executor_tokens=400")
    assert executor.calls == 1  # step 3 never asked the model
    assert sorted((s.label, s.status) for s in result.executed_steps) == [
        ("1", "completed"),
        ("2", "completed"),
    ]
    events = await get_events(result.run_id)
    assert [e["label"] for e in events if e.type is EventType.AGENT_STEP_COMPLETED] == ["1", "2"]


# --- cost ------------------------------------------------------------------------------------------


async def test_max_cost_usd_stops_before_the_call_after_the_limit() -> None:
    planner = Metered(chain(3), tokens=(1000, 500), priced=True)
    executor = Metered("thought", tokens=(1000, 500), priced=True)
    agent = make_agent(planner, executor, max_cost_usd=0.1, answer="last_step")

    result = await agent.run("Think three times")

    per_call = result.usage.planner.cost_usd
    assert per_call is not None and 0.05 < per_call < 0.1  # the plan alone is under the limit
    # The plan and one step cost two calls' worth, past 0.1: the second step may not start.
    await assert_failed_on_budget(result, "max_cost_usd=0.1", f"${2 * per_call:.4f}")
    assert executor.calls == 1
    assert result.usage.total.cost_usd == pytest.approx(2 * per_call)


async def test_max_cost_usd_still_counts_priced_calls_beside_unpriced_ones() -> None:
    calls = Calls()
    first = [
        {"step": 1, "description": "Think", "tool": None},
        {
            "step": 2,
            "description": "Fetch",
            "tool": "flaky",
            "params": {"label": "x"},
            "depends_on": [1],
        },
    ]
    second = [{"step": 3, "description": "Think again", "tool": None}]
    planner = Metered(
        lambda p: second if "This step failed" in p else first, tokens=(1000, 500), priced=True
    )
    executor = Metered("thought", tokens=(10, 10))  # a local model: no known price
    agent = make_agent(planner, executor, calls.tools, max_cost_usd=0.1)

    result = await agent.run("Think, fetch, think")

    # The total is unknown (an unpriced call), but the two priced planner calls alone reach
    # the limit: the new plan's step may not start.
    assert result.usage.total.cost_usd is None
    await assert_failed_on_budget(result, "max_cost_usd=0.1", "price")
    assert planner.calls == 2
    assert executor.calls == 1
    assert result.replans == 1


# --- configuration -----------------------------------------------------------------------------


def test_a_limit_that_is_not_a_positive_number_is_refused() -> None:
    for option in ("max_tokens", "max_planner_tokens", "max_executor_tokens", "max_cost_usd"):
        for value in (0, -5, "lots", True):
            with pytest.raises(ConfigurationError, match=option):
                PlanExecuteAgent(
                    planner_model="test", name="tests.budgets:bad-limit", **{option: value}
                )
