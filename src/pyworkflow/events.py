"""The typed event log of a run: every phase of an agent, in order, from any process.

Events are written exactly once by the run itself (a crash and recovery never duplicates
one) and numbered by `seq`. `get_events(run_id)` reads the whole log so far, while the run
is still going if it is; `watch_events` follows it live.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict

from pyworkflow._store import Store

__all__ = ["Event", "EventType", "get_events", "get_events_sync", "watch_events"]


class EventType(str, enum.Enum):
    """Kinds of event a plan-and-execute run records."""

    AGENT_STARTED = "AGENT_STARTED"
    AGENT_PLAN_GENERATED = "AGENT_PLAN_GENERATED"
    AGENT_PLAN_APPROVAL_REQUESTED = "AGENT_PLAN_APPROVAL_REQUESTED"
    AGENT_PLAN_APPROVED = "AGENT_PLAN_APPROVED"
    AGENT_PLAN_REJECTED = "AGENT_PLAN_REJECTED"
    AGENT_STEP_STARTED = "AGENT_STEP_STARTED"
    AGENT_STEP_COMPLETED = "AGENT_STEP_COMPLETED"
    AGENT_STEP_FAILED = "AGENT_STEP_FAILED"
    AGENT_STEP_APPROVAL_REQUESTED = "AGENT_STEP_APPROVAL_REQUESTED"
    AGENT_REPLANNING = "AGENT_REPLANNING"
    AGENT_EXECUTION_COMPLETED = "AGENT_EXECUTION_COMPLETED"
    AGENT_COMPLETED = "AGENT_COMPLETED"
    AGENT_FAILED = "AGENT_FAILED"
    AGENT_CANCELLED = "AGENT_CANCELLED"
    HOOK_CREATED = "HOOK_CREATED"
    HOOK_RESUMED = "HOOK_RESUMED"


class Event(BaseModel):
    """One recorded event: its type, its payload (the seed's fields), its place and time."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    seq: int
    type: EventType
    payload: dict[str, Any]
    timestamp: float

    def __getitem__(self, key: str) -> Any:
        return self.payload[key]


def _store() -> Store:
    from pyworkflow.runs import shared_store

    return shared_store()


def _read(run_id: str, after: int) -> list[Event]:
    return [
        Event(
            run_id=r.run_id,
            seq=r.seq,
            type=EventType(r.type),
            payload=r.payload,
            timestamp=r.created_at,
        )
        for r in _store().read_events(run_id, after=after)
    ]


async def get_events(run_id: str, *, after: int = 0) -> list[Event]:
    """The run's events so far, in order (those with `seq > after`)."""
    return await asyncio.to_thread(_read, run_id, after)


def get_events_sync(run_id: str, *, after: int = 0) -> list[Event]:
    """Synchronous twin of `get_events`."""
    return _read(run_id, after)


async def watch_events(
    run_id: str, *, poll_interval: float = 0.1, until_finished: bool = True
) -> AsyncIterator[Event]:
    """Yield the run's events as they are written; stops after the run's last event."""
    seen = 0
    final = {EventType.AGENT_COMPLETED, EventType.AGENT_FAILED, EventType.AGENT_CANCELLED}
    while True:
        batch = await get_events(run_id, after=seen)
        for event in batch:
            seen = event.seq
            yield event
            if until_finished and event.type in final:
                return
        await asyncio.sleep(poll_interval)
