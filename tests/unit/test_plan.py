"""Plan parsing, validation and reference resolution (`pyworkflow.agents.plan`)."""

from __future__ import annotations

import json
import pickle
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, create_model

from pyworkflow.agents import plan as plan_module
from pyworkflow.agents.plan import (
    MISSING,
    Plan,
    PlanStep,
    ReferenceResolutionError,
    ToolSignature,
    format_plan,
    missing_required,
    parse_plan,
    resolve_for_each,
    resolve_params,
    step_references,
    validate_plan,
)
from pyworkflow.exceptions import PlanValidationError, PyWorkflowError


class Row(BaseModel):
    name: str
    value: float | None = None


def _pydantic_schema(name: str, **fields: Any) -> dict[str, Any]:
    # The shape tool schemas take in practice: a pydantic model with extra="forbid".
    model = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    return model.model_json_schema()


TOOLS = {
    "search_web": ToolSignature(
        "search_web",
        "Search the web.",
        _pydantic_schema("search_web", query=(str, ...), max_results=(int, 5)),
    ),
    "extract_entities": ToolSignature(
        "extract_entities", "Extract names.", _pydantic_schema("extract_entities", text=(str, ...))
    ),
    "create_table": ToolSignature(
        "create_table",
        "Make a table.",
        _pydantic_schema(
            "create_table",
            rows=(list[Row], ...),
            title=(str | None, None),
            style=(Literal["plain", "markdown"], "plain"),
            limit=(int, Field(5, ge=1)),
            tags=(dict[str, int], {}),
            exact=(bool, False),
        ),
    ),
    "ping": ToolSignature("ping", "No arguments.", _pydantic_schema("ping")),
}

SEED_PLAN = [
    {
        "step": 1,
        "description": "Search for top AI companies",
        "tool": "search_web",
        "params": {"query": "top AI companies 2026"},
        "depends_on": [],
    },
    {
        "step": 2,
        "description": "Extract the top 3",
        "tool": "extract_entities",
        "params": {"text": "$1"},
        "depends_on": [1],
    },
    {
        "step": 3,
        "description": "Revenue of each company",
        "tool": "search_web",
        "for_each": "$2",
        "params": {"query": "${item} revenue 2026"},
        "depends_on": [2],
    },
    {"step": 4, "description": "Write the summary", "tool": None, "depends_on": [3]},
]


def errors_of(reply: Any) -> list[str]:
    with pytest.raises(PlanValidationError) as info:
        parse_plan(reply)
    return info.value.errors


def problems(steps: list[dict[str, Any]], **kwargs: Any) -> list[str]:
    return validate_plan(parse_plan(steps), TOOLS, **kwargs)


def tool_step(number: int, tool: str, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "step": number,
        "description": f"step {number}",
        "tool": tool,
        "params": params,
        **extra,
    }


def test_exported_names_are_pinned() -> None:
    assert sorted(plan_module.__all__) == [
        "JSONValue",
        "MISSING",
        "Plan",
        "PlanStep",
        "ReferenceResolutionError",
        "ToolSignature",
        "format_plan",
        "missing_required",
        "parse_plan",
        "resolve_for_each",
        "resolve_params",
        "step_references",
        "validate_plan",
    ]


# --- parse_plan: forms the planner may answer in ------------------------------------------------


def test_parses_the_seed_plan_from_a_bare_json_array() -> None:
    plan = parse_plan(json.dumps(SEED_PLAN))

    assert [step.id for step in plan.steps] == [1, 2, 3, 4]
    third = plan.step(3)
    assert third.tool == "search_web"
    assert third.for_each == "$2"
    assert third.params == {"query": "${item} revenue 2026"}
    assert third.depends_on == (2,)
    assert plan.step(4).tool is None
    assert plan.step(4).params == {}
    assert validate_plan(plan, TOOLS) == []


@pytest.mark.parametrize(
    "reply",
    [
        "```json\n{plan}\n```",
        "```JSON\n{plan}\n```",
        "```\n{plan}\n```",
        "Here is the plan:\n```json\n{plan}\n```\nLet me know if it works.",
        "Sure! I will take these steps: {plan} That should answer the question.",
        "Note [1]: the {{draft}} below is final.\n{plan}\nThanks [2]",
        '{{"steps": {plan}}}',
        '{{"plan": {plan}, "reasoning": "search, then extract"}}',
        '```json\n{{"steps": {plan}}}\n```',
    ],
)
def test_accepts_fenced_prose_and_wrapped_forms(reply: str) -> None:
    plan = parse_plan(reply.format(plan=json.dumps(SEED_PLAN, indent=2)))

    assert plan.to_list() == parse_plan(SEED_PLAN).to_list()


