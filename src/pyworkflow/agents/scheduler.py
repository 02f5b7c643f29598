"""Which plan steps may start now: pure functions over the plan and what has finished.

Kept apart from the durable loop (as LangGraph keeps its algorithm apart from its runner) so
the order is deterministic — a replayed run makes the same choices — and testable alone.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from pyworkflow.agents.plan import Plan

__all__ = ["critical_path", "ready_steps", "unit_label"]


def ready_steps(plan: Plan, *, done: Collection[int], started: Collection[int]) -> list[int]:
    """Steps not yet started whose dependencies have all finished, in plan order."""
    return [
        s.id
        for s in plan.steps
        if s.id not in started and s.id not in done and all(d in done for d in s.depends_on)
    ]


def unit_label(step_id: int, item: int | None) -> str:
    """The name a person reads for one unit of work: '3', or '3a', '3b'… for fan-out items."""
    if item is None:
        return str(step_id)
    letters = ""
    n = item
    while True:
        letters = chr(ord("a") + n % 26) + letters
        n = n // 26 - 1
        if n < 0:
            return f"{step_id}{letters}"


def critical_path(plan: Plan, durations: Mapping[int, float]) -> float:
    """The longest chain of step durations through the plan: the least wall time possible."""
    finish: dict[int, float] = {}
    for step in _topological(plan):
        start = max((finish[d] for d in step.depends_on if d in finish), default=0.0)
        finish[step.id] = start + durations.get(step.id, 0.0)
    return max(finish.values(), default=0.0)


def _topological(plan: Plan) -> list:  # type: ignore[type-arg]
    remaining = {s.id: s for s in plan.steps}
    ordered = []
    while remaining:
        ready = [s for s in remaining.values() if all(d not in remaining for d in s.depends_on)]
        if not ready:
            raise ValueError("the plan has a cycle")
        for s in ready:
            ordered.append(s)
            del remaining[s.id]
    return ordered
