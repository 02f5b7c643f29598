"""Plans: parse the planner's reply, validate it, and resolve references between steps.

A plan is a list of steps, each a tool call (or, with ``"tool": null``, a reasoning step the
executor model answers) that may use earlier steps' results. Everything here is pure — no
engine, no model, no I/O — so a plan is checked completely before any of it runs, and an invalid
one goes back to the planner with every problem listed.

References, in a step's ``params`` and ``for_each``::

    reference := "$" body | "${" body "}"
    body      := root path
    root      := a step number | "item"
    path      := ( "." key | "[" integer "]" )*      key: a letter or "_", then letters,
                                                      digits, "_" or "-"

- A string that is exactly one reference becomes the raw value it points at: ``"$2"`` is step
  2's whole result, ``"$2.companies[0].name"`` a path into it (negative indexes count from the
  end), ``"$item"`` / ``"${item}"`` the current element of a ``for_each`` step.
- Inside a longer string only the braced form counts and is inserted as text: strings as they
  are, anything else as JSON (``"${item} revenue 2026"``, ``"compare ${1.a} and ${1.b}"``).
- ``$$`` is a literal ``$``; any other ``$`` is plain text, so ``"costs $5"`` and ``"$1.50"``
  stay as written. A whole ``"$5"`` is a reference to step 5; write ``"$$5"`` for the amount.
- A path looks up dict keys and list indexes. A string result holding JSON is decoded first, so
  a model's ``'{"name": ...}'`` answer can be navigated.
- Referencing step N makes the step depend on N.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyworkflow.agents._plan_checks import validate_plan
from pyworkflow.agents._references import (
    MISSING,
    ReferenceResolutionError,
    is_step_number,
    nesting,
    references_in,
    required_params,
    resolve_for_each,
    resolve_params,
    show,
)
from pyworkflow.exceptions import PlanValidationError

__all__ = [
    "MISSING",
    "JSONValue",
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

JSONValue = Any
"""A value decoded from JSON (params hold these, possibly with reference strings)."""


@dataclass(frozen=True)
class PlanStep:
    """One step of a plan.

    Attributes:
        id: The step's number, unique in the plan.
        description: What the step is for, in the planner's words; for a tool step the planner
            left undescribed, the call itself (``get_quote(ticker="NVDA")``).
        tool: The tool to call, or None for a reasoning step the executor model answers.
        params: Arguments for the tool (JSON values, possibly references). Read-only.
        depends_on: Steps that must finish first: those listed plus those referenced, sorted.
        for_each: A reference to a list, or the list itself; the step then runs once per
            element.
        described: False when the planner gave no description and `description` is the call.
    """

    id: int
    description: str
    tool: str | None
    params: Mapping[str, JSONValue] = field(hash=False)
    depends_on: tuple[int, ...]
    for_each: str | list[JSONValue] | None = field(default=None, hash=False)
    described: bool = field(default=True, compare=False, repr=False)

    def __post_init__(self) -> None:
        # A private copy, so later changes to the planner's decoded JSON cannot alter the plan.
        object.__setattr__(self, "params", copy.deepcopy(dict(self.params)))
        if isinstance(self.for_each, (list, tuple)):
            object.__setattr__(self, "for_each", copy.deepcopy(list(self.for_each)))
        implied = set(self.depends_on) | step_references(self)
        object.__setattr__(self, "depends_on", tuple(sorted(implied)))

    def to_dict(self) -> dict[str, Any]:
        """The step as a JSON-ready dict, in the shape the planner writes."""
        data: dict[str, Any] = {
            "step": self.id,
            "description": self.description,
            "tool": self.tool,
            "params": copy.deepcopy(dict(self.params)),
            "depends_on": list(self.depends_on),
        }
        if self.for_each is not None:
            data["for_each"] = copy.deepcopy(self.for_each)
        return data


@dataclass(frozen=True)
class Plan:
    """An ordered list of steps. Build one with `parse_plan`, check it with `validate_plan`."""

    steps: tuple[PlanStep, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))

    def step(self, step_id: int) -> PlanStep:
        """The step numbered `step_id`.

        Raises:
            KeyError: no step has that number.
        """
        for step in self.steps:
            if step.id == step_id:
                return step
        numbers = ", ".join(str(step.id) for step in self.steps) or "(none)"
        raise KeyError(f"no step {step_id!r} in the plan; its steps are: {numbers}")

    def to_list(self) -> list[dict[str, Any]]:
        """The plan as JSON-ready dicts, e.g. for events and storage."""
        return [step.to_dict() for step in self.steps]

    @classmethod
    def from_list(cls, data: list[dict[str, Any]]) -> Plan:
        """Rebuild a plan from `to_list` output. The data is trusted: nothing is validated."""
        return cls(
            tuple(
                PlanStep(
                    id=entry["step"],
                    description=entry["description"],
                    tool=entry.get("tool"),
                    params=entry.get("params") or {},
                    depends_on=tuple(entry.get("depends_on") or ()),
                    for_each=entry.get("for_each"),
                )
                for entry in data
            )
        )


@dataclass(frozen=True)
class ToolSignature:
    """What plan validation needs to know about one tool.

    Attributes:
        name: The tool's name, as plans call it.
        description: What the tool does.
        parameters: JSON schema of its arguments (an object schema, as pydantic generates).
    """

    name: str
    description: str
    parameters: Mapping[str, Any] = field(hash=False)


def step_references(step: PlanStep) -> set[int]:
    """Step numbers referenced in `step`'s params and for_each."""
    referenced: set[int] = references_in([step.params, step.for_each])
    return referenced


