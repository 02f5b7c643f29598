"""A run as the command shows it, folded from its event log.

Pure: `RunView.apply(event)` takes events in `seq` order and keeps what the live view, `show`,
`runs` and the telemetry need — plan versions, each step's state and timing, approvals, token
counts. The same fold serves a run in progress and one finished long ago.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pyworkflow.events import Event, EventType

StepState = Literal["waiting", "running", "done", "failed", "replanned", "approval"]
RunState = Literal["queued", "running", "waiting_for_approval", "completed", "failed", "cancelled"]

_NO_RESULT = object()


@dataclass
class UnitView:
    """One execution of a step: the whole step, or one element of a `for_each` fan-out."""

    label: str
    item: int | None
    state: StepState = "running"
    started_at: float | None = None
    finished_at: float | None = None
    duration: float | None = None
    result: Any = _NO_RESULT
    error: str | None = None
    mode: str | None = None
    executor_tokens: int = 0

    @property
    def has_result(self) -> bool:
        return self.result is not _NO_RESULT


@dataclass
class StepView:
    """A step of one plan version and what became of it."""

    id: int
    description: str
    tool: str | None
    params: dict[str, Any]
    depends_on: tuple[int, ...]
    for_each: str | list[Any] | None
    version: int
    units: dict[str, UnitView] = field(default_factory=dict)
    superseded: bool = False

    @property
    def for_each_label(self) -> str | None:
        """What the step fans out over: a reference as written, or a listed set as JSON."""
        if self.for_each is None or isinstance(self.for_each, str):
            return self.for_each
        text = json.dumps(self.for_each, ensure_ascii=False, default=repr)
        return text if len(text) <= 80 else text[:79] + "…"

    @property
    def state(self) -> StepState:
        units = list(self.units.values())
        if not units:
            return "replanned" if self.superseded else "waiting"
        if any(u.state == "approval" for u in units):
            return "approval"
        if any(u.state == "running" for u in units):
            return "running"
        if any(u.state == "failed" for u in units):
            return "failed"
        return "done"

    @property
    def started_at(self) -> float | None:
        times = [u.started_at for u in self.units.values() if u.started_at is not None]
        return min(times) if times else None

    @property
    def finished_at(self) -> float | None:
        if self.state in ("running", "waiting", "approval"):
            return None
        times = [u.finished_at for u in self.units.values() if u.finished_at is not None]
        return max(times) if times else None

    @property
    def executor_tokens(self) -> int:
        return sum(u.executor_tokens for u in self.units.values())

    @property
    def error(self) -> str | None:
        return next((u.error for u in self.units.values() if u.error), None)

    def plan_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "step": self.id,
            "description": self.description,
            "tool": self.tool,
            "params": self.params,
            "depends_on": list(self.depends_on),
        }
        if self.for_each is not None:
            entry["for_each"] = self.for_each
        return entry


@dataclass
class PlanView:
    """One version of the plan: the first, or one made by replanning or after a rejection."""

    version: int
    steps: list[StepView]
    created_at: float
    planner_tokens: int = 0
    reason: str | None = None
    outcome: str | None = None  # why it stopped being the plan in force

    def step(self, step_id: int) -> StepView | None:
        return next((s for s in self.steps if s.id == step_id), None)


@dataclass
class ApprovalView:
    """A request for a human decision and, once made, the decision."""

    hook_id: str
    kind: Literal["plan_approval", "tool_approval"]
    requested_at: float
    plan_version: int | None = None
    step_label: str | None = None
    decision: Literal["approved", "rejected"] | None = None
    feedback: str | None = None
    decided_at: float | None = None
    edited: bool = False


@dataclass
class RunView:
    """Everything the events of one run say, folded. Feed events with `apply`, in order."""

    run_id: str
    agent: str = ""
    query: str = ""
    planner_model: str = ""
    executor_model: str = ""
    status: RunState = "running"
    started_at: float | None = None
    finished_at: float | None = None
    last_event_at: float | None = None
    last_seq: int = 0
    plans: list[PlanView] = field(default_factory=list)
    approvals: list[ApprovalView] = field(default_factory=list)
    planner_tokens: int = 0
    executor_tokens: int = 0
    usage: dict[str, Any] | None = None
    answer: Any = None
    error: str | None = None
    error_type: str | None = None
    replans: int = 0
    pending_reason: str | None = None  # why the next plan version is being made

    # --- folding -----------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        if event.seq <= self.last_seq:
            return  # already folded (a poll that overlapped the previous one)
        self.last_seq = event.seq
        self.last_event_at = event.timestamp
        handler = getattr(self, "_on_" + event.type.value.lower(), None)
        if handler is not None:
            handler(event.payload, event.timestamp)

    def _on_agent_started(self, p: dict[str, Any], at: float) -> None:
        self.started_at = at
        self.agent = p.get("agent", self.agent)
        self.query = p.get("query", self.query)
        self.planner_model = p.get("planner_model", "")
        self.executor_model = p.get("executor_model", "")

    def _on_agent_plan_generated(self, p: dict[str, Any], at: float) -> None:
        version = int(p.get("version") or len(self.plans) + 1)
        for old in self.plans:
            self._supersede(old, f"replaced by v{version}")
        steps = [
            StepView(
                id=int(s["step"]),
                description=str(s.get("description", "")),
                tool=s.get("tool"),
                params=dict(s.get("params") or {}),
                depends_on=tuple(int(d) for d in s.get("depends_on") or ()),
                for_each=s.get("for_each"),
                version=version,
            )
            for s in p.get("plan", [])
        ]
        reason, self.pending_reason = self.pending_reason, None
        tokens = int(p.get("planner_tokens") or 0)
        self.planner_tokens += tokens
        self.plans.append(PlanView(version, steps, at, tokens, reason))

    def _supersede(self, plan: PlanView, outcome: str) -> None:
        if plan.outcome is None:
            plan.outcome = outcome
        for step in plan.steps:
            step.superseded = True

    def _on_agent_replanning(self, p: dict[str, Any], at: float) -> None:
        self.replans = int(p.get("replan") or self.replans + 1)
        reason = str(p.get("reason", "replanning"))
        new_plan = p.get("new_plan")
        last = self.plans[-1] if self.plans else None
        if (
            last is not None
            and last.version > 1
            and last.reason is None
            and (
                new_plan is None
                or [s.plan_entry()["step"] for s in last.steps] == [s.get("step") for s in new_plan]
            )
        ):
            last.reason = reason  # the new plan was recorded just before this event
        else:
            self.pending_reason = reason

    def _on_agent_plan_approval_requested(self, p: dict[str, Any], at: float) -> None:
        self.status = "waiting_for_approval"
        version = self.plans[-1].version if self.plans else None
        self.approvals.append(ApprovalView(str(p.get("hook_id")), "plan_approval", at, version))

    def _on_agent_step_approval_requested(self, p: dict[str, Any], at: float) -> None:
        self.status = "waiting_for_approval"
        label = str(p.get("label", p.get("step", "")))
        self.approvals.append(
            ApprovalView(str(p.get("hook_id")), "tool_approval", at, step_label=label)
        )
        unit = self._unit(label)
        if unit is not None:
            unit.state = "approval"

    def _decide(
        self, p: dict[str, Any], at: float, decision: Literal["approved", "rejected"]
    ) -> None:
        hook_id = p.get("hook_id")
        pending = [a for a in self.approvals if a.decision is None]
        match = next((a for a in pending if a.hook_id == hook_id), pending[-1] if pending else None)
        if match is None:
            match = ApprovalView(str(hook_id), "plan_approval", at)
            self.approvals.append(match)
        match.decision = decision
        match.feedback = p.get("feedback")
        match.decided_at = at
        match.edited = bool(p.get("edited") or p.get("plan_edited"))
        if match.kind == "tool_approval" and match.step_label is not None:
            unit = self._unit(match.step_label)
            if unit is not None and unit.state == "approval":
                unit.state = "running"
        if self.status == "waiting_for_approval":
            self.status = "running"

    def _on_agent_plan_approved(self, p: dict[str, Any], at: float) -> None:
        self._decide(p, at, "approved")
        if p.get("edited") and isinstance(p.get("plan"), list):
            # The approver's edit replaces the plan; no AGENT_PLAN_GENERATED records it.
            self.pending_reason = "edited at approval"
            self._on_agent_plan_generated({"plan": p["plan"], "version": len(self.plans) + 1}, at)
            self.plans[-2].outcome = "replaced by the approver's edit"

    def _on_agent_plan_rejected(self, p: dict[str, Any], at: float) -> None:
        self._decide(p, at, "rejected")
        if self.plans:
            feedback = p.get("feedback")
            outcome = f"rejected: {feedback}" if feedback else "rejected"
            self._supersede(self.plans[-1], outcome)
            self.pending_reason = outcome

    def _on_agent_step_started(self, p: dict[str, Any], at: float) -> None:
        # Only the plan in force executes, so the step is the newest one with that number.
        # (The event's `plan_version` counts replans after failures, not rejected or edited
        # plans, so it cannot index `plans`.)
        step = next(
            (s for plan in reversed(self.plans) if (s := plan.step(int(p["step"]))) is not None),
            None,
        )
        if step is None:
            return
        label = str(p.get("label", p["step"]))
        step.units[label] = UnitView(label=label, item=p.get("item"), started_at=at)

    def _on_agent_step_completed(self, p: dict[str, Any], at: float) -> None:
        unit = self._unit(str(p.get("label", p.get("step"))))
        if unit is None:
            return
        unit.state = "done"
        unit.finished_at = at
        unit.duration = p.get("duration_s")
        unit.result = p.get("result")
        unit.mode = p.get("mode")
        unit.executor_tokens = int(p.get("executor_tokens") or 0)
        self.executor_tokens += unit.executor_tokens

    def _on_agent_step_failed(self, p: dict[str, Any], at: float) -> None:
        unit = self._unit(str(p.get("label", p.get("step"))))
        if unit is None:
            return
        unit.state = "failed"
        unit.finished_at = at
        unit.error = p.get("error")

    def _on_agent_execution_completed(self, p: dict[str, Any], at: float) -> None:
        self.replans = int(p.get("replans", self.replans))

    def _on_agent_completed(self, p: dict[str, Any], at: float) -> None:
        self._finish("completed", p, at)
        self.answer = p.get("answer")

    def _on_agent_failed(self, p: dict[str, Any], at: float) -> None:
        self._finish("failed", p, at)
        self.error = p.get("error")
        self.error_type = p.get("error_type")

    def _on_agent_cancelled(self, p: dict[str, Any], at: float) -> None:
        self._finish("cancelled", p, at)

    def _finish(self, status: RunState, p: dict[str, Any], at: float) -> None:
        self.status = status
        self.finished_at = at
        if isinstance(p.get("usage"), dict):
            self.usage = p["usage"]

    # --- lookups -----------------------------------------------------------------------------

    def _unit(self, label: str) -> UnitView | None:
        for plan in reversed(self.plans):
            for step in plan.steps:
                if label in step.units:
                    return step.units[label]
        return None

    # --- summaries ---------------------------------------------------------------------------

    @property
    def current_plan(self) -> PlanView | None:
        return self.plans[-1] if self.plans else None

    def steps_in_force(self) -> list[StepView]:
        """The current plan's steps, preceded by steps finished under earlier versions."""
        if not self.plans:
            return []
        current = self.plans[-1].steps
        ids = {s.id for s in current}
        earlier = [
            s
            for plan in self.plans[:-1]
            for s in plan.steps
            if s.state == "done" and s.id not in ids
        ]
        return [*earlier, *current]

    def counts(self) -> dict[str, int]:
        """Steps of the plan in force by state, plus `failed` across every version."""
        counts = {"done": 0, "running": 0, "waiting": 0, "failed": 0, "planned": 0}
        for step in self.steps_in_force():
            counts["planned"] += 1
            state = step.state
            if state in ("done", "running", "waiting"):
                counts[state] += 1
            elif state == "approval":
                counts["running"] += 1
        counts["failed"] = sum(
            1
            for plan in self.plans
            for s in plan.steps
            for u in s.units.values()
            if u.state == "failed"
        )
        return counts

    def tokens(self) -> int:
        """Tokens used so far; exact once the run has finished (the answer call included)."""
        if self.usage is not None:
            return sum(
                int(self.usage.get(role, {}).get(k) or 0)
                for role in ("planner", "executor")
                for k in ("input_tokens", "output_tokens")
            )
        return self.planner_tokens + self.executor_tokens

    def cost(self) -> float | None:
        """Cost in USD once known: None while running and when a price is unknown."""
        if self.usage is None:
            return None
        costs = [self.usage.get(role, {}).get("cost_usd") for role in ("planner", "executor")]
        if any(c is None for c in costs):
            return None
        return float(sum(costs))

    def unpriced(self) -> bool:
        return self.usage is not None and self.cost() is None


