"""Replanning after a step fails past its retries (DESIGN.md §4), with scripted models.

A step fails — its tool raised, the executor model's arguments stayed invalid, it timed out —
and the run lets the steps in flight finish, asks the planner for a plan of the remaining work
(showing it the completed results, truncated), keeps what completed and carries on. Each test
counts the tool calls, so a completed step that ran again would show.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from pyworkflow import EventType, get_events, step
from pyworkflow.agents import PlanExecuteAgent
from pyworkflow.agents.result import AgentResult
from pyworkflow.testing import ModelScript, scripted_executor, scripted_planner

pytestmark = pytest.mark.usefixtures("runtime")

FAILED_MARK = "This step failed:"  # in the planner's request only when it replans


class Sources:
    """Tools that record each call: a good source, a flaky one that raises, a slow one."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.finished: dict[str, float] = {}

        @step()
        def good(topic: str) -> str:
            """Look a topic up in the reliable source."""
            self.calls.append(("good", topic))
            return f"good:{topic}"

        @step()
        def flaky(topic: str) -> str:
            """Look a topic up in the fast but unreliable source."""
            self.calls.append(("flaky", topic))
            raise ConnectionError(f"flaky source is down (asked for {topic!r})")

        @step()
        async def slow(topic: str, seconds: float) -> str:
            """Look a topic up slowly."""
            self.calls.append(("slow", topic))
            await asyncio.sleep(seconds)
            self.finished[topic] = time.monotonic()
            return f"slow:{topic}"

        self.good, self.flaky, self.slow = good, flaky, slow

    @property
    def tools(self) -> list[Any]:
        return [self.good, self.flaky, self.slow]

    def count(self) -> Counter[tuple[str, Any]]:
        return Counter(self.calls)


def replanning_planner(first: list[dict[str, Any]], *replans: Any) -> ModelScript:
    """The first plan when asked for one; then each replan reply in turn (the last repeats)."""
    asked = {"replans": 0}

    def reply(prompt: str) -> Any:
        if FAILED_MARK not in prompt and "could not be used" not in prompt:
            return first
        index = min(asked["replans"], len(replans) - 1)
        asked["replans"] += 1
        answer = replans[index]
        return answer(prompt) if callable(answer) else answer

    return scripted_planner(reply)


def make_agent(
    planner: ModelScript, tools: list[Any], *, executor: ModelScript | None = None, **options: Any
) -> PlanExecuteAgent:
    return PlanExecuteAgent(
        planner_model=planner.model,
        executor_model=(executor or scripted_executor(answer="recovered")).model,
        tools=tools,
        name=f"tests.replanning:{uuid.uuid4().hex}",
        **options,
    )


def replan_prompts(planner: ModelScript) -> list[str]:
    return [c.prompt for c in planner.calls if FAILED_MARK in c.prompt]


async def event_types(result: AgentResult) -> list[EventType]:
    return [e.type for e in await get_events(result.run_id)]


FIRST = [
    {"step": 1, "description": "Background", "tool": "good", "params": {"topic": "background"}},
    {"step": 2, "description": "Figures", "tool": "flaky", "params": {"topic": "figures"}},
    {"step": 3, "description": "Compare", "tool": "good", "params": {"topic": "$2"}},
]
# Steps 1 (completed under version 1) stays referenceable as $1; new steps number from 4.
SECOND = [
    {
        "step": 4,
        "description": "Figures, elsewhere",
        "tool": "good",
        "params": {"topic": "figures via ${1}"},
    },
    {"step": 5, "description": "Compare", "tool": "good", "params": {"topic": "$4"}},
]


# --- the replan --------------------------------------------------------------------------------


