"""`@agent(pattern=...)`: turn an annotated function into an agent of a supported pattern."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from pyworkflow.agents.plan_execute import PlanExecuteAgent
from pyworkflow.exceptions import ConfigurationError

__all__ = ["PATTERNS", "agent"]

PATTERNS: dict[str, type[PlanExecuteAgent]] = {"plan_execute": PlanExecuteAgent}


def agent(
    *, pattern: str = "plan_execute", **options: Any
) -> Callable[[Callable[..., Any]], PlanExecuteAgent]:
    """Define an agent. The function's docstring becomes the agent's instructions.

    Args:
        pattern: The agent pattern; supported: "plan_execute".
        **options: The pattern's options, e.g. `PlanExecuteAgent`'s `planner_model`,
            `executor_model`, `tools`, `enable_replanning`, `require_approval`, budgets.

    Raises:
        ConfigurationError: an unknown pattern or option.
    """
    if pattern not in PATTERNS:
        raise ConfigurationError(
            f"unknown agent pattern {pattern!r}; supported patterns: {', '.join(sorted(PATTERNS))}"
        )
    cls = PATTERNS[pattern]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "name", "instructions"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) for pattern {pattern!r}: {', '.join(unknown)}; "
            f"valid options: {', '.join(sorted(accepted))}"
        )

    def decorate(fn: Callable[..., Any]) -> PlanExecuteAgent:
        if not callable(fn):
            raise ConfigurationError(f"@agent(...) decorates a function, got {fn!r}")
        made = cls(
            name=f"{fn.__module__}:{fn.__qualname__}",
            instructions=inspect.getdoc(fn) or "",
            **options,
        )
        made.__doc__ = fn.__doc__
        return made

    return decorate