def _for_each_text(for_each: str | list[JSONValue]) -> str:
    """A step's for_each for people: the reference as written, or its elements as JSON."""
    if isinstance(for_each, str):
        return for_each
    return show(for_each, 80)


def format_plan(plan: Plan) -> str:
    """The plan as a compact numbered list, for prompts and logs.

    Example: ``3. Revenue of each company [search_web, for each $2] (after: 2)``.
    """
    lines = []
    for step in plan.steps:
        kind = step.tool or "reasoning"
        if step.for_each is not None:
            kind += f", for each {_for_each_text(step.for_each)}"
        after = ", ".join(str(dep) for dep in step.depends_on) or "-"
        # One line per step, whatever whitespace the planner put in a description.
        description = " ".join(step.description.split())
        lines.append(f"{step.id}. {description} [{kind}] (after: {after})")
    return "\n".join(lines)


def missing_required(step: PlanStep, tool: ToolSignature, resolved: Mapping[str, Any]) -> list[str]:
    """Required parameters of `tool` that `resolved` (the step's resolved params) lacks.

    A non-empty answer means the executor model must fill in the step's arguments.
    """
    return [name for name in required_params(tool.parameters) if name not in resolved]


# --- parsing ----------------------------------------------------------------------------------

_STEP_KEYS = ("step", "description", "tool", "params", "depends_on", "for_each")
_ALIASES = {"id": "step", "args": "params", "arguments": "params"}
_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)
_OPENING = re.compile(r"[\[{]")
# A failed attempt may scan to the end of the reply; the bound keeps adversarial text from
# costing quadratic time.
_MAX_FAILED_ATTEMPTS = 200
# Params are copied and checked recursively; a bound far above any real plan keeps a hostile
# reply from ending in RecursionError instead of PlanValidationError.
_MAX_NESTING = 32
_EXPECTED = (
    'expected a JSON array of steps like [{"step": 1, "description": "...", "tool": "...", '
    '"params": {...}, "depends_on": []}]'
)


def _looks_like_plan(value: Any) -> bool:
    if isinstance(value, Mapping):
        return "steps" in value or "plan" in value
    first = value[0] if isinstance(value, list) and value else None
    return isinstance(first, Mapping) and any(key in first for key in ("step", "id", "description"))


def _json_values(text: str) -> Iterator[Any]:
    """JSON values in `text`, most likely plan first: whole text, fenced blocks, then prose."""
    for candidate in [text, *(m.group(1) for m in _FENCE.finditer(text))]:
        try:
            value = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        yield value
    decoder = json.JSONDecoder()
    position, failures = 0, 0
    while failures < _MAX_FAILED_ATTEMPTS:
        opening = _OPENING.search(text, position)
        if opening is None:
            return
        try:
            value, position = decoder.raw_decode(text, opening.start())
        except (ValueError, RecursionError):
            position, failures = opening.start() + 1, failures + 1
            continue
        yield value


def _decode(text: str) -> Any:
    first: list[Any] = []
    for value in _json_values(text):
        if _looks_like_plan(value):
            return value
        first = first or [value]
    # Brackets left open mean a reply cut short (a token limit); any complete value found in it
    # is a fragment, such as the first step, and reporting on that would mislead.
    cut_off = text.count("[") + text.count("{") > text.count("]") + text.count("}")
    if first and not cut_off:
        return first[0]
    start = repr(text[:200]) + ("…" if len(text) > 200 else "")
    if not text.strip():
        problem = "the reply is empty"
    elif not _OPENING.search(text):
        problem = "the reply contains no JSON"
    elif cut_off:
        problem = "the JSON in the reply is cut off (brackets are left open)"
    else:
        problem = "the reply is not valid JSON"
    raise PlanValidationError([f"{_EXPECTED}, but {problem}; the reply begins: {start}"], raw=text)