async def test_a_failed_step_is_replanned_and_the_run_recovers() -> None:
    sources = Sources()
    planner = replanning_planner(FIRST, SECOND)
    agent = make_agent(planner, sources.tools)

    result = await agent.run("Compare the figures")

    assert result.status == "completed", result.error
    assert result.answer == "recovered"
    assert result.replans == 1
    assert result.plans == [
        [{**s, "depends_on": d} for s, d in zip(FIRST, ([], [], [2]), strict=True)],
        [{**s, "depends_on": d} for s, d in zip(SECOND, ([1], [4]), strict=True)],
    ]
    # The plan in force: the step completed under version 1, then the new plan.
    assert [s["step"] for s in result.plan] == [1, 4, 5]
    # Every tool ran once; the failed step was not retried (no retries) and step 3 never ran.
    assert sources.count() == Counter(
        {
            ("good", "background"): 1,
            ("flaky", "figures"): 1,
            ("good", "figures via good:background"): 1,
            ("good", "good:figures via good:background"): 1,
        }
    )
    log = [(s.label, s.status, s.plan_version) for s in result.executed_steps]
    assert sorted(log[:2]) == [("1", "completed", 1), ("2", "failed", 1)]  # side by side
    assert log[2:] == [("4", "completed", 2), ("5", "completed", 2)]
    (failed,) = [s for s in result.executed_steps if s.status == "failed"]
    assert failed.error == ("ConnectionError: flaky source is down (asked for 'figures')")

    events = await get_events(result.run_id)
    types = [e.type for e in events]
    assert types == [
        EventType.AGENT_STARTED,
        EventType.AGENT_PLAN_GENERATED,
        EventType.AGENT_STEP_STARTED,
        EventType.AGENT_STEP_STARTED,
        # 1 and 2 run side by side; either may report first
        *types[4:6],
        EventType.AGENT_PLAN_GENERATED,
        EventType.AGENT_REPLANNING,
        EventType.AGENT_STEP_STARTED,
        EventType.AGENT_STEP_COMPLETED,
        EventType.AGENT_STEP_STARTED,
        EventType.AGENT_STEP_COMPLETED,
        EventType.AGENT_EXECUTION_COMPLETED,
        EventType.AGENT_COMPLETED,
    ]
    assert sorted(types[4:6]) == sorted(
        [EventType.AGENT_STEP_COMPLETED, EventType.AGENT_STEP_FAILED]
    )
    replanning = events[types.index(EventType.AGENT_REPLANNING)]
    assert replanning["replan"] == 1
    assert replanning["reason"] == (
        "Step 2 failed: ConnectionError: flaky source is down (asked for 'figures')"
    )
    assert replanning["original_plan"] == result.plans[0]
    assert replanning["new_plan"] == result.plans[1]
    generated = [e for e in events if e.type is EventType.AGENT_PLAN_GENERATED]
    assert [e["version"] for e in generated] == [1, 2]
    started = [e for e in events if e.type is EventType.AGENT_STEP_STARTED]
    assert [(e["label"], e["plan_version"]) for e in started] == [
        ("1", 1),
        ("2", 1),
        ("4", 2),
        ("5", 2),
    ]
    done = next(e for e in events if e.type is EventType.AGENT_EXECUTION_COMPLETED)
    counts = [done[k] for k in ("total_steps", "successful", "failed", "replans")]
    assert counts == [4, 3, 1, 1]
    assert planner.count() == 2
    assert result.usage.planner.requests == 2


def arguments_reply(tool: str, prompt: str) -> dict[str, Any]:
    return {"topic": 12345}  # never a string: invalid every time


