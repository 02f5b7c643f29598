"""Workers: long-running processes that execute the runs and plan steps queued on a database.

Start as many as you like, on one machine or several, against one PostgreSQL database:

```python
from pyworkflow.worker import run_worker

run_worker(["myapp.agents"], database_url="postgresql://user:pw@db:5432/pyworkflow")
```

or `pyworkflow worker --import myapp.agents`. A worker imports the modules that define your
agents and tools, joins the queues (`run_mode="queue"`: the runs it starts and the plan steps
of the runs it executes go through queues too, so any worker may take them) and serves until
SIGTERM, SIGINT or `stop`. Every second it also takes over the runs of workers that died: on
this host as soon as their process is gone, elsewhere once their heartbeat is older than
`takeover_after`. Those runs go back on their queues and resume on whichever worker takes them,
without repeating a finished tool call.
"""

from __future__ import annotations

import importlib
import logging
import signal
import threading
from collections.abc import Callable, Sequence

from pyworkflow import engine
from pyworkflow.config import configure, mask_password
from pyworkflow.exceptions import ConfigurationError

__all__ = ["run_worker", "start_worker"]

TAKEOVER_SECONDS = 1.0

logger = logging.getLogger("pyworkflow")


def start_worker(
    *, database_url: str | None = None, executor_id: str | None = None
) -> engine.Runtime:
    """Make this process a worker: route its work through queues and start its runtime.

    Settings not given keep their configured or environment values. Returns the runtime
    (`runtime.executor_id` names this worker in the database).
    """
    configure(run_mode="queue", database_url=database_url, executor_id=executor_id)
    return engine.get_runtime()


def run_worker(
    imports: Sequence[str] = (),
    *,
    database_url: str | None = None,
    executor_id: str | None = None,
    stop: threading.Event | None = None,
    on_start: Callable[[str], None] | None = None,
) -> None:
    """Import `imports`, start a worker and serve until SIGTERM, SIGINT or `stop` is set.

    Args:
        imports: Modules defining the agents, tools and workflows to serve, e.g.
            `["myapp.agents"]`. Every worker of a database should import the same ones: a
            worker that takes a queued run or step resolves its code by module name.
        database_url: The shared database; default: `configure()`d or `PYWORKFLOW_DATABASE_URL`.
        executor_id: A stable identity for this worker. A worker restarted under the same id
            resumes its own unfinished runs at once instead of waiting to be presumed dead.
        stop: Set it to stop the worker (signals do the same when called on the main thread).
        on_start: Called with the executor id once the worker serves.

    Raises:
        ConfigurationError: a module cannot be imported, or the database cannot be used.
    """
    for module in imports:
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise ConfigurationError(
                f"worker cannot import {module!r}: {type(exc).__name__}: {exc}"
            ) from exc
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    # Takeover is driven from the loop below, every second, rather than by the heartbeat.
    configure(recover=False)
    runtime = start_worker(database_url=database_url, executor_id=executor_id)
    logger.info(
        "worker %s serving %s", runtime.executor_id, mask_password(runtime.settings.database_url)
    )
    if on_start is not None:
        on_start(runtime.executor_id)
    try:
        while True:
            try:
                resumed = runtime.take_over_dead_executors()
            except Exception:  # a database hiccup only delays the next takeover
                logger.warning("takeover check failed", exc_info=True)
            else:
                if resumed:
                    logger.info("resumed %d workflows of stopped workers", len(resumed))
            if stop.wait(TAKEOVER_SECONDS):
                break
    finally:
        engine.shutdown()
