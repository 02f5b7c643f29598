"""Agents: the plan-and-execute pattern and its parts."""

from typing import TYPE_CHECKING

from pyworkflow._lazy import lazy_exports

if TYPE_CHECKING:
    from pyworkflow.agents.decorator import PATTERNS, agent
    from pyworkflow.agents.executor import Executor
    from pyworkflow.agents.plan import Plan, PlanStep, parse_plan, validate_plan
    from pyworkflow.agents.plan_execute import PlanExecuteAgent
    from pyworkflow.agents.planner import Planner
    from pyworkflow.agents.result import AgentResult, ExecutedStep, TokenUsage, Usage

__all__ = [
    "PATTERNS",
    "AgentResult",
    "ExecutedStep",
    "Executor",
    "Plan",
    "PlanExecuteAgent",
    "PlanStep",
    "Planner",
    "TokenUsage",
    "Usage",
    "agent",
    "parse_plan",
    "validate_plan",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "PATTERNS": "pyworkflow.agents.decorator",
        "AgentResult": "pyworkflow.agents.result",
        "ExecutedStep": "pyworkflow.agents.result",
        "Executor": "pyworkflow.agents.executor",
        "Plan": "pyworkflow.agents.plan",
        "PlanExecuteAgent": "pyworkflow.agents.plan_execute",
        "PlanStep": "pyworkflow.agents.plan",
        "Planner": "pyworkflow.agents.planner",
        "TokenUsage": "pyworkflow.agents.result",
        "Usage": "pyworkflow.agents.result",
        "agent": "pyworkflow.agents.decorator",
        "parse_plan": "pyworkflow.agents.plan",
        "validate_plan": "pyworkflow.agents.plan",
    },
)
