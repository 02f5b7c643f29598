"""The engine's registered durable workflow and the operations workflow code may perform.

Exactly one function is registered with DBOS: `entry`, which runs a target by name. Agents,
user workflows and plan steps all run through it, so nothing needs registering before the
runtime launches and a worker can resume any run whose code it can import.

Workflow code is re-executed on recovery and matched to recorded operations by call order
(DESIGN.md §7.1): everything here that touches time, randomness or I/O is a recorded operation.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from dbos import DBOS, SetWorkflowID, StepOptions, WorkflowHandleAsync
from dbos._error import DBOSMaxStepRetriesExceeded, DBOSStepTimeoutError

from pyworkflow.engine._queues import QueueSpec, route
from pyworkflow.engine._runtime import get_runtime
from pyworkflow.engine._targets import resolve_target

T = TypeVar("T")


class StepAttemptsExhaustedError(Exception):
    """A step failed on every attempt; `last_error` is what the final attempt raised."""

    def __init__(self, name: str, attempts: int, last_error: Exception) -> None:
        self.name = name
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(
            f"{type(last_error).__name__}: {last_error} (after {attempts} attempts of {name})"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.name, self.attempts, self.last_error))


@DBOS.workflow(name="pyworkflow.entry")
async def entry(target: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run the function recorded as `target` as this durable workflow's body."""
    return await resolve_target(target)(*args, **kwargs)


def current_workflow_id() -> str | None:
    """The id of the durable workflow this code runs in, or None outside one."""
    try:
        return DBOS.workflow_id
    except Exception:
        return None


def in_step() -> bool:
    try:
        return bool(DBOS.step_id is not None and DBOS.step_status is not None)
    except Exception:
        return False


async def run_step(
    name: str,
    fn: Callable[..., T] | Callable[..., Awaitable[T]],
    *args: Any,
    retries: int = 0,
    retry_interval: float = 1.0,
    backoff: float = 2.0,
    timeout: float | None = None,
    **kwargs: Any,
) -> T:
    """Run `fn` as one recorded operation: executed once, its result replayed after a crash.

    `retries` extra attempts are made on an exception, `retry_interval` seconds apart growing by
    `backoff`. A `timeout` (async functions only) cancels an attempt that runs too long.
    """
    options: StepOptions = {"name": name}
    if retries > 0:
        options["retries_allowed"] = True
        options["max_attempts"] = retries + 1
        options["interval_seconds"] = retry_interval
        options["backoff_rate"] = backoff
    if timeout is not None:
        if inspect.iscoroutinefunction(fn):
            options["timeout_seconds"] = timeout
        else:
            fn = _threaded_with_timeout(fn, timeout)  # type: ignore[arg-type]
    if current_workflow_id() is None:
        result = fn(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result  # type: ignore[return-value]
    try:
        return await DBOS.run_step_async(options, fn, *args, **kwargs)  # type: ignore[arg-type]
    except DBOSMaxStepRetriesExceeded as exc:
        # Callers see the tool's own last error, not the engine's wrapper around the attempts.
        last = exc.errors[-1] if exc.errors else None
        if isinstance(last, Exception):
            raise StepAttemptsExhaustedError(name, len(exc.errors), last) from last
        raise
    except DBOSStepTimeoutError:
        raise TimeoutError(f"{name} timed out after {timeout:g}s") from None


def _threaded_with_timeout(fn: Callable[..., T], timeout: float) -> Callable[..., Awaitable[T]]:
    # A thread cannot be stopped; the attempt is abandoned (and keeps running) after the
    # timeout. The docs say so: prefer async tools when a timeout matters.
    async def attempt(*args: Any, **kwargs: Any) -> T:
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn, *args, **kwargs), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"{getattr(fn, '__name__', fn)!s} timed out after {timeout:g}s"
            ) from None

    attempt.__name__ = getattr(fn, "__name__", "step")
    return attempt


async def start_child(child_id: str, target: str, *args: Any, **kwargs: Any) -> str:
    """Start `target` as a child workflow with a deterministic id; idempotent under replay."""
    with SetWorkflowID(child_id):
        handle = await DBOS.start_workflow_async(entry, target, args, kwargs)
    return handle.get_workflow_id()


