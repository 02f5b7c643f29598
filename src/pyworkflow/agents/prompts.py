"""The words sent to models. Kept apart so they can be read, reviewed and tuned in one place.

The planner's system prompt is a stable prefix — instructions, then the tool catalogue — and
everything that varies (query, feedback, errors, progress) goes in the user message, so
providers that cache prompt prefixes reuse it across replans and runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

PLAN_FORMAT = """\
Answer with a JSON array of steps and nothing else. Each step is an object:
  {"step": <int>, "description": "<what this step does>", "tool": "<tool name>" or null,
   "params": {<argument>: <value>}, "depends_on": [<step numbers>]}
Optional: "for_each": "$N" runs the step once per element of step N's list result, in parallel
(use "${item}" or "$item" for the element inside params); its result is the list of results.
References: "$N" as a whole value is step N's result; "$N.key" and "$N[0]" are paths into it;
inside longer text write "${N}" or "${N.key}". A reference implies a dependency.
"tool": null is a reasoning step: a model writes its result from its params and dependencies.
Use only the tools listed. Steps that do not depend on each other run in parallel, so only add
a dependency where a step needs another's result. Give every argument you can; leave out only
those that must be derived from an earlier result by reading it."""


def planner_system(instructions: str, tools: Sequence[Mapping[str, Any]]) -> str:
    catalogue = "\n".join(
        f"- {t['name']}: {t['description']}\n  parameters: {json.dumps(t['parameters'], sort_keys=True)}"
        for t in tools
    )
    parts = [
        "You are the planner of a plan-and-execute agent. Turn the user's request into a plan: "
        "a small graph of tool calls that answers it.",
    ]
    if instructions:
        parts.append(f"The agent's instructions:\n{instructions}")
    parts.append(f"Available tools:\n{catalogue or '(none: use reasoning steps only)'}")
    parts.append(PLAN_FORMAT)
    return "\n\n".join(parts)


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


def step_request(
    description: str, *, known_arguments: Mapping[str, Any], inputs: Mapping[str, Any]
) -> str:
    return (
        f"Step: {description}\n\nArguments already known: {_dump(known_arguments)}\n\n"
        f"Results this step depends on:\n{_dump(inputs)}"
    )


def correction_request(previous: str, problems: Sequence[str]) -> str:
    listed = "\n".join(f"- {p}" for p in problems)
    return f"{previous}\n\nYour previous arguments were invalid:\n{listed}\nCall the tool again with valid arguments."


def answer_request(query: str, results: Mapping[str, Any]) -> str:
    return f"Request:\n{query}\n\nResults of the executed plan:\n{_dump(results)}"


def _dump(value: Any, limit: int = 12000) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr, indent=1)
    return text if len(text) <= limit else text[:limit] + " …(truncated)"
