"""The durable engine: the only package that imports `dbos`.

Everything above it speaks of runs, steps, messages and tokens; this package maps them onto
DBOS workflows, steps, notifications and its system database (DESIGN.md §7).
"""

from typing import TYPE_CHECKING

from pyworkflow._lazy import lazy_exports

if TYPE_CHECKING:
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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "APPLICATION_VERSION": "pyworkflow.engine._runtime",
        "QueueSpec": "pyworkflow.engine._queues",
        "RUNS_QUEUE": "pyworkflow.engine._queues",
        "Runtime": "pyworkflow.engine._runtime",
        "STEPS_QUEUE": "pyworkflow.engine._queues",
        "active_runtime": "pyworkflow.engine._runtime",
        "agent_queue": "pyworkflow.engine._queues",
        "cancel_from_outside": "pyworkflow.engine._client",
        "cancel_run": "pyworkflow.engine._workflows",
        "close_clients": "pyworkflow.engine._client",
        "current_workflow_id": "pyworkflow.engine._workflows",
        "declare_queue": "pyworkflow.engine._queues",
        "enqueue_from_outside": "pyworkflow.engine._client",
        "entry": "pyworkflow.engine._workflows",
        "get_runtime": "pyworkflow.engine._runtime",
        "new_token": "pyworkflow.engine._workflows",
        "now": "pyworkflow.engine._workflows",
        "receive": "pyworkflow.engine._workflows",
        "register_target": "pyworkflow.engine._targets",
        "resolve_target": "pyworkflow.engine._targets",
        "result_from_outside": "pyworkflow.engine._client",
        "route": "pyworkflow.engine._queues",
        "run_child": "pyworkflow.engine._workflows",
        "run_status": "pyworkflow.engine._workflows",
        "run_step": "pyworkflow.engine._workflows",
        "send": "pyworkflow.engine._workflows",
        "send_from_outside": "pyworkflow.engine._client",
        "shutdown": "pyworkflow.engine._runtime",
        "sleep": "pyworkflow.engine._workflows",
        "start_child": "pyworkflow.engine._workflows",
        "start_run": "pyworkflow.engine._workflows",
        "submit": "pyworkflow.engine._workflows",
        "target_name": "pyworkflow.engine._targets",
        "tool_queue": "pyworkflow.engine._queues",
        "workflow_result": "pyworkflow.engine._workflows",
    },
)