def test_accepts_already_decoded_list_and_dict() -> None:
    assert parse_plan(SEED_PLAN) == parse_plan({"steps": SEED_PLAN})
    assert len(parse_plan(SEED_PLAN).steps) == 4


def test_accepts_id_and_args_aliases_and_null_for_optional_keys() -> None:
    plan = parse_plan(
        [
            {"id": 1, "description": "a", "tool": "ping", "args": None, "depends_on": None},
            {"id": 2, "description": "b", "tool": "search_web", "arguments": {"query": "x"}},
            {"id": 3, "description": "c", "params": {"note": "$2"}},
        ]
    )

    assert plan.step(1).params == {}
    assert plan.step(1).depends_on == ()
    assert plan.step(2).params == {"query": "x"}
    assert plan.step(3).tool is None
    assert plan.step(3).depends_on == (2,)


@pytest.mark.parametrize("reply", ["", "   \n", "I could not come up with a plan, sorry."])
def test_reply_without_json_is_one_clear_error(reply: str) -> None:
    errors = errors_of(reply)

    assert len(errors) == 1
    assert "expected a JSON array of steps" in errors[0]
    assert repr(reply[:200]) in errors[0]


def test_truncated_json_says_it_is_cut_off_and_quotes_the_start() -> None:
    text = json.dumps(SEED_PLAN)[:150]
    with pytest.raises(PlanValidationError) as info:
        parse_plan("```json\n" + text)

    assert len(info.value.errors) == 1
    assert "cut off" in info.value.errors[0]
    assert "expected a JSON array of steps" in info.value.errors[0]
    assert "Search for top AI companies" in info.value.errors[0]
    assert info.value.raw == "```json\n" + text


def test_long_non_json_reply_is_quoted_only_up_to_200_characters() -> None:
    reply = "word " * 100
    (error,) = errors_of(reply)

    assert repr(reply[:200]) + "…" in error
    assert len(error) < 400


def test_invalid_json_with_balanced_brackets_is_reported_as_not_valid() -> None:
    (error,) = errors_of("[{'step': 1, 'description': 'single quotes'}]")

    assert "not valid JSON" in error


@pytest.mark.parametrize("reply", ["[]", '{"steps": []}', [], {"plan": []}])
def test_empty_plan_is_an_error(reply: Any) -> None:
    assert errors_of(reply) == ["the plan has no steps"]


@pytest.mark.parametrize(
    ("reply", "fragment"),
    [
        ("42", "got 42"),
        ('{"answer": "hello"}', "'answer'"),
        ('{"steps": "first search"}', "got 'first search'"),
    ],
)
def test_json_that_is_not_a_list_of_steps_is_an_error(reply: str, fragment: str) -> None:
    (error,) = errors_of(reply)

    assert "expected a JSON array of steps" in error
    assert fragment in error


def test_every_structural_problem_is_reported_together() -> None:
    errors = errors_of(
        [
            {"step": 1, "description": "ok", "tool": "search_web"},
            {"step": "2", "description": "string number", "tool": None},
            {"step": 3, "description": "", "tool": 7, "depends_on": "2"},
            {"step": 4, "description": "x", "params": ["query"], "for_each": 2, "why": "?"},
            "just text",
            {"description": "no number"},
            {"step": 6, "description": "x", "depends_on": ["1"]},
            {"step": 7, "description": "x", "params": {}, "args": {}},
        ]
    )

    assert errors == [
        "entry 2: 'step' must be a positive integer, got '2'",
        "step 3: 'description' must be a non-empty string, got ''",
        "step 3: 'tool' must be a tool name or null, got 7",
        "step 3: 'depends_on' must be a list of step numbers, got '2'",
        "step 4: unknown key 'why'; a step has the keys: step, description, tool, params, "
        "depends_on, for_each",
        "step 4: 'params' must be an object of parameter values, got ['query']",
        "step 4: 'for_each' must be a reference such as '$2' or a list of elements, got 2",
        "entry 5: a step must be an object, got 'just text'",
        "entry 6: missing 'step' (the step's number)",
        "step 6: 'depends_on' must be a list of step numbers, got ['1']",
        "step 7: 'args' repeats 'params'; give it once",
    ]


