"""The durable loop of one plan-and-execute run (DESIGN.md §3, §4, §7.2).

Runs as the body of the run's workflow. Everything it decides is a pure function of what it
has recorded — model replies, step completions in the order they arrived, clock readings —
so a run replayed after a crash makes the same decisions and reaches the same state without
repeating a finished tool call.

    plan (planner, repaired when invalid) → [approval] →
    while steps remain: start every ready step (child workflow) up to max_parallel;
                        receive one completion; record it
    on a failure: let in-flight steps finish, replan (bounded), continue
    answer (executor model, or the last step's result)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pyworkflow import engine
from pyworkflow._store import jsonable
from pyworkflow.agents import prompts
from pyworkflow.agents._approval import APPROVAL_TOPIC_KIND, ApprovalGate
from pyworkflow.agents._step_run import DONE_TOPIC, STEP_TARGET, describe_error
from pyworkflow.agents.plan import (
    Plan,
    PlanStep,
    ReferenceResolutionError,
    format_plan,
    resolve_for_each,
    resolve_params,
)
from pyworkflow.agents.result import AgentResult, ExecutedStep, TokenUsage, Usage
from pyworkflow.agents.scheduler import ready_steps, unit_label
from pyworkflow.events import EventType
from pyworkflow.exceptions import (
    BudgetExceededError,
    PlanValidationError,
    PyWorkflowError,
    RunError,
    StepFailedError,
)

if TYPE_CHECKING:
    from pyworkflow.agents.plan_execute import PlanExecuteAgent

logger = logging.getLogger("pyworkflow")

# How long one wait for a step completion lasts before the loop re-checks its state. Only an
# upper bound: a completion wakes the wait at once.
_RECEIVE_SECONDS = 3600.0


@dataclass
class _Unit:
    """One schedulable piece of work: a whole step, or one element of a fan-out."""

    key: str
    step: PlanStep
    item: int | None
    params: dict[str, Any]
    element: Any = None


@dataclass
class _Progress:
    """What the run has recorded so far. Rebuilt identically on replay."""

    plan: Plan
    version: int = 1
    results: dict[int, Any] = field(default_factory=dict)  # finished steps, every version
    started: set[int] = field(default_factory=set)  # steps of the current plan begun
    items: dict[int, dict[int, Any]] = field(default_factory=dict)  # fan-out element results
    fan_out_size: dict[int, int] = field(default_factory=dict)
    queue: list[_Unit] = field(default_factory=list)
    running: dict[str, _Unit] = field(default_factory=dict)
    failure: tuple[_Unit, str] | None = None
    stopped: BudgetExceededError | None = None  # a budget ran out; raised once nothing runs
    units_done: int = 0
    successful: int = 0
    failed: int = 0


class AgentRun:
    """The state and steps of one run; `execute()` is the workflow body."""

    def __init__(self, agent: PlanExecuteAgent, run_id: str, query: str) -> None:
        self.agent = agent
        self.run_id = run_id
        self.query = query
        self.store = engine.get_runtime().store
        self.seq = 0
        self.usage = Usage()
        self.executed: list[ExecutedStep] = []
        self.plans: list[list[dict[str, Any]]] = []
        self.replans = 0
        self.current_plan: Plan | None = None
        self.finished_steps: dict[int, dict[str, Any]] = {}  # step id → its plan entry
        self.gate = ApprovalGate(self)
        self.waiting_tool_approvals: set[str] = set()

    # --- recording -------------------------------------------------------------------------

    async def emit(self, event: EventType, payload: Mapping[str, Any]) -> None:
        """Record one event; numbered here so a replay writes the same numbers (no duplicates)."""
        self.seq += 1
        await engine.run_step(
            "pyworkflow.event",
            self.store.append_event,
            self.run_id,
            self.seq,
            event.value,
            jsonable({"run_id": self.run_id, **payload}),
        )

    async def set_status(self, status: str, **values: Any) -> None:
        await engine.run_step(
            "pyworkflow.status", self.store.update_run, self.run_id, status=status, **values
        )

    # --- the run ---------------------------------------------------------------------------

    async def execute(self) -> dict[str, Any]:
        agent = self.agent
        await engine.run_step(
            "pyworkflow.run", self.store.insert_run, self.run_id, "agent", agent.name, self.query
        )
        await self.emit(
            EventType.AGENT_STARTED,
            {
                "query": self.query,
                "agent": agent.name,
                "planner_model": agent.planner_label,
                "executor_model": agent.executor_label,
            },
        )
        try:
            progress = _Progress(plan=await self.first_plan())
            progress.plan = await self.gate.approve_plan(
                progress.plan, reason="initial plan", regenerate=self.first_plan
            )
            # One numbering for plans: rejected and edited plans count as versions too.
            progress.version = len(self.plans)
            await self.run_plan(progress)
            answer = await self.answer(progress)
            await self.emit(
                EventType.AGENT_EXECUTION_COMPLETED,
                {
                    "total_steps": progress.units_done,
                    "successful": progress.successful,
                    "failed": progress.failed,
                    "replans": self.replans,
                },
            )
            result = self.result("completed", answer=answer)
            await self.emit(
                EventType.AGENT_COMPLETED,
                {"answer": answer, "usage": self.usage.model_dump(mode="json")},
            )
        except Exception as exc:
            # Any error ends the run as failed, with its event and row: an unexpected one
            # (a bug, a tool library's own exception escaping) must not leave `wait()` hanging
            # on a run that will never move again. Cancellation is a BaseException and passes.
            if not isinstance(exc, PyWorkflowError):
                logger.exception("run %s failed unexpectedly", self.run_id)
            result = self.result(
                "failed", error=str(exc) or repr(exc), error_type=type(exc).__name__
            )
            await self.emit(
                EventType.AGENT_FAILED,
                {
                    "error": result.error,
                    "error_type": type(exc).__name__,
                    "usage": self.usage.model_dump(mode="json"),
                },
            )
        data = result.model_dump(mode="json")
        await self.set_status(result.status, result=data, error=result.error, hook_id=None)
        return data

    def result(
        self, status: Literal["completed", "failed", "waiting_for_approval"], **values: Any
    ) -> AgentResult:
        return AgentResult(
            run_id=self.run_id,
            status=status,
            query=self.query,
            plan=self.plan_in_force(),
            plans=self.plans,
            executed_steps=self.executed,
            usage=self.usage,
            replans=self.replans,
            **values,
        )

    def plan_in_force(self) -> list[dict[str, Any]]:
        """The current plan, preceded by steps finished under earlier versions."""
        current = self.current_plan.to_list() if self.current_plan else []
        ids = {s["step"] for s in current}
        earlier = [entry for n, entry in self.finished_steps.items() if n not in ids]
        return [*earlier, *current]

    # --- planning --------------------------------------------------------------------------

    async def first_plan(self, feedback: str | None = None) -> Plan:
        return await self.new_plan(feedback=feedback)

    async def new_plan(self, **options: Any) -> Plan:
        """Ask the planner (with `Planner.generate_plan` options), count what it spent — a
        failed attempt costs too — and adopt the validated plan."""
        try:
            outcome = await self.agent.planner.generate_plan(
                self.query,
                self.agent.signatures(),
                max_steps=self.agent.max_steps,
                before_call=self.planner_budget,
                **options,
            )
        except PlanValidationError as exc:
            self.usage = self.usage.add("planner", getattr(exc, "usage", TokenUsage()))
            raise
        self.usage = self.usage.add("planner", outcome.usage)
        await self.adopt(outcome.plan, outcome.usage, outcome.attempts)
        return outcome.plan

    async def adopt(self, plan: Plan, usage: TokenUsage, attempts: int) -> None:
        """Make `plan` the plan in force and record it."""
        steps = plan.to_list()
        self.plans.append(steps)
        self.current_plan = plan
        await self.emit(
            EventType.AGENT_PLAN_GENERATED,
            {
                "plan": steps,
                "version": len(self.plans),
                "planner_tokens": usage.total_tokens,
                "planner_cost_usd": usage.cost_usd,
                "attempts": attempts,
            },
        )

    def adopt_edit(self, plan: Plan) -> None:
        """Make a human's edited plan the plan in force (recorded by the approval event)."""
        self.plans.append(plan.to_list())
        self.current_plan = plan

    async def replan(self, progress: _Progress) -> None:
        """Ask the planner for a plan of the remaining work after a failure (DESIGN.md §4)."""
        assert progress.failure is not None
        unit, error = progress.failure
        agent = self.agent
        if self.replans >= agent.max_replans:
            raise BudgetExceededError(
                f"{error} (replanning stopped: max_replans={agent.max_replans} reached)",
                run_id=self.run_id,
                step_id=unit.key,
            )
        original = progress.plan.to_list()
        plan = await self.replacement_plan(progress)
        self.replans += 1
        await self.emit(
            EventType.AGENT_REPLANNING,
            {
                "reason": f"Step {unit.key} failed: {error}",
                "replan": self.replans,
                "original_plan": original,
                "new_plan": plan.to_list(),
            },
        )

        async def with_feedback(feedback: str) -> Plan:
            return await self.replacement_plan(progress, feedback=feedback)

        plan = await self.gate.approve_plan(
            plan,
            reason=f"replan {self.replans} after step {unit.key} failed: {error}",
            regenerate=with_feedback,
            completed=progress.results.keys(),
        )
        progress.plan = plan
        progress.version = len(self.plans)
        progress.started = set()
        progress.queue = []
        progress.failure = None

    async def replacement_plan(self, progress: _Progress, feedback: str | None = None) -> Plan:
        """A validated plan for the remaining work, recorded as the next plan version."""
        assert progress.failure is not None
        unit, error = progress.failure
        agent = self.agent
        completed = dict(progress.results)
        next_number = max([*completed, *(s.id for s in progress.plan.steps)], default=0) + 1
        request = prompts.replan_request(
            self.query,
            current_plan=format_plan(progress.plan),
            completed={n: _preview(v, agent.replan_result_chars) for n, v in completed.items()},
            failed_step=f"step {unit.key}: {unit.step.description} (tool {unit.step.tool})",
            error=error,
            next_step_number=next_number,
        )

        def no_reuse(plan: Plan) -> list[str]:
            return [
                f"step {s.id} is already completed; number new steps from {next_number}"
                for s in plan.steps
                if s.id in completed
            ]

        if feedback:
            request += (
                f"\n\nA reviewer rejected the previous attempt with this feedback:\n{feedback}"
            )
        return await self.new_plan(
            request=request, completed=completed.keys(), extra_checks=[no_reuse]
        )

    # --- execution -------------------------------------------------------------------------

    async def run_plan(self, progress: _Progress) -> None:
        agent = self.agent
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
                        raise StepFailedError(error, run_id=self.run_id, step_id=unit.key)
                    await self.replan(progress)
                    continue
                if all(s.id in progress.results for s in progress.plan.steps):
                    return
                if not progress.queue and not ready_steps(
                    progress.plan, done=progress.results.keys(), started=progress.started
                ):
                    raise RunError("the plan cannot make progress", run_id=self.run_id)
                continue
            message = await engine.receive(DONE_TOPIC, _RECEIVE_SECONDS)
            if message is not None:
                await self.record(progress, message)

    def schedule_ready(self, progress: _Progress) -> None:
        """Queue the units of every step whose dependencies are done, in plan order."""
        for step_id in ready_steps(
            progress.plan, done=progress.results.keys(), started=progress.started
        ):
            step = progress.plan.step(step_id)
            progress.started.add(step_id)
            if step.for_each is None:
                progress.queue.append(_Unit(str(step_id), step, None, dict(step.params)))
                continue
            try:
                elements = resolve_for_each(step.for_each, progress.results)
            except ReferenceResolutionError as exc:
                progress.failure = (_Unit(str(step_id), step, None, {}), describe_error(exc))
                return
            scheduled = progress.units_done + len(progress.running) + len(progress.queue)
            if scheduled + len(elements) > self.agent.max_steps:
                # Fail before the first element rather than run some and drop the rest.
                raise BudgetExceededError(
                    f"max_steps={self.agent.max_steps} would be exceeded: step {step_id} fans "
                    f"out over {len(elements)} items after {scheduled} other step(s); none of "
                    "its items was started",
                    run_id=self.run_id,
                    step_id=str(step_id),
                )
            progress.fan_out_size[step_id] = len(elements)
            progress.items[step_id] = {}
            if not elements:
                self.finish_step(progress, step_id, [])
                continue
            for index, element in enumerate(elements):
                key = unit_label(step_id, index)
                progress.queue.append(_Unit(key, step, index, dict(step.params), element))

    async def launch(self, progress: _Progress, unit: _Unit) -> None:
        self.check_budget("executor", units=progress.units_done + len(progress.running) + 1)
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
            "agent": self.agent.name,
            "key": unit.key,
            "step": unit.step.to_dict(),
            "params": params,
            "inputs": inputs,
            "run_id": self.run_id,
            "version": progress.version,
        }
        progress.running[unit.key] = unit
        await self.emit_started(unit, progress)
        child_id = f"{self.run_id}/v{progress.version}/{unit.key}"
        queue = self.agent.step_queue(unit.step.tool)
        await engine.submit(queue, child_id, STEP_TARGET, self.agent.name, self.run_id, payload)

    async def emit_started(self, unit: _Unit, progress: _Progress) -> None:
        await self.emit(
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

    async def record(self, progress: _Progress, message: dict[str, Any]) -> None:
        """Fold one completion message into the state and the log."""
        if message.get("kind") == APPROVAL_TOPIC_KIND:
            await self.emit(
                EventType.AGENT_STEP_APPROVAL_REQUESTED,
                {k: message[k] for k in ("hook_id", "tool", "arguments")}
                | {"label": message["key"]},
            )
            await self.set_status(
                "waiting_for_approval",
                hook_id=message["hook_id"],
                result=self.result("waiting_for_approval", hook_id=message["hook_id"]).model_dump(
                    mode="json"
                ),
            )
            self.waiting_tool_approvals.add(message["key"])
            return
        if message["key"] in self.waiting_tool_approvals:
            self.waiting_tool_approvals.discard(message["key"])
            await self.set_status("running", hook_id=None)
        unit = progress.running.pop(message["key"], None)
        if unit is None:  # a completion from a superseded plan version; already accounted for
            return
        usage: TokenUsage = message.get("usage") or TokenUsage()
        self.usage = self.usage.add("executor", usage)
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
        self.executed.append(entry)
        await self.emit(
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

    def finish_step(self, progress: _Progress, step_id: int, result: Any) -> None:
        progress.results[step_id] = result
        self.finished_steps[step_id] = progress.plan.step(step_id).to_dict()

    async def record_failure(
        self, progress: _Progress, unit: _Unit, error: str, message: Mapping[str, Any]
    ) -> None:
        progress.units_done += 1
        progress.failed += 1
        self.executed.append(
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
        await self.emit(
            EventType.AGENT_STEP_FAILED,
            {"step": unit.step.id, "label": unit.key, "item": unit.item, "error": error},
        )
        if progress.failure is None:
            progress.failure = (unit, error)

    # --- budgets and the answer ------------------------------------------------------------

    def check_budget(
        self,
        role: Literal["planner", "executor"],
        *,
        units: int | None = None,
        pending: TokenUsage | None = None,
    ) -> None:
        """Stop before a step or model call once a limit is reached (DESIGN.md §3 budgets).

        A call's cost is known only after it, so the call that reaches a limit completes and
        the next one does not start. `role` says whose call comes next (a step may call the
        executor model): the planner's and the executor's own token limits apply to their own
        calls, `max_tokens` and `max_cost_usd` to all. `pending` is usage already spent but not
        yet added to the run's (earlier rounds of the plan being made).
        """
        agent = self.agent
        if units is not None and units > agent.max_steps:
            raise BudgetExceededError(
                f"max_steps={agent.max_steps} reached: the run would execute step number {units}",
                run_id=self.run_id,
            )
        usage = self.usage if pending is None else self.usage.add(role, pending)
        own = agent.max_planner_tokens if role == "planner" else agent.max_executor_tokens
        for name, limit, used, whose in (
            (f"max_{role}_tokens", own, getattr(usage, role).total_tokens, f"the {role}"),
            ("max_tokens", agent.max_tokens, usage.total.total_tokens, "planner and executor"),
        ):
            if limit is not None and used >= limit:
                raise BudgetExceededError(
                    f"{name}={limit} reached: {whose} used {used} tokens", run_id=self.run_id
                )
        if agent.max_cost_usd is None:
            return
        # Calls of unknown price cannot count, but they must not hide the priced ones: each
        # role's cost is None as soon as one of its calls is unpriced, so sum what is known.
        spent = sum(u.cost_usd for u in (usage.planner, usage.executor) if u.cost_usd is not None)
        if spent >= agent.max_cost_usd:
            unpriced = usage.total.unpriced_requests
            note = f"; {unpriced} call(s) of unknown price not counted" if unpriced else ""
            raise BudgetExceededError(
                f"max_cost_usd={agent.max_cost_usd} reached: ${spent:.4f} spent{note}",
                run_id=self.run_id,
            )

    def planner_budget(self, spent: TokenUsage) -> None:
        """Checked before each planner call, repair rounds included; `spent`: this plan's."""
        try:
            self.check_budget("planner", pending=spent)
        except BudgetExceededError:
            self.usage = self.usage.add("planner", spent)  # the earlier rounds were paid for
            raise

    async def answer(self, progress: _Progress) -> Any:
        plan = progress.plan
        if self.agent.answer == "last_step" or not plan.steps:
            last = plan.steps[-1].id if plan.steps else None
            return progress.results.get(last) if last is not None else None
        self.check_budget("executor")
        results = {
            f"step {s['step']}: {s['description']}": progress.results.get(s["step"])
            for s in self.plan_in_force()
            if s["step"] in progress.results
        }
        text, usage = await self.agent.executor.answer(self.query, results)
        self.usage = self.usage.add("executor", usage)
        return text


def _preview(value: Any, limit: int) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + f" …({len(text) - limit} more chars)"
