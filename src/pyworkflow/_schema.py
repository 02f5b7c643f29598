"""Tool schemas from Python signatures: a JSON schema for models, a validator for arguments."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any, get_type_hints

import pydantic
from pydantic import ConfigDict

_SECTION = re.compile(
    r"^\s*(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?|Notes?):\s*$"
)
_ARG_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its description and per-argument descriptions."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    description: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in lines:
        heading = _SECTION.match(line)
        if heading:
            section, current = heading.group(1), None
            continue
        if section is None:
            description.append(line)
        elif section in ("Args", "Arguments", "Parameters"):
            match = _ARG_LINE.match(line)
            if match and (len(line) - len(line.lstrip())) <= 4:
                current = match.group(1).lstrip("*")
                params[current] = match.group(3).strip()
            elif current and line.strip():
                params[current] = f"{params[current]} {line.strip()}".strip()
    text = "\n".join(description).strip()
    return text, params


def signature_model(fn: Callable[..., Any], name: str) -> type[pydantic.BaseModel]:
    """A pydantic model whose fields are `fn`'s parameters (types, defaults, descriptions)."""
    sig = inspect.signature(fn)
    try:
        hints = get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to raw annotations
        hints = {}
    _, arg_docs = parse_docstring(fn.__doc__)
    fields: dict[str, Any] = {}
    for param in sig.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(param.name, param.annotation)
        if annotation is inspect.Parameter.empty:
            annotation = Any
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (
            annotation,
            pydantic.Field(default, description=arg_docs.get(param.name)),
        )
    model: type[pydantic.BaseModel] = pydantic.create_model(  # type: ignore[call-overload]
        f"{name}_arguments",
        __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True),
        **fields,
    )
    return model


def json_schema(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    schema.setdefault("properties", {})
    return schema


def format_validation_error(exc: pydantic.ValidationError) -> list[str]:
    """One readable line per problem, e.g. "query: Input should be a valid string (got 3)"."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        kind = error.get("type")
        if kind == "missing":
            problems.append(f"{where}: required argument is missing")
        elif kind == "extra_forbidden":
            problems.append(f"{where}: unknown argument")
        else:
            problems.append(f"{where}: {error['msg']} (got {error.get('input')!r})")
    return problems


def validate_arguments(
    model: type[pydantic.BaseModel], arguments: Mapping[str, Any]
) -> dict[str, Any]:
    """Validate and coerce arguments; raises pydantic.ValidationError."""
    instance = model.model_validate(dict(arguments))
    return {name: getattr(instance, name) for name in model.model_fields}