@pytest.mark.parametrize("number", [0, -1, 1.0, True, None])
def test_step_numbers_must_be_positive_json_integers(number: Any) -> None:
    (error,) = errors_of([{"step": number, "description": "x"}])

    assert "'step' must be a positive integer" in error
    assert repr(number) in error


@pytest.mark.parametrize("depth", [40, 500])
def test_absurdly_nested_params_are_a_plan_error_not_a_crash(depth: int) -> None:
    reply = '[{"step": 1, "description": "x", "params": {"a": ' + "[" * depth + "]" * depth + "}}]"

    assert errors_of(reply) == ["step 1: 'params' nest more than 32 levels deep"]
    assert errors_of(reply.replace("[[", "[" * 5000 + "[").replace("]]", "]" * 5000 + "]"))
    nested: Any = []
    for _ in range(5000):
        nested = [nested]
    errors = errors_of([{"step": 1, "description": "x", "params": {"a": nested}}, nested])
    assert errors[0] == "step 1: 'params' nest more than 32 levels deep"
    assert errors[1].startswith("entry 2: a step must be an object, got")


def test_parse_error_keeps_the_raw_reply() -> None:
    reply = '[{"step": 1}]'
    with pytest.raises(PlanValidationError) as info:
        parse_plan(reply)

    assert info.value.raw == reply
    assert pickle.loads(pickle.dumps(info.value)).errors == info.value.errors


# --- the plan value -----------------------------------------------------------------------------


def test_references_imply_dependencies() -> None:
    step = PlanStep(
        id=5,
        description="x",
        tool=None,
        params={"a": "$1", "b": ["${2.name} and ${4}"], "c": {"d": "$3[0]"}, "e": "$item"},
        depends_on=(4, 1),
        for_each="$6.items",
    )

    assert step.depends_on == (1, 2, 3, 4, 6)
    assert step_references(step) == {1, 2, 3, 4, 6}


def test_step_keeps_its_own_copy_of_params() -> None:
    params = {"query": {"terms": ["a"]}}
    step = PlanStep(1, "x", "search_web", params, ())
    params["query"]["terms"].append("b")
    step.to_dict()["params"]["query"]["terms"].append("c")

    assert step.params == {"query": {"terms": ["a"]}}


def test_to_list_from_list_round_trip_and_seed_shape() -> None:
    plan = parse_plan(SEED_PLAN)
    data = plan.to_list()

    assert data[2] == {
        "step": 3,
        "description": "Revenue of each company",
        "tool": "search_web",
        "params": {"query": "${item} revenue 2026"},
        "depends_on": [2],
        "for_each": "$2",
    }
    assert "for_each" not in data[0]
    assert json.loads(json.dumps(data)) == data
    assert Plan.from_list(data) == plan
    assert Plan.from_list(json.loads(json.dumps(data))).to_list() == data
    assert parse_plan(data) == plan


def test_plan_step_lookup() -> None:
    plan = parse_plan(SEED_PLAN)

    assert plan.step(2).description == "Extract the top 3"
    with pytest.raises(KeyError, match="no step 9 in the plan; its steps are: 1, 2, 3, 4"):
        plan.step(9)


def test_plans_and_steps_are_hashable_values() -> None:
    assert hash(parse_plan(SEED_PLAN)) == hash(parse_plan(json.dumps(SEED_PLAN)))


def test_format_plan_is_a_compact_numbered_list() -> None:
    assert format_plan(parse_plan(SEED_PLAN)) == (
        "1. Search for top AI companies [search_web] (after: -)\n"
        "2. Extract the top 3 [extract_entities] (after: 1)\n"
        "3. Revenue of each company [search_web, for each $2] (after: 2)\n"
        "4. Write the summary [reasoning] (after: 3)"
    )


# --- validate_plan ------------------------------------------------------------------------------


def test_duplicate_step_numbers_are_named() -> None:
    errors = problems(
        [tool_step(1, "ping", {}), tool_step(2, "ping", {}), tool_step(1, "ping", {})]
    )

    assert errors == ["step 1: the step number 1 is used by more than one step"]


