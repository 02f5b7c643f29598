"""Machinery for plan step params: reference syntax and resolution, and schema checks.

The reference grammar is documented in `pyworkflow.agents.plan`, the public face of this module.
Params checks live here too because they hinge on references: a whole-value reference is typed
only at run time, and a string with interpolated references is known to be a string.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pyworkflow.exceptions import PyWorkflowError


class ReferenceResolutionError(PyWorkflowError):
    """A reference in a step's params points at a result, key or index that does not exist."""


class _Missing(enum.Enum):
    # An enum member, so the sentinel keeps its identity through pickling (results and step
    # inputs cross process boundaries in durable runs).
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing.MISSING
"""Marks "no for_each element in scope" (``None`` is a legitimate element)."""

# Keys start with a letter or "_" so that "$1.50" stays a price instead of a path into step 1.
_KEY = r"[^\W\d][\w-]*"
_BODY = rf"(?P<root>\d+|item)(?P<path>(?:\.{_KEY}|\[-?\d+\])*)"
_BARE = re.compile(rf"\${_BODY}")
_BRACED = re.compile(rf"\$\{{\s*{_BODY}\s*\}}")
_TOKEN = re.compile(rf"\$\$|\$\{{\s*{_BODY}\s*\}}")
_SEGMENT = re.compile(rf"\.({_KEY})|\[(-?\d+)\]")
# What a reference attempt looks like even when it is malformed ("${2.}", "${ item.0 }").
_SUSPECT = re.compile(r"\$\{\s*(?:\d|item\b)[^}]{0,40}\}?")
_BARE_ITEM = re.compile(r"\$item\b")


@dataclass(frozen=True)
class Reference:
    """One parsed reference: its text as written, its root and the path into the root's value."""

    text: str
    root: int | None  # None: the current for_each item
    path: tuple[str | int, ...]


def _from_match(match: re.Match[str]) -> Reference:
    root = match.group("root")
    path = tuple(key if key else int(index) for key, index in _SEGMENT.findall(match.group("path")))
    return Reference(match.group(0), None if root == "item" else int(root), path)


def parse_reference(text: str) -> Reference | None:
    """The reference `text` is, if the whole string is exactly one reference."""
    match = _BARE.fullmatch(text) or _BRACED.fullmatch(text)
    return _from_match(match) if match else None


def is_template(text: str) -> bool:
    """Whether `text` contains interpolated references or `$$` escapes."""
    return _TOKEN.search(text) is not None


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def find_references(value: Any) -> Iterator[Reference]:
    """Every reference in `value` (nested dicts and lists included), in order of appearance."""
    for text in _strings(value):
        whole = parse_reference(text)
        if whole is not None:
            yield whole
            continue
        for match in _TOKEN.finditer(text):
            if match.group(0) != "$$":
                yield _from_match(match)


def malformed_references(value: Any) -> list[str]:
    """Problems with text in `value` that tries to be a reference but does not parse."""
    problems: list[str] = []
    for text in _strings(value):
        if parse_reference(text) is not None:
            continue
        # Blank out valid tokens so only the leftovers are inspected; "\0" keeps "$${2}" (an
        # escaped "$" then text) from reading as "${2}".
        rest = _TOKEN.sub("\0", text)
        for match in _SUSPECT.finditer(rest):
            problems.append(
                f"{match.group(0)!r} is not a valid reference; write ${{N}}, ${{N.key}}, "
                "${N[0]} or ${item}"
            )
        if _BARE_ITEM.search(rest):
            problems.append(f"{text!r} uses $item inside text; write ${{item}} there")
    return problems


def nesting(value: Any, limit: int) -> int:
    """How deeply `value` nests, counted without recursion (so a hostile value cannot
    overflow the stack) and only until the depth passes `limit`."""
    deepest, pending = 0, [(value, 0)]
    while pending and deepest <= limit:
        item, depth = pending.pop()
        deepest = max(deepest, depth)
        if isinstance(item, Mapping):
            pending += [(inner, depth + 1) for inner in item.values()]
        elif isinstance(item, (list, tuple)):
            pending += [(inner, depth + 1) for inner in item]
    return deepest


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def _decoded(value: Any) -> Any:
    """A string holding a JSON object or array, decoded (models often answer in JSON text)."""
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return value
    return value


def _names(keys: Any) -> str:
    shown = [str(key) for key in list(keys)[:20]]
    more = ", …" if len(keys) > 20 else ""
    return (", ".join(shown) + more) if shown else "(none)"


