"""Queues: how the processes sharing one database share its work.

A run or a plan step either starts in the process that asks for it (*direct*) or is put on a
queue that every worker on the database polls. Queues live in the engine's system database, so
a queue one process registers exists for all of them; each process registers the queues its
own code declares when its runtime starts and before it first puts work on one, which also
makes its code's limits the ones in force (the last process to start wins, so run one version
of the code across a cluster).

    pyworkflow.agent.<agent name>  one per agent: its runs (`max_concurrent_runs`, ...)
    pyworkflow.tool.<tool name>    one per tool with a limit: the plan steps that call it
    pyworkflow.steps               every other plan step
    pyworkflow.runs                runs of `@workflow` functions

Work goes through its queue when the process routes work through queues (`run_mode="queue"`
or `"client"`) or when the queue has a limit to enforce; otherwise it starts directly, which
is the cheaper path for one process on SQLite.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from pyworkflow.exceptions import ConfigurationError

__all__ = [
    "RUNS_QUEUE",
    "STEPS_QUEUE",
    "QueueSpec",
    "agent_queue",
    "declare_queue",
    "declared_queues",
    "route",
    "tool_queue",
]


@dataclass(frozen=True)
class QueueSpec:
    """A queue and its limits.

    Attributes:
        name: The queue's name in the database.
        concurrency: Most items of this queue running at once across every process on the
            database; None for no limit.
        worker_concurrency: Most running at once in any one process; None for no limit.
    """

    name: str
    concurrency: int | None = None
    worker_concurrency: int | None = None

    @property
    def limited(self) -> bool:
        return self.concurrency is not None or self.worker_concurrency is not None


STEPS_QUEUE = QueueSpec("pyworkflow.steps")
RUNS_QUEUE = QueueSpec("pyworkflow.runs")


def _limits(what: str, concurrency: int | None, worker_concurrency: int | None) -> None:
    for label, value in (("concurrency", concurrency), ("worker_concurrency", worker_concurrency)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ConfigurationError(
                f"{what}: {label} must be a whole number of at least 1 or None, got {value!r}"
            )
    if (
        concurrency is not None
        and worker_concurrency is not None
        and worker_concurrency > concurrency
    ):
        raise ConfigurationError(
            f"{what}: worker_concurrency={worker_concurrency!r} exceeds "
            f"concurrency={concurrency!r}; one process cannot run more than the whole cluster"
        )


def tool_queue(tool: str, concurrency: int | None, worker_concurrency: int | None) -> QueueSpec:
    """The queue of a tool's plan steps: its own when it has a limit, else the shared one."""
    _limits(f"tool {tool!r}", concurrency, worker_concurrency)
    if concurrency is None and worker_concurrency is None:
        return STEPS_QUEUE
    return QueueSpec(f"pyworkflow.tool.{tool}", concurrency, worker_concurrency)


def agent_queue(agent: str, concurrency: int | None, worker_concurrency: int | None) -> QueueSpec:
    """The queue of an agent's runs."""
    _limits(f"agent {agent!r}", concurrency, worker_concurrency)
    return QueueSpec(f"pyworkflow.agent.{agent}", concurrency, worker_concurrency)


class _QueueRegistry:
    """Queues declared by decorators in this process, by name."""

    def __init__(self) -> None:
        self.queues: dict[str, QueueSpec] = {}
        self.lock = threading.Lock()


_registry = _QueueRegistry()
logger = logging.getLogger("pyworkflow")


def declare_queue(spec: QueueSpec) -> QueueSpec:
    """Note a queue this process's code uses, so its runtime registers it at start.

    A second declaration of a name replaces the first (a module reloaded with new limits);
    different limits are logged, since tools of one name share one queue and its limits.
    """
    with _registry.lock:
        known = _registry.queues.get(spec.name)
        if known is not None and known != spec:
            logger.warning(
                "queue %r declared again with other limits (%s, was %s); the last one applies",
                spec.name,
                _describe(spec),
                _describe(known),
            )
        _registry.queues[spec.name] = spec
    return spec


def declared_queues() -> list[QueueSpec]:
    with _registry.lock:
        return list(_registry.queues.values())


def route(spec: QueueSpec, run_mode: str) -> QueueSpec | None:
    """The queue work of `spec` goes through in a process of `run_mode`; None: start directly."""
    if run_mode == "direct" and not spec.limited:
        return None
    return spec


def _describe(spec: QueueSpec) -> str:
    return f"concurrency={spec.concurrency!r}, worker_concurrency={spec.worker_concurrency!r}"