def test_unknown_tool_lists_the_agents_tools_sorted() -> None:
    errors = problems([tool_step(1, "search_web", {}), tool_step(2, "send_email", {"to": "x"})])

    assert errors == [
        "step 2: unknown tool 'send_email'; the agent's tools are: "
        "create_table, extract_entities, ping, search_web"
    ]


def test_agent_without_tools_accepts_only_reasoning_steps() -> None:
    plan = parse_plan([{"step": 1, "description": "think"}, tool_step(2, "ping", {})])

    (error,) = validate_plan(plan, {})
    assert "unknown tool 'ping'" in error
    assert "no tools" in error


def test_dependencies_must_exist() -> None:
    errors = problems([tool_step(1, "ping", {}), tool_step(2, "ping", {}, depends_on=[1, 7])])

    assert errors == ["step 2: depends on step 7, which is not in the plan"]


def test_references_must_point_at_existing_steps() -> None:
    errors = problems(
        [
            tool_step(1, "search_web", {"query": "x"}),
            tool_step(2, "extract_entities", {"text": "${1} and ${8.summary}"}),
        ]
    )

    assert errors == ["step 2: '${8.summary}' refers to step 8, which is not in the plan"]


def test_completed_steps_stay_referenceable_after_replanning() -> None:
    replanned = [
        tool_step(4, "search_web", {"query": "${2.name} revenue"}, depends_on=[3]),
        {"step": 5, "description": "summarise", "params": {"data": "$4", "earlier": "$1"}},
    ]

    assert problems(replanned, completed={1, 2, 3}) == []
    errors = problems(replanned, completed={1})
    assert errors == [
        "step 4: depends on step 3, which is not in the plan or among the completed steps",
        "step 4: '${2.name}' refers to step 2, which is not in the plan or among the completed "
        "steps",
    ]


def test_a_step_may_not_depend_on_itself() -> None:
    errors = problems(
        [
            tool_step(1, "ping", {}, depends_on=[1]),
            tool_step(2, "extract_entities", {"text": "$2.text"}),
        ]
    )

    assert errors == ["step 1: depends on itself", "step 2: '$2.text' refers to the step itself"]


def test_two_step_cycle_is_reported() -> None:
    errors = problems(
        [tool_step(1, "ping", {}, depends_on=[3]), tool_step(3, "ping", {}, depends_on=[1])]
    )

    assert errors == ["the plan has a cycle: 1 → 3 → 1"]


def test_three_step_cycle_is_reported_once_in_execution_order() -> None:
    errors = problems(
        [
            tool_step(1, "ping", {}, depends_on=[3]),
            tool_step(2, "extract_entities", {"text": "$1"}),
            tool_step(3, "ping", {}, depends_on=[2]),
            tool_step(4, "ping", {}, depends_on=[1, 2, 3]),
        ]
    )

    assert errors == ["the plan has a cycle: 1 → 2 → 3 → 1"]


def test_long_chains_validate_without_recursion_limits() -> None:
    steps = [tool_step(1, "ping", {})] + [
        tool_step(n, "ping", {}, depends_on=[n - 1]) for n in range(2, 3001)
    ]
    steps[0]["depends_on"] = [3000]

    (error,) = problems(steps)
    assert error.startswith("the plan has a cycle: 1 → 2 → 3 → ")
    assert error.endswith("2999 → 3000 → 1")


def test_max_steps() -> None:
    steps = [tool_step(n, "ping", {}) for n in range(1, 13)]

    assert problems(steps, max_steps=12) == []
    assert problems(steps, max_steps=10) == ["the plan has 12 steps; max_steps is 10"]


def test_item_only_in_a_for_each_step() -> None:
    errors = problems(
        [
            tool_step(1, "search_web", {"query": "companies"}),
            tool_step(2, "search_web", {"query": "${item} revenue"}),
            tool_step(3, "extract_entities", {"text": "$item.name"}, for_each="$1.results"),
        ]
    )

    assert errors == ["step 2: '${item}' is only allowed in a step with 'for_each'"]


@pytest.mark.parametrize("for_each", ["companies", "$item", "${2.}", "2", "$1.50"])
def test_for_each_must_be_a_step_reference(for_each: str) -> None:
    errors = problems(
        [
            tool_step(1, "search_web", {"query": "x"}),
            tool_step(2, "search_web", {"query": "y"}),
            tool_step(3, "ping", {}, for_each=for_each, depends_on=[1]),
        ]
    )

    assert len(errors) == 1
    assert errors[0].startswith("step 3: 'for_each' must be a reference")
    assert repr(for_each) in errors[0]


