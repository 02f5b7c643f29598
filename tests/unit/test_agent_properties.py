"""Whatever the planner answers, an agent run ends, and no invalid plan ever runs a tool.

First every kind of malformed planner output, one by one, through `run()`: repaired by the
bounded repair round when the next reply is good, or failing with each problem listed. Then
property-based tests (hypothesis) draw sequences of planner replies, valid and invalid mixed,
for the first plan and for a replan, and check what must always hold: the run finishes (within
a timeout), the first valid reply within the repair budget is the plan that runs, and when
there is none the run fails without a single tool call.

Every example is a real durable run, so one runtime serves the whole module and each agent
gets a name of its own.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pyworkflow import EventType, get_events, step
from pyworkflow.agents import PlanExecuteAgent
from pyworkflow.agents.result import AgentResult
from pyworkflow.testing import ModelScript, scripted_executor, scripted_planner, temporary_runtime

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# DBOS's queue thread jitters its polling with the global `random` module while Hypothesis
# draws examples; Hypothesis reads that as a strategy using `random`. No strategy here does.
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
RUN_TIMEOUT = 60.0  # seconds; a run that takes longer has hung
REPAIRS = 2  # the agents' max_plan_repairs: three planner calls per plan at most


@pytest.fixture(scope="module")
def shared_runtime() -> Iterator[str]:
    with temporary_runtime() as url:
        yield url


class Tools:
    """The agent's tools; every call is recorded as (tool, arguments)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

        @step()
        def fetch(url: str) -> str:
            """Fetch a page."""
            self.calls.append(("fetch", {"url": url}))
            return f"page<{url}>"

        @step()
        def shout(text: str, times: int) -> str:
            """Repeat a text in capitals."""
            self.calls.append(("shout", {"text": text, "times": times}))
            return text.upper() * times

        @step()
        def broken(reason: str) -> str:
            """A source that is down."""
            self.calls.append(("broken", {"reason": reason}))
            raise RuntimeError(reason)

        self.all = [fetch, shout, broken]

    def count(self) -> Counter[str]:
        return Counter(tool for tool, _ in self.calls)


def make_agent(planner: ModelScript, tools: Tools, **options: Any) -> PlanExecuteAgent:
    return PlanExecuteAgent(
        planner_model=planner.model,
        executor_model=scripted_executor().model,
        tools=tools.all,
        name=f"tests.agent_properties:{uuid.uuid4().hex}",
        max_plan_repairs=REPAIRS,
        answer="last_step",
        **options,
    )


def run(agent: PlanExecuteAgent, query: str) -> AgentResult:
    async def bounded() -> AgentResult:
        return await asyncio.wait_for(agent.run(query), RUN_TIMEOUT)

    return asyncio.run(bounded())


def events_of(result: AgentResult) -> list[Any]:
    return asyncio.run(get_events(result.run_id))


# --- every kind of malformed reply, one by one ----------------------------------------------

FETCH = {"step": 1, "description": "Fetch", "tool": "fetch", "params": {"url": "https://a"}}
SHOUT = {"step": 2, "description": "Shout", "tool": "shout", "params": {"text": "$1", "times": 2}}
GOOD = [FETCH, SHOUT]
GOOD_CALLS = [("fetch", {"url": "https://a"}), ("shout", {"text": "page<https://a>", "times": 2})]

