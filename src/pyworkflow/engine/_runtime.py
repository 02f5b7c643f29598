"""The durable runtime of one process: DBOS on its own event-loop thread, plus heartbeats.

Workflows run on a loop this module owns, not on the caller's: `run_sync()` and short-lived
`asyncio.run()` calls may close their loop while a run is suspended, and a workflow task on a
closed loop would die with it. Callers submit coroutines here and await the outcome.

Executor ids (DESIGN.md §7.4): every process has its own, so two processes never run one
step twice. A process records a heartbeat; runs left by a process that died (its pid is gone
on this host, or its heartbeat is older than `takeover_after`) are taken over explicitly:
they go back on their queue, and whichever live process polls it first resumes them.

Every started runtime also polls the database's queues (`_queues.py`), so it is a worker for
queued runs and plan steps whatever its own `run_mode`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

from dbos import DBOS, DBOSConfig

from pyworkflow._process import pid_alive
from pyworkflow._store import Store
from pyworkflow.config import Settings, lock_settings, mask_password
from pyworkflow.engine._queues import RUNS_QUEUE, STEPS_QUEUE, QueueSpec, declared_queues, route
from pyworkflow.engine._targets import resolve_target
from pyworkflow.exceptions import ConfigurationError

T = TypeVar("T")

# Pinned, not derived from source (DESIGN.md §7.3): DBOS's default hashes workflow source, so a
# code edit would silently strand runs waiting from older code. Bump only on breaking changes
# to what runs record.
APPLICATION_VERSION = "pyworkflow-1"
# The name runs, queues and workers are filed under in the engine's tables.
APPLICATION_NAME = "pyworkflow"
HEARTBEAT_SECONDS = 2.0
# DBOS restarts recovered runs through its internal queue, which it polls once a second: a run
# taken over from a dead process sat idle up to that long before resuming. Polled this often,
# it resumes within a tenth of a second, for about 2% of a core while the process is idle.
RECOVERY_POLL_SECONDS = 0.1

logger = logging.getLogger("pyworkflow")


class Runtime:
    """One process's durable runtime. Create through `pyworkflow.engine.get_runtime()`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.executor_id = settings.executor_id or (
            f"{self.hostname}-{self.pid}-{uuid.uuid4().hex[:8]}"
        )
        self.store = Store(settings.database_url)
        self.started_at = time.time()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None
        self._registered_queues: dict[str, QueueSpec] = {}

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.store.create_tables()
        self.store.heartbeat(self.executor_id, self.hostname, self.pid, self.started_at)
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run_loop, args=(ready,), name="pyworkflow-runtime", daemon=True
        )
        self._thread.start()
        ready.wait()
        try:
            self.submit(self._launch()).result()
        except Exception:
            self._stop_loop()
            raise
        lock_settings(True)
        self._heartbeat_thread = threading.Thread(
            target=self._heartbeat_forever, name="pyworkflow-heartbeat", daemon=True
        )
        self._heartbeat_thread.start()
        if self.settings.recover:
            self.take_over_dead_executors()

    def _run_loop(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        ready.set()
        self._loop.run_forever()

    async def _launch(self) -> None:
        # Launched from inside our loop so DBOS adopts it as the loop for workflow coroutines,
        # including those it recovers.
        config: DBOSConfig = {
            "name": APPLICATION_NAME,
            "system_database_url": self.settings.database_url,
            "application_version": APPLICATION_VERSION,
            "executor_id": self.executor_id,
            "notification_listener_polling_interval_sec": self.settings.polling_interval,
            "sys_db_pool_size": self.settings.database_pool_size,
            "log_level": self.settings.log_level,
            "run_admin_server": False,
        }  # type: ignore[typeddict-unknown-key]
        # The one DBOS workflow must be registered before launch, or recovery at launch could
        # not resume a pending run; the engine package imports its modules only on first use.
        from pyworkflow.engine import _workflows  # noqa: F401

        try:
            DBOS(config=config)
            _poll_recovered_runs(RECOVERY_POLL_SECONDS)
            DBOS.launch()
        except Exception as exc:
            DBOS.destroy()
            text = str(exc).strip().splitlines()
            raise ConfigurationError(
                f"cannot start the durable runtime on {mask_password(self.settings.database_url)!r}: "
                f"{text[0] if text else type(exc).__name__}"
            ) from exc
        # Only the queues this process will put work on: each one registered costs every
        # process on the database a polling thread.
        queues = [q for q in declared_queues() if route(q, self.settings.run_mode) is not None]
        if self.settings.run_mode == "queue":
            queues = [RUNS_QUEUE, STEPS_QUEUE, *queues]
        for spec in queues:
            await self.ensure_queue(spec)

    async def ensure_queue(self, spec: QueueSpec) -> None:
        """Register `spec` in the database (once per runtime) so every worker polls it."""
        if self._registered_queues.get(spec.name) == spec:
            return
        # Our code's limits are the truth: a row left by an earlier version is overwritten.
        await DBOS.register_queue_async(
            spec.name,
            global_concurrency=spec.concurrency,
            worker_concurrency=spec.worker_concurrency,
            polling_interval_sec=self.settings.queue_polling_interval,
            on_conflict="always_update",
        )
        self._registered_queues[spec.name] = spec

    def shutdown(self) -> None:
        """Stop this process's runtime. Runs in progress stay resumable by the next process."""
        self._stopping.set()
        if self._loop is not None and self._loop.is_running():
            try:
                self.submit(_destroy_dbos()).result(timeout=30)
            except Exception:  # already half-stopped; the database keeps every run anyway
                logger.debug("engine shutdown raised", exc_info=True)
        self._stop_loop()
        self.store.dispose()
        lock_settings(False)

    def _stop_loop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    # --- running code on the runtime's loop ---------------------------------------------------

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if self._loop is None:
            coro.close()
            raise RuntimeError("the runtime is not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the runtime's loop and await it from any other loop."""
        return await asyncio.wrap_future(self.submit(coro))

    # --- executors ----------------------------------------------------------------------------

    def _heartbeat_forever(self) -> None:
        last_takeover = time.monotonic()
        while not self._stopping.wait(HEARTBEAT_SECONDS):
            try:
                if not self.store.heartbeat(
                    self.executor_id, self.hostname, self.pid, self.started_at
                ):
                    logger.error(
                        "executor %s was presumed dead (no heartbeat for %gs) and its runs "
                        "were taken over by another process; steps still running here may "
                        "run twice. Raise takeover_after above the longest pause a process "
                        "can have.",
                        self.executor_id,
                        self.settings.takeover_after,
                    )
                if (
                    self.settings.recover
                    and time.monotonic() - last_takeover > HEARTBEAT_SECONDS * 2
                ):
                    last_takeover = time.monotonic()
                    self.take_over_dead_executors()
            except Exception:  # a missed beat only delays takeover; never kill the process
                logger.warning("heartbeat failed", exc_info=True)

    def dead_executors(self) -> list[str]:
        """Executors sharing this database whose process is gone."""
        now = self.store.clock()
        dead = []
        for row in self.store.list_executors():
            if row.executor_id == self.executor_id:
                continue
            same_host_gone = row.hostname == self.hostname and not pid_alive(row.pid)
            silent = now - row.last_seen > self.settings.takeover_after
            if same_host_gone or silent:
                dead.append(row.executor_id)
        return dead

    def take_over_dead_executors(self) -> list[str]:
        """Resume the unfinished runs of dead processes here. Returns the workflow ids resumed.

        An executor is only taken over when every run it left can be resolved in this process
        (its agent or workflow module imports here); otherwise it is left for a process that can.
        """
        resumed: list[str] = []
        for executor_id in self.dead_executors():
            pending = DBOS.list_workflows(
                status="PENDING", executor_id=executor_id, load_output=False
            )
            if not all(_resolvable(w.input) for w in pending):
                logger.warning(
                    "runs of stopped process %s need code this process has not imported; "
                    "start a worker that imports it",
                    executor_id,
                )
                continue
            if not self.store.forget_executor(executor_id):
                continue  # another live process claimed it first
            handles = DBOS._recover_pending_workflows([executor_id])
            resumed.extend(h.get_workflow_id() for h in handles)
        return resumed


async def _destroy_dbos() -> None:
    await asyncio.to_thread(DBOS.destroy)


def _poll_recovered_runs(seconds: float) -> None:
    """Have DBOS start recovered runs within `seconds` (before launch, which reads it)."""
    from dbos._dbos import _get_dbos_instance

    try:
        _get_dbos_instance()._registry.get_internal_queue()._polling_interval_sec = seconds
    except AttributeError:  # a DBOS without this internal: recovery keeps its 1 s polling
        logger.debug("cannot set the polling interval of DBOS's internal queue", exc_info=True)


def _resolvable(inputs: Any) -> bool:
    try:
        target = inputs["args"][0] if inputs else None
        if target is None:
            return True
        resolve_target(target)
        return True
    except Exception:
        return False


class _RuntimeHolder:
    """The process's single runtime (DBOS allows one instance per process)."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        self.starting: Runtime | None = None
        self.lock = threading.Lock()


_holder = _RuntimeHolder()


def get_runtime() -> Runtime:
    """The running runtime, started on first use with the current settings."""
    from pyworkflow.config import current_settings

    starting = _holder.starting
    if starting is not None and threading.current_thread() is starting._thread:
        # Workflow code that DBOS resumes or dequeues while the runtime is still starting
        # runs on the runtime's loop; waiting for the lock there would block the very loop
        # that must finish the start (a deadlock, seen with queued runs waiting for a worker).
        return starting
    with _holder.lock:
        if _holder.runtime is None:
            settings = current_settings()
            if settings.run_mode == "client":
                raise ConfigurationError(
                    "this process is configured with run_mode='client': it enqueues runs for "
                    "workers and never executes them, so it has no durable runtime; use "
                    "run_mode='direct' or 'queue' to execute runs here"
                )
            runtime = Runtime(settings)
            _holder.starting = runtime
            try:
                runtime.start()
            finally:
                _holder.starting = None
            _holder.runtime = runtime
        return _holder.runtime


def shutdown() -> None:
    """Stop the runtime if it was started. Safe to call more than once."""
    with _holder.lock:
        runtime, _holder.runtime = _holder.runtime, None
    if runtime is not None:
        runtime.shutdown()


def active_runtime() -> Runtime | None:
    return _holder.runtime
