"""PyWorkflow's own tables, beside the engine's in the same database.

Runs, events, hooks and executor heartbeats live here so that any process — a CLI, a second
approver, a dashboard — can read them with plain SQL, without starting the durable runtime.
Writes that belong to a run are made from durable steps keyed by `(run_id, seq)`, so a step
re-executed after a crash inserts nothing twice.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic_core import to_jsonable_python

from pyworkflow.config import mask_password, sqlite_path
from pyworkflow.exceptions import ConfigurationError

# How long connecting to a PostgreSQL server may take before the URL is reported unusable.
CONNECT_TIMEOUT_SECONDS = 10
# How long a run's write keeps retrying while the database is unreachable or out of
# connections, before its step fails (the engine's own writes wait the same way).
TRANSIENT_RETRY_SECONDS = 300.0

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger("pyworkflow")
# Our own generator: a library must not advance the application's seeded global one.
_jitter = random.Random()


def _transient(exc: BaseException) -> bool:
    """A database error that a later attempt may not meet: a lost or refused connection, a
    full server or pool, a locked SQLite file. Not an error in the statement itself."""
    if isinstance(exc, sa.exc.TimeoutError):  # no free connection in the pool
        return True
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa.exc.OperationalError):
        text = str(exc.orig).lower()
        return any(
            marker in text
            for marker in (
                "connection",
                "too many clients",
                "server closed",
                "terminating",
                "shutting down",
                "starting up",
                "timeout",
                "locked",
                "busy",
            )
        )
    return False


def retry_transient(fn: F) -> F:
    """Retry `fn` with backoff while it fails on a transient database error.

    For the writes runs make from their durable steps: a run must not fail for good because
    the database was briefly unreachable or another process held every connection.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + TRANSIENT_RETRY_SECONDS
        delay = 0.1
        while True:
            try:
                return fn(*args, **kwargs)
            except sa.exc.DBAPIError as exc:
                if not _transient(exc) or time.monotonic() > deadline:
                    raise
                logger.warning("database unavailable (%s); retrying", _first_line(exc.orig))
            except sa.exc.TimeoutError:
                if time.monotonic() > deadline:
                    raise
                logger.warning("no free database connection; retrying")
            time.sleep(delay * (0.5 + _jitter.random()))
            delay = min(delay * 2, 5.0)

    return wrapper  # type: ignore[return-value]


metadata = sa.MetaData()

