"""The durable engine: the only package that imports `dbos`.

Everything above it speaks of runs, steps, messages and tokens; this package maps them onto
DBOS workflows, steps, notifications and its system database (DESIGN.md §7).
"""

from pyworkflow.engine._client import close_clients, send_from_outside
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
    run_status,
    start_run,
    workflow_result,
    current_workflow_id,
    entry,
    new_token,
    now,
    receive,
    run_child,
    run_step,
    send,
    sleep,
    start_child,
)

__all__ = [
    "close_clients",
    "send_from_outside",
    "cancel_run",
    "run_status",
    "start_run",
    "APPLICATION_VERSION",
    "Runtime",
    "active_runtime",
    "current_workflow_id",
    "entry",
    "get_runtime",
    "new_token",
    "now",
    "receive",
    "register_target",
    "resolve_target",
    "run_child",
    "run_step",
    "send",
    "shutdown",
    "sleep",
    "start_child",
    "target_name",
    "workflow_result",
]
