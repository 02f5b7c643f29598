"""Runs: start one and wait for it, look one up from any process, list them.

Waiting reads PyWorkflow's run table rather than an in-memory future, so it works the same
in the process that started a run and in any other process sharing the database.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

from pyworkflow import engine
from pyworkflow._store import Store, jsonable
from pyworkflow.agents.result import AgentResult
from pyworkflow.config import current_settings
from pyworkflow.events import Event, get_events
from pyworkflow.exceptions import RunNotFoundError

__all__ = ["RunHandle", "get_run", "get_run_sync", "list_runs"]

T = TypeVar("T")
_SETTLED = ("completed", "failed", "cancelled", "waiting_for_approval")
_FINISHED = ("completed", "failed", "cancelled")


class _StoreHolder:
    def __init__(self) -> None:
        self.store: Store | None = None
        self.lock = threading.Lock()


_stores = _StoreHolder()


def shared_store() -> Store:
    """The store of the configured database; the runtime's own when it is running."""
    # A runtime can only be running if its module was imported; importing it just to ask would
    # load DBOS into every read-only CLI command.
    if "pyworkflow.engine._runtime" in sys.modules:
        runtime = engine.active_runtime()
        if runtime is not None:
            return runtime.store
    url = current_settings().database_url
    with _stores.lock:
        if _stores.store is None or _stores.store.database_url != url:
            _stores.store = Store(url)
        return _stores.store


def new_run_id() -> str:
    import uuid

    return f"run_{uuid.uuid4().hex[:16]}"


async def start_and_wait(
    target: str,
    run_id: str | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    kind: Literal["agent", "workflow"],
    queue: engine.QueueSpec = engine.RUNS_QUEUE,
) -> Any:
    """Start `target` durably (or join the existing run `run_id`) and wait until it settles."""
    if engine.current_workflow_id() is not None:
        # Inside a durable run: the inner run is a recorded child, awaited durably.
        outcome = await engine.run_child(run_id, target, *args, **kwargs)
        return AgentResult.model_validate(outcome) if kind == "agent" else outcome
    run_id = await submit_run(target, run_id, args, kwargs, kind=kind, queue=queue)
    if kind == "workflow":
        settings = current_settings()
        if settings.run_mode == "client":
            return await asyncio.to_thread(
                engine.result_from_outside, settings.database_url, run_id
            )
        runtime = await asyncio.to_thread(engine.get_runtime)
        return await runtime.call(engine.workflow_result(run_id))
    return await RunHandle(run_id).wait(until=_SETTLED)


async def submit_run(
    target: str,
    run_id: str | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    kind: Literal["agent", "workflow"],
    queue: engine.QueueSpec = engine.RUNS_QUEUE,
) -> str:
    """Start `target` as a run, or put it on `queue` for the workers, as `run_mode` says.

    Returns the run's id. An id that already exists starts nothing new. A queued run's row
    says `queued` until a worker starts it.
    """
    if engine.current_workflow_id() is not None:
        raise NotImplementedError("starting a run without waiting for it from inside a run")
    settings = current_settings()
    run_id = run_id or new_run_id()
    query = str(args[0]) if kind == "agent" and args else None
    if settings.run_mode == "client":
        await asyncio.to_thread(shared_store().create_tables)  # a wrong URL fails here, clearly
        await asyncio.to_thread(
            engine.enqueue_from_outside,
            settings.database_url,
            queue,
            settings.queue_polling_interval,
            run_id,
            target,
            args,
            kwargs,
        )
    else:
        runtime = await asyncio.to_thread(engine.get_runtime)
        await runtime.call(engine.submit(queue, run_id, target, *args, **kwargs))
        if engine.route(queue, runtime.settings.run_mode) is None:
            return run_id
    # After the enqueue: a worker that already started the run keeps its `running` row.
    await asyncio.to_thread(shared_store().insert_run, run_id, kind, target, query, status="queued")
    return run_id


def run_coroutine_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from synchronous code (the `*_sync` twins)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError(
        "a *_sync function was called inside a running event loop; await the async one"
    )