@pytest.mark.parametrize(
    "kind",
    ["exception after retries", "invalid model arguments", "timeout", "unresolvable reference"],
)
async def test_each_kind_of_step_failure_triggers_a_replan(kind: str) -> None:
    sources = Sources()
    attempts: list[str] = []

    @step(retries=1, retry_interval=0.01)
    def unstable(topic: str) -> str:
        """Look a topic up in a source that keeps failing."""
        attempts.append(topic)
        raise RuntimeError(f"unstable failed on attempt {len(attempts)}")

    @step(timeout=0.2)
    async def stuck(topic: str) -> str:
        """Look a topic up in a source that hangs."""
        attempts.append(topic)
        await asyncio.sleep(30)
        return "never"

    failing = {
        "exception after retries": {"tool": "unstable", "params": {"topic": "figures"}},
        # `topic` is left to the executor model, which never gives a valid one.
        "invalid model arguments": {"tool": "good", "params": {}},
        "timeout": {"tool": "stuck", "params": {"topic": "figures"}},
        # Step 1's result is plain text: it has no `figures` to point into.
        "unresolvable reference": {"tool": "good", "params": {"topic": "$1.figures"}},
    }[kind]
    first = [FIRST[0], {"step": 2, "description": "Figures", **failing}]
    second = [
        {
            "step": 3,
            "description": "Figures, elsewhere",
            "tool": "good",
            "params": {"topic": "figures"},
        }
    ]
    planner = replanning_planner(first, second)
    executor = scripted_executor(arguments=arguments_reply, answer="recovered")
    agent = make_agent(planner, [*sources.tools, unstable, stuck], executor=executor)

    started = time.monotonic()
    result = await agent.run("Find the figures")
    elapsed = time.monotonic() - started

    assert result.status == "completed", result.error
    assert result.replans == 1
    failed = [s for s in result.executed_steps if s.status == "failed"]
    assert [s.label for s in failed] == ["2"]
    expected_error = {
        "exception after retries": r"^RuntimeError: unstable failed on attempt 2 \(after 2 attempts\)$",
        "invalid model arguments": r"^ToolArgumentsError: invalid arguments for tool 'good': .*topic",
        "timeout": r"^TimeoutError: .*timed out after 0\.2s",
        "unresolvable reference": r"^ReferenceResolutionError: .*figures",
    }[kind]
    assert re.search(expected_error, failed[0].error or ""), failed[0].error
    # The planner is told which step failed and why.
    (prompt,) = replan_prompts(planner)
    assert f"step 2: Figures (tool {failing['tool']})" in prompt
    assert f"Error: {failed[0].error}" in prompt
    assert sources.count()[("good", "figures")] == 1
    if kind == "exception after retries":
        assert attempts == ["figures", "figures"]  # the tool's own retry, then the replan
    if kind == "invalid model arguments":
        # Asked once and corrected once; the tool itself never ran with bad arguments.
        assert [c.tool for c in executor.calls if c.kind == "arguments"] == ["good", "good"]
        assert ("good", 12345) not in sources.calls
    if kind == "timeout":
        assert attempts == ["figures"]
        assert elapsed < 20  # the hanging call was abandoned, not awaited


async def test_steps_in_flight_finish_before_the_planner_is_asked_again() -> None:
    sources = Sources()
    asked_at: list[float] = []
    first = [
        {"step": 1, "description": "Figures", "tool": "flaky", "params": {"topic": "figures"}},
        {
            "step": 2,
            "description": "Slow background",
            "tool": "slow",
            "params": {"topic": "background", "seconds": 0.8},
        },
        {
            "step": 3,
            "description": "Each region",
            "tool": "slow",
            "for_each": "$4",
            "params": {"topic": "${item}", "seconds": 0.1},
            "depends_on": [4],
        },
        {"step": 4, "description": "Regions", "tool": "regions", "params": {}},
    ]
    second = [
        {
            "step": 5,
            "description": "Figures, elsewhere",
            "tool": "good",
            "params": {"topic": "figures"},
        }
    ]

    def replan(prompt: str) -> Any:
        asked_at.append(time.monotonic())
        return second

    @step()
    async def regions() -> list[str]:
        """List the regions (after the flaky source has failed)."""
        await asyncio.sleep(0.2)
        return ["north", "south"]

    planner = replanning_planner(first, replan)
    agent = make_agent(planner, [*sources.tools, regions])

    result = await agent.run("Figures and background")

    assert result.status == "completed", result.error
    # The slow step was running when step 1 failed: it finished, then the planner was asked.
    assert asked_at and asked_at[0] > sources.finished["background"]
    events = await get_events(result.run_id)
    seq = {(e.type, e.payload.get("label")): e.seq for e in events}
    assert seq[(EventType.AGENT_STEP_FAILED, "1")] < seq[(EventType.AGENT_STEP_COMPLETED, "2")]
    assert seq[(EventType.AGENT_STEP_COMPLETED, "2")] < seq[(EventType.AGENT_REPLANNING, None)]
    # Nothing new started between the failure and the replan: step 4 finished after step 1
    # had failed, and the fan-out waiting for it was not started.
    between = [
        e
        for e in events
        if seq[(EventType.AGENT_STEP_FAILED, "1")] < e.seq < seq[(EventType.AGENT_REPLANNING, None)]
        and e.type is EventType.AGENT_STEP_STARTED
    ]
    assert between == []
    # Its result reached the planner, and it did not run again.
    (prompt,) = replan_prompts(planner)
    assert "- step 2: slow:background" in prompt
    assert sources.count()[("slow", "background")] == 1
    assert sorted(s["step"] for s in result.plan) == [2, 4, 5]
    assert ("slow", "north") not in sources.calls


