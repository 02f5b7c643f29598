"""Parallel speed: how close a plan's execution comes to its critical path.

Plan shapes — a chain, an 8-way fan-out, a diamond, `for_each` over 8 items, and two uneven
DAGs where starting each step the moment its own dependencies finish (eager) beats running the
plan level by level (waves) — run with tools that sleep known durations. The planner is scripted
(it returns the plan at once) and `answer="last_step"`, so no model latency is involved.

For each shape:
  exec   first AGENT_STEP_STARTED → last AGENT_STEP_COMPLETED, from the run's events
  wall   the whole `run()` call: start, planning, execution, answer, the caller seeing the result
  CP     the critical path: the longest chain of durations, the physical limit
  seq    every step one after another (sum of durations)
  waves  level by level, each level waiting for its slowest step (computed, no overhead added)
The target is exec ≤ 1.10 × CP + the stated overhead, which has two parts, both measured
(docs/benchmarks.md): each step on the critical path costs a step's round trip through the
engine (start its child workflow, record its tool call, deliver its completion, write its two
events); each further step running beside it costs the run's loop the serial part of that work
(start and completion bookkeeping), because one loop starts and records every step.

    .venv/bin/python bench/parallel.py [--quick] [--unit SECONDS] [--repeats N]
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

from pyworkflow import EventType, get_events_sync, step
from pyworkflow.agents import PlanExecuteAgent
from pyworkflow.testing import scripted_executor, scripted_planner, temporary_runtime

# The overhead the target allows, measured on 2 cores with SQLite (docs/benchmarks.md).
STEP_ON_PATH_S = 0.030  # per step on the critical path
STEP_BESIDE_S = 0.015  # per step off it: the run loop's serial bookkeeping
FAN_OUT = 8


@step()
async def work(seconds: float, label: str) -> str:
    """Do a piece of work that takes `seconds`."""
    await asyncio.sleep(seconds)
    return f"{label}: done"


@step()
async def list_items(count: int, seconds: float) -> list[str]:
    """List `count` items to work on (takes `seconds`)."""
    await asyncio.sleep(seconds)
    return [f"item-{i}" for i in range(count)]


@dataclass(frozen=True)
class Shape:
    name: str
    plan: list[dict[str, Any]]
    durations: dict[int, float]  # step → duration of the step (of one element, for for_each)
    fan_out: dict[int, int]  # for_each step → number of elements


def _work(n: int, seconds: float, deps: list[int], label: str | None = None) -> dict[str, Any]:
    return {
        "step": n,
        "description": f"work {label or n}",
        "tool": "work",
        "params": {"seconds": round(seconds, 4), "label": label or f"step {n}"},
        "depends_on": deps,
    }


def shapes(u: float) -> list[Shape]:
    """The benchmark's plans, durations in multiples of `u` seconds."""

    def simple(name: str, spec: list[tuple[int, float, list[int]]]) -> Shape:
        return Shape(
            name,
            [_work(n, d * u, deps) for n, d, deps in spec],
            {n: d * u for n, d, _ in spec},
            {},
        )

    chain = simple("chain of 6", [(n, 1.0, [n - 1] if n > 1 else []) for n in range(1, 7)])
    fan = simple(f"{FAN_OUT}-way fan-out", [(n, 2.0, []) for n in range(1, FAN_OUT + 1)])
    diamond = simple("diamond", [(1, 1.0, []), (2, 2.0, [1]), (3, 3.0, [1]), (4, 1.0, [2, 3])])
    for_each = Shape(
        f"for_each over {FAN_OUT}",
        [
            {
                "step": 1,
                "description": "list the items",
                "tool": "list_items",
                "params": {"count": FAN_OUT, "seconds": u},
                "depends_on": [],
            },
            {
                "step": 2,
                "description": "work on each item",
                "tool": "work",
                "for_each": "$1",
                "params": {"seconds": 2 * u, "label": "${item}"},
                "depends_on": [1],
            },
            _work(3, u, [2], "combine"),
        ],
        {1: u, 2: 2 * u, 3: u},
        {2: FAN_OUT},
    )
    # Step 3 needs only the short step 2, so eager starts it at once; waves hold it behind the
    # long step 1, and step 4 behind step 3's level.
    uneven = simple(
        "uneven: long ∥ short→long",
        [(1, 4.0, []), (2, 1.0, []), (3, 3.0, [2]), (4, 1.0, [1, 3])],
    )
    # Two independent chains whose long steps fall on different levels: waves pay for the
    # longest step of every level, eager for the longer chain only.
    crossed = simple(
        "uneven: two crossed chains",
        [(1, 3.0, []), (2, 1.0, [1]), (3, 3.0, [2]), (4, 1.0, []), (5, 3.0, [4]), (6, 1.0, [5])],
    )
    return [chain, fan, diamond, for_each, uneven, crossed]


# --- schedule arithmetic -----------------------------------------------------------------------