def lookup(ref: Reference, results: Mapping[int, Any], item: Any = MISSING) -> Any:
    """The value `ref` points at.

    Raises:
        ReferenceResolutionError: the step has no result, or the path does not exist in it.
    """
    if ref.root is None:
        if item is MISSING:
            raise ReferenceResolutionError(
                f"{ref.text}: there is no current item; $item only works in a for_each step"
            )
        value, where, text = item, "the current item", "$item"
    else:
        if ref.root not in results:
            raise ReferenceResolutionError(
                f"{ref.text}: step {ref.root} has no result; "
                f"steps with results: {_names(sorted(results))}"
            )
        value, where, text = results[ref.root], f"step {ref.root}'s result", f"${ref.root}"
    for segment in ref.path:
        value = _decoded(value)
        if isinstance(value, Mapping):
            key = segment if isinstance(segment, str) else str(segment)
            if key not in value:
                raise ReferenceResolutionError(
                    f"{ref.text}: {where} has no key {key!r}; its keys are: {_names(value)}"
                )
            value = value[key]
        elif isinstance(value, (list, tuple)):
            if not isinstance(segment, int):
                raise ReferenceResolutionError(
                    f"{ref.text}: {where} is a list, not an object; index it like {text}[0]"
                )
            if not -len(value) <= segment < len(value):
                raise ReferenceResolutionError(
                    f"{ref.text}: {where} has {len(value)} items; index {segment} is out of range"
                )
            value = value[segment]
        else:
            raise ReferenceResolutionError(
                f"{ref.text}: {where} is {_kind(value)}, which has no key or index {segment!r}"
            )
        text += f".{segment}" if isinstance(segment, str) else f"[{segment}]"
        where = text
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _resolve(value: Any, results: Mapping[int, Any], item: Any) -> Any:
    if isinstance(value, str):
        whole = parse_reference(value)
        if whole is not None:
            return lookup(whole, results, item)
        return _TOKEN.sub(
            lambda m: (
                "$" if m.group(0) == "$$" else _as_text(lookup(_from_match(m), results, item))
            ),
            value,
        )
    if isinstance(value, Mapping):
        return {key: _resolve(inner, results, item) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [_resolve(inner, results, item) for inner in value]
    return value


def resolve_params(
    params: Mapping[str, Any], results: Mapping[int, Any], *, item: Any = MISSING
) -> dict[str, Any]:
    """Replace every reference in `params` with the value it points at.

    Args:
        params: A step's params; nested dicts and lists are resolved too.
        results: Results of finished steps, by step number.
        item: The current element of a for_each step; `MISSING` outside one.

    Returns:
        A new dict; `params` is not modified.

    Raises:
        ReferenceResolutionError: a referenced step has no result, or a path does not exist.
    """
    return {key: _resolve(value, results, item) for key, value in params.items()}


def resolve_for_each(reference: str | list[Any], results: Mapping[int, Any]) -> list[Any]:
    """The list a for_each reference points at, or a written list with its references resolved.

    A string result holding a JSON array (a model that answered '["a", "b"]') is decoded.

    Raises:
        ReferenceResolutionError: `reference` is not a step reference, or its value is no list.
    """
    if isinstance(reference, list):
        return [_resolve(element, results, MISSING) for element in reference]
    ref = parse_reference(reference)
    if ref is None or ref.root is None:
        raise ReferenceResolutionError(
            f"for_each {reference!r} is not a reference to an earlier step's result, "
            "such as '$2' or '$2.items'"
        )
    value = _decoded(lookup(ref, results))
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ReferenceResolutionError(
        f"for_each {reference!r}: expected a list to iterate over, "
        f"got {_kind(value)}: {show(value, 80)}"
    )


def references_in(value: Any) -> set[int]:
    """Step numbers referenced anywhere in `value`."""
    return {ref.root for ref in find_references(value) if ref.root is not None}


def show(value: Any, limit: int = 100) -> str:
    """`repr(value)`, shortened to `limit` characters for error messages."""
    try:
        text = repr(value)
    except RecursionError:
        return f"<{type(value).__name__} nested too deeply to show>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- literal params against the tool's JSON schema --------------------------------------------

_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
    "array": "an array",
    "object": "an object",
}


def _deref(schema: Any, root: Mapping[str, Any]) -> Any:
    """`schema` with local ``$ref``s ("#/$defs/Name") followed; unresolvable ones accept all."""
    for _ in range(32):  # a bound, because schemas of recursive models can chain refs
        if not isinstance(schema, Mapping) or not isinstance(schema.get("$ref"), str):
            return schema
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, Mapping) else None
        if not isinstance(target, Mapping):
            return {}
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return {}


def _has_type(value: Any, name: str) -> bool:
    if name == "string":
        return isinstance(value, str)
    if name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if name == "array":
        return isinstance(value, (list, tuple))
    if name == "object":
        return isinstance(value, Mapping)
    return True


def _types(schema: Any) -> list[str]:
    declared = schema.get("type") if isinstance(schema, Mapping) else None
    names = [declared] if isinstance(declared, str) else list(declared or [])
    if names and isinstance(schema, Mapping) and schema.get("nullable"):
        names.append("null")
    return names


