"""Hooks: a durable run waits for something from outside — a human's decision, a webhook.

`hook(name, timeout=..., payload=...)` inside a run suspends it durably until
`resume_hook(hook_id, payload)` delivers, from any process. Plan approval is a hook with a
validated payload; `approve_workflow_hook()` delivers to it.
"""

from __future__ import annotations

import asyncio
import importlib
import re
from collections.abc import Callable
from typing import Any

from pyworkflow import engine
from pyworkflow._hook_store import HookStore
from pyworkflow._store import jsonable
from pyworkflow.exceptions import (
    ConfigurationError,
    HookAlreadyDecidedError,
    HookExpiredError,
    HookNotFoundError,
    HookTimeoutError,
    InvalidHookPayloadError,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: str | float | int) -> float:
    """Seconds from `30`, `"45s"`, `"30m"`, `"24h"`, `"7d"`."""
    if isinstance(value, bool):
        raise ConfigurationError(
            f"a duration is a number of seconds or text like '24h', got {value!r}"
        )
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ConfigurationError(
                f"cannot read duration {value!r}; use seconds or text like '90s', '30m', '24h', '7d'"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ConfigurationError(f"a duration must be positive, got {value!r}")
    return seconds


__all__ = [
    "HookTimeoutError",
    "approve_workflow_hook",
    "approve_workflow_hook_sync",
    "hook",
    "list_pending_hooks",
    "open_hook",
    "parse_duration",
    "resume_hook",
    "resume_hook_sync",
]


def topic_of(hook_id: str) -> str:
    return f"pyworkflow.hook:{hook_id}"


async def hook(
    name: str,
    *,
    timeout: str | float = "24h",
    payload: Any = None,
    kind: str = "hook",
    run_id: str | None = None,
) -> Any:
    """Suspend the current run until `resume_hook(hook_id, ...)` delivers; return the delivery.

    The wait is durable: the process may exit, and the run resumes in any process when the
    delivery comes. `payload` is shown to whoever decides (JSON); `list_pending_hooks()` lists
    waiting hooks with their ids.

    Raises:
        HookTimeoutError: nothing arrived within `timeout`.
    """
    opened = await open_hook(name, timeout=timeout, payload=payload, kind=kind, run_id=run_id)
    return await opened.wait()


class OpenHook:
    """A hook whose row exists (so deliveries are accepted) and that the run can wait on."""

    def __init__(self, hook_id: str, name: str, seconds: float, run_id: str | None) -> None:
        self.hook_id = hook_id
        self.name = name
        self.seconds = seconds
        self.run_id = run_id

    async def wait(self) -> Any:
        response = await engine.receive(topic_of(self.hook_id), self.seconds)
        if response is None:
            # A delivery may have been accepted just as the wait ended: the table has the last word.
            store = HookStore(engine.get_runtime().store)
            response = await engine.run_step("pyworkflow.hook-expire", store.expire, self.hook_id)
            if response is None:
                raise HookTimeoutError(
                    f"hook {self.name!r} ({self.hook_id}) timed out after {self.seconds:g}s",
                    run_id=self.run_id,
                )
        return response


async def open_hook(
    name: str,
    *,
    timeout: str | float = "24h",
    payload: Any = None,
    kind: str = "hook",
    run_id: str | None = None,
) -> OpenHook:
    """Create a hook and return it before waiting, so its id can be published first.

    The id must only be shown to anyone (an event, a status) once the hook exists, or a fast
    decision would find no hook to decide.
    """
    workflow_id = engine.current_workflow_id()
    if workflow_id is None:
        raise RuntimeError("hook() waits inside a durable run (@workflow or an agent)")
    seconds = parse_duration(timeout)
    hook_id = await new_hook_id()
    run_id = run_id or workflow_id.split("/")[0]
    store = HookStore(engine.get_runtime().store)
    expires_at = await engine.now() + seconds
    await engine.run_step(
        "pyworkflow.hook",
        store.create,
        hook_id,
        run_id,
        workflow_id,
        name,
        kind,
        jsonable(payload),
        expires_at,
    )
    return OpenHook(hook_id, name, seconds, run_id)


async def new_hook_id() -> str:
    """An unguessable hook id (128 random bits), recorded so a replay reuses it."""
    return f"hook_{await engine.new_token()}"


def _store() -> HookStore:
    from pyworkflow.runs import shared_store

    return HookStore(shared_store())


Validator = Callable[[dict[str, Any], Any], Any]


def _generic(row: dict[str, Any], payload: Any) -> Any:
    try:
        return jsonable(payload)
    except Exception as exc:  # pragma: no cover - jsonable falls back to repr
        raise InvalidHookPayloadError(f"hook payload must be JSON data: {exc}") from exc


_VALIDATORS: dict[str, Validator] = {"hook": _generic}
# Where the other kinds' validators register themselves, on import. A deciding process (the
# CLI, a web handler) may never have imported that module, and a kind must never fall back to
# accepting whatever it is sent.
_VALIDATOR_MODULES = {
    "plan_approval": "pyworkflow.agents._approval",
    "tool_approval": "pyworkflow.agents._approval",
}


def register_validator(kind: str, validator: Validator) -> None:
    """Set how deliveries to hooks of `kind` are checked (used by the approval hooks)."""
    _VALIDATORS[kind] = validator


def _validator(kind: str) -> Validator:
    if kind not in _VALIDATORS and kind in _VALIDATOR_MODULES:
        importlib.import_module(_VALIDATOR_MODULES[kind])
    validator = _VALIDATORS.get(kind)
    if validator is None:
        known = ", ".join(sorted({*_VALIDATORS, *_VALIDATOR_MODULES}))
        raise InvalidHookPayloadError(
            f"cannot check a delivery to a hook of kind {kind!r} (known kinds: {known}); "
            "nothing was delivered"
        )
    return validator


def _deliver(hook_id: str, payload: Any) -> Any:
    store = _store()
    row = store.get(hook_id) if isinstance(hook_id, str) else None
    if row is None:
        pending = ", ".join(h["hook_id"] for h in store.pending()[:5]) or "none"
        raise HookNotFoundError(f"no hook with id {hook_id!r}; pending hooks: {pending}")
    clean = _validator(row["kind"])(row, payload)
    if row["status"] == "expired":
        raise HookExpiredError(
            f"hook {hook_id!r} expired before this delivery; its run has moved on"
        )
    if row["status"] == "decided":
        if row["response"] != clean:
            raise HookAlreadyDecidedError(
                f"hook {hook_id!r} was already decided with {row['response']!r}; "
                "a hook takes one decision"
            )
    elif row["expires_at"] is not None and row["expires_at"] < _now():
        raise HookExpiredError(
            f"hook {hook_id!r} expired before this delivery; its run has moved on"
        )
    elif not store.decide(hook_id, clean):
        return _deliver(hook_id, payload)  # lost a race with another delivery: judge again
    # Sent after the row is decided, and again on a duplicate delivery: the idempotency key
    # makes the engine keep one copy, and a crash between the two steps is healed by a retry.
    from pyworkflow.runs import shared_store

    engine.send_from_outside(
        shared_store().database_url, row["workflow_id"], clean, topic_of(hook_id), hook_id
    )
    return clean


def _now() -> float:
    import time

    return time.time()


async def resume_hook(hook_id: str, payload: Any) -> None:
    """Deliver `payload` to a waiting hook, from any process.

    The payload is validated before it is accepted; a delivery identical to the accepted one
    is a no-op (safe to retry).

    Raises:
        HookNotFoundError, HookExpiredError, HookAlreadyDecidedError, InvalidHookPayloadError.
    """
    await asyncio.to_thread(_deliver, hook_id, payload)


def resume_hook_sync(hook_id: str, payload: Any) -> None:
    """Synchronous twin of `resume_hook`."""
    _deliver(hook_id, payload)


def _approval(approved: bool, feedback: str | None, plan: Any) -> dict[str, Any]:
    return {"approved": approved, "feedback": feedback, "plan": plan}


async def approve_workflow_hook(
    hook_id: str, approved: bool, feedback: str | None = None, plan: Any = None
) -> None:
    """Decide a plan (or dangerous tool call) waiting for approval, from any process.

    Args:
        hook_id: The hook named by the run's `AGENT_PLAN_APPROVAL_REQUESTED` event, or
            `result.hook_id`.
        approved: True to execute; False to reject (the planner replans with `feedback`, and
            the new plan needs approval again).
        feedback: Why — required to be useful when rejecting.
        plan: An edited plan (a list of steps) to execute instead; validated first.

    Raises:
        InvalidHookPayloadError: a malformed decision or an edited plan that fails validation;
            the run keeps waiting, unharmed.
    """
    await resume_hook(hook_id, _approval(approved, feedback, plan))


def approve_workflow_hook_sync(
    hook_id: str, approved: bool, feedback: str | None = None, plan: Any = None
) -> None:
    """Synchronous twin of `approve_workflow_hook`."""
    resume_hook_sync(hook_id, _approval(approved, feedback, plan))


def list_pending_hooks(*, run_id: str | None = None) -> list[dict[str, Any]]:
    """Hooks waiting for a delivery, oldest first (approvals included)."""
    return _store().pending(run_id=run_id)
