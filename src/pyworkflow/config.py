"""Process-wide settings: where runs are stored and how this process takes part.

`configure()` is called once, before the first run (or never: every setting has a default and
an environment variable). Settings are a frozen value; changing them after the runtime has
started is an error rather than a silent no-op, because DBOS cannot be re-pointed in place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from pyworkflow.exceptions import ConfigurationError

__all__ = ["DEFAULT_DATABASE_URL", "Settings", "configure", "current_settings"]

DEFAULT_DATABASE_URL = "sqlite:///.pyworkflow/pyworkflow.sqlite"
_SUPPORTED_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+psycopg://", "postgres://")
RunMode = Literal["direct", "queue", "client"]
_RUN_MODES = ("direct", "queue", "client")


@dataclass(frozen=True)
class Settings:
    """Where PyWorkflow keeps runs and how this process behaves.

    Attributes:
        database_url: `sqlite:///path.sqlite` (default, a file under `.pyworkflow/`) or
            `postgresql://user:pass@host:port/db`. Env: `PYWORKFLOW_DATABASE_URL`.
        executor_id: This process's identity among processes sharing the database. Unique per
            process by default; set it to let a restarted process reclaim its own runs.
            Env: `PYWORKFLOW_EXECUTOR_ID`.
        polling_interval: Seconds between checks for new messages on SQLite (PostgreSQL is
            notified instead). Low values make step completions visible quickly.
        takeover_after: Seconds without a heartbeat after which another process's unfinished
            runs are taken over. A process on this host that no longer exists is taken over
            at once. Env: `PYWORKFLOW_TAKEOVER_AFTER`.
        recover: Resume this database's interrupted runs when the runtime starts.
        log_level: Log level for the durable engine's own logger.
        run_mode: Where this process's new runs and plan steps execute. "direct" (default):
            in this process, except work whose agent or tool has a concurrency limit, which
            goes through its queue. "queue": every run and step goes through a queue that
            all workers on the database share (what `pyworkflow worker` uses). "client":
            this process only enqueues runs and waits for them; it never executes any (no
            runtime starts here), so workers must be running. Env: `PYWORKFLOW_RUN_MODE`.
        queue_polling_interval: Seconds between a process's checks of each queue for work;
            the delay a queued run or step may wait for an idle worker.
        database_pool_size: Connections the durable engine of one process keeps open to the
            database (a few more serve notifications and PyWorkflow's own tables). Count
            processes × (this + 5) against PostgreSQL's `max_connections`.
            Env: `PYWORKFLOW_DATABASE_POOL_SIZE`.
        model_base_urls: Base URLs for OpenAI-compatible providers, by provider prefix.
    """

    database_url: str = DEFAULT_DATABASE_URL
    executor_id: str | None = None
    polling_interval: float = 0.01
    takeover_after: float = 15.0
    recover: bool = True
    log_level: str = "WARNING"
    run_mode: RunMode = "direct"
    queue_polling_interval: float = 0.1
    database_pool_size: int = 10
    model_base_urls: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_database_url(self.database_url)
        if not 0.001 <= self.polling_interval <= 10:
            raise ConfigurationError(
                f"polling_interval must be between 0.001 and 10 seconds, got {self.polling_interval!r}"
            )
        if self.takeover_after <= 0:
            raise ConfigurationError(
                f"takeover_after must be a positive number of seconds, got {self.takeover_after!r}"
            )
        if self.run_mode not in _RUN_MODES:
            raise ConfigurationError(
                f"run_mode must be one of {', '.join(map(repr, _RUN_MODES))}, got {self.run_mode!r}"
            )
        if not isinstance(self.database_pool_size, int) or self.database_pool_size < 2:
            raise ConfigurationError(
                f"database_pool_size must be a whole number of at least 2, got {self.database_pool_size!r}"
            )
        if not 0.01 <= self.queue_polling_interval <= 60:
            raise ConfigurationError(
                "queue_polling_interval must be between 0.01 and 60 seconds, "
                f"got {self.queue_polling_interval!r}"
            )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def check_database_url(url: str) -> None:
    """Raise ConfigurationError unless `url` is a database URL PyWorkflow can use."""
    if not isinstance(url, str) or not url.startswith(_SUPPORTED_SCHEMES):
        raise ConfigurationError(
            f"unsupported database URL {mask_password(str(url))!r}; use "
            "'sqlite:///path/to/file.sqlite' or 'postgresql://user:password@host:5432/dbname'"
        )
    if url.startswith("sqlite"):
        return
    import sqlalchemy as sa

    try:
        parsed = sa.make_url(url)
        port = parsed.port
    except Exception as exc:  # sqlalchemy's parser raises ArgumentError or ValueError
        raise ConfigurationError(
            f"malformed database URL {mask_password(url)!r} ({exc}); expected "
            "'postgresql://user:password@host:5432/dbname'"
        ) from None
    if not parsed.database:
        raise ConfigurationError(
            f"database URL {mask_password(url)!r} names no database; expected "
            "'postgresql://user:password@host:5432/dbname'"
        )
    if port is not None and not 0 < port < 65536:
        raise ConfigurationError(f"database URL {mask_password(url)!r} has port {port!r}")


def mask_password(url: str) -> str:
    """Return `url` with any password replaced by `***`, for error messages and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user, colon, _password = credentials.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"


def settings_from_env() -> Settings:
    """Build settings from `PYWORKFLOW_*` environment variables over the defaults."""
    env = os.environ
    values: dict[str, object] = {}
    if url := env.get("PYWORKFLOW_DATABASE_URL"):
        values["database_url"] = url
    if executor_id := env.get("PYWORKFLOW_EXECUTOR_ID"):
        values["executor_id"] = executor_id
    if takeover := env.get("PYWORKFLOW_TAKEOVER_AFTER"):
        try:
            values["takeover_after"] = float(takeover)
        except ValueError:
            raise ConfigurationError(
                f"PYWORKFLOW_TAKEOVER_AFTER must be a number of seconds, got {takeover!r}"
            ) from None
    if run_mode := env.get("PYWORKFLOW_RUN_MODE"):
        values["run_mode"] = run_mode
    if pool_size := env.get("PYWORKFLOW_DATABASE_POOL_SIZE"):
        try:
            values["database_pool_size"] = int(pool_size)
        except ValueError:
            raise ConfigurationError(
                f"PYWORKFLOW_DATABASE_POOL_SIZE must be a whole number, got {pool_size!r}"
            ) from None
    if base_url := env.get("PYWORKFLOW_OPENAI_BASE_URL"):
        values["model_base_urls"] = {"openai": base_url}
    return Settings(**values)  # type: ignore[arg-type]


class _SettingsHolder:
    """The settings in force. A holder object rather than a bare global so tests can swap it."""

    def __init__(self) -> None:
        self.settings: Settings | None = None
        self.locked = False


_holder = _SettingsHolder()


def configure(
    *,
    database_url: str | None = None,
    executor_id: str | None = None,
    polling_interval: float | None = None,
    takeover_after: float | None = None,
    recover: bool | None = None,
    log_level: str | None = None,
    model_base_urls: dict[str, str] | None = None,
    run_mode: RunMode | None = None,
    queue_polling_interval: float | None = None,
    database_pool_size: int | None = None,
) -> Settings:
    """Set where runs are stored and how this process behaves. Call before the first run.

    Arguments left as None keep their value from the environment or the defaults.

    Raises:
        ConfigurationError: a value is invalid, or the runtime has already started with
            different settings (call `pyworkflow.shutdown()` first).
    """
    base = _holder.settings or settings_from_env()
    changes = {
        key: value
        for key, value in {
            "database_url": database_url,
            "executor_id": executor_id,
            "polling_interval": polling_interval,
            "takeover_after": takeover_after,
            "recover": recover,
            "log_level": log_level,
            "model_base_urls": model_base_urls,
            "run_mode": run_mode,
            "queue_polling_interval": queue_polling_interval,
            "database_pool_size": database_pool_size,
        }.items()
        if value is not None
    }
    new = replace(base, **changes)  # type: ignore[arg-type]
    if _holder.locked and new != _holder.settings:
        raise ConfigurationError(
            "the runtime is already running with other settings; call "
            "`pyworkflow.shutdown()` before `configure()` to change them"
        )
    _holder.settings = new
    return new


def current_settings() -> Settings:
    """The settings in force: those given to `configure()`, else from the environment."""
    if _holder.settings is None:
        _holder.settings = settings_from_env()
    return _holder.settings


def lock_settings(locked: bool) -> None:
    """Forbid (or allow again) changing settings; the runtime holds them while it runs."""
    _holder.locked = locked


def reset_settings() -> None:
    """Forget configured settings (for tests and `shutdown()`)."""
    _holder.settings = None
    _holder.locked = False


def sqlite_path(url: str) -> Path | None:
    """The file behind a `sqlite:///` URL, or None for other databases."""
    if not url.startswith("sqlite:///"):
        return None
    return Path(url.removeprefix("sqlite:///"))
