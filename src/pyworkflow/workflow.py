"""`@step` and `@workflow`: durable tools and durable functions.

A `@step` is a tool: its name, description and JSON schema come from the function's signature
and docstring, and inside a durable run every call is recorded once — after a crash a finished
call returns its recorded result instead of running again. A call in flight at the crash runs
again (at-least-once), so a step that must not repeat takes `idempotency_key`: it then receives
a key that is stable across those retries.

A `@workflow` is an async function that runs durably: its steps, agents and hooks are recorded
and a crashed run resumes where it stopped.
"""

from __future__ import annotations

import functools
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar, overload

import pydantic

from pyworkflow import engine
from pyworkflow._schema import (
    format_validation_error,
    json_schema,
    parse_docstring,
    signature_model,
    validate_arguments,
)
from pyworkflow.exceptions import ConfigurationError, PyWorkflowError

__all__ = ["Step", "ToolArgumentsError", "Workflow", "as_tool", "step", "workflow"]

P = ParamSpec("P")
R = TypeVar("R")


class ToolArgumentsError(PyWorkflowError):
    """Arguments for a tool do not match its signature. `problems` lists each one."""

    def __init__(self, tool: str, problems: list[str]) -> None:
        self.tool = tool
        self.problems = problems
        super().__init__(f"invalid arguments for tool {tool!r}: " + "; ".join(problems))

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.tool, self.problems))