async def test_the_planner_sees_the_completed_results_truncated_to_the_budget() -> None:
    @step()
    def long_report(topic: str) -> str:
        """Write a long report."""
        return "A" * 300 + "TAIL"

    sources = Sources()
    first = [
        {"step": 1, "description": "Short", "tool": "good", "params": {"topic": "short"}},
        {"step": 2, "description": "Long", "tool": "long_report", "params": {"topic": "long"}},
        {
            "step": 3,
            "description": "Figures",
            "tool": "flaky",
            "params": {"topic": "figures"},
            "depends_on": [1, 2],
        },
    ]
    second = [{"step": 4, "description": "Finish", "tool": "good", "params": {"topic": "$2"}}]
    planner = replanning_planner(first, second)
    agent = make_agent(planner, [*sources.tools, long_report], replan_result_chars=40)

    result = await agent.run("Summarise the long report")

    assert result.status == "completed", result.error
    (prompt,) = replan_prompts(planner)
    assert "Request:\nSummarise the long report" in prompt
    # The current plan, one line per step.
    assert "1. Short [good] (after: -)" in prompt
    assert "3. Figures [flaky] (after: 1, 2)" in prompt
    # Completed results: short ones whole, long ones cut at the budget, the cut said.
    assert "- step 1: good:short\n" in prompt
    assert "- step 2: " + "A" * 40 + " …(264 more chars)\n" in prompt
    assert "TAIL" not in prompt
    assert "A" * 41 not in prompt
    assert "step 3: Figures (tool flaky)" in prompt
    assert "Error: ConnectionError: flaky source is down (asked for 'figures')" in prompt
    assert "Number new steps from 4" in prompt
    # The planner saw a preview, but the new step receives the whole result.
    assert result.executed_steps[-1].arguments == {"topic": "A" * 300 + "TAIL"}


async def test_completed_steps_of_every_version_stay_referenceable_and_never_rerun() -> None:
    sources = Sources()
    second = [
        {
            "step": 4,
            "description": "Figures, second try",
            "tool": "flaky",
            "params": {"topic": "figures again ${1}"},
        },
        {"step": 5, "description": "Regions", "tool": "good", "params": {"topic": "regions"}},
        {"step": 6, "description": "Compare", "tool": "good", "params": {"topic": "$4"}},
    ]
    third = [
        {
            "step": 7,
            "description": "Figures, third source",
            "tool": "good",
            "params": {"topic": "${1} and ${5}"},
        },
    ]
    planner = replanning_planner(FIRST, second, third)
    agent = make_agent(planner, sources.tools, answer="last_step")

    result = await agent.run("Compare the figures")

    assert result.status == "completed", result.error
    assert result.replans == 2
    assert result.answer == "good:good:background and good:regions"
    assert [s["step"] for s in result.plan] == [1, 5, 7]
    assert all(n == 1 for n in sources.count().values()), sources.count()
    # The second replan shows completed steps of both earlier versions.
    prompts = replan_prompts(planner)
    assert len(prompts) == 2
    assert "- step 1: good:background" in prompts[1]
    assert "- step 5: good:regions" in prompts[1]
    assert "Number new steps from 7" in prompts[1]
    versions = {s.label: s.plan_version for s in result.executed_steps}
    assert versions == {"1": 1, "2": 1, "4": 2, "5": 2, "7": 3}


# --- what a replacement plan may not do ---------------------------------------------------------


async def test_reusing_a_completed_step_number_is_rejected_and_repaired() -> None:
    sources = Sources()
    reuses = [
        {
            "step": 1,
            "description": "Background again",
            "tool": "good",
            "params": {"topic": "again"},
        },
        {"step": 4, "description": "Figures", "tool": "good", "params": {"topic": "figures"}},
    ]
    planner = replanning_planner(FIRST, reuses, SECOND)
    agent = make_agent(planner, sources.tools)

    result = await agent.run("Compare the figures")

    assert result.status == "completed", result.error
    assert planner.count() == 3  # the plan, the replan, one repair round
    repair = planner.calls[2].prompt
    assert "step 1 is already completed; number new steps from 4" in repair
    assert ("good", "again") not in sources.calls
    assert sources.count()[("good", "background")] == 1
    generated = [
        e for e in await get_events(result.run_id) if e.type is EventType.AGENT_PLAN_GENERATED
    ]
    assert [e["attempts"] for e in generated] == [1, 2]
    assert result.plans[1] == [{**SECOND[0], "depends_on": [1]}, {**SECOND[1], "depends_on": [4]}]


