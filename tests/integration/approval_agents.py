"""Agents for the cross-process approval tests; importable by every process in a test.

Tools append one line per finished call to the file named by PYWORKFLOW_TEST_LEDGER, so the
test can count from outside how many times each one ran.
"""

from __future__ import annotations

import os

from pyworkflow import agent, step
from pyworkflow.testing import scripted_executor, scripted_planner


def _ledger(line: str) -> None:
    path = os.environ.get("PYWORKFLOW_TEST_LEDGER")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())


@step()
async def lookup_order(order_id: str) -> dict[str, object]:
    """Look up an order by id."""
    _ledger(f"lookup_order:{order_id}")
    return {"order_id": order_id, "amount": 42.0, "email": "ada@example.com"}


@step()
async def refund(order_id: str, amount: float) -> str:
    """Refund an order."""
    _ledger(f"refund:{order_id}:{amount}")
    return f"refunded {amount} on {order_id}"


@step()
async def send_email(to: str, body: str) -> str:
    """Send an email to a customer."""
    _ledger(f"send_email:{to}")
    return f"emailed {to}"


FIRST_PLAN = [
    {
        "step": 1,
        "description": "Find the order",
        "tool": "lookup_order",
        "params": {"order_id": "12345"},
    },
    {
        "step": 2,
        "description": "Refund it",
        "tool": "refund",
        "params": {"order_id": "12345", "amount": "$1.amount"},
    },
]
SECOND_PLAN = [
    *FIRST_PLAN,
    {
        "step": 3,
        "description": "Tell the customer",
        "tool": "send_email",
        "params": {"to": "$1.email", "body": "Your refund of ${1.amount} is on its way."},
        "depends_on": [2],
    },
]


def _plan(prompt: str) -> list[dict[str, object]]:
    # Chosen by what the planner is told, not by call count: a resumed process starts counting
    # from zero, and must still give the same answer to the same question.
    return SECOND_PLAN if "email the customer" in prompt else FIRST_PLAN


@agent(
    pattern="plan_execute",
    planner_model=scripted_planner(_plan).model,
    executor_model=scripted_executor(answer="Refund processed.").model,
    tools=[lookup_order, refund, send_email],
    require_approval=True,
    approval_timeout="10m",
)
async def billing_agent(query: str) -> None:
    """Handle billing requests for a shop."""


@agent(
    pattern="plan_execute",
    planner_model=scripted_planner(_plan).model,
    executor_model=scripted_executor().model,
    tools=[lookup_order, refund],
    require_approval=True,
    approval_timeout=1.5,
)
async def impatient_agent(query: str) -> None:
    """Billing agent whose approvals expire quickly."""