def test_malformed_references_in_params_are_reported() -> None:
    errors = problems(
        [
            tool_step(1, "search_web", {"query": "x"}),
            tool_step(2, "search_web", {"query": "about ${1.} and ${ item.0 }"}),
            tool_step(3, "search_web", {"query": "$item revenue"}, for_each="$1"),
        ]
    )

    assert errors == [
        "step 2: '${1.}' is not a valid reference; write ${N}, ${N.key}, ${N[0]} or ${item}",
        "step 2: '${ item.0 }' is not a valid reference; write ${N}, ${N.key}, ${N[0]} or ${item}",
        "step 3: '$item revenue' uses $item inside text; write ${item} there",
    ]


def test_dollar_text_that_is_not_a_reference_is_fine() -> None:
    steps = [
        tool_step(1, "search_web", {"query": "laptops under $500, $5 off, ${HOME}, $$2 deal"}),
        tool_step(2, "search_web", {"query": "$1.50"}),
    ]

    assert problems(steps) == []
    assert parse_plan(steps).step(2).depends_on == ()


def test_unknown_params_list_the_tools_parameters() -> None:
    errors = problems(
        [tool_step(1, "search_web", {"q": "x", "query": "y"}), tool_step(2, "ping", {"x": 1})]
    )

    assert errors == [
        "step 1: search_web has no parameter 'q'; its parameters are: query, max_results",
        "step 2: ping takes no parameters, got 'x'",
    ]


def test_missing_required_params_are_left_to_the_executor() -> None:
    assert problems([tool_step(1, "search_web", {}), tool_step(2, "create_table", {})]) == []


def test_for_each_over_a_written_list_fans_out_over_its_elements() -> None:
    plan = parse_plan(
        [
            tool_step(1, "search_web", {"query": "chips"}),
            {
                "step": 2,
                "tool": "search_web",
                "params": {"query": "$item"},
                "for_each": ["a", "${1}"],
            },
        ]
    )
    step = plan.steps[1]
    assert step.for_each == ["a", "${1}"] and step.depends_on == (1,)
    assert validate_plan(plan, TOOLS) == []
    assert resolve_for_each(step.for_each, {1: "found"}) == ["a", "found"]
    assert format_plan(plan).splitlines()[1] == (
        "2. search_web(query=\"$item\") [search_web, for each ['a', '${1}']] (after: 1)"
    )
    assert Plan.from_list(plan.to_list()) == plan


def test_a_written_for_each_list_is_checked() -> None:
    assert errors_of([{"step": 1, "tool": "search_web", "for_each": []}]) == [
        "step 1: 'for_each' is an empty list; give the elements, or leave it out"
    ]
    listed = {"step": 1, "tool": "search_web", "params": {"query": "$item"}}
    assert problems([{**listed, "for_each": ["$item", "$7"]}]) == [
        "step 1: '$item' in 'for_each' has no element to mean",
        "step 1: '$7' refers to step 7, which is not in the plan",
    ]
    assert problems([{**listed, "for_each": list("abcd")}], max_steps=3) == [
        "the plan has 4 steps (counting each element of a listed for_each); max_steps is 3"
    ]


def test_a_call_with_every_argument_needs_no_description() -> None:
    plan = parse_plan('[{"step": 1, "tool": "search_web", "params": {"query": "AI \\"labs\\""}}]')
    step = plan.steps[0]
    assert step.description == 'search_web(query="AI \\"labs\\"")'
    assert step.described is False and validate_plan(plan, TOOLS) == []
    assert plan.to_list()[0]["description"] == step.description
    long = parse_plan([{"step": 1, "tool": "search_web", "params": {"query": "x" * 500}}])
    assert len(long.steps[0].description) == 120 and long.steps[0].description.endswith("…)")


