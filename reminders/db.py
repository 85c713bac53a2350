"""Engine, SQLite pragmas and schema migrations."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import pickle
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import configure_mappers, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.instrumentation import manager_of_class
from sqlmodel import Session

from reminders.models import Heartbeat

# alembic is imported where migrations run: it takes a seventh of a second to import, and
# every process imports this module (a bulk import's writer process is waited for).
if TYPE_CHECKING:
    from alembic.config import Config

Model = TypeVar("Model")
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
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
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False}, hide_parameters=True
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return sa.create_engine(url, pool_pre_ping=True, hide_parameters=True)


_write_locks: weakref.WeakKeyDictionary[sa.Engine, threading.Lock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def _write_lock(engine: sa.Engine) -> AbstractContextManager[object]:
    # SQLite lets one writer in at a time and makes the others poll in growing sleeps:
    # under concurrent requests that turns into seconds of tail latency. Writers in this
    # process wait on a lock instead and start the moment it is free; WAL readers are
    # not held up. Other processes (a separate worker) still meet the busy timeout.
    # The lock is not handed over in order: a thread that writes in a loop must leave it
    # free between writes, or waiting writers may never get in (the sweep pauses).
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


def alembic_config(url: str) -> Config:
    """Return an alembic configuration for `url`, with no alembic.ini needed."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = url
    return config