MALFORMED: dict[str, tuple[str, str]] = {
    "not JSON": ("I would fetch the page, then shout it.", "the reply contains no JSON"),
    "truncated JSON": (json.dumps(GOOD)[:70], "the JSON in the reply is cut off"),
    "not a plan": ('{"answer": "shout it"}', "got an object with keys: 'answer'"),
    "a step that is not an object": ('["fetch the page"]', "a step must be an object"),
    "empty plan": ("[]", "the plan has no steps"),
    "duplicate step numbers": (
        json.dumps([FETCH, {**SHOUT, "step": 1}]),
        "the step number 1 is used by more than one step",
    ),
    "unknown tool": (
        json.dumps([FETCH, {**SHOUT, "tool": "rm_rf"}]),
        "step 2: unknown tool 'rm_rf'; the agent's tools are: broken, fetch, shout",
    ),
    "cycle": (
        json.dumps([{**FETCH, "depends_on": [2]}, SHOUT]),
        "the plan has a cycle: 1 → 2 → 1",
    ),
    "reference to a missing step": (
        json.dumps([FETCH, {**SHOUT, "params": {"text": "$7", "times": 2}}]),
        "step 2: '$7' refers to step 7, which is not in the plan",
    ),
    "reference to a later step, making a cycle": (
        json.dumps([{**FETCH, "params": {"url": "https://a/${2}"}}, SHOUT]),
        "the plan has a cycle: 1 → 2 → 1",
    ),
    "params of the wrong type": (
        json.dumps([FETCH, {**SHOUT, "params": {"text": "$1", "times": "twice"}}]),
        "step 2: param 'times' must be an integer, got 'twice'",
    ),
    "an unknown param": (
        json.dumps([{**FETCH, "params": {"url": "https://a", "cache": True}}, SHOUT]),
        "step 1: fetch has no parameter 'cache'",
    ),
}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_a_malformed_reply_is_repaired_or_fails_naming_the_problem(
    shared_runtime: str, kind: str
) -> None:
    reply, problem = MALFORMED[kind]

    # Repaired: the problem goes back to the planner, whose next reply runs.
    tools = Tools()
    planner = scripted_planner(reply, GOOD)
    result = run(make_agent(planner, tools), "Fetch and shout")
    assert result.status == "completed", result.error
    assert planner.count() == 2
    assert problem in planner.calls[1].prompt
    assert tools.calls == GOOD_CALLS
    assert result.answer == "PAGE<HTTPS://A>" * 2

    # Never repaired: the run fails with the problem listed, and no tool ran.
    tools = Tools()
    planner = scripted_planner(reply)
    result = run(make_agent(planner, tools), "Fetch and shout")
    assert result.status == "failed"
    assert result.error_type == "PlanValidationError"
    assert problem in (result.error or "")
    assert planner.count() == REPAIRS + 1
    assert tools.calls == []
    assert [e.type for e in events_of(result)] == [EventType.AGENT_STARTED, EventType.AGENT_FAILED]


def test_a_reply_with_many_problems_fails_listing_each_one(shared_runtime: str) -> None:
    reply = json.dumps(
        [
            {**FETCH, "params": {"url": 42}},
            {**SHOUT, "params": {"text": "$9", "times": 2}},
            {**SHOUT, "description": "Again"},
            {"step": 3, "description": "Wipe", "tool": "rm_rf", "params": {}},
        ]
    )
    tools = Tools()
    result = run(make_agent(scripted_planner(reply), tools), "Fetch and shout")

    assert result.status == "failed"
    for problem in (
        "step 1: param 'url' must be a string, got 42",
        "step 2: '$9' refers to step 9, which is not in the plan",
        "step 2: the step number 2 is used by more than one step",
        "step 3: unknown tool 'rm_rf'",
    ):
        assert problem in (result.error or ""), result.error
    assert "(4 problem(s))" in (result.error or "")
    assert tools.calls == []


@pytest.mark.parametrize(
    "reply",
    [
        f"Here is my plan:\n{json.dumps(GOOD)}\nIt fetches, then shouts.",
        f"```json\n{json.dumps(GOOD, indent=2)}\n```",
        json.dumps({"steps": GOOD}),
        # A reference to a later step is a dependency like any other: no cycle, no problem.
        json.dumps(
            [{**SHOUT, "step": 1, "params": {"text": "$2", "times": 2}}, {**FETCH, "step": 2}]
        ),
    ],
    ids=["prose around JSON", "fenced", "steps object", "reference to a later step"],
)
def test_replies_that_only_look_unusual_run_without_a_repair(
    shared_runtime: str, reply: str
) -> None:
    tools = Tools()
    planner = scripted_planner(reply)
    result = run(make_agent(planner, tools), "Fetch and shout")

    assert result.status == "completed", result.error
    assert planner.count() == 1
    assert tools.calls == GOOD_CALLS


