"""Messages into runs from code that is not a run: an approver, a CLI, a webhook handler.

Uses the running runtime when this process has one; otherwise a light client on the same
database, so a second process can approve a plan without becoming a worker. The same client
enqueues runs for workers from a process configured with `run_mode="client"`.
"""

from __future__ import annotations

import threading
from typing import Any

from dbos import DBOS, DBOSClient
from dbos._serialization import DefaultSerializer
from dbos._sys_db import SystemDatabase

from pyworkflow._store import connect_args as _connect_args
from pyworkflow.engine._queues import QueueSpec
from pyworkflow.engine._runtime import APPLICATION_NAME, APPLICATION_VERSION, active_runtime


class _ClientHolder:
    def __init__(self) -> None:
        self.clients: dict[str, DBOSClient] = {}
        self.queues: dict[str, dict[str, QueueSpec]] = {}  # by database URL: registered here
        self.lock = threading.Lock()


_clients = _ClientHolder()


def _client(database_url: str) -> DBOSClient:
    with _clients.lock:
        client = _clients.clients.get(database_url)
        if client is None:
            client = DBOSClient(system_database_url=database_url, application_name=APPLICATION_NAME)
            _clients.clients[database_url] = client
        return client


def send_from_outside(
    database_url: str, workflow_id: str, message: Any, topic: str, idempotency_key: str
) -> None:
    """Deliver `message` to a run's inbox; a repeat with the same key delivers nothing more."""
    runtime = active_runtime()
    if runtime is not None and runtime.settings.database_url == database_url:
        runtime.submit(_send(workflow_id, message, topic, idempotency_key)).result()
        return
    _client(database_url).send(workflow_id, message, topic, idempotency_key)


async def _send(workflow_id: str, message: Any, topic: str, idempotency_key: str) -> None:
    await DBOS.send_async(workflow_id, message, topic, idempotency_key=idempotency_key)


def enqueue_from_outside(
    database_url: str,
    queue: QueueSpec,
    polling_interval: float,
    workflow_id: str,
    target: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """Put a run on `queue` for the workers of the database; an existing id enqueues nothing."""
    client = _client(database_url)
    with _clients.lock:
        registered = _clients.queues.setdefault(database_url, {})
        if not registered:
            _create_engine_tables(database_url)
        if registered.get(queue.name) != queue:
            client.register_queue(
                queue.name,
                global_concurrency=queue.concurrency,
                worker_concurrency=queue.worker_concurrency,
                polling_interval_sec=polling_interval,
                on_conflict="always_update",
            )
            registered[queue.name] = queue
    client.enqueue(
        {
            "workflow_name": "pyworkflow.entry",
            "queue_name": queue.name,
            "workflow_id": workflow_id,
            # Pinned like the workers' own version, or only "the latest version" would take it.
            "app_version": APPLICATION_VERSION,
        },
        target,
        args,
        kwargs,
    )


def _create_engine_tables(database_url: str) -> None:
    # A DBOSClient never creates the engine's tables, yet a client may be the first process on
    # a fresh database. Created here as a runtime would create them: with the notification
    # triggers that the client's own (listen_notify=False) migrations would leave out, which
    # made every step completion wait for the minute-long polling fallback instead.
    system_db = SystemDatabase.create(
        system_database_url=database_url,
        engine_kwargs={"connect_args": _connect_args(database_url)},
        engine=None,
        schema="dbos",
        serializer=DefaultSerializer(),
        executor_id=None,
        use_listen_notify=True,
    )
    try:
        system_db.run_migrations()
    finally:
        system_db.destroy()


def cancel_from_outside(database_url: str, workflow_id: str) -> None:
    """Cancel a run and the step workflows it started, from a process without a runtime."""
    _client(database_url).cancel_workflow(workflow_id, cancel_children=True)


def result_from_outside(database_url: str, workflow_id: str) -> Any:
    """Wait for a workflow to finish and return its result (or raise its error)."""
    return _client(database_url).retrieve_workflow(workflow_id).get_result()


def close_clients() -> None:
    with _clients.lock:
        for client in _clients.clients.values():
            client.destroy()
        _clients.clients.clear()
        _clients.queues.clear()
