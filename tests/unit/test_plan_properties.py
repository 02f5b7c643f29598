"""Property tests: valid plans pass, broken plans never do, no input crashes the parser."""

from __future__ import annotations

import json
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyworkflow.agents.plan import (
    Plan,
    ToolSignature,
    format_plan,
    parse_plan,
    resolve_params,
    validate_plan,
)
from pyworkflow.exceptions import PlanValidationError

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ROW = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "value": {"anyOf": [{"type": "number"}, {"type": "null"}], "default": None},
    },
    "required": ["name"],
}
TOOLS = {
    "search_web": ToolSignature(
        "search_web",
        "Search the web.",
        {
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "max_results": {"type": "integer", "default": 5},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
    ),
    "create_table": ToolSignature(
        "create_table",
        "Make a table.",
        {
            "type": "object",
            "properties": {
                "rows": {"type": "array", "items": {"$ref": "#/$defs/Row"}},
                "title": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
                "style": {"enum": ["plain", "markdown"], "type": "string", "default": "plain"},
            },
            "required": ["rows"],
            "additionalProperties": False,
            "$defs": {"Row": ROW},
        },
    ),
    "ping": ToolSignature("ping", "No arguments.", {"type": "object", "properties": {}}),
}

# Text without "$", so a literal can never turn into a reference by accident.
words = st.text(st.characters(blacklist_characters="$", blacklist_categories=["Cs"]), max_size=20)


def references(earlier: list[int]) -> st.SearchStrategy[str]:
    return st.sampled_from(earlier).flatmap(
        lambda n: st.sampled_from([f"${n}", f"${n}.name", f"${n}[0]", f"${{{n}.items[2]}}"])
    )


def templates(earlier: list[int], item: bool) -> st.SearchStrategy[str]:
    roots = [str(n) for n in earlier] + (["item"] if item else [])
    if not roots:
        return words
    return st.builds(lambda w, r: f"{w} ${{{r}}} {w}", words, st.sampled_from(roots))


def either(literal: st.SearchStrategy[Any], earlier: list[int]) -> st.SearchStrategy[Any]:
    return st.one_of(literal, references(earlier)) if earlier else literal


def tool_params(tool: str | None, earlier: list[int], item: bool) -> st.SearchStrategy[Any]:
    text = st.one_of(words, templates(earlier, item))
    if tool == "search_web":
        fields = {"query": either(text, earlier), "max_results": either(st.integers(), earlier)}
    elif tool == "create_table":
        row = st.fixed_dictionaries(
            {"name": either(text, earlier)},
            optional={"value": st.none() | st.integers() | st.floats(allow_nan=False)},
        )
        fields = {
            "rows": either(st.lists(either(row, earlier), max_size=3), earlier),
            "title": st.none() | text,
            "style": either(st.sampled_from(["plain", "markdown"]), earlier),
        }
    elif tool == "ping":
        return st.just({})
    else:
        json_leaf = st.none() | st.booleans() | st.integers() | text
        return st.dictionaries(words, st.lists(json_leaf, max_size=3) | json_leaf, max_size=3)
    return st.fixed_dictionaries({}, optional=fields)


@st.composite
def dag_plans(draw: st.DrawFn, min_steps: int = 1, connected: bool = False) -> list[dict[str, Any]]:
    """A valid plan as the planner would write it; step numbers arbitrary, order shuffled."""
    count = draw(st.integers(min_steps, 8))
    ids = draw(st.lists(st.integers(1, 500), min_size=count, max_size=count, unique=True))
    steps = []
    for index, number in enumerate(ids):
        earlier = ids[:index]
        deps = draw(st.lists(st.sampled_from(earlier), max_size=3, unique=True)) if earlier else []
        if connected and earlier and not deps:
            deps = [earlier[-1]]
        for_each = draw(st.none() | references(earlier)) if earlier else None
        tool = draw(st.sampled_from([*sorted(TOOLS), None]))
        step = {
            "step": number,
            "description": draw(words.filter(str.strip)),
            "tool": tool,
            "params": draw(tool_params(tool, earlier, item=for_each is not None)),
            "depends_on": deps,
        }
        if for_each is not None:
            step["for_each"] = for_each
        steps.append(step)
    return [steps[i] for i in draw(st.permutations(range(count)))]


def as_reply(steps: list[dict[str, Any]], form: int) -> str:
    text = json.dumps(steps, indent=form % 2 or None)
    return [
        text,
        f"```json\n{text}\n```",
        f"Here is my plan:\n{text}\nIt should work.",
        json.dumps({"steps": steps}),
    ][form]


@SETTINGS
@given(dag_plans(), st.integers(0, 3))
def test_valid_plans_validate_and_round_trip(steps: list[dict[str, Any]], form: int) -> None:
    plan = parse_plan(as_reply(steps, form))

    assert validate_plan(plan, TOOLS, max_steps=len(steps)) == []
    assert Plan.from_list(plan.to_list()) == plan
    assert Plan.from_list(json.loads(json.dumps(plan.to_list()))) == plan
    assert parse_plan(plan.to_list()) == plan
    assert [step.id for step in plan.steps] == [step["step"] for step in steps]
    assert len(format_plan(plan).splitlines()) == len(steps)


@st.composite
def broken_plans(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]]]:
    steps = draw(dag_plans(min_steps=2, connected=True))
    by_id = {step["step"]: step for step in steps}
    dependent = draw(st.sampled_from([step for step in steps if step["depends_on"]]))
    kind = draw(st.sampled_from(["drop", "cycle", "rename", "duplicate", "max_steps"]))
    if kind == "drop":
        dropped = draw(st.sampled_from(dependent["depends_on"]))
        steps = [step for step in steps if step["step"] != dropped]
    elif kind == "cycle":
        prerequisite = by_id[draw(st.sampled_from(dependent["depends_on"]))]
        prerequisite["depends_on"] = [*prerequisite["depends_on"], dependent["step"]]
    elif kind == "rename":
        target = draw(st.sampled_from(steps))
        target["tool"] = draw(st.text(min_size=1, max_size=12).filter(lambda t: t not in TOOLS))
    elif kind == "duplicate":
        first, second = draw(st.permutations(steps))[:2]
        second["step"] = first["step"]
    return kind, steps