def test_a_step_left_for_the_executor_or_a_reasoning_step_needs_a_description() -> None:
    assert problems([{"step": 1, "tool": "search_web", "params": {}}]) == [
        "step 1: leaves 'query' for the executor model to fill but has no 'description' "
        "saying how; add one, or give every argument"
    ]
    assert problems([{"step": 1, "description": "Search it", "tool": "search_web"}]) == []
    assert errors_of([{"step": 1, "tool": None}]) == [
        "step 1: a reasoning step ('tool': null) needs a 'description' of its result"
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"limit": "5"}, "param 'limit' must be an integer, got '5'"),
        ({"limit": 2.5}, "param 'limit' must be an integer, got 2.5"),
        ({"limit": True}, "param 'limit' must be an integer, got True"),
        ({"exact": 1}, "param 'exact' must be a boolean, got 1"),
        ({"style": "html"}, "param 'style' must be one of 'plain', 'markdown', got 'html'"),
        ({"title": 3}, "param 'title' must be a string or null, got 3"),
        ({"rows": {"name": "a"}}, "param 'rows' must be an array, got {'name': 'a'}"),
        ({"rows": [{"name": "a"}, {"value": 1}]}, "param 'rows[1]' lacks the required key 'name'"),
        ({"rows": [{"name": "a", "value": "big"}]}, "param 'rows[0].value' must be a number or"),
        ({"rows": [{"name": "a", "colour": "red"}]}, None),
        ({"tags": {"x": "1"}}, "param 'tags.x' must be an integer, got '1'"),
        ({"limit": "${1}0"}, "param 'limit' must be an integer, got text with references '${1}0'"),
    ],
)
def test_literal_params_are_checked_against_the_schema(
    params: dict[str, Any], expected: str | None
) -> None:
    steps = [tool_step(1, "search_web", {"query": "x"}), tool_step(2, "create_table", params)]
    errors = problems(steps)

    if expected is None:
        assert errors == []
    else:
        assert len(errors) == 1, errors
        assert errors[0].startswith(f"step 2: {expected}")


def test_valid_literal_params_pass_the_schema() -> None:
    params = {
        "rows": [{"name": "a", "value": 1}, {"name": "b", "value": None}, {"name": "c"}],
        "title": None,
        "style": "markdown",
        "limit": 3.0,
        "tags": {"x": 1},
        "exact": False,
    }

    assert problems([tool_step(1, "create_table", params)]) == []


def test_references_are_accepted_wherever_the_schema_allows_their_shape() -> None:
    steps = [
        tool_step(1, "search_web", {"query": "x"}),
        tool_step(
            2,
            "create_table",
            {"rows": ["$1[0]", {"name": "${1.title}", "value": "$1.score"}], "limit": "$1.n"},
        ),
        tool_step(3, "create_table", {"rows": "$1", "title": "Table of ${1.topic}"}),
    ]

    assert problems(steps) == []


def test_schema_features_ref_oneof_nullable_allof_and_prefix_items() -> None:
    schema = {
        "type": "object",
        "properties": {
            "point": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "string"}]},
            "shape": {"oneOf": [{"$ref": "#/$defs/Circle"}, {"$ref": "#/$defs/Square"}]},
            "note": {"type": "string", "nullable": True},
            "size": {"allOf": [{"$ref": "#/$defs/Size"}]},
            "anything": {},
        },
        "$defs": {
            "Circle": {"type": "object", "properties": {"r": {"type": "number"}}},
            "Square": {"type": "object", "properties": {"side": {"type": "number"}}},
            "Size": {"type": "string", "enum": ["s", "m"]},
        },
    }
    tools = {"draw": ToolSignature("draw", "Draw.", schema)}

    def check(params: dict[str, Any]) -> list[str]:
        return validate_plan(parse_plan([tool_step(1, "draw", params)]), tools)

    ok = {"point": [1, "a"], "shape": {"r": 2}, "note": None, "size": "m", "anything": [{}]}
    assert check(ok) == []
    assert check({"point": [1, 2]}) == ["step 1: param 'point[1]' must be a string, got 2"]
    assert check({"size": "xl"}) == ["step 1: param 'size' must be one of 's', 'm', got 'xl'"]
    (error,) = check({"shape": "round"})
    assert error == "step 1: param 'shape' must be an object, got 'round'"
    tools["draw"].parameters["$defs"]["Circle"]["title"] = "Circle"
    (error,) = check({"shape": "round"})
    assert error == "step 1: param 'shape' must be a Circle object or an object, got 'round'"


def test_additional_properties_allowed_by_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "additionalProperties": {"type": "integer"},
    }
    tools = {"t": ToolSignature("t", "T.", schema)}

    assert validate_plan(parse_plan([tool_step(1, "t", {"a": "x", "b": 2})]), tools) == []
    assert validate_plan(parse_plan([tool_step(1, "t", {"b": "2"})]), tools) == [
        "step 1: param 'b' must be an integer, got '2'"
    ]


