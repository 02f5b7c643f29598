"""Names for the async functions durable runs execute.

A run records *what* it executes as a target name, so that after a crash any process can find
the same function again: a decorator registers it under `module:qualname` when its module is
imported; a process that has not imported it yet imports the module by that name.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any

from pyworkflow.exceptions import ConfigurationError

Target = Callable[..., Awaitable[Any]]


class _TargetRegistry:
    """Decorator-filled map from target name to function (decorators are the only writers)."""

    def __init__(self) -> None:
        self.targets: dict[str, Target] = {}


_registry = _TargetRegistry()


def target_name(obj: Any) -> str:
    """The stable name a decorated object is registered and recorded under."""
    return f"{obj.__module__}:{obj.__qualname__}"


def register_target(name: str, fn: Target) -> None:
    _registry.targets[name] = fn


def resolve_target(name: str) -> Target:
    """Find the function recorded as `name`, importing its module if this process has not."""
    if name in _registry.targets:
        return _registry.targets[name]
    module_name, _, qualname = name.partition(":")
    if module_name and module_name != "__main__":
        try:
            importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigurationError(
                f"cannot resume work recorded as {name!r}: module {module_name!r} cannot be "
                f"imported here ({exc}). Run the worker where that module is importable."
            ) from exc
        if name in _registry.targets:
            return _registry.targets[name]
    raise ConfigurationError(
        f"no agent or workflow named {name!r} is defined in this process; import the module "
        f"that defines {qualname or name!r} before resuming its runs"
    )