@SETTINGS
@given(broken_plans())
def test_broken_plans_always_report_a_problem(case: tuple[str, list[dict[str, Any]]]) -> None:
    kind, steps = case
    max_steps = len(steps) - 1 if kind == "max_steps" else None
    try:
        plan = parse_plan(json.dumps(steps))
    except PlanValidationError as error:
        assert error.errors
        return
    assert validate_plan(plan, TOOLS, max_steps=max_steps)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
step_like = st.dictionaries(
    st.sampled_from(["step", "id", "description", "tool", "params", "args", "depends_on"])
    | st.sampled_from(["for_each", "extra"]),
    json_values | st.integers(-2, 5) | st.sampled_from(["$1", "${2.x}", "$item", "search_web"]),
)


def parse_never_crashes(reply: Any) -> None:
    try:
        plan = parse_plan(reply)
    except PlanValidationError as error:
        assert error.errors
        assert all(isinstance(message, str) and message for message in error.errors)
        return
    validate_plan(plan, TOOLS, completed={1})
    format_plan(plan)
    assert Plan.from_list(plan.to_list()) == plan


@SETTINGS
@given(st.text())
def test_arbitrary_text_never_crashes_the_parser(text: str) -> None:
    parse_never_crashes(text)


@SETTINGS
@given(
    st.lists(step_like, max_size=4) | json_values,
    st.text(max_size=10),
    st.text(max_size=10),
    st.integers(0, 400),
)
def test_json_like_text_never_crashes_the_parser(
    value: Any, before: str, after: str, cut: int
) -> None:
    text = json.dumps(value)
    parse_never_crashes(value if isinstance(value, (list, dict)) else text)
    parse_never_crashes(f"{before}```json\n{text}\n```{after}")
    parse_never_crashes(before + text[:cut] + after)


def test_adversarial_replies_are_handled_quickly() -> None:
    replies = [
        "[" * 100_000,
        '{"a":' * 50_000,
        '["' * 50_000,
        "[1, " * 50_000,
        "{" + "x" * 500_000,
        "[0] " * 20_000 + json.dumps([{"step": 1, "description": "late"}]),
        "```" * 10_000,
    ]
    started = time.monotonic()
    for reply in replies:
        parse_never_crashes(reply)
    assert time.monotonic() - started < 5


@SETTINGS
@given(st.text())
def test_doubling_every_dollar_makes_any_text_literal(text: str) -> None:
    escaped = text.replace("$", "$$")

    assert resolve_params({"x": escaped}, {}) == {"x": text}
    plan = parse_plan([{"step": 1, "description": "x", "params": {"note": escaped}}])
    assert plan.step(1).depends_on == ()
    assert validate_plan(plan, TOOLS) == []
