"""Agents: the plan-and-execute pattern and its parts."""

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
