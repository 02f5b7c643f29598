"""Hook rows: created by the waiting run, decided once by whoever delivers.

Kept beside `_store.py` (the same tables and engine) because deciding a hook is its own
protocol: one pending → decided (or expired) transition, won by exactly one caller.
"""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa

from pyworkflow._store import Store, hooks, to_json


class HookStore:
    """Hook rows: created by the waiting run, decided once by whoever delivers."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(
        self,
        hook_id: str,
        run_id: str,
        workflow_id: str,
        name: str,
        kind: str,
        payload: Any,
        expires_at: float | None,
    ) -> None:
        with self.store.begin() as conn:
            exists = conn.execute(
                sa.select(hooks.c.hook_id).where(hooks.c.hook_id == hook_id)
            ).first()
            if exists is None:
                conn.execute(
                    hooks.insert().values(
                        hook_id=hook_id,
                        run_id=run_id,
                        workflow_id=workflow_id,
                        name=name,
                        kind=kind,
                        status="pending",
                        payload=to_json(payload),
                        created_at=time.time(),
                        expires_at=expires_at,
                    )
                )

    def get(self, hook_id: str) -> dict[str, Any] | None:
        with self.store.begin() as conn:
            row = (
                conn.execute(sa.select(hooks).where(hooks.c.hook_id == hook_id)).mappings().first()
            )
        return _hook_dict(row) if row is not None else None

    def decide(self, hook_id: str, response: Any) -> bool:
        """Record the delivery if the hook is still pending; True for the one caller that did."""
        with self.store.begin() as conn:
            changed = conn.execute(
                hooks.update()
                .where(hooks.c.hook_id == hook_id, hooks.c.status == "pending")
                .values(status="decided", response=to_json(response), decided_at=time.time())
            ).rowcount
        return bool(changed)

    def expire(self, hook_id: str) -> dict[str, Any] | None:
        """Mark a pending hook expired. Returns the response instead if one was delivered."""
        with self.store.begin() as conn:
            conn.execute(
                hooks.update()
                .where(hooks.c.hook_id == hook_id, hooks.c.status == "pending")
                .values(status="expired", decided_at=time.time())
            )
            row = (
                conn.execute(sa.select(hooks).where(hooks.c.hook_id == hook_id)).mappings().first()
            )
        data = _hook_dict(row) if row is not None else None
        return data["response"] if data and data["status"] == "decided" else None

    def pending(self, *, run_id: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(hooks).where(hooks.c.status == "pending").order_by(hooks.c.created_at)
        if run_id is not None:
            query = query.where(hooks.c.run_id == run_id)
        with self.store.begin() as conn:
            rows = conn.execute(query).mappings().all()
        return [_hook_dict(row) for row in rows]


def _hook_dict(row: Any) -> dict[str, Any]:
    data = dict(row)
    data["payload"] = json.loads(data["payload"])
    data["response"] = json.loads(data["response"]) if data.get("response") else None
    return data
