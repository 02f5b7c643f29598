"""The words sent to models. Kept apart so they can be read, reviewed and tuned in one place.

The planner's system prompt is a stable prefix — instructions, then the tool catalogue — and
everything that varies (query, feedback, errors, progress) goes in the user message, so
providers that cache prompt prefixes reuse it across replans and runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

PLAN_FORMAT = """\
Answer with a JSON array of steps and nothing else, one step per line, no indentation, e.g.
[{"step": 1, "tool": "<tool>", "params": {"<argument>": <value>}},
{"step": 2, "description": "<a few words>", "tool": "<tool>", "params": {}, "depends_on": [1]}]
"description": what the step is for, in a few words. Leave it out when every argument is given;
give it when the executor must derive arguments from earlier results, and for a reasoning step
("tool": null: a model writes the result from the params and dependencies).
"depends_on": the steps whose results this one needs, unless its params reference them.
Leave out empty or default values.
"for_each": runs the step once per element, in parallel: "$N" for step N's list result, or the
list itself (["NVDA", "MSFT"]) to call one tool for several inputs in one step. "$item" or
"${item}" in params is the element; the step's result is the list of results.
References: "$N" as a whole value is step N's result; "$N.key" and "$N[0]" are paths into it;
inside longer text write "${N}" or "${N.key}".
Use only the tools listed. Independent steps run in parallel: add a dependency only where a
step needs another's result. Give every argument you can; leave out only those that must be
derived from an earlier result by reading it."""


def planner_system(instructions: str, tools: Sequence[Mapping[str, Any]]) -> str:
    parts = [
        "You are the planner of a plan-and-execute agent. Turn the user's request into a plan: "
        "a small graph of tool calls that answers it.",
    ]
    if instructions:
        parts.append(f"The agent's instructions:\n{instructions}")
    catalogue = "\n".join(tool_entry(t) for t in tools)
    parts.append(f"Available tools:\n{catalogue or '(none: use reasoning steps only)'}")
    parts.append(PLAN_FORMAT)
    return "\n\n".join(parts)


def tool_entry(tool: Mapping[str, Any]) -> str:
    """One tool for the planner, as a signature with its parameters' descriptions.

    Example: ``- search_web(query: string, max_results: integer = 5): Search the web.`` then
    one indented line per described parameter. A signature reads in a fraction of the tokens
    of a JSON schema; a schema too rich for one (references, nested models) is sent whole.
    """
    schema = tool["parameters"]
    properties = schema.get("properties", {})
    if "$defs" in schema or "definitions" in schema or not isinstance(properties, Mapping):
        return (
            f"- {tool['name']}: {tool['description']}\n"
            f"  parameters: {json.dumps(schema, sort_keys=True)}"
        )
    required = set(schema.get("required", ()))
    arguments = []
    for name, spec in properties.items():
        text = f"{name}: {_type_text(spec)}"
        if name not in required:
            text += f" = {json.dumps(spec['default'])}" if "default" in spec else " (optional)"
        arguments.append(text)
    lines = [f"- {tool['name']}({', '.join(arguments)}): {tool['description']}"]
    lines += [
        f"    {name}: {' '.join(str(spec['description']).split())}"
        for name, spec in properties.items()
        if spec.get("description")
    ]
    return "\n".join(lines)


_SCALARS = {"string", "integer", "number", "boolean", "null"}


def _type_text(spec: Mapping[str, Any]) -> str:
    """A parameter's type in a word or two; the JSON schema itself where words would lose detail."""
    if "enum" in spec:
        return " | ".join(json.dumps(value) for value in spec["enum"])
    if "const" in spec:
        return json.dumps(spec["const"])
    variants = spec.get("anyOf") or spec.get("oneOf")
    if isinstance(variants, list):
        return " | ".join(_type_text(v) for v in variants)
    kind = spec.get("type")
    if isinstance(kind, list) and all(k in _SCALARS for k in kind):
        return " | ".join(kind)
    if kind in _SCALARS and not _constraints(spec):
        return str(kind)
    if kind == "array" and set(spec) <= {"type", "items", "description", "default", "title"}:
        items = spec.get("items")
        return f"list of {_type_text(items)}" if isinstance(items, Mapping) else "list"
    if kind == "object" and "properties" not in spec and not _constraints(spec):
        values = spec.get("additionalProperties")
        return f"object of {_type_text(values)}" if isinstance(values, Mapping) else "object"
    shown = {k: v for k, v in spec.items() if k not in ("description", "default", "title")}
    return json.dumps(shown, sort_keys=True)