def _order(shape: Shape) -> list[dict[str, Any]]:
    done: set[int] = set()
    ordered = []
    remaining = list(shape.plan)
    while remaining:
        ready = [s for s in remaining if all(d in done for d in s["depends_on"])]
        for s in ready:
            ordered.append(s)
            done.add(s["step"])
            remaining.remove(s)
    return ordered


def critical_path(shape: Shape) -> tuple[float, int]:
    """(length, steps on it): fan-out elements run side by side, so a for_each step counts once."""
    finish: dict[int, tuple[float, int]] = {}
    for s in _order(shape):
        start = max((finish[d] for d in s["depends_on"]), default=(0.0, 0))
        finish[s["step"]] = (start[0] + shape.durations[s["step"]], start[1] + 1)
    return max(finish.values())


def unit_count(shape: Shape) -> int:
    return sum(shape.fan_out.get(n, 1) for n in shape.durations)


def sequential(shape: Shape) -> float:
    return sum(d * shape.fan_out.get(n, 1) for n, d in shape.durations.items())


def waves(shape: Shape) -> float:
    """Level by level: level k starts when every step of level k−1 has finished."""
    level: dict[int, int] = {}
    for s in _order(shape):
        level[s["step"]] = 1 + max((level[d] for d in s["depends_on"]), default=-1)
    longest: dict[int, float] = {}
    for n, k in level.items():
        longest[k] = max(longest.get(k, 0.0), shape.durations[n])
    return sum(longest.values())


# --- running -----------------------------------------------------------------------------------


def make_agent(shape: Shape, index: int) -> PlanExecuteAgent:
    return PlanExecuteAgent(
        planner_model=scripted_planner(shape.plan).model,
        executor_model=scripted_executor().model,
        tools=[work, list_items],
        answer="last_step",
        max_parallel=FAN_OUT,
        name=f"bench.parallel:shape{index}",
    )


def measure(agent: PlanExecuteAgent) -> tuple[float, float]:
    """(wall, exec) seconds of one run."""
    with c.stopwatch() as elapsed:
        result = agent.run_sync("run the plan")
    if result.status != "completed":
        raise SystemExit(f"run {result.run_id} ended {result.status}: {result.error}")
    events = get_events_sync(result.run_id)
    started = [e.timestamp for e in events if e.type == EventType.AGENT_STEP_STARTED]
    completed = [e.timestamp for e in events if e.type == EventType.AGENT_STEP_COMPLETED]
    return elapsed[0], max(completed) - min(started)


def main() -> int:
    def extra(parser: Any) -> None:
        parser.add_argument("--unit", type=float, default=None, help="duration unit in seconds")
        parser.add_argument("--repeats", type=int, default=None)

    args = c.arguments(__doc__.splitlines()[0], extra)
    c.quiet()
    unit = args.unit or (0.05 if args.quick else 0.25)
    repeats = args.repeats or (1 if args.quick else 3)
    all_shapes = shapes(unit)
    agents = [make_agent(s, i) for i, s in enumerate(all_shapes)]
    rows = []
    misses = []
    with temporary_runtime():
        measure(make_agent(Shape("warm-up", [_work(1, 0.0, [])], {1: 0.0}, {}), 99))
        for shape, agent in zip(all_shapes, agents, strict=True):
            runs = [measure(agent) for _ in range(repeats)]
            wall = c.median([r[0] for r in runs])
            exe = c.median([r[1] for r in runs])
            cp, depth = critical_path(shape)
            units = unit_count(shape)
            target = 1.10 * cp + depth * STEP_ON_PATH_S + (units - depth) * STEP_BESIDE_S
            met = exe <= target
            if not met:
                misses.append(shape.name)
            rows.append(
                [
                    shape.name,
                    f"{units} / {depth}",
                    f"{cp:.2f}",
                    f"{exe:.3f}",
                    f"{exe / cp:.2f}",
                    f"{target:.3f}",
                    "yes" if met else "**no**",
                    f"{wall:.3f}",
                    f"{sequential(shape) / exe:.2f}×",
                    f"{waves(shape) / exe:.2f}×",
                ]
            )
    c.emit(
        c.table(
            f"Parallel speed — unit {unit:g} s, median of {repeats}, SQLite, {c.machine()}",
            [
                "plan",
                "steps / on CP",
                "CP s",
                "exec s",
                "exec÷CP",
                "target s",
                "met",
                "wall s",
                "vs sequential",
                "vs waves",
            ],
            rows,
        )
    )
    c.emit(
        "exec: first step started → last step completed (the run's events); wall: the whole "
        "run() call. target: 1.1 × CP + "
        f"{STEP_ON_PATH_S * 1000:.0f} ms per step on the critical path + "
        f"{STEP_BESIDE_S * 1000:.0f} ms per other step. vs sequential / vs waves: the ideal "
        "duration of that schedule ÷ exec (above 1: faster than that schedule could ever be)."
    )
    if misses:
        c.emit(f"missed the target: {', '.join(misses)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