async def send(destination_id: str, message: Any, topic: str) -> None:
    """Deliver `message` to a workflow's inbox; exactly once when called from workflow code."""
    await DBOS.send_async(destination_id, message, topic)
    await _wake_local_receiver(destination_id, topic)


async def _wake_local_receiver(destination_id: str, topic: str) -> None:
    # On SQLite a waiting `receive` sees a message only at the listener's next poll, every
    # Settings.polling_interval: ~5 ms of every plan step's completion. When the receiver waits
    # in this process, make the listener's check (an unconsumed message for it?) now.
    # PostgreSQL notifies receivers itself.
    from dbos._dbos import _get_dbos_instance
    from dbos._sys_db_sqlite import SQLiteSystemDatabase

    try:
        sys_db = _get_dbos_instance()._sys_db
        if not isinstance(sys_db, SQLiteSystemDatabase):
            return
        waiter = sys_db.notifications_map.get(sys_db._waiter(destination_id, topic)[0])
    except AttributeError:  # a DBOS without these internals: the listener's poll still wakes it
        return
    if waiter is not None:
        check = sys_db.recv_check  # it only calls .set() on the waiter it is given
        await asyncio.to_thread(check, destination_id, topic, waiter)  # type: ignore[arg-type]


async def receive(topic: str, timeout: float) -> Any | None:
    """Wait for the next message on `topic`; None after `timeout` seconds (a durable wait)."""
    return await DBOS.recv_async(topic, timeout_seconds=timeout)


async def now() -> float:
    """The wall clock, recorded so replays see the same value."""
    return await run_step("pyworkflow.now", time.time)


async def new_token() -> str:
    """An unguessable id, recorded so replays see the same value."""
    return await run_step("pyworkflow.token", lambda: uuid.uuid4().hex)


async def sleep(seconds: float) -> None:
    """A durable sleep: a crash during it resumes the remaining time, not the whole wait."""
    await DBOS.sleep_async(seconds)


async def start_run(run_id: str, target: str, *args: Any, **kwargs: Any) -> str:
    """Start a top-level durable run; starting an id that already exists starts nothing new."""
    return await start_child(run_id, target, *args, **kwargs)


async def submit(queue: QueueSpec, workflow_id: str, target: str, *args: Any, **kwargs: Any) -> str:
    """Start `target` as workflow `workflow_id`, through `queue` or directly as this process
    routes it (`_queues.route`): put on the queue, any worker on the database may run it.

    From workflow code this is a recorded child operation either way, so a replay finds the same
    child whichever way a recovering process would route it. Outside workflow code, an id that
    already exists starts nothing new.
    """
    runtime = get_runtime()
    routed = route(queue, runtime.settings.run_mode)
    if routed is None:
        return await start_child(workflow_id, target, *args, **kwargs)
    await runtime.ensure_queue(routed)
    with SetWorkflowID(workflow_id):
        handle = await DBOS.enqueue_workflow_async(routed.name, entry, target, args, kwargs)
    return handle.get_workflow_id()


async def cancel_run(run_id: str) -> None:
    """Cancel a run and the step workflows it started."""
    # Without the children, a step in flight stays pending and another process resumes it.
    await DBOS.cancel_workflow_async(run_id, cancel_children=True)


async def run_status(run_id: str) -> str | None:
    """The engine's status of a workflow (PENDING, SUCCESS, ERROR, CANCELLED, …) or None."""
    status = await DBOS.get_workflow_status_async(run_id)
    return status.status if status is not None else None


async def workflow_result(run_id: str) -> Any:
    """Wait for a workflow run to finish and return its result (or raise its error)."""
    handle: WorkflowHandleAsync[Any] = await DBOS.retrieve_workflow_async(run_id)
    return await handle.get_result()


async def run_child(run_id: str | None, target: str, *args: Any, **kwargs: Any) -> Any:
    """From workflow code: run `target` as a child workflow and wait for its result (recorded).

    Without `run_id` the engine derives the child's id from the parent's and its position in
    the parent's history, so a replay finds the same child.
    """
    if run_id is None:
        handle: WorkflowHandleAsync[Any] = await DBOS.start_workflow_async(
            entry, target, args, kwargs
        )
    else:
        with SetWorkflowID(run_id):
            handle = await DBOS.start_workflow_async(entry, target, args, kwargs)
    return await handle.get_result()
