"""The durable loop of one plan-and-execute run (DESIGN.md §3, §4, §7.2).

Runs as the body of the run's workflow. Everything it decides is a pure function of what it
has recorded — model replies, step completions in the order they arrived, clock readings —
so a run replayed after a crash makes the same decisions and reaches the same state without
repeating a finished tool call.

    plan (planner, repaired when invalid) → [approval] →
    while steps remain: start every ready step (child workflow) up to max_parallel;
                        receive one completion; record it          (`_execution.py`)
    on a failure: let in-flight steps finish, replan (bounded), continue
    answer (executor model, or the last step's result)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pyworkflow import engine
from pyworkflow._store import jsonable
from pyworkflow.agents import prompts
from pyworkflow.agents._approval import ApprovalGate
from pyworkflow.agents._execution import PlanExecution, Progress
from pyworkflow.agents.plan import (
    Plan,
    ReferenceResolutionError,
    format_plan,
    resolve_for_each,
)
from pyworkflow.agents.result import AgentResult, ExecutedStep, TokenUsage, Usage
from pyworkflow.agents.scheduler import unit_label
from pyworkflow.events import EventType
from pyworkflow.exceptions import (
    BudgetExceededError,
    PlanValidationError,
    PyWorkflowError,
)

if TYPE_CHECKING:
    from pyworkflow.agents.plan_execute import PlanExecuteAgent

logger = logging.getLogger("pyworkflow")


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
        self.execution = PlanExecution(self)

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
            progress = Progress(plan=await self.first_plan())
            progress.plan = await self.gate.approve_plan(
                progress.plan, reason="initial plan", regenerate=self.first_plan
            )
            # One numbering for plans: rejected and edited plans count as versions too.
            progress.version = len(self.plans)
            await self.execution.run_plan(progress)
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

    async def replan(self, progress: Progress) -> None:
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

    async def replacement_plan(self, progress: Progress, feedback: str | None = None) -> Plan:
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

    async def answer(self, progress: Progress) -> Any:
        plan = progress.plan
        if self.agent.answer == "last_step" or not plan.steps:
            last = plan.steps[-1].id if plan.steps else None
            return progress.results.get(last) if last is not None else None
        self.check_budget("executor")
        results: dict[str, Any] = {}
        for entry in self.plan_in_force():
            if entry["step"] in progress.results:
                results.update(_labelled(entry, progress.results))
        text, usage = await self.agent.executor.answer(self.query, results)
        self.usage = self.usage.add("executor", usage)
        return text


def _preview(value: Any, limit: int) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + f" …({len(text) - limit} more chars)"


def _labelled(entry: dict[str, Any], results: dict[int, Any]) -> dict[str, Any]:
    """A finished step's result for the answer; a fan-out's element by element, each labelled
    with its unit and element, so the model can tell whose result is whose."""
    number, result = entry["step"], results[entry["step"]]
    label = f"step {number}: {entry['description']}"
    if entry.get("for_each") is None or not isinstance(result, list):
        return {label: result}
    try:
        elements = resolve_for_each(entry["for_each"], results)
    except ReferenceResolutionError:
        elements = []
    if len(elements) != len(result):
        return {label: result}
    return {
        f"step {unit_label(number, i)} ({_preview(element, 60)}): {entry['description']}": value
        for i, (element, value) in enumerate(zip(elements, result, strict=True))
    }