@dataclass(frozen=True, eq=False)
class Step(Generic[P, R]):
    """A durable tool made by `@step()`. Await it: `result = await search_web("query")`."""

    fn: Callable[P, R] | Callable[P, Awaitable[R]]
    name: str
    description: str
    parameters: dict[str, Any]
    retries: int = 0
    retry_interval: float = 1.0
    backoff: float = 2.0
    timeout: float | None = None
    requires_approval: bool = False
    arguments_model: type[pydantic.BaseModel] = field(repr=False, default=pydantic.BaseModel)
    wants_idempotency_key: bool = False
    concurrency: int | None = None
    worker_concurrency: int | None = None

    @property
    def queue(self) -> engine.QueueSpec:
        """The queue plan steps calling this tool go through (its own when it has a limit)."""
        return engine.tool_queue(self.name, self.concurrency, self.worker_concurrency)

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        bound = inspect.signature(self.fn).bind(*args, **kwargs)
        return await self.invoke(dict(bound.arguments))

    async def invoke(self, arguments: dict[str, Any], *, idempotency_key: str | None = None) -> R:
        """Call the tool with keyword arguments, durably when inside a run."""
        if self.wants_idempotency_key:
            arguments = {**arguments, "idempotency_key": idempotency_key or await _key()}
        # Bound here rather than passed on as keywords: a tool's parameter may share a name
        # with the engine's own (`name`, `timeout`, `retries`, DBOS's `func`…).
        call = functools.partial(self.fn, **arguments)
        functools.update_wrapper(call, self.fn)  # the tool's name stays in timeout messages
        return await engine.run_step(
            self.name,
            call,
            retries=self.retries,
            retry_interval=self.retry_interval,
            backoff=self.backoff,
            timeout=self.timeout,
        )

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Check and coerce arguments against the signature; raises ToolArgumentsError."""
        try:
            return validate_arguments(self.arguments_model, arguments)
        except pydantic.ValidationError as exc:
            raise ToolArgumentsError(self.name, format_validation_error(exc)) from None

    def __repr__(self) -> str:
        return f"<step {self.name!r}>"


async def _key() -> str:
    return await engine.new_token()


@overload
def step(fn: Callable[P, R], /) -> Step[P, R]: ...
@overload
def step(
    *,
    name: str | None = None,
    retries: int = 0,
    retry_interval: float = 1.0,
    backoff: float = 2.0,
    timeout: float | None = None,
    requires_approval: bool = False,
    concurrency: int | None = None,
    worker_concurrency: int | None = None,
) -> Callable[[Callable[P, R]], Step[P, R]]: ...


def step(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    retry_interval: float = 1.0,
    backoff: float = 2.0,
    timeout: float | None = None,
    requires_approval: bool = False,
    concurrency: int | None = None,
    worker_concurrency: int | None = None,
) -> Step[P, R] | Callable[[Callable[P, R]], Step[P, R]]:
    """Make a function (sync or async) a durable tool.

    Args:
        name: The tool's name for planners; defaults to the function's name.
        retries: Extra attempts after an exception, `retry_interval` seconds apart, growing by
            `backoff`. A step that still fails makes its plan step fail (and may trigger
            replanning).
        retry_interval: Seconds before the first retry.
        backoff: Multiplier of the interval after each retry.
        timeout: Seconds an attempt may take. Async tools are cancelled; a sync tool's thread is
            abandoned and keeps running, so prefer async tools when a timeout matters.
        requires_approval: Each call waits for a human's approval, even inside an approved plan.
        concurrency: Most plan steps calling this tool that run at once across every process
            sharing the database (e.g. an API's rate limit); None for no limit. A step holds
            its slot from its start to its end, its executor-model call and any approval
            wait included.
        worker_concurrency: Most such steps at once in any one process; None for no limit.
    """
    if retries < 0:
        raise ConfigurationError(f"retries must be 0 or more, got {retries!r}")
    if timeout is not None and timeout <= 0:
        raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}")

    def decorate(func: Callable[P, R]) -> Step[P, R]:
        if isinstance(func, Step):
            return func
        if not callable(func):
            raise ConfigurationError(f"@step() decorates a function, got {func!r}")
        tool_name = name or func.__name__
        queue = engine.tool_queue(tool_name, concurrency, worker_concurrency)
        if queue.limited:
            engine.declare_queue(queue)
        model = signature_model(func, tool_name)
        wants_key = "idempotency_key" in inspect.signature(func).parameters
        if wants_key:
            # The key is PyWorkflow's to pass, never the planner's or the executor model's: it
            # is no argument to validate, or every plan would lack it and need a model call.
            model = pydantic.create_model(  # type: ignore[call-overload]
                model.__name__,
                __config__=model.model_config,
                **{
                    field_name: (info.annotation, info)
                    for field_name, info in model.model_fields.items()
                    if field_name != "idempotency_key"
                },
            )
        schema = json_schema(model)
        description, _ = parse_docstring(func.__doc__)
        made: Step[P, R] = Step(
            fn=func,
            name=tool_name,
            description=description or tool_name.replace("_", " "),
            parameters=schema,
            retries=retries,
            retry_interval=retry_interval,
            backoff=backoff,
            timeout=timeout,
            requires_approval=requires_approval,
            arguments_model=model,
            wants_idempotency_key=wants_key,
            concurrency=concurrency,
            worker_concurrency=worker_concurrency,
        )
        return made

    if fn is not None:
        return decorate(fn)
    return decorate


def as_tool(obj: object) -> Step[..., Any]:
    """A tool from a `@step` or a plain function; anything else is a ConfigurationError."""
    if isinstance(obj, Step):
        return obj
    if inspect.isfunction(obj) or inspect.ismethod(obj) or inspect.isbuiltin(obj):
        return step(obj)  # type: ignore[arg-type]
    raise ConfigurationError(
        f"tools must be functions or @step() functions, got {obj!r} ({type(obj).__name__})"
    )


class Workflow(Generic[P, R]):
    """A durable async function made by `@workflow`. Await it to run it and get its result."""

    def __init__(self, fn: Callable[P, Awaitable[R]]) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise ConfigurationError(f"@workflow decorates an async function, got {fn!r}")
        self.fn = fn
        self.name = engine.target_name(fn)
        functools.update_wrapper(self, fn)
        engine.register_target(self.name, self._body)

    async def _body(self, *args: Any, **kwargs: Any) -> R:
        from pyworkflow.runs import record_workflow_run

        return await record_workflow_run(self.name, self.fn(*args, **kwargs))

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        from pyworkflow.runs import start_and_wait

        return await start_and_wait(self.name, None, args, kwargs, kind="workflow")  # type: ignore[no-any-return]

    async def run(self, *args: Any, run_id: str | None = None, **kwargs: Any) -> R:
        """Run durably and return the result. A given `run_id` makes the call idempotent."""
        from pyworkflow.runs import start_and_wait

        return await start_and_wait(self.name, run_id, args, kwargs, kind="workflow")  # type: ignore[no-any-return]

    def run_sync(self, *args: Any, run_id: str | None = None, **kwargs: Any) -> R:
        """Synchronous twin of `run`."""
        from pyworkflow.runs import run_coroutine_sync

        return run_coroutine_sync(self.run(*args, run_id=run_id, **kwargs))


def workflow(fn: Callable[P, Awaitable[R]]) -> Workflow[P, R]:
    """Make an async function a durable workflow that can call steps, agents and hooks."""
    return Workflow(fn)


def new_run_id() -> str:
    return f"run_{time.strftime('%Y%m%d')}_{uuid.uuid4().hex[:12]}"
