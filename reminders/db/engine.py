"""Engines, units of work, and the single-writer rule.

SQLite admits one writer at a time and makes the others poll in growing sleeps; under
concurrent writers that turns into seconds of tail latency. So every write in this
code base follows one rule, kept here and nowhere else:

1. A unit of work that writes (`session_scope`) holds the engine's write lock for its
   whole transaction. Threads of a process wait on the lock instead of polling, and
   start the moment it is free; readers (`write=False`, WAL) are never held up. Other
   processes (a separate worker) meet SQLite's busy timeout instead.
2. On the API's event loop, writes run on the loop thread and take turns in the order
   their requests arrived (`WriteTurns`) before they take the lock.
3. A thread that writes in a loop (the sweep) uses `paced_batches`: after each batch
   it leaves the lock free for as long as it held it. The lock is not handed over in
   order, and a thread that takes it again at once would keep waiting writers out.

PostgreSQL locks rows, not the database: the lock is a no-op there; the turns and the
pacing still keep the event loop fair.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import Session

from reminders.db.rows import insert_ignore
from reminders.models import Heartbeat

Item = TypeVar("Item")
SQLITE_BUSY_TIMEOUT_MS = 5000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while the dispatcher writes; foreign keys are off by default
    # in SQLite; the busy timeout waits for a writer instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Erased patients must be gone from the file, not only from the rows.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


# Worker threads that may read at once: anyio's default for FastAPI's sync routes.
READ_THREADS = 40


def create_db_engine(url: str) -> sa.Engine:
    """Return an engine for `url`; SQLite files get their folder, WAL and pragmas.

    Errors never quote a statement's parameters (they are logged, and the parameters
    name patients)."""
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            # Patient data: the folder and the file are their owner's alone (SQLite gives
            # the -wal and -shm files the database file's permissions).
            Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not Path(path).exists():  # an existing file stays as it is, read-only too
                Path(path).touch(mode=0o600)
        # As many pooled connections as the worker threads that read (anyio's 40): a
        # connection opened past the pool is closed after its one use, and opening one
        # (with its pragmas) costs more than the read it serves.
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False},
            hide_parameters=True,
            pool_size=READ_THREADS,
            max_overflow=READ_THREADS,
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return sa.create_engine(url, pool_pre_ping=True, hide_parameters=True)


_write_locks: weakref.WeakKeyDictionary[sa.Engine, threading.Lock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def _write_lock(engine: sa.Engine) -> AbstractContextManager[object]:
    # Part 1 of the rule (see the module's docstring).
    if engine.dialect.name != "sqlite":
        return nullcontext()
    with _locks_guard:
        lock = _write_locks.get(engine)
        if lock is None:
            lock = _write_locks[engine] = threading.Lock()
    return lock


@contextmanager
def session_scope(engine: sa.Engine, *, write: bool = True) -> Iterator[Session]:
    """Yield a session that commits on success and rolls back on any error.

    `write=False` for a unit of work that only reads: it runs beside writers.
    """
    with (
        _write_lock(engine) if write else nullcontext(),
        Session(engine, expire_on_commit=False) as db,
    ):
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise


class WriteTurns:
    """Part 2 of the rule: units of work that write take turns on the event loop, in
    the order their requests arrived.

    A write runs on the loop thread without yielding, so without turns the loop runs
    every request it has read back to back and reads the sockets only in between: a
    request that arrives just after a read waits a whole extra round, and under load a
    few clients keep missing rounds. Each turn yields to the loop once before it runs,
    so requests read meanwhile queue behind the waiting ones, in arrival order.
    """

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> None:
        # A lock belongs to one event loop; tests may serve the app from several.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop = asyncio.Lock(), loop
        await self._lock.acquire()
        try:
            await asyncio.sleep(0)
        except BaseException:
            self._lock.release()
            raise

    async def __aexit__(self, *_exc: object) -> None:
        assert self._lock is not None
        self._lock.release()


def paced_batches(
    engine: sa.Engine,
    items: Sequence[Item],
    size: int,
    step: Callable[[Session, Sequence[Item]], int],
) -> int:
    """Part 3 of the rule: run `step` on `items` in batches of `size`, each in its own
    unit of work that writes; after each batch the write lock stays free for as long as
    the batch held it. Return the sum of what the steps returned."""
    done, held = 0, 0.0
    for start in range(0, len(items), size):
        time.sleep(held)
        began = time.monotonic()
        with session_scope(engine) as db:
            done += step(db, items[start : start + size])
        held = time.monotonic() - began
    return done


def cannot_write(exc: sa.exc.DBAPIError) -> bool:
    """Whether the database refused a write because of where it lives (read-only, disk
    full, failing disk) rather than because of what was written."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate:  # PostgreSQL: read-only transaction, or insufficient resources
        return bool(sqlstate == "25006" or sqlstate.startswith("53"))
    text = str(exc.orig).lower()
    return any(s in text for s in ("readonly database", "disk is full", "disk i/o error"))


def mark_alive(db: Session, name: str, now: datetime) -> None:
    """Write the heartbeat row `name` (proof that the database takes writes)."""
    updated = db.execute(
        sa.update(Heartbeat).where(Heartbeat.name == name).values(at=now)  # type: ignore[arg-type]
    )
    if not updated.rowcount:  # type: ignore[attr-defined]
        insert_ignore(db, Heartbeat, [{"name": name, "at": now}])


def forget_overwritten(engine: sa.Engine, attempts: int = 20) -> bool:
    """Move everything written so far from SQLite's write-ahead log into the database
    file and empty the log, so overwritten values (an erased patient's) linger in
    neither; return False if readers kept it busy for every attempt (the hourly
    housekeeping tries again). PostgreSQL reuses dead rows' space on its own (VACUUM):
    nothing to do there. Blocks: call it from a thread."""
    if engine.dialect.name != "sqlite":
        return True
    for attempt in range(attempts):
        with engine.connect() as connection:
            busy, _, _ = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        if not busy:
            return True
        time.sleep(0.05 * (attempt + 1))
    return False