class RunHandle:
    """A run, by id, from any process sharing the database."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def __repr__(self) -> str:
        return f"RunHandle({self.run_id!r})"

    def _row(self) -> dict[str, Any]:
        row = shared_store().get_run(self.run_id)
        if row is None:
            raise RunNotFoundError(self.run_id)
        return row

    async def status(self) -> str:
        """`queued` (no worker has started it yet), `running`, `waiting_for_approval`,
        `completed`, `failed` or `cancelled`."""
        return str((await asyncio.to_thread(self._row))["status"])

    async def result(self) -> AgentResult | Any:
        """The run's result as it stands now (an `AgentResult` for agent runs)."""
        row = await asyncio.to_thread(self._row)
        return _result_of(row)

    async def wait(
        self, *, timeout: float | None = None, until: tuple[str, ...] = _FINISHED
    ) -> Any:
        """Wait until the run's status is one of `until` and return its result.

        Raises:
            TimeoutError: `timeout` seconds passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.02
        while True:
            row = await asyncio.to_thread(shared_store().get_run, self.run_id)
            if row is not None and row["status"] in until:
                return _result_of(row)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {self.run_id!r} did not finish within {timeout}s")
            await asyncio.sleep(delay)
            # Capped low: the caller learns of a finished run at most this late, for one
            # primary-key read per poll (a 0.5 s cap made run() return up to 0.5 s late).
            delay = min(delay * 1.5, 0.05)

    async def events(self) -> list[Event]:
        return await get_events(self.run_id)

    async def cancel(self) -> None:
        """Stop the run: no new step starts; steps in flight are abandoned."""
        await asyncio.to_thread(self._row)
        settings = current_settings()
        if settings.run_mode == "client":  # no runtime here, by design
            await asyncio.to_thread(engine.cancel_from_outside, settings.database_url, self.run_id)
        else:
            runtime = await asyncio.to_thread(engine.get_runtime)
            await runtime.call(engine.cancel_run(self.run_id))
        await asyncio.to_thread(_record_cancellation, self.run_id)


def _record_cancellation(run_id: str) -> None:
    store = shared_store()
    row = store.get_run(run_id)
    if row is None or row["status"] in _FINISHED:
        return
    # The cancelled run writes nothing more, so the next number is free.
    last = store.read_events(run_id)
    seq = last[-1].seq + 1 if last else 1
    store.append_event(run_id, seq, "AGENT_CANCELLED", {"run_id": run_id})
    result = _result_of(row)
    if isinstance(result, AgentResult):
        result = result.model_copy(update={"status": "cancelled", "error": "cancelled"})
        store.update_run(run_id, status="cancelled", result=result.model_dump(mode="json"))
    else:
        store.update_run(run_id, status="cancelled")


def _result_of(row: dict[str, Any]) -> Any:
    if row["kind"] == "agent":
        if row["result"] is None:
            return AgentResult(
                run_id=row["run_id"],
                status=row["status"],
                query=row["query"] or "",
                hook_id=row["hook_id"],
            )
        return AgentResult.model_validate(row["result"])
    # A workflow's result is stored wrapped, so a None result and "no result yet" differ.
    return row["result"]["value"] if row["result"] else None


async def get_run(run_id: str) -> RunHandle:
    """A handle on the run `run_id`.

    Raises:
        RunNotFoundError: no such run in the configured database.
    """
    handle = RunHandle(run_id)
    await asyncio.to_thread(handle._row)
    return handle


def get_run_sync(run_id: str) -> RunHandle:
    """Synchronous twin of `get_run`."""
    handle = RunHandle(run_id)
    handle._row()
    return handle


def list_runs(*, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
    """Recent runs, newest first."""
    return shared_store().list_runs(limit=limit, status=status)


async def record_workflow_run(name: str, body: Coroutine[Any, Any, T]) -> T:
    """Run a `@workflow` body inside its durable run, keeping its row in the runs table."""
    run_id = engine.current_workflow_id()
    assert run_id is not None
    store = engine.get_runtime().store
    await engine.run_step("pyworkflow.run", store.insert_run, run_id, "workflow", name, None)
    try:
        result = await body
    except Exception as exc:
        await engine.run_step(
            "pyworkflow.status",
            store.update_run,
            run_id,
            status="failed",
            error=f"{type(exc).__name__}: {exc}",
        )
        raise
    await engine.run_step(
        "pyworkflow.status",
        store.update_run,
        run_id,
        status="completed",
        result={"value": jsonable(result)},
    )
    return result