# --- strategies: plans and replies ----------------------------------------------------------

literals = st.text(alphabet="abcxyz -", min_size=1, max_size=8)


@st.composite
def valid_plans(
    draw: st.DrawFn, first: int = 1, completed: tuple[int, ...] = ()
) -> list[dict[str, Any]]:
    """A plan that validates and runs: fetch and shout steps, references to earlier steps (or
    to `completed` ones), numbered from `first`, listed in any order."""
    count = draw(st.integers(1, 4))
    ids = list(range(first, first + count))
    steps = []
    for index, number in enumerate(ids):
        earlier = [*completed, *ids[:index]]
        ref = draw(st.none() | st.sampled_from(earlier)) if earlier else None
        if draw(st.booleans()):
            url = f"https://x/{draw(literals)}" if ref is None else f"https://x/${{{ref}}}"
            tool, params = "fetch", {"url": url}
        else:
            text = draw(literals) if ref is None else f"${ref}"
            tool, params = "shout", {"text": text, "times": draw(st.integers(1, 2))}
        own = ids[:index]
        deps = draw(st.lists(st.sampled_from(own), max_size=2, unique=True)) if own else []
        steps.append(
            {
                "step": number,
                "description": f"Step {number}",
                "tool": tool,
                "params": params,
                "depends_on": deps,
            }
        )
    return draw(st.permutations(steps))


def as_reply(steps: list[dict[str, Any]], form: int) -> str:
    text = json.dumps(steps)
    return [
        text,
        f"```json\n{text}\n```",
        f"My plan:\n{text}\nDone.",
        json.dumps({"steps": steps}),
    ][form]


INITIAL_FAULTS = [
    "not JSON", "truncated", "empty", "duplicate", "unknown tool", "cycle", "missing reference",
    "wrong type", "unknown param",
]  # fmt: skip
REPLAN_FAULTS = [*INITIAL_FAULTS, "reuses a completed number", "references the failed step"]


@st.composite
def broken_reply(draw: st.DrawFn, plan: list[dict[str, Any]], fault: str) -> str:
    """`plan` spoiled by `fault`, as the planner's reply text: always invalid."""
    steps = copy.deepcopy(plan)
    victim = draw(st.sampled_from(steps))
    if fault == "not JSON":
        return draw(st.sampled_from(["I would fetch it.", "", "Plan: step one, fetch."]))
    if fault == "truncated":
        text = json.dumps(steps)
        return text[: draw(st.integers(1, len(text) - 2))]
    if fault == "empty":
        return draw(st.sampled_from(["[]", '{"steps": []}']))
    if fault == "duplicate":
        steps.append({**copy.deepcopy(victim), "description": "Again"})
    elif fault == "unknown tool":
        victim["tool"] = "rm_rf"
    elif fault == "cycle":
        other = draw(st.sampled_from(steps))
        victim["depends_on"] = [*victim["depends_on"], other["step"]]
        other["depends_on"] = [*other["depends_on"], victim["step"]]
    elif fault == "missing reference":
        victim["params"] = (
            {"url": "https://x/${99}"} if victim["tool"] == "fetch" else {"text": "$99", "times": 1}
        )
    elif fault == "wrong type":
        victim["params"] = {"url": 42} if victim["tool"] == "fetch" else {"text": "a", "times": "x"}
    elif fault == "unknown param":
        victim["params"] = {**victim["params"], "loud": True}
    elif fault == "reuses a completed number":
        victim["step"] = 1
    elif fault == "references the failed step":
        victim["params"] = (
            {"url": "https://x/${2}"} if victim["tool"] == "fetch" else {"text": "$2", "times": 1}
        )
    return as_reply(steps, draw(st.integers(0, 3)))