def fold(run_id: str, events: list[Event]) -> RunView:
    """A `RunView` of `events`."""
    view = RunView(run_id)
    for event in events:
        view.apply(event)
    return view


def step_depths(steps: list[StepView]) -> dict[int, int]:
    """Each step's longest chain of dependencies inside `steps` (roots are 0)."""
    by_id = {s.id: s for s in steps}
    depths: dict[int, int] = {}

    def depth(step_id: int, seen: frozenset[int]) -> int:
        if step_id in depths:
            return depths[step_id]
        step = by_id[step_id]
        parents = [d for d in step.depends_on if d in by_id and d not in seen]
        value = 1 + max((depth(d, seen | {step_id}) for d in parents), default=-1)
        depths[step_id] = value
        return value

    for s in steps:
        depth(s.id, frozenset())
    return depths


def is_final(event_type: EventType) -> bool:
    return event_type in (
        EventType.AGENT_COMPLETED,
        EventType.AGENT_FAILED,
        EventType.AGENT_CANCELLED,
    )


def steps_from_plan(plan: list[dict[str, Any]], version: int = 1) -> list[StepView]:
    """StepViews (all waiting) of a plan in the planner's format, e.g. one awaiting approval."""
    view = RunView("")
    view._on_agent_plan_generated({"plan": plan, "version": version}, 0.0)
    return view.plans[0].steps