def _parse_step(entry: Any, position: int) -> tuple[PlanStep | None, list[str]]:
    if not isinstance(entry, Mapping):
        return None, [f"entry {position}: a step must be an object, got {show(entry)}"]
    problems: list[str] = []
    fields: dict[str, Any] = {}
    for key, value in entry.items():
        name = _ALIASES.get(key, key)
        if name not in _STEP_KEYS:
            problems.append(f"unknown key {key!r}; a step has the keys: {', '.join(_STEP_KEYS)}")
        elif name in fields:
            problems.append(f"{key!r} repeats {name!r}; give it once")
        else:
            fields[name] = value
    number = fields.get("step")
    if "step" not in fields:
        problems.append("missing 'step' (the step's number)")
    elif not is_step_number(number):
        problems.append(f"'step' must be a positive integer, got {show(number)}")
    tool, description = fields.get("tool"), fields.get("description")
    if description is None and tool is None:
        problems.append("a reasoning step ('tool': null) needs a 'description' of its result")
    elif description is not None and (not isinstance(description, str) or not description.strip()):
        problems.append(f"'description' must be a non-empty string, got {show(description)}")
    if tool is not None and (not isinstance(tool, str) or not tool.strip()):
        problems.append(f"'tool' must be a tool name or null, got {show(tool)}")
    params = {} if fields.get("params") is None else fields["params"]
    if not isinstance(params, Mapping):
        problems.append(f"'params' must be an object of parameter values, got {show(params)}")
    elif nesting(params, _MAX_NESTING) > _MAX_NESTING:
        problems.append(f"'params' nest more than {_MAX_NESTING} levels deep")
    depends_on = [] if fields.get("depends_on") is None else fields["depends_on"]
    if not isinstance(depends_on, list) or not all(is_step_number(d) for d in depends_on):
        problems.append(f"'depends_on' must be a list of step numbers, got {show(depends_on)}")
    for_each = fields.get("for_each")
    if for_each is not None and not isinstance(for_each, (str, list)):
        problems.append(
            "'for_each' must be a reference such as '$2' or a list of elements, "
            f"got {show(for_each)}"
        )
    elif isinstance(for_each, list) and not for_each:
        problems.append("'for_each' is an empty list; give the elements, or leave it out")
    elif isinstance(for_each, list) and nesting(for_each, _MAX_NESTING) > _MAX_NESTING:
        problems.append(f"'for_each' nests more than {_MAX_NESTING} levels deep")
    if problems:
        label = f"step {number}" if is_step_number(number) else f"entry {position}"
        return None, [f"{label}: {problem}" for problem in problems]
    described = isinstance(description, str)
    text = description if isinstance(description, str) else _call_text(str(tool), params)
    step = PlanStep(fields["step"], text, tool, params, tuple(depends_on), for_each, described)
    return step, []


def _call_text(tool: str, params: Mapping[str, Any], limit: int = 120) -> str:
    """A tool call as one line, ``get_quote(ticker="NVDA")``: the description of a step the
    planner did not describe, since for a call with its arguments the call says it all."""
    arguments = ", ".join(
        f"{name}={json.dumps(value, ensure_ascii=False, default=repr)}"
        for name, value in params.items()
    )
    text = f"{tool}({arguments})"
    return text if len(text) <= limit else text[: limit - 2] + "…)"


def parse_plan(reply: str | list[Any] | dict[str, Any]) -> Plan:
    """Parse the planner's reply into a `Plan`.

    Accepts a JSON array of steps — bare, in a ```json fence, or amid prose — an object
    ``{"steps": [...]}`` (or ``{"plan": [...]}``), or the same already decoded. Step numbers and
    dependencies must be JSON integers; nothing is coerced or defaulted beyond the documented
    optional keys (``tool``: null, ``params``: {}, ``depends_on``: []).

    Raises:
        PlanValidationError: listing every structural problem; `raw` holds the reply.
    """
    if isinstance(reply, str):
        raw, data = reply, _decode(reply)
    else:
        try:
            raw = json.dumps(reply, default=repr)
        except (TypeError, ValueError, RecursionError):
            raw = show(reply, 10_000)
        data = reply
    if isinstance(data, Mapping):
        key = next((key for key in ("steps", "plan") if key in data), None)
        if key is None:
            keys = ", ".join(repr(key) for key in data) or "none"
            message = f"{_EXPECTED} or an object with a 'steps' array, got an object with keys: "
            raise PlanValidationError([message + keys], raw=raw)
        data = data[key]
    if not isinstance(data, (list, tuple)):
        raise PlanValidationError([f"{_EXPECTED}, got {show(data)}"], raw=raw)
    if not data:
        raise PlanValidationError(["the plan has no steps"], raw=raw)
    steps: list[PlanStep] = []
    errors: list[str] = []
    for position, entry in enumerate(data, start=1):
        step, problems = _parse_step(entry, position)
        errors += problems
        if step is not None:
            steps.append(step)
    if errors:
        raise PlanValidationError(errors, raw=raw)
    return Plan(tuple(steps))
