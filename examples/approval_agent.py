"""The billing agent from the design: plans wait for a human, and a dangerous tool asks again.

Run it:

    python examples/approval_agent.py             # start: the run waits for approval, then exits
    python examples/approval_agent.py --demo      # the whole story in one go, scripted reviewer

In real use the decision comes from another process, hours later:

    from pyworkflow import approve_workflow_hook_sync
    approve_workflow_hook_sync(hook_id, approved=False, feedback="Email the customer too")

or `pyworkflow approvals` / `pyworkflow approve HOOK_ID` on the command line. No API key is
needed: without ANTHROPIC_API_KEY the models are scripted.
"""

from __future__ import annotations

import asyncio
import os
import sys

from pyworkflow import agent, approve_workflow_hook, get_events, get_run, step
from pyworkflow.testing import scripted_executor, scripted_planner


@step()
async def lookup_order(order_id: str) -> dict[str, object]:
    """Look up an order: amount paid and the customer's email."""
    return {"order_id": order_id, "amount": 129.0, "email": "ada@example.com"}


@step(requires_approval=True)
async def charge_credit_card(order_id: str, amount: float) -> str:
    """Move money on the customer's card; negative amounts refund. Each call needs approval."""
    return f"card refunded {-amount:.2f} for order {order_id}"


@step()
async def send_email(to: str, body: str) -> str:
    """Send an email to a customer."""
    return f"email sent to {to}"


def _plan(prompt: str) -> list[dict[str, object]]:
    refund = [
        {
            "step": 1,
            "description": "Look up order 12345",
            "tool": "lookup_order",
            "params": {"order_id": "12345"},
        },
        {
            "step": 2,
            "description": "Refund the amount paid",
            "tool": "charge_credit_card",
            "params": {"order_id": "12345", "amount": -129.0},
            "depends_on": [1],
        },
    ]
    if "email" in prompt.lower() and "rejected" in prompt.lower():
        refund.append(
            {
                "step": 3,
                "description": "Tell the customer",
                "tool": "send_email",
                "params": {"to": "$1.email", "body": "Your refund of ${1.amount} is on its way."},
                "depends_on": [2],
            }
        )
    return refund


if os.environ.get("ANTHROPIC_API_KEY"):
    PLANNER, EXECUTOR = "claude-opus-4-6", "claude-haiku-3-7"
else:
    PLANNER = scripted_planner(_plan).model
    EXECUTOR = scripted_executor(answer="Order 12345 refunded and the customer notified.").model


@agent(
    pattern="plan_execute",
    planner_model=PLANNER,
    executor_model=EXECUTOR,
    tools=[lookup_order, send_email, charge_credit_card],
    require_approval=True,
    approval_timeout="24h",
)
async def billing_agent(query: str) -> None:
    """Billing agent: refunds and customer messages. Never charge without a reason."""


def show_plan(plan: list[dict[str, object]]) -> None:
    for s in plan:
        print(f"    {s['step']}. {s['description']}  [{s['tool']}]")


async def wait_for_new_hook(run_id: str, seen: set[str]) -> str:
    handle = await get_run(run_id)
    while True:
        result = await handle.result()
        if result.status == "waiting_for_approval" and result.hook_id not in seen:
            return result.hook_id  # type: ignore[return-value]
        await asyncio.sleep(0.05)


async def demo() -> None:
    result = await billing_agent.run("Process refund for order #12345")
    print(f"run {result.run_id}: {result.status}, hook {result.hook_id}")
    show_plan(result.plan)

    print("\nreviewer: rejects — 'Email the customer too'")
    await approve_workflow_hook(result.hook_id, approved=False, feedback="Email the customer too")  # type: ignore[arg-type]
    second = await wait_for_new_hook(result.run_id, {result.hook_id})  # type: ignore[arg-type]
    print("new plan, waiting for approval again:")
    show_plan((await (await get_run(result.run_id)).result()).plan)

    print("\nreviewer: approves — 'Looks good'")
    await approve_workflow_hook(second, approved=True, feedback="Looks good")
    card = await wait_for_new_hook(result.run_id, {result.hook_id, second})  # type: ignore[arg-type]
    print("charge_credit_card asks for its own approval; reviewer approves")
    await approve_workflow_hook(card, approved=True)

    final = await (await get_run(result.run_id)).wait(timeout=60)
    print(f"\n{final.status}: {final.answer}")
    print("\nevents:")
    for event in await get_events(result.run_id):
        print(f"  {event.seq:>2} {event.type.value}")


async def start_only() -> None:
    result = await billing_agent.run("Process refund for order #12345")
    print(f"run {result.run_id} is {result.status}; plan:")
    show_plan(result.plan)
    print("\nDecide from any process, e.g.:")
    print(f"  pyworkflow approve {result.hook_id} --feedback 'Looks good'")
    print(
        f"  python -c \"from pyworkflow import approve_workflow_hook_sync as a; a('{result.hook_id}', approved=True)\""
    )
    print(
        "then `pyworkflow worker --import examples.approval_agent` finishes the run if this process has exited."
    )


if __name__ == "__main__":
    asyncio.run(demo() if "--demo" in sys.argv else start_only())
    import pyworkflow

    pyworkflow.shutdown()