async def test_a_replan_may_not_reference_a_step_that_did_not_complete() -> None:
    sources = Sources()
    uses_failed = [
        {"step": 4, "description": "Compare", "tool": "good", "params": {"topic": "$2"}},
    ]
    planner = replanning_planner(FIRST, uses_failed, SECOND)
    agent = make_agent(planner, sources.tools)

    result = await agent.run("Compare the figures")

    assert result.status == "completed", result.error
    repair = planner.calls[2].prompt
    assert (
        "step 4: '$2' refers to step 2, which is not in the plan or among the completed steps"
        in repair
    )


async def test_a_replan_still_invalid_after_repairs_fails_without_running_it() -> None:
    sources = Sources()
    invalid = [{"step": 4, "description": "Wipe", "tool": "delete_everything", "params": {}}]
    planner = replanning_planner(FIRST, invalid)
    agent = make_agent(planner, sources.tools)

    result = await agent.run("Compare the figures")

    assert result.status == "failed"
    assert result.error_type == "PlanValidationError"
    assert "step 4: unknown tool 'delete_everything'" in (result.error or "")
    assert planner.count() == 4  # the plan, then the replan and its two repair rounds
    assert result.usage.planner.requests == 4
    assert sources.count() == Counter({("good", "background"): 1, ("flaky", "figures"): 1})
    types = await event_types(result)
    assert EventType.AGENT_REPLANNING not in types
    assert types[-1] is EventType.AGENT_FAILED


# --- limits and switching it off --------------------------------------------------------------


async def test_replanning_stops_at_max_replans_with_the_last_error() -> None:
    sources = Sources()

    def always_failing(prompt: str) -> list[dict[str, Any]]:
        number = int(re.search(r"Number new steps from (\d+)", prompt).group(1))  # type: ignore[union-attr]
        return [
            {
                "step": number,
                "description": "Figures",
                "tool": "flaky",
                "params": {"topic": f"try {number}"},
            }
        ]

    planner = replanning_planner(FIRST, always_failing)
    agent = make_agent(planner, sources.tools, max_replans=2)

    result = await asyncio.wait_for(agent.run("Compare the figures"), timeout=60)

    assert result.status == "failed"
    assert result.error_type == "BudgetExceededError"
    assert "max_replans=2" in (result.error or "")
    # The error names the last failure, not the first.
    assert "step 5" in (result.error or "")
    assert "ConnectionError: flaky source is down (asked for 'try 5')" in (result.error or "")
    assert result.replans == 2
    assert planner.count() == 3
    assert [c[1] for c in sources.calls if c[0] == "flaky"] == ["figures", "try 4", "try 5"]
    events = await get_events(result.run_id)
    assert [e.type for e in events].count(EventType.AGENT_REPLANNING) == 2
    assert events[-1].type is EventType.AGENT_FAILED
    assert events[-1]["error"] == result.error
    assert events[-1]["usage"]["planner"]["requests"] == 3


async def test_with_replanning_off_the_first_failure_ends_the_run() -> None:
    sources = Sources()
    first = [
        {"step": 1, "description": "Figures", "tool": "flaky", "params": {"topic": "figures"}},
        {
            "step": 2,
            "description": "Background",
            "tool": "slow",
            "params": {"topic": "background", "seconds": 0.5},
        },
        {"step": 3, "description": "Compare", "tool": "good", "params": {"topic": "$1"}},
    ]
    planner = replanning_planner(first, SECOND)
    agent = make_agent(planner, sources.tools, enable_replanning=False)

    result = await agent.run("Compare the figures")

    assert result.status == "failed"
    assert result.error_type == "StepFailedError"
    assert result.error == (
        f"run {result.run_id!r}, step 1: "
        "ConnectionError: flaky source is down (asked for 'figures')"
    )
    assert result.answer is None
    assert planner.count() == 1
    assert result.replans == 0
    # The step in flight finished and was recorded; the dependent step never started.
    assert sources.count() == Counter({("flaky", "figures"): 1, ("slow", "background"): 1})
    assert [(s.label, s.status) for s in sorted(result.executed_steps, key=lambda s: s.label)] == [
        ("1", "failed"),
        ("2", "completed"),
    ]
    events = await get_events(result.run_id)
    types = [e.type for e in events]
    assert EventType.AGENT_REPLANNING not in types
    assert types[-1] is EventType.AGENT_FAILED
    assert events[-1]["error_type"] == "StepFailedError"
    assert "flaky source is down" in events[-1]["error"]