def _constraints(spec: Mapping[str, Any]) -> bool:
    return bool(set(spec) - {"type", "description", "default", "title", "additionalProperties"})


def planner_request(query: str, *, feedback: str | None = None) -> str:
    text = f"Request:\n{query}"
    if feedback:
        text += (
            "\n\nA reviewer rejected the previous plan with this feedback; write a new plan "
            f"that addresses it:\n{feedback}"
        )
    return text


def repair_request(query: str, reply: str, errors: Sequence[str]) -> str:
    problems = "\n".join(f"- {e}" for e in errors)
    return (
        f"Request:\n{query}\n\nYour previous plan could not be used:\n{reply[:4000]}\n\n"
        f"Problems:\n{problems}\n\nAnswer with a corrected plan (a JSON array of steps only)."
    )


def replan_request(
    query: str,
    *,
    current_plan: str,
    completed: Mapping[int, str],
    failed_step: str,
    error: str,
    next_step_number: int,
) -> str:
    done = "\n".join(f"- step {n}: {preview}" for n, preview in completed.items()) or "- none"
    return (
        f"Request:\n{query}\n\nThe current plan:\n{current_plan}\n\n"
        f"Completed steps and their results (reference them as $N; they will not run again):\n"
        f"{done}\n\nThis step failed:\n{failed_step}\nError: {error}\n\n"
        f"Write a plan for the remaining work only. Number new steps from {next_step_number}; "
        "do not repeat completed steps; try a different approach for the failed one."
    )


EXECUTOR_ARGUMENTS = (
    "You execute one step of a plan by calling the one tool offered, with arguments taken from "
    "the step's description and the results it depends on. Call the tool; do not answer in text."
)

EXECUTOR_REASONING = (
    "You execute one reasoning step of a plan. Using only the inputs given, produce the step's "
    "result: concise, factual, and in the form the description asks for. If the description "
    "asks for a list or table, answer with JSON."
)

ANSWER = (
    "You write the final answer to the user's request from the results of an executed plan. "
    "Use only those results; be concise and complete."
)


def with_instructions(system: str, instructions: str) -> str:
    """`system`, then the agent's own instructions, which shape results and the answer too."""
    if not instructions:
        return system
    return f"{system}\n\nThe agent's instructions:\n{instructions}"


def step_request(
    description: str, *, known_arguments: Mapping[str, Any], inputs: Mapping[str, Any]
) -> str:
    return (
        f"Step: {description}\n\nArguments already known: {_json(known_arguments)}\n\n"
        f"Results this step depends on:\n{results_text(inputs)}"
    )


def correction_request(previous: str, problems: Sequence[str]) -> str:
    listed = "\n".join(f"- {p}" for p in problems)
    return f"{previous}\n\nYour previous arguments were invalid:\n{listed}\nCall the tool again with valid arguments."


def answer_request(query: str, results: Mapping[str, Any]) -> str:
    return f"Request:\n{query}\n\nResults of the executed plan:\n{results_text(results)}"


def results_text(results: Mapping[str, Any], limit: int = 12000) -> str:
    """Results as labelled blocks: ``[label]`` on a line, then the value.

    Text goes in as it is, anything else as one line of JSON: escaping a tool's text into a
    JSON string would add a backslash to every quote and line break, tokens paid for nothing.
    """
    if not results:
        return "(none)"
    blocks = [
        f"[{label}]\n{value if isinstance(value, str) else _json(value)}"
        for label, value in results.items()
    ]
    text = "\n\n".join(blocks)
    return text if len(text) <= limit else text[:limit] + " …(truncated)"


# A block runs to the next "[label]" line after a blank line, or to the end.
_BLOCK = re.compile(r"^\[([^\n]+)\]\n(.*?)(?=\n\n\[[^\n]+\]\n|\Z)", re.DOTALL | re.MULTILINE)


def read_results(text: str) -> dict[str, str]:
    """The blocks `results_text` wrote, by label, as text (a value holding a blank line then
    a ``[...]`` line would be split there; the labels themselves never are)."""
    return dict(_BLOCK.findall(text))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=repr)
