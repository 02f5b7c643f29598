"""The durable engine: the only package that imports `dbos`.

Everything above it speaks of runs, steps, messages and tokens; this package maps them onto
DBOS workflows, steps, notifications and its system database (DESIGN.md §7).
"""

from pyworkflow.engine._client import (
    cancel_from_outside,
    close_clients,
    enqueue_from_outside,
    result_from_outside,
    send_from_outside,
)
from pyworkflow.engine._queues import (
    RUNS_QUEUE,
    STEPS_QUEUE,
    QueueSpec,
    agent_queue,
    declare_queue,
    route,
    tool_queue,
)
from pyworkflow.engine._runtime import (
    APPLICATION_VERSION,
    Runtime,
    active_runtime,
    get_runtime,
    shutdown,
)
from pyworkflow.engine._targets import register_target, resolve_target, target_name
from pyworkflow.engine._workflows import (
    cancel_run,
    current_workflow_id,
    entry,
    new_token,
    now,
    receive,
    run_child,
    run_status,
    run_step,
    send,
    sleep,
    start_child,
    start_run,
    submit,
    workflow_result,
)

__all__ = [
    "APPLICATION_VERSION",
    "RUNS_QUEUE",
    "STEPS_QUEUE",
    "QueueSpec",
    "Runtime",
    "active_runtime",
    "agent_queue",
    "cancel_from_outside",
    "cancel_run",
    "close_clients",
    "current_workflow_id",
    "declare_queue",
    "enqueue_from_outside",
    "entry",
    "get_runtime",
    "new_token",
    "now",
    "receive",
    "register_target",
    "resolve_target",
    "result_from_outside",
    "route",
    "run_child",
    "run_status",
    "run_step",
    "send",
    "send_from_outside",
    "shutdown",
    "sleep",
    "start_child",
    "start_run",
    "submit",
    "target_name",
    "tool_queue",
    "workflow_result",
]