def test_reasoning_steps_take_any_params_and_for_each() -> None:
    steps = [
        tool_step(1, "search_web", {"query": "x"}),
        {
            "step": 2,
            "description": "judge each",
            "tool": None,
            "for_each": "$1",
            "params": {"anything": {"nested": ["$item", 1]}, "more": True},
        },
    ]

    assert problems(steps) == []


def test_every_validation_problem_is_reported_in_step_order() -> None:
    steps = [
        tool_step(1, "search_web", {"query": 5}, depends_on=[2]),
        tool_step(2, "send_email", {}, depends_on=[1]),
        tool_step(3, "ping", {}, depends_on=[9]),
        tool_step(3, "extract_entities", {"text": "${item}"}),
    ]

    assert problems(steps, max_steps=3) == [
        "the plan has 4 steps; max_steps is 3",
        "step 1: param 'query' must be a string, got 5",
        "step 2: unknown tool 'send_email'; the agent's tools are: "
        "create_table, extract_entities, ping, search_web",
        "step 3: depends on step 9, which is not in the plan",
        "step 3: the step number 3 is used by more than one step",
        "step 3: '${item}' is only allowed in a step with 'for_each'",
        "the plan has a cycle: 1 → 2 → 1",
    ]


def test_validation_of_hand_built_steps_checks_numbers() -> None:
    plan = Plan((PlanStep(0, "x", None, {}, ()), PlanStep(2, "y", None, {}, ())))

    assert validate_plan(plan, TOOLS) == [
        "step 0: the step number must be a positive integer, got 0"
    ]
    assert validate_plan(Plan(()), TOOLS) == ["the plan has no steps"]


def test_missing_required_names_absent_required_params() -> None:
    step = parse_plan([tool_step(1, "create_table", {"title": "$2"})]).step(1)

    assert missing_required(step, TOOLS["create_table"], {"title": "T"}) == ["rows"]
    assert missing_required(step, TOOLS["create_table"], {"rows": []}) == []
    assert missing_required(step, TOOLS["ping"], {}) == []


# --- resolve_params -----------------------------------------------------------------------------

RESULTS: dict[int, Any] = {
    1: "raw search text",
    2: {"name": "Anthropic", "funding": 7.5, "products": [{"name": "Claude"}, {"name": "API"}]},
    3: ["OpenAI", "Anthropic", "Google DeepMind"],
    4: None,
    5: '{"ceo": {"name": "Dario"}, "tags": ["ai"]}',
}


def test_whole_value_references_return_raw_objects() -> None:
    resolved = resolve_params(
        {"a": "$1", "b": "$2", "c": "${3}", "d": "$4", "e": 7, "f": None}, RESULTS
    )

    assert resolved == {
        "a": "raw search text",
        "b": RESULTS[2],
        "c": RESULTS[3],
        "d": None,
        "e": 7,
        "f": None,
    }
    assert resolved["b"] is RESULTS[2]


@pytest.mark.parametrize(
    ("reference", "value"),
    [
        ("$2.name", "Anthropic"),
        ("$2.products[1].name", "API"),
        ("$2.products[-1]", {"name": "API"}),
        ("$3[0]", "OpenAI"),
        ("${3[2]}", "Google DeepMind"),
        ("$5.ceo.name", "Dario"),
        ("$5.tags[0]", "ai"),
    ],
)
def test_paths_into_results(reference: str, value: Any) -> None:
    assert resolve_params({"x": reference}, RESULTS) == {"x": value}


def test_interpolation_inside_text() -> None:
    resolved = resolve_params(
        {
            "s": "Company: ${2.name}; found: ${1}",
            "d": "data=${2.products[0]}",
            "n": "funding ${2.funding}B, nothing ${4}, list ${3}",
            "escaped": "price $$5 and $${2}",
            "plain": "costs $5 and $5 off and $1.50",
        },
        RESULTS,
    )

    assert resolved == {
        "s": "Company: Anthropic; found: raw search text",
        "d": 'data={"name": "Claude"}',
        "n": 'funding 7.5B, nothing null, list ["OpenAI", "Anthropic", "Google DeepMind"]',
        "escaped": "price $5 and ${2}",
        "plain": "costs $5 and $5 off and $1.50",
    }