runs = sa.Table(
    "pyworkflow_runs",
    metadata,
    sa.Column("run_id", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(40), nullable=False),  # "agent" | "workflow"
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("query", sa.Text, nullable=True),
    sa.Column("status", sa.String(40), nullable=False),
    sa.Column("hook_id", sa.String(100), nullable=True),
    sa.Column("result", sa.Text, nullable=True),  # JSON
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

events = sa.Table(
    "pyworkflow_events",
    metadata,
    sa.Column("run_id", sa.String(200), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("type", sa.String(60), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # JSON
    sa.Column("created_at", sa.Float, nullable=False),
)

hooks = sa.Table(
    "pyworkflow_hooks",
    metadata,
    sa.Column("hook_id", sa.String(100), primary_key=True),
    sa.Column("run_id", sa.String(200), nullable=False, index=True),
    sa.Column("workflow_id", sa.String(300), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),  # "hook" | "plan_approval" | "tool_approval"
    sa.Column("status", sa.String(20), nullable=False),  # pending | decided | expired | cancelled
    sa.Column("payload", sa.Text, nullable=False),  # JSON: what the waiting run shows the human
    sa.Column("response", sa.Text, nullable=True),  # JSON: what was delivered
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("decided_at", sa.Float, nullable=True),
)

executors = sa.Table(
    "pyworkflow_executors",
    metadata,
    sa.Column("executor_id", sa.String(200), primary_key=True),
    sa.Column("hostname", sa.String(200), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
)


def to_json(value: Any) -> str:
    """Serialise any tool result or payload to JSON; unknown objects fall back to `repr`."""
    return json.dumps(to_jsonable_python(value, fallback=repr), ensure_ascii=False)


def jsonable(value: Any) -> Any:
    """A JSON-compatible copy of `value` (what events and results store)."""
    return to_jsonable_python(value, fallback=repr)


def sqlalchemy_url(database_url: str) -> str:
    """The SQLAlchemy form of a PyWorkflow database URL (PostgreSQL through psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url.removeprefix(prefix)
    return database_url


@dataclass(frozen=True)
class EventRow:
    run_id: str
    seq: int
    type: str
    payload: dict[str, Any]
    created_at: float


class Store:
    """Reads and writes PyWorkflow's tables in one database. Safe to share between threads."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        path = sqlite_path(database_url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # A small idle pool: every process sharing a PostgreSQL server holds its connections,
        # and the engine's own pool beside this one is the larger (`database_pool_size`).
        self.engine = sa.create_engine(
            sqlalchemy_url(database_url),
            pool_pre_ping=True,
            pool_size=2,
            max_overflow=8,
            connect_args=connect_args(database_url),
        )
        if path is not None:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._created = False
        self._lock = threading.Lock()

    def create_tables(self) -> None:
        """Create the tables if missing; a database that cannot be reached is a clear error."""
        with self._lock:
            if self._created:
                return
            for attempt in range(5):
                try:
                    _create_if_missing(self.engine)
                    break
                except sa.exc.DatabaseError as exc:
                    # Two stores creating the tables at once (a second process, or an event
                    # reader beside the runtime). IF NOT EXISTS settles most of it; PostgreSQL
                    # can still collide in its catalogue on a truly simultaneous CREATE.
                    if attempt < 4 and _created_concurrently(exc):
                        continue
                    raise ConfigurationError(
                        f"cannot use database {mask_password(self.database_url)!r}: "
                        f"{_first_line(exc.orig)}. Check PYWORKFLOW_DATABASE_URL or "
                        "configure(database_url=...)"
                    ) from exc
            self._created = True

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        self.create_tables()
        with self.engine.begin() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()

    # --- runs -------------------------------------------------------------------------------

    @retry_transient
    def insert_run(
        self, run_id: str, kind: str, name: str, query: str | None, *, status: str = "running"
    ) -> None:
        """Add a run's row; for a row already there, only promote `queued` to `running`."""
        try:
            self._insert_run(run_id, kind, name, query, status)
        except sa.exc.IntegrityError:
            # The process that enqueued the run and the worker that started it inserted the
            # row at the same moment; it exists now, so the second attempt only promotes it.
            self._insert_run(run_id, kind, name, query, status)

    def _insert_run(
        self, run_id: str, kind: str, name: str, query: str | None, status: str
    ) -> None:
        now = time.time()
        with self.begin() as conn:
            exists = conn.execute(sa.select(runs.c.status).where(runs.c.run_id == run_id)).first()
            if exists is None:
                conn.execute(
                    runs.insert().values(
                        run_id=run_id,
                        kind=kind,
                        name=name,
                        query=query,
                        status=status,
                        created_at=now,
                        updated_at=now,
                    )
                )
            elif exists[0] == "queued" and status == "running":
                conn.execute(
                    runs.update()
                    .where(runs.c.run_id == run_id, runs.c.status == "queued")
                    .values(status="running", updated_at=now)
                )

    @retry_transient
    def update_run(self, run_id: str, **values: Any) -> None:
        if "result" in values and values["result"] is not None:
            values["result"] = to_json(values["result"])
        with self.begin() as conn:
            conn.execute(
                runs.update()
                .where(runs.c.run_id == run_id)
                .values(updated_at=time.time(), **values)
            )

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        with self.begin() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).mappings().first()
        return _run_dict(row) if row is not None else None

    def list_runs(self, *, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(runs).order_by(runs.c.created_at.desc()).limit(limit)
        if status is not None:
            query = query.where(runs.c.status == status)
        with self.begin() as conn:
            rows = conn.execute(query).mappings().all()
        return [_run_dict(row) for row in rows]

    # --- events -----------------------------------------------------------------------------

    @retry_transient
    def append_event(self, run_id: str, seq: int, type_: str, payload: Any) -> float:
        """Insert one event; a second insert of the same `(run_id, seq)` is ignored."""
        now = time.time()
        with self.begin() as conn:
            exists = conn.execute(
                sa.select(events.c.created_at).where(events.c.run_id == run_id, events.c.seq == seq)
            ).first()
            if exists is not None:
                return float(exists[0])
            conn.execute(
                events.insert().values(
                    run_id=run_id, seq=seq, type=type_, payload=to_json(payload), created_at=now
                )
            )
        return now

    def read_events(self, run_id: str, *, after: int = 0) -> list[EventRow]:
        with self.begin() as conn:
            rows = conn.execute(
                sa.select(events)
                .where(events.c.run_id == run_id, events.c.seq > after)
                .order_by(events.c.seq)
            ).all()
        return [
            EventRow(r.run_id, r.seq, r.type, json.loads(r.payload), r.created_at) for r in rows
        ]

    # --- executors --------------------------------------------------------------------------

    def heartbeat(self, executor_id: str, hostname: str, pid: int, started_at: float) -> bool:
        """Record that the executor is alive. False when its row was missing (first beat, or
        another process declared it dead and took its runs over)."""
        # The database's clock, not this host's: executors on several hosts compare beats, and
        # a host whose clock ran ahead would otherwise see every other executor as silent.
        now = _database_clock(self.engine)
        with self.begin() as conn:
            # Host and pid too: a process restarted under the same executor id must not look
            # like its dead predecessor to the pid check of its neighbours.
            updated = conn.execute(
                executors.update()
                .where(executors.c.executor_id == executor_id)
                .values(last_seen=now, hostname=hostname, pid=pid, started_at=started_at)
            ).rowcount
            if not updated:
                conn.execute(
                    executors.insert().values(
                        executor_id=executor_id,
                        hostname=hostname,
                        pid=pid,
                        started_at=started_at,
                        last_seen=now,
                    )
                )
        return bool(updated)

    def clock(self) -> float:
        """The database's clock, in seconds since the epoch (what heartbeats are stamped with)."""
        with self.begin() as conn:
            return float(conn.execute(sa.select(_database_clock(self.engine))).scalar_one())

    def list_executors(self) -> Sequence[sa.Row[Any]]:
        with self.begin() as conn:
            return conn.execute(sa.select(executors)).all()

    def forget_executor(self, executor_id: str) -> bool:
        """Remove an executor's row; True for the one caller that removed it (the claimant)."""
        with self.begin() as conn:
            removed = conn.execute(
                executors.delete().where(executors.c.executor_id == executor_id)
            ).rowcount
        return bool(removed)


def connect_args(database_url: str) -> dict[str, Any]:
    """Driver options for connecting to `database_url` (a connect timeout for PostgreSQL)."""
    # libpq waits for an unresponsive server without limit; a wrong host must be an error in
    # seconds, not a hang. A `connect_timeout` in the URL itself takes precedence.
    if sqlite_path(database_url) is not None or "connect_timeout=" in database_url:
        return {}
    return {"connect_timeout": CONNECT_TIMEOUT_SECONDS}


def _database_clock(engine: sa.Engine) -> Any:
    if engine.dialect.name == "postgresql":
        return sa.cast(sa.func.extract("epoch", sa.func.clock_timestamp()), sa.Float)
    return (sa.func.julianday("now") - 2440587.5) * 86400.0


def _run_dict(row: Any) -> dict[str, Any]:
    data = dict(row)
    if data.get("result"):
        data["result"] = json.loads(data["result"])
    return data


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Several processes share one file: WAL lets readers proceed during writes, and the busy
    # timeout turns a brief lock into a short wait instead of "database is locked".
    # The timeout goes first: switching to WAL needs a moment of exclusive access, and on a
    # fresh file another connection (the engine's, a watcher's) may hold it right then.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=10000")
        # WAL is a property of the file: whoever holds the lock is setting it already.
        with contextlib.suppress(sqlite3.OperationalError):
            cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()


def _create_if_missing(engine: sa.Engine) -> None:
    # create_all checks, then creates, table by table: two creators interleave and the slower
    # fails on a table the other just made. CREATE … IF NOT EXISTS has no such gap.
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            conn.execute(sa.schema.CreateTable(table, if_not_exists=True))
            for index in table.indexes:
                conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))


def _created_concurrently(exc: sa.exc.DatabaseError) -> bool:
    text = str(exc.orig).lower()
    return "already exists" in text or "duplicate key" in text


def _first_line(exc: object) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
