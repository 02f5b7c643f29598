"""Messages into runs from code that is not a run: an approver, a CLI, a webhook handler.

Uses the running runtime when this process has one; otherwise a light client on the same
database, so a second process can approve a plan without becoming a worker.
"""

from __future__ import annotations

import threading
from typing import Any

from dbos import DBOS, DBOSClient

from pyworkflow.engine._runtime import active_runtime


class _ClientHolder:
    def __init__(self) -> None:
        self.clients: dict[str, DBOSClient] = {}
        self.lock = threading.Lock()


_clients = _ClientHolder()


def _client(database_url: str) -> DBOSClient:
    with _clients.lock:
        client = _clients.clients.get(database_url)
        if client is None:
            client = DBOSClient(system_database_url=database_url)
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


def close_clients() -> None:
    with _clients.lock:
        for client in _clients.clients.values():
            client.destroy()
        _clients.clients.clear()