def migrate(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the database at `url` to the newest schema, or to `revision`; return its
    revision before and after (None: no schema). Safe to run again."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    engine = create_db_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as connection:
            if sqlite:
                # Migrations rebuild SQLite tables (copy, drop, rename): with foreign keys
                # on, dropping a table others refer to fails. They are checked after.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            with connection.begin():
                before = MigrationContext.configure(connection).get_current_revision()
                config = alembic_config(url)
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                after = MigrationContext.configure(connection).get_current_revision()
                broken = (
                    connection.exec_driver_sql("PRAGMA foreign_key_check").all() if sqlite else []
                )
                if broken:
                    raise RuntimeError(f"the migration left {len(broken)} broken reference(s)")
    finally:
        engine.dispose()
    return before, after


def schema_mismatch(engine: sa.Engine) -> str | None:
    """Return why the database behind `engine` does not have the schema this code needs
    (never migrated, or at another revision), or None when it has."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = alembic_config(engine.url.render_as_string(hide_password=False))
    heads = set(ScriptDirectory.from_config(config).get_heads())
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if current == heads:
        return None
    if not current:
        return "the database has no schema yet: run `reminders migrate`"
    return (
        f"the database is at schema revision {', '.join(sorted(current))}, this version "
        f"needs {', '.join(sorted(heads))}: run `reminders migrate`"
    )


Progress = Callable[[int, int], None]


def sqlite_file(url: str) -> Path:
    """Return the file of an SQLite database URL; raise ValueError for any other."""
    path = sa.engine.make_url(url).database
    if not url.startswith("sqlite") or not path or path == ":memory:":
        raise ValueError("only an SQLite database file can be copied this way")
    return Path(path)


def _open_existing(path: Path) -> sqlite3.Connection:
    # Opened read-write (SQLite's backup reads through the WAL) but never created.
    return sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000
    )


def _copy(source: sqlite3.Connection, target: Path, progress: Progress | None) -> None:
    """Copy with SQLite's online backup into `target`, in steps: writers wait only for
    a step."""

    def step(_status: int, remaining: int, total: int) -> None:
        if progress is not None:
            progress(total - remaining, total)

    with contextlib.closing(sqlite3.connect(target)) as copy:
        source.backup(copy, pages=1024, progress=step)


def backup_sqlite(url: str, target: Path, progress: Progress | None = None) -> int:
    """Copy the SQLite database at `url` to the new file `target` with SQLite's online
    backup, a consistent copy while the service keeps writing; return its size in bytes.
    `progress(pages_copied, pages)` is called after each step.

    Raises ValueError for a database that is not an SQLite file, FileNotFoundError if
    there is none yet, FileExistsError if `target` exists (a backup never overwrites
    one); a copy that fails half-way is removed."""
    path = sqlite_file(url)
    if not path.is_file():
        raise FileNotFoundError(path)
    if not target.parent.is_dir():
        raise NotADirectoryError(f"no folder {target.parent} to copy into")
    with contextlib.closing(_open_existing(path)) as source:
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(descriptor)
        try:
            _copy(source, target, progress)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
    return target.stat().st_size


def erased_patients(path: Path) -> list[tuple[str, str | None, str]]:
    """Return the patients erased in the SQLite database file `path`: (id, by whom,
    when), read without changing the file."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        query = "SELECT id, erased_by, erased_at FROM patient WHERE erased_at IS NOT NULL"
        try:
            return [(str(i), by, str(at)) for i, by, at in db.execute(query)]
        except sqlite3.OperationalError:  # a schema from before erasure existed
            return []


def check_backup(backup: Path) -> str:
    """Return the schema revision of a backup file; raise ValueError saying what is
    wrong with it (not SQLite, damaged, not a reminders database, or from a newer
    version than this code)."""
    from alembic.script import ScriptDirectory

    if not backup.is_file():
        raise ValueError(f"{backup} is not a file")
    try:
        with contextlib.closing(_open_existing(backup)) as copy:
            (verdict,) = copy.execute("PRAGMA quick_check").fetchone()
            rows = copy.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{backup} is not a reminders database: {exc}") from None
    if verdict != "ok":
        raise ValueError(f"{backup} is damaged: {verdict}")
    if len(rows) != 1:
        raise ValueError(f"{backup} has no schema revision")
    revision = str(rows[0][0])
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    if revision not in {s.revision for s in scripts.walk_revisions()}:
        raise ValueError(f"{backup} is at schema revision {revision}, unknown to this version")
    return revision


def restore_sqlite(url: str, backup: Path, progress: Progress | None = None) -> Path | None:
    """Make the database at `url` a copy of `backup` (check it with `check_backup`
    first), after saving the current database beside it; return where it was saved (None
    when there was none). Run `migrate` after it, with the service stopped throughout."""
    path = sqlite_file(url)
    saved = None
    if path.is_file():
        saved = path.with_name(f"{path.name}.before-restore-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        backup_sqlite(url, saved)
    with contextlib.closing(_open_existing(backup)) as source:
        # Through SQLite, not a file copy: the database's own -wal and -shm stay right.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        _copy(source, path, progress)
    return saved


@dataclass(frozen=True, slots=True)
class PreparedInsert:
    """An INSERT compiled for one dialect with its rows' parameters, ready to run; plain
    data, so one process can prepare it and another run it."""

    sql: str
    params: list[Any]


def prepare_insert(
    dialect: sa.Dialect,
    model: type[Any],
    keys: Sequence[str],
    rows: list[tuple[Any, ...]],
    *,
    ignore_conflicts: bool = False,
) -> PreparedInsert:
    """Return the INSERT of rows given as tuples of `keys`' values; with
    `ignore_conflicts`, a row whose unique key is taken will be skipped.

    The statement is compiled once and only the columns whose type converts values go
    through its bind processor, memoized, because bulk rows repeat the same timestamps
    and dates; the ORM's bulk path is several times slower for the plans enrollment
    writes.
    """
    sql, processors, positional = _compiled_insert(
        dialect, table_of(model), tuple(keys), ignore_conflicts
    )
    order = list(keys) if positional is None else list(positional)
    if rows and order != list(keys):
        rows = _pick(rows, [keys.index(key) for key in order])
    params: list[Any] = rows
    converting = [i for i, key in enumerate(order) if key in processors]
    if rows and converting:
        columns = list(zip(*rows, strict=True))
        for i in converting:
            columns[i] = tuple(map(_Converted(processors[order[i]]).__getitem__, columns[i]))
        params = list(zip(*columns, strict=True))
    if positional is None:
        params = [dict(zip(order, values, strict=True)) for values in params]
    return PreparedInsert(sql, params)


@lru_cache(maxsize=64)
def _compiled_insert(
    dialect: sa.Dialect, table: sa.Table, keys: tuple[str, ...], ignore_conflicts: bool
) -> tuple[str, dict[str, Callable[[Any], Any]], tuple[str, ...] | None]:
    """Return an INSERT's SQL, its columns' bind processors and its parameter order.

    Compiled once per table and set of columns: compiling costs more than a
    confirmation's whole re-plan, and every event queued for a webhook inserts."""
    statement: Any = _insert_for(dialect.name, table, ignore_conflicts)
    compiled = statement.values({k: sa.bindparam(k) for k in keys}).compile(dialect=dialect)
    positional = compiled.positiontup
    # Each column type's own conversion for this dialect (e.g. UTCDateTime's), the one
    # the compiled statement would apply to its parameters.
    processors: dict[str, Callable[[Any], Any]] = {
        key: process
        for key in keys
        if (process := table.c[key].type.dialect_impl(dialect).bind_processor(dialect))
    }
    return (
        compiled.string,
        processors,
        None if positional is None else tuple(positional),
    )


def prepare_row_insert(
    dialect: sa.Dialect,
    model: type[Any],
    rows: list[dict[str, Any]],
    *,
    ignore_conflicts: bool = False,
) -> PreparedInsert:
    """Return the INSERT of plain rows (all with the same keys), as `prepare_insert`."""
    keys = tuple(rows[0]) if rows else ()
    return prepare_insert(
        dialect, model, keys, _pick(rows, keys), ignore_conflicts=ignore_conflicts
    )


def table_of(model: type[Any]) -> sa.Table:
    """Return a model's table, whose plain columns make Core statements."""
    table: sa.Table = model.__table__
    return table


def read_columns(
    db: Session, statement: sa.Executable, params: dict[str, Any] | None = None
) -> sa.CursorResult[Any]:
    """Run a Core SELECT on the session's connection, after flushing pending ORM changes,
    and return its rows. Hot reads (a confirmation's) spent more time in the ORM's result
    processing than in SQLite; statements of plain table columns skip it."""
    db.flush()
    return db.connection().execute(statement, params)


def detached(model: type[Model], columns: Sequence[str], values: Sequence[Any]) -> Model:
    """Return an object of `model` holding a row read with Core (`columns` and their
    `values`), detached: no session tracks it.

    For hot paths that read a few whole rows: the ORM's loading cost more than the
    query. Attribute changes to a detached object are not saved; `write_columns` writes
    a change to the row and the object together.
    """
    configure_mappers()  # at once when done; a fresh process may not have yet
    row: Model = manager_of_class(model).new_instance()
    vars(row).update(zip(columns, values, strict=True))
    make_transient_to_detached(row)
    return row


def update_rows(db: Session, model: type[Any], rows: list[dict[str, Any]]) -> None:
    """Update rows by primary key `id` (all rows with the same keys) in one executemany
    inside the session's transaction, and bring any object of them the session holds in
    line, without a unit-of-work flush: hot paths (a confirmation) spent more time in the
    ORM's bookkeeping than in SQLite."""
    if not rows:
        return
    keys = tuple(key for key in rows[0] if key != "id")
    statement = _update_by_id(table_of(model), keys)
    params = [{"row_id": row["id"], **{key: row[key] for key in keys}} for row in rows]
    db.connection().execute(statement, params)
    mapper = sa.inspect(model)
    for row in rows:
        held = db.identity_map.get(mapper.identity_key_from_primary_key((row["id"],)))
        if held is not None:
            for key in keys:
                set_committed_value(held, key, row[key])


@lru_cache(maxsize=64)
def _update_by_id(table: sa.Table, keys: tuple[str, ...]) -> sa.Update:
    # Built once per table and set of columns: building costs more than running it.
    return (
        sa.update(table)
        .where(table.c.id == sa.bindparam("row_id"))
        .values({key: sa.bindparam(key) for key in keys})
    )


def write_columns(db: Session, row: Any, **values: Any) -> None:
    """Update some columns of one ORM row, as `update_rows` does."""
    update_rows(db, type(row), [{"id": row.id, **values}])
    for key, value in values.items():
        set_committed_value(row, key, value)


def run_insert(db: Session, insert: PreparedInsert) -> None:
    """Run a prepared INSERT in one executemany, inside the session's transaction."""
    if insert.params:
        db.connection().exec_driver_sql(insert.sql, insert.params)


def insert_rows(
    db: Session, model: type[Any], rows: list[dict[str, Any]], *, ignore_conflicts: bool = False
) -> None:
    """Insert plain rows (all with the same keys) in the session's transaction; with
    `ignore_conflicts`, a row whose unique key is taken is skipped."""
    if rows:
        dialect = db.connection().dialect
        run_insert(db, prepare_row_insert(dialect, model, rows, ignore_conflicts=ignore_conflicts))


def insert_tuples(
    db: Session, model: type[Any], keys: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Insert rows given as tuples of `keys`' values in the session's transaction."""
    if rows:
        run_insert(db, prepare_insert(db.connection().dialect, model, keys, rows))


def _pick(rows: Sequence[Any], keys: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Return a tuple of each row's items at `keys`, made in C."""
    if not keys:
        return []
    if len(keys) == 1:
        return [(row[keys[0]],) for row in rows]
    return list(map(itemgetter(*keys), rows))


class _Converted(dict[Any, Any]):
    """A bind processor's results by value, computed on first use; None stays None."""

    def __init__(self, process: Callable[[Any], Any]) -> None:
        super().__init__()
        self.process = process

    def __missing__(self, value: Any) -> Any:
        result = self[value] = None if value is None else self.process(value)
        return result


def _insert_for(dialect: str, table: sa.Table, ignore_conflicts: bool) -> Any:
    if not ignore_conflicts:
        return sa.insert(table)
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    raise NotImplementedError(dialect)  # pragma: no cover - only SQLite and PostgreSQL


def insert_ignore(db: Session, model: type[Any], rows: list[dict[str, Any]]) -> None:
    """Insert rows, silently keeping the existing row where a unique key already holds one.

    This is how "one reminder per session and kind, ever" is kept: by the database's
    unique key, not by a check in code that two processes could both pass.
    """
    insert_rows(db, model, rows, ignore_conflicts=True)


class InsertWriter:
    """A process of its own that runs batches of prepared inserts in the order sent,
    each batch in one transaction, while the caller prepares the next ones.

    A process, not a thread: SQLite releases the GIL only while it steps, and a writer
    thread takes it back for every row, so the two would barely overlap. Once a batch
    fails, the writer refuses every batch after it, so what is written is always the
    batches sent before the failure. Use it as a context manager; leaving waits for the
    batches sent.
    """

    def __init__(self, database_url: str) -> None:
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_writer,
            initargs=(database_url,),
        )
        # A fresh interpreter takes a while to import; start it now.
        self._pool.submit(int)

    def submit(self, inserts: list[PreparedInsert]) -> Future[None]:
        """Send a batch; the future raises what writing it raised."""
        # Pickled here, so that the writer unpickles with the collector paused.
        return self._pool.submit(_write_batch, pickle.dumps(inserts, pickle.HIGHEST_PROTOCOL))

    def close(self) -> None:
        """Wait for the batches sent, then stop the writer."""
        self._pool.shutdown(wait=True)

    def __enter__(self) -> InsertWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class EarlierBatchFailed(Exception):
    """A batch not written because one sent before it failed."""


# The writer process's own engine, made when it starts, and whether a batch failed.
_writer_engine: sa.Engine | None = None
_writer_failed = False


def _start_writer(database_url: str) -> None:
    global _writer_engine
    _writer_engine = create_db_engine(database_url)


def _write_batch(pickled: bytes) -> None:
    global _writer_failed
    assert _writer_engine is not None, "runs in a process started by _start_writer"
    if _writer_failed:
        raise EarlierBatchFailed("not written: a batch sent before it failed")
    try:
        with collector_paused(), session_scope(_writer_engine) as db:
            for insert in pickle.loads(pickled):
                run_insert(db, insert)
    except BaseException:
        _writer_failed = True
        raise


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a bulk import runs.

    A batch makes hundreds of thousands of tuples and dicts that reference counting
    frees; the collector would scan them over and over while they live. It runs again
    after.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