def test_current_item_whole_path_and_interpolated() -> None:
    item = {"name": "Anthropic", "ids": [3, 4]}
    resolved = resolve_params(
        {"a": "$item", "b": "${item}", "c": "$item.name", "d": "${item.ids[1]}", "e": "${item} !"},
        {},
        item=item,
    )

    assert resolved == {
        "a": item,
        "b": item,
        "c": "Anthropic",
        "d": 4,
        "e": '{"name": "Anthropic", "ids": [3, 4]} !',
    }
    assert resolve_params({"q": "${item} revenue"}, {}, item="OpenAI") == {"q": "OpenAI revenue"}
    assert resolve_params({"q": "$item"}, {}, item=None) == {"q": None}


def test_nested_params_are_resolved_and_the_input_is_untouched() -> None:
    params = {"rows": [{"name": "$2.name", "value": "$2.funding"}, ["$3[1]", "x"]], "n": 1}

    resolved = resolve_params(params, RESULTS)

    assert resolved == {"rows": [{"name": "Anthropic", "value": 7.5}, ["Anthropic", "x"]], "n": 1}
    assert params["rows"][0] == {"name": "$2.name", "value": "$2.funding"}


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("$2.revenue", "$2.revenue: step 2's result has no key 'revenue'; its keys are: name, "),
        ("$9", "$9: step 9 has no result; steps with results: 1, 2, 3, 4, 5"),
        ("$3[5]", "$3[5]: step 3's result has 3 items; index 5 is out of range"),
        ("$3.first", "$3.first: step 3's result is a list, not an object; index it like $3[0]"),
        ("$1.title", "$1.title: step 1's result is a string, which has no key or index 'title'"),
        ("$2.products[0].price", "$2.products[0].price: $2.products[0] has no key 'price'"),
        ("x ${4.a} y", "${4.a}: step 4's result is null"),
        ("$item", "$item: there is no current item"),
    ],
)
def test_unresolvable_references_say_what_exists(reference: str, message: str) -> None:
    with pytest.raises(ReferenceResolutionError) as info:
        resolve_params({"x": reference}, RESULTS)

    assert str(info.value).startswith(message)
    assert isinstance(info.value, PyWorkflowError)
    assert str(pickle.loads(pickle.dumps(info.value))) == str(info.value)


def test_missing_sentinel_survives_pickling() -> None:
    assert pickle.loads(pickle.dumps(MISSING)) is MISSING
    assert repr(MISSING) == "MISSING"


# --- resolve_for_each ---------------------------------------------------------------------------


def test_for_each_resolves_lists_tuples_paths_and_json_text() -> None:
    results = {2: ["a", "b"], 3: ("x", "y"), 4: {"items": [1, 2]}, 5: '["c", "d"]', 6: []}

    assert resolve_for_each("$2", results) == ["a", "b"]
    assert resolve_for_each("$3", results) == ["x", "y"]
    assert resolve_for_each("$4.items", results) == [1, 2]
    assert resolve_for_each("${4.items}", results) == [1, 2]
    assert resolve_for_each("$5", results) == ["c", "d"]
    assert resolve_for_each("$6", results) == []


@pytest.mark.parametrize(
    ("reference", "fragment"),
    [
        ("$1", "expected a list to iterate over, got a string: 'OpenAI, Anthropic'"),
        ("$2", "expected a list to iterate over, got an object"),
        ("$3", "got a number: 3"),
        ("$9", "step 9 has no result"),
        ("companies", "is not a reference to an earlier step's result"),
        ("$item", "is not a reference to an earlier step's result"),
    ],
)
def test_for_each_errors_say_what_they_got(reference: str, fragment: str) -> None:
    results = {1: "OpenAI, Anthropic", 2: {"items": []}, 3: 3}
    with pytest.raises(ReferenceResolutionError, match=None) as info:
        resolve_for_each(reference, results)

    assert fragment in str(info.value)


def test_seed_plan_resolves_end_to_end() -> None:
    plan = parse_plan(SEED_PLAN)
    results: dict[int, Any] = {1: "search results", 2: ["OpenAI", "Anthropic"]}
    third = plan.step(3)

    assert third.for_each is not None
    items = resolve_for_each(third.for_each, results)
    calls = [resolve_params(third.params, results, item=item) for item in items]

    assert calls == [{"query": "OpenAI revenue 2026"}, {"query": "Anthropic revenue 2026"}]
    assert resolve_params(plan.step(2).params, results) == {"text": "search results"}