@st.composite
def replies(
    draw: st.DrawFn, faults: list[str], first: int = 1, completed: tuple[int, ...] = ()
) -> tuple[str, list[dict[str, Any]] | None]:
    """One planner reply, valid or not: (its text, the plan when it is valid)."""
    plan = draw(valid_plans(first, completed))
    if draw(st.booleans()):
        return as_reply(plan, draw(st.integers(0, 3))), plan
    return draw(broken_reply(plan, draw(st.sampled_from(faults)))), None


def first_valid(sequence: list[tuple[str, Any]]) -> tuple[int, list[dict[str, Any]]] | None:
    """Which planner call gets the first valid reply, when there is one within the repairs.

    The scripted planner repeats its last reply, so the calls see sequence[0], sequence[1]...
    then the last one again."""
    for call in range(REPAIRS + 1):
        _, plan = sequence[min(call, len(sequence) - 1)]
        if plan is not None:
            return call, plan
    return None


def tool_calls_of(plan: list[dict[str, Any]]) -> Counter[str]:
    return Counter(s["tool"] for s in plan)


# --- properties -------------------------------------------------------------------------------


@SETTINGS
@given(sequence=st.lists(replies(INITIAL_FAULTS), min_size=1, max_size=4))
def test_the_first_valid_plan_runs_and_an_invalid_one_never_does(
    shared_runtime: str, sequence: list[tuple[str, Any]]
) -> None:
    tools = Tools()
    planner = scripted_planner(*(text for text, _ in sequence))
    result = run(make_agent(planner, tools), "Fetch and shout")

    expected = first_valid(sequence)
    event(f"valid plan at call {expected[0]}" if expected else "no valid plan")
    if expected is None:
        assert result.status == "failed"
        assert result.error_type == "PlanValidationError"
        assert planner.count() == REPAIRS + 1
        assert tools.calls == []
        return
    call, plan = expected
    assert result.status == "completed", result.error
    assert planner.count() == call + 1
    # The plan that ran is that valid one: nothing failed, nothing was replanned.
    assert result.replans == 0
    assert [s.status for s in result.executed_steps] == ["completed"] * len(plan)
    assert sorted(s["step"] for s in result.plan) == sorted(s["step"] for s in plan)
    assert tools.count() == tool_calls_of(plan)


INITIAL = [
    {"step": 1, "description": "Fetch", "tool": "fetch", "params": {"url": "https://start"}},
    {
        "step": 2,
        "description": "Ask the broken source",
        "tool": "broken",
        "params": {"reason": "down"},
    },
]


@SETTINGS
@given(sequence=st.lists(replies(REPLAN_FAULTS, first=3, completed=(1,)), min_size=1, max_size=4))
def test_a_replan_runs_only_when_valid_and_never_reruns_completed_steps(
    shared_runtime: str, sequence: list[tuple[str, Any]]
) -> None:
    tools = Tools()
    planner = scripted_planner(INITIAL, *(text for text, _ in sequence))
    result = run(make_agent(planner, tools), "Fetch, ask, recover")

    # Whatever the replan: the first version's tools ran once each, never again.
    assert tools.calls[:2] in (
        [("fetch", {"url": "https://start"}), ("broken", {"reason": "down"})],
        [("broken", {"reason": "down"}), ("fetch", {"url": "https://start"})],
    )
    later = Counter(tool for tool, _ in tools.calls[2:])
    expected = first_valid(sequence)
    event(f"valid replan at call {expected[0]}" if expected else "no valid replan")
    if expected is None:
        assert result.status == "failed"
        assert result.error_type == "PlanValidationError"
        assert planner.count() == 1 + REPAIRS + 1
        assert later == Counter()
        assert EventType.AGENT_REPLANNING not in [e.type for e in events_of(result)]
        return
    call, plan = expected
    assert result.status == "completed", result.error
    assert result.replans == 1
    assert planner.count() == 1 + call + 1
    assert [s.status for s in result.executed_steps if s.plan_version == 2] == ["completed"] * len(
        plan
    )
    assert later == tool_calls_of(plan)
    assert sorted(s["step"] for s in result.plan) == [1, *sorted(s["step"] for s in plan)]
