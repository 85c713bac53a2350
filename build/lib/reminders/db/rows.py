"""Plain rows in and out, below the ORM: compiled INSERTs and UPDATEs run in one
executemany, and Core SELECTs whose rows skip the ORM's loading.

The stores (`reminders.stores`) write the hot tables this way; a prepared INSERT is
plain data, so the import's writer process (`db.bulk`) can run one prepared elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import Session

Item = TypeVar("Item")


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

    The statement is compiled once, and only the columns whose type converts values go
    through its bind processor, memoized: bulk rows repeat the same timestamps and
    dates, and the ORM's bulk path would redo that work for every row.
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


def connection_of(db: Session) -> sa.Connection:
    """Return the session's connection for a Core statement, after flushing the ORM's
    pending changes: rows the ORM added must be there before a Core row refers to them
    or a Core read looks for them."""
    db.flush()
    return db.connection()


def read_columns(
    db: Session, statement: sa.Executable, params: dict[str, Any] | None = None
) -> sa.CursorResult[Any]:
    """Run a Core SELECT in the session's transaction and return its rows: plain rows,
    without the ORM's result processing, which hot reads cannot afford."""
    return connection_of(db).execute(statement, params)


def update_rows(db: Session, model: type[Any], rows: list[dict[str, Any]]) -> None:
    """Update rows by primary key `id` (all rows with the same keys) in one executemany
    inside the session's transaction."""
    if not rows:
        return
    keys = tuple(key for key in rows[0] if key != "id")
    statement = _update_by_id(table_of(model), keys)
    params = [{"row_id": row["id"], **{key: row[key] for key in keys}} for row in rows]
    connection_of(db).execute(statement, params)


@lru_cache(maxsize=64)
def _update_by_id(table: sa.Table, keys: tuple[str, ...]) -> sa.Update:
    # Built once per table and set of columns: building costs more than running it.
    return (
        sa.update(table)
        .where(table.c.id == sa.bindparam("row_id"))
        .values({key: sa.bindparam(key) for key in keys})
    )


def run_insert(db: Session, insert: PreparedInsert) -> None:
    """Run a prepared INSERT in one executemany, inside the session's transaction."""
    if insert.params:
        connection_of(db).exec_driver_sql(insert.sql, insert.params)


def insert_rows(
    db: Session, model: type[Any], rows: list[dict[str, Any]], *, ignore_conflicts: bool = False
) -> None:
    """Insert plain rows (all with the same keys) in the session's transaction; with
    `ignore_conflicts`, a row whose unique key is taken is skipped."""
    if rows:
        dialect = db.get_bind().dialect
        run_insert(db, prepare_row_insert(dialect, model, rows, ignore_conflicts=ignore_conflicts))


def insert_tuples(
    db: Session, model: type[Any], keys: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Insert rows given as tuples of `keys`' values in the session's transaction."""
    if rows:
        run_insert(db, prepare_insert(db.get_bind().dialect, model, keys, rows))


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
    """Insert rows, silently keeping the existing row where a unique key already holds
    one."""
    insert_rows(db, model, rows, ignore_conflicts=True)


IN_CHUNK = 500  # values per IN (...): well below every database's parameter limit


def in_chunks(values: Iterable[Item]) -> Iterator[list[Item]]:
    """Yield `values` in lists short enough for one `IN (...)` each."""
    listed = list(values)
    for start in range(0, len(listed), IN_CHUNK):
        yield listed[start : start + IN_CHUNK]


def count_by(db: Session, *columns: sa.ColumnElement[Any]) -> dict[tuple[Any, ...], int]:
    """Return how many rows hold each combination of the columns' values."""
    rows = db.execute(sa.select(*columns, sa.func.count()).group_by(*columns))
    return {tuple(row[:-1]): row[-1] for row in rows}
