"""Every error PyWorkflow raises, under one root.

```
PyWorkflowError
├── ConfigurationError            settings, database URL, agent or tool definitions (raised early)
│   └── ModelResolutionError      a model string no provider matches, a missing API key
├── PlanValidationError           a plan that cannot run; `.errors` lists every problem
├── ReferenceResolutionError      a `$N` reference names no result (pyworkflow.agents.plan)
├── ToolArgumentsError            arguments that do not fit a tool's signature (pyworkflow.workflow)
├── RunNotFoundError              no run with that id in the database
├── RunError                      a run ended badly; carries `run_id` (and `step_id` where one is at fault)
│   ├── StepFailedError           a tool or executor step failed past its retries
│   ├── BudgetExceededError       max_steps / max_replans / token or cost limit reached
│   ├── ModelCallError            a model provider refused a call, or kept failing past the retries
│   ├── RunCancelledError         the run was cancelled
│   ├── ToolCallRejectedError     a human rejected a call of a `requires_approval` tool
│   ├── HookTimeoutError          nothing was delivered to a hook in time
│   │   └── ApprovalTimeoutError  nobody decided an approval in time
└── HookError                     a hook could not take a delivery; the waiting run is untouched
    ├── HookNotFoundError         unknown hook id
    ├── HookAlreadyDecidedError   the hook already received a different payload
    ├── HookExpiredError          the hook timed out before the delivery
    └── InvalidHookPayloadError   the payload does not have the shape the hook expects
```
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ApprovalTimeoutError",
    "BudgetExceededError",
    "ConfigurationError",
    "HookAlreadyDecidedError",
    "HookError",
    "HookExpiredError",
    "HookNotFoundError",
    "HookTimeoutError",
    "InvalidHookPayloadError",
    "ModelCallError",
    "ModelResolutionError",
    "PlanValidationError",
    "PyWorkflowError",
    "RunCancelledError",
    "RunError",
    "RunNotFoundError",
    "StepFailedError",
    "ToolCallRejectedError",
]


class PyWorkflowError(Exception):
    """Root of every error PyWorkflow raises."""


class ConfigurationError(PyWorkflowError):
    """The program is set up wrongly; the developer must fix code or settings."""


class ModelResolutionError(ConfigurationError):
    """A model specification names no known provider, or its credentials are missing."""


class PlanValidationError(PyWorkflowError):
    """A plan cannot run. `errors` lists every problem found, one sentence each."""

    def __init__(self, errors: Sequence[str], *, raw: str | None = None) -> None:
        self.errors: list[str] = list(errors)
        self.raw = raw
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"the plan is invalid ({len(self.errors)} problem(s)):\n{lines}")

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_plan_validation_error, (self.errors, self.raw))


def _rebuild_plan_validation_error(errors: list[str], raw: str | None) -> PlanValidationError:
    return PlanValidationError(errors, raw=raw)


class RunNotFoundError(PyWorkflowError):
    """No run with the given id exists in the configured database."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(
            f"no run with id {run_id!r} in this database; list runs with `pyworkflow runs`"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.run_id,))


class RunError(PyWorkflowError):
    """A run ended badly. `run_id` names it; `step_id` names the plan step at fault, if any."""

    def __init__(self, message: str, *, run_id: str | None = None, step_id: str | None = None):
        self.message = message
        self.run_id = run_id
        self.step_id = step_id
        where = f"run {run_id!r}" if run_id else "run"
        if step_id is not None:
            where += f", step {step_id}"
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_run_error, (type(self), self.message, self.run_id, self.step_id))


def _rebuild_run_error(
    cls: type[RunError], message: str, run_id: str | None, step_id: str | None
) -> RunError:
    return cls(message, run_id=run_id, step_id=step_id)


class StepFailedError(RunError):
    """A plan step failed past its retries and no replanning could recover it."""


class BudgetExceededError(RunError):
    """A budget (steps, replans, tokens, cost) would be exceeded; the run stopped before it."""


class ModelCallError(RunError):
    """A model call failed: the provider refused it (bad key, bad request) or kept failing.

    Attributes:
        model: The model called, e.g. 'anthropic:claude-opus-4-6'.
        status_code: The provider's HTTP status, when it answered with one.
        attempts: How many times the call was sent.
    """

    def __init__(
        self,
        message: str,
        *,
        model: str = "",
        status_code: int | None = None,
        attempts: int = 1,
        run_id: str | None = None,
        step_id: str | None = None,
    ) -> None:
        self.model = model
        self.status_code = status_code
        self.attempts = attempts
        super().__init__(message, run_id=run_id, step_id=step_id)

    def __reduce__(self) -> tuple[object, ...]:
        # Recorded results are pickled; keep the provider details through a replay.
        return (
            _rebuild_model_call_error,
            (self.message, self.model, self.status_code, self.attempts, self.run_id, self.step_id),
        )


def _rebuild_model_call_error(
    message: str,
    model: str,
    status_code: int | None,
    attempts: int,
    run_id: str | None,
    step_id: str | None,
) -> ModelCallError:
    return ModelCallError(
        message,
        model=model,
        status_code=status_code,
        attempts=attempts,
        run_id=run_id,
        step_id=step_id,
    )


class RunCancelledError(RunError):
    """The run was cancelled before it finished."""


class ToolCallRejectedError(RunError):
    """A human rejected a call of a tool marked `requires_approval` (or did not decide in time)."""


class HookTimeoutError(RunError):
    """Nothing was delivered to a hook before its timeout."""


class ApprovalTimeoutError(HookTimeoutError):
    """An approval was not decided before its timeout."""


class HookError(PyWorkflowError):
    """A hook could not accept a delivery. The run waiting on it is unharmed."""


class HookNotFoundError(HookError):
    """No hook with that id exists."""


class HookAlreadyDecidedError(HookError):
    """The hook already received a different payload."""


class HookExpiredError(HookError):
    """The hook timed out before the delivery arrived."""


class InvalidHookPayloadError(HookError):
    """The payload does not have the shape the hook expects."""
