"""Executing a plan's steps: eager scheduling, one child workflow per step, completions.

The half of a run (see `_run.py`) that turns the plan in force into work. Every choice —
which steps are ready, in what order they start, how a completion changes the state — is a
function of what the run has recorded, so a replay after a crash chooses the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyworkflow import engine
from pyworkflow._store import jsonable
from pyworkflow.agents._approval import APPROVAL_TOPIC_KIND
from pyworkflow.agents._step_run import DONE_TOPIC, STEP_TARGET, describe_error
from pyworkflow.agents.plan import (
    Plan,
    PlanStep,
    ReferenceResolutionError,
    resolve_for_each,
    resolve_params,
)
from pyworkflow.agents.result import ExecutedStep, TokenUsage
from pyworkflow.agents.scheduler import ready_steps, unit_label
from pyworkflow.events import EventType
from pyworkflow.exceptions import BudgetExceededError, RunError, StepFailedError

if TYPE_CHECKING:
    from pyworkflow.agents._run import AgentRun

# How long one wait for a step completion lasts before the loop re-checks its state. Only an
# upper bound: a completion wakes the wait at once.
_RECEIVE_SECONDS = 3600.0


@dataclass
class Unit:
    """One schedulable piece of work: a whole step, or one element of a fan-out."""

    key: str
    step: PlanStep
    item: int | None
    params: dict[str, Any]
    element: Any = None


@dataclass
class Progress:
    """What the run has recorded so far. Rebuilt identically on replay."""

    plan: Plan
    version: int = 1
    results: dict[int, Any] = field(default_factory=dict)  # finished steps, every version
    started: set[int] = field(default_factory=set)  # steps of the current plan begun
    items: dict[int, dict[int, Any]] = field(default_factory=dict)  # fan-out element results
    fan_out_size: dict[int, int] = field(default_factory=dict)
    queue: list[Unit] = field(default_factory=list)
    running: dict[str, Unit] = field(default_factory=dict)
    failure: tuple[Unit, str] | None = None
    stopped: BudgetExceededError | None = None  # a budget ran out; raised once nothing runs
    units_done: int = 0
    successful: int = 0
    failed: int = 0


class PlanExecution:
    """Runs the steps of the plan in force for one `AgentRun`, recording as it goes."""

    def __init__(self, run: AgentRun) -> None:
        self.run = run
        self.waiting_tool_approvals: set[str] = set()

    async def run_plan(self, progress: Progress) -> None:
        agent = self.run.agent
        while True:
            if progress.failure is None and progress.stopped is None:
                try:
                    self.schedule_ready(progress)
                    while progress.queue and len(progress.running) < agent.max_parallel:
                        await self.launch(progress, progress.queue.pop(0))
                except BudgetExceededError as exc:
                    # Steps in flight finish and are recorded first, so the result's log and
                    # usage account for everything that ran.
                    progress.stopped = exc
            if not progress.running:
                if progress.stopped is not None:
                    raise progress.stopped
                if progress.failure is not None:
                    if not agent.enable_replanning:
                        unit, error = progress.failure
                        raise StepFailedError(error, run_id=self.run.run_id, step_id=unit.key)
                    await self.run.replan(progress)
                    continue
                if all(s.id in progress.results for s in progress.plan.steps):
                    return
                if not progress.queue and not ready_steps(
                    progress.plan, done=progress.results.keys(), started=progress.started
                ):
                    raise RunError("the plan cannot make progress", run_id=self.run.run_id)
                continue
            message = await engine.receive(DONE_TOPIC, _RECEIVE_SECONDS)
            if message is not None:
                await self.record(progress, message)

    def schedule_ready(self, progress: Progress) -> None:
        """Queue the units of every step whose dependencies are done, in plan order."""
        for step_id in ready_steps(
            progress.plan, done=progress.results.keys(), started=progress.started
        ):
            step = progress.plan.step(step_id)
            progress.started.add(step_id)
            if step.for_each is None:
                progress.queue.append(Unit(str(step_id), step, None, dict(step.params)))
                continue
            try:
                elements = resolve_for_each(step.for_each, progress.results)
            except ReferenceResolutionError as exc:
                progress.failure = (Unit(str(step_id), step, None, {}), describe_error(exc))
                return
            scheduled = progress.units_done + len(progress.running) + len(progress.queue)
            if scheduled + len(elements) > self.run.agent.max_steps:
                # Fail before the first element rather than run some and drop the rest.
                raise BudgetExceededError(
                    f"max_steps={self.run.agent.max_steps} would be exceeded: step {step_id} fans "
                    f"out over {len(elements)} items after {scheduled} other step(s); none of "
                    "its items was started",
                    run_id=self.run.run_id,
                    step_id=str(step_id),
                )
            progress.fan_out_size[step_id] = len(elements)
            progress.items[step_id] = {}
            if not elements:
                self.finish_step(progress, step_id, [])
                continue
            for index, element in enumerate(elements):
                key = unit_label(step_id, index)
                progress.queue.append(Unit(key, step, index, dict(step.params), element))

    async def launch(self, progress: Progress, unit: Unit) -> None:
        self.run.check_budget("executor", units=progress.units_done + len(progress.running) + 1)
        try:
            if unit.item is None:
                params = resolve_params(unit.step.params, progress.results)
            else:
                params = resolve_params(unit.step.params, progress.results, item=unit.element)
        except ReferenceResolutionError as exc:
            await self.emit_started(unit, progress)
            await self.record_failure(progress, unit, describe_error(exc), {})
            return
        inputs = {
            f"${d}": progress.results[d] for d in unit.step.depends_on if d in progress.results
        }
        if unit.item is not None:
            inputs["item"] = unit.element
        payload = {
            "agent": self.run.agent.name,
            "key": unit.key,
            "step": unit.step.to_dict(),
            "params": params,
            "inputs": inputs,
            "run_id": self.run.run_id,
            "version": progress.version,
        }
        progress.running[unit.key] = unit
        await self.emit_started(unit, progress)
        child_id = f"{self.run.run_id}/v{progress.version}/{unit.key}"
        queue = self.run.agent.step_queue(unit.step.tool)
        await engine.submit(
            queue, child_id, STEP_TARGET, self.run.agent.name, self.run.run_id, payload
        )

    async def emit_started(self, unit: Unit, progress: Progress) -> None:
        await self.run.emit(
            EventType.AGENT_STEP_STARTED,
            {
                "step": unit.step.id,
                "label": unit.key,
                "item": unit.item,
                "description": unit.step.description,
                "tool": unit.step.tool,
                "plan_version": progress.version,
            },
        )

    async def record(self, progress: Progress, message: dict[str, Any]) -> None:
        """Fold one completion message into the state and the log."""
        if message.get("kind") == APPROVAL_TOPIC_KIND:
            await self.run.emit(
                EventType.AGENT_STEP_APPROVAL_REQUESTED,
                {k: message[k] for k in ("hook_id", "tool", "arguments")}
                | {"label": message["key"]},
            )
            await self.run.set_status(
                "waiting_for_approval",
                hook_id=message["hook_id"],
                result=self.run.result(
                    "waiting_for_approval", hook_id=message["hook_id"]
                ).model_dump(mode="json"),
            )
            self.waiting_tool_approvals.add(message["key"])
            return
        if message["key"] in self.waiting_tool_approvals:
            self.waiting_tool_approvals.discard(message["key"])
            await self.run.set_status("running", hook_id=None)
        unit = progress.running.pop(message["key"], None)
        if unit is None:  # a completion from a superseded plan version; already accounted for
            return
        usage: TokenUsage = message.get("usage") or TokenUsage()
        self.run.usage = self.run.usage.add("executor", usage)
        if not message["ok"]:
            await self.record_failure(progress, unit, message["error"], message)
            return
        progress.units_done += 1
        progress.successful += 1
        entry = ExecutedStep(
            step=unit.step.id,
            label=unit.key,
            item=unit.item,
            description=unit.step.description,
            tool=unit.step.tool,
            arguments=jsonable(message.get("arguments")),
            result=jsonable(message["result"]),
            status="completed",
            mode=message["mode"],
            executor_tokens=usage.total_tokens,
            plan_version=progress.version,
            started_at=message.get("started_at"),
            finished_at=message.get("finished_at"),
        )
        self.run.executed.append(entry)
        await self.run.emit(
            EventType.AGENT_STEP_COMPLETED,
            {
                "step": unit.step.id,
                "label": unit.key,
                "item": unit.item,
                "result": entry.result,
                "mode": entry.mode,
                "executor_tokens": entry.executor_tokens,
                "executor_cost_usd": usage.cost_usd,
                "duration_s": entry.duration,
            },
        )
        if unit.item is None:
            self.finish_step(progress, unit.step.id, message["result"])
            return
        progress.items[unit.step.id][unit.item] = message["result"]
        if len(progress.items[unit.step.id]) == progress.fan_out_size[unit.step.id]:
            ordered = [
                progress.items[unit.step.id][i] for i in range(progress.fan_out_size[unit.step.id])
            ]
            self.finish_step(progress, unit.step.id, ordered)

    def finish_step(self, progress: Progress, step_id: int, result: Any) -> None:
        progress.results[step_id] = result
        self.run.finished_steps[step_id] = progress.plan.step(step_id).to_dict()

    async def record_failure(
        self, progress: Progress, unit: Unit, error: str, message: Mapping[str, Any]
    ) -> None:
        progress.units_done += 1
        progress.failed += 1
        self.run.executed.append(
            ExecutedStep(
                step=unit.step.id,
                label=unit.key,
                item=unit.item,
                description=unit.step.description,
                tool=unit.step.tool,
                status="failed",
                error=error,
                mode="direct" if unit.step.tool else "reasoning",
                plan_version=progress.version,
                started_at=message.get("started_at"),
                finished_at=message.get("finished_at"),
            )
        )
        await self.run.emit(
            EventType.AGENT_STEP_FAILED,
            {"step": unit.step.id, "label": unit.key, "item": unit.item, "error": error},
        )
        if progress.failure is None:
            progress.failure = (unit, error)