def _describe(schema: Any, root: Mapping[str, Any]) -> str:
    schema = _deref(schema, root)
    if not isinstance(schema, Mapping):
        return "a value"
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    branches = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(branches, list) and branches:
        return " or ".join(dict.fromkeys(_describe(branch, root) for branch in branches))
    names = _types(schema) or (["object"] if "properties" in schema else [])
    title = schema.get("title")
    if names == ["object"] and isinstance(title, str) and title.isidentifier():
        return f"a {title} object"  # pydantic titles its models: "a Row object"
    return " or ".join(_TYPE_NAMES.get(n, n) for n in names) or "a value of another shape"


def _same(a: Any, b: Any) -> bool:
    # True == 1 in Python, but not in JSON schema.
    return bool(a == b) and isinstance(a, bool) == isinstance(b, bool)


def _value_problems(value: Any, schema: Any, root: Mapping[str, Any], path: str) -> list[str]:
    """Why a literal `value` does not fit `schema` (the tool validates fully at run time)."""
    schema = _deref(schema, root)
    if schema is False:
        return [f"param {path!r} is not accepted"]
    if not isinstance(schema, Mapping):
        return []
    if isinstance(value, str) and parse_reference(value) is not None:
        return []  # its type is known only once the referenced step has run
    template = isinstance(value, str) and is_template(value)
    shown = f"text with references {show(value)}" if template else show(value)
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if not isinstance(branches, list) or not branches:
            continue
        results = [_value_problems(value, branch, root, path) for branch in branches]
        if all(results):
            # Where only one branch has the value's type, its own problems are the useful ones.
            fitting = [
                problems
                for branch, problems in zip(branches, results, strict=True)
                if any(_has_type(value, n) for n in _types(_deref(branch, root)))
            ]
            if len(fitting) == 1:
                return fitting[0]
            return [f"param {path!r} must be {_describe(schema, root)}, got {shown}"]
    problems: list[str] = []
    for branch in schema.get("allOf") or []:
        problems += _value_problems(value, branch, root, path)
    names = _types(schema)
    if names and not any(_has_type(value, name) for name in names):
        return [f"param {path!r} must be {_describe(schema, root)}, got {shown}"]
    if not template and "enum" in schema and not any(_same(value, v) for v in schema["enum"]):
        return [f"param {path!r} must be {_describe(schema, root)}, got {shown}"]
    if not template and "const" in schema and not _same(value, schema["const"]):
        return [f"param {path!r} must be {schema['const']!r}, got {shown}"]
    if isinstance(value, (list, tuple)):
        prefix = schema.get("prefixItems") or []
        for index, element in enumerate(value):
            inner = prefix[index] if index < len(prefix) else schema.get("items", {})
            problems += _value_problems(element, inner, root, f"{path}[{index}]")
    if isinstance(value, Mapping):
        problems += _object_problems(value, schema, root, path)
    return problems


def _object_problems(
    value: Mapping[str, Any], schema: Mapping[str, Any], root: Mapping[str, Any], path: str
) -> list[str]:
    properties = schema.get("properties") or {}
    problems = [
        f"param {path!r} lacks the required key {name!r}"
        for name in schema.get("required") or []
        if name not in value
    ]
    extra = schema.get("additionalProperties", True)
    for key, inner in value.items():
        if key in properties:
            problems += _value_problems(inner, properties[key], root, f"{path}.{key}")
        elif extra is False:
            names = ", ".join(properties) or "none"
            problems.append(f"param {path!r} has no key {key!r}; its keys are: {names}")
        elif isinstance(extra, Mapping):
            problems += _value_problems(inner, extra, root, f"{path}.{key}")
    return problems


def params_problems(
    params: Mapping[str, Any], tool: str, parameters: Mapping[str, Any]
) -> list[str]:
    """Why `params` do not fit `tool`'s parameter schema; missing required ones are fine."""
    schema = _deref(parameters, parameters)
    properties = schema.get("properties") or {}
    # Pydantic marks argument models with additionalProperties: false; a schema that says
    # nothing is treated the same, so a misspelt parameter is caught before it runs.
    extra = schema.get("additionalProperties", False)
    problems: list[str] = []
    for key, value in params.items():
        if key in properties:
            problems += _value_problems(value, properties[key], parameters, key)
        elif isinstance(extra, Mapping) or extra is True:
            problems += _value_problems(value, extra, parameters, key)
        elif properties:
            names = ", ".join(properties)
            problems.append(f"{tool} has no parameter {key!r}; its parameters are: {names}")
        else:
            problems.append(f"{tool} takes no parameters, got {key!r}")
    return problems


def required_params(parameters: Mapping[str, Any]) -> list[str]:
    """Names a tool's parameter schema marks as required."""
    required = _deref(parameters, parameters).get("required")
    return [name for name in required or [] if isinstance(name, str)]


def is_step_number(value: object) -> bool:
    """A valid step number: a positive JSON integer (not a bool, not a numeric string)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
