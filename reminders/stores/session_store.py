"""Treatment sessions: the only code that reads and writes `treatment_session` rows.

Rows come out as `SessionRow`, frozen: a change is written here and the caller gets the
changed row back. What states a session moves through is drawn in `reminders.states`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from reminders.db.rows import (
    PreparedInsert,
    insert_tuples,
    prepare_insert,
    read_columns,
    table_of,
    update_rows,
)
from reminders.ids import new_id
from reminders.models import TreatmentSession
from reminders.states import SessionStatus

_TABLE = table_of(TreatmentSession)
_C = _TABLE.c
_IN_CHUNKS = 500  # ids per IN (...): well below every database's parameter limit


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A stored session, every column in the table's order."""

    id: str
    enrollment_id: str
    local_date: date
    timezone: str
    phase: str
    status: SessionStatus
    minutes: int
    unscheduled: bool
    at_clinic: bool
    completed_at: datetime | None
    hdss: int | None
    outcome: str | None
    side_effect: str | None
    side_effect_note: str | None
    current_ma: float | None
    minutes_done: int | None
    skip_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Sequence[Any]) -> SessionRow:
        values = list(row)
        values[5] = SessionStatus(values[5])
        return cls(*values)


_KEYS = tuple(f.name for f in fields(SessionRow))
assert tuple(_C.keys()) == _KEYS, "SessionRow must list the table's columns in order"
# Built once: confirmations run these on every request, and building a statement costs
# more than running it.
_BY_ID = sa.select(_TABLE).where(_C.id == sa.bindparam("session_id"))
_ON_DAY = sa.select(_TABLE).where(
    _C.enrollment_id == sa.bindparam("enrollment_id"), _C.local_date == sa.bindparam("day")
)
_OF_ENROLLMENT = (
    sa.select(_TABLE)
    .where(_C.enrollment_id == sa.bindparam("enrollment_id"))
    .order_by(_C.local_date, _C.id)
)
# What a new planned session is given; the rest take their defaults.
NEW_COLUMNS = (
    "id", "enrollment_id", "local_date", "timezone", "phase", "status", "minutes",
    "unscheduled", "at_clinic", "created_at", "updated_at",
)  # fmt: skip


def get(db: Session, session_id: str) -> SessionRow | None:
    """Return the session `session_id`, or None."""
    found = read_columns(db, _BY_ID, {"session_id": session_id}).first()
    return None if found is None else SessionRow.of(found)


def on_day(db: Session, enrollment_id: str, day: date) -> SessionRow | None:
    """Return the enrollment's session on the local date `day` (at most one), or None."""
    found = read_columns(db, _ON_DAY, {"enrollment_id": enrollment_id, "day": day}).first()
    return None if found is None else SessionRow.of(found)


def of_enrollment(db: Session, enrollment_id: str) -> list[SessionRow]:
    """Return every session of an enrollment, oldest date first."""
    found = read_columns(db, _OF_ENROLLMENT, {"enrollment_id": enrollment_id})
    return [SessionRow.of(row) for row in found]


def of_enrollments(db: Session, enrollment_ids: Iterable[str]) -> list[SessionRow]:
    """Return every session of the enrollments, by enrollment, oldest date first."""
    return _chunked(db, _C.enrollment_id, enrollment_ids, order=(_C.local_date, _C.id))


def by_ids(db: Session, session_ids: Iterable[str]) -> list[SessionRow]:
    """Return the sessions with these ids (those that exist)."""
    return _chunked(db, _C.id, session_ids)


def planned_until(
    db: Session, latest: date, enrollment_ids: Sequence[str] | None = None
) -> list[SessionRow]:
    """Return the planned sessions on or before the local date `latest`, of every
    enrollment or only of `enrollment_ids`."""
    query = sa.select(_TABLE).where(_C.status == SessionStatus.PLANNED, _C.local_date <= latest)
    if enrollment_ids is None:
        return [SessionRow.of(row) for row in read_columns(db, query)]
    return _chunked(db, _C.enrollment_id, enrollment_ids, where=query)


def _chunked(
    db: Session,
    column: sa.ColumnElement[str],
    ids: Iterable[str],
    *,
    where: sa.Select[Any] | None = None,
    order: tuple[sa.ColumnElement[Any], ...] = (),
) -> list[SessionRow]:
    wanted = sorted(set(ids))
    query = where if where is not None else sa.select(_TABLE)
    rows: list[SessionRow] = []
    for start in range(0, len(wanted), _IN_CHUNKS):
        chunk = query.where(column.in_(wanted[start : start + _IN_CHUNKS])).order_by(*order)
        rows.extend(SessionRow.of(row) for row in read_columns(db, chunk))
    if order:
        rows.sort(key=lambda r: (r.enrollment_id, r.local_date, r.id))
    return rows


def planned_ids() -> sa.Select[Any]:
    """A subquery: the ids of every planned session."""
    return sa.select(_C.id).where(_C.status == SessionStatus.PLANNED)


def new_planned(
    enrollment_id: str,
    local_date: date,
    timezone: str,
    phase: str,
    minutes: int,
    at_clinic: bool,
    now: datetime,
    *,
    session_id: str | None = None,
    unscheduled: bool = False,
) -> tuple[Any, ...]:
    """Return a new planned session as a row of `NEW_COLUMNS`, for `insert_planned`."""
    return (
        session_id or new_id(), enrollment_id, local_date, timezone, phase,
        SessionStatus.PLANNED, minutes, unscheduled, at_clinic, now, now,
    )  # fmt: skip


def insert_planned(db: Session, rows: list[tuple[Any, ...]]) -> None:
    """Insert new planned sessions (rows from `new_planned`)."""
    insert_tuples(db, TreatmentSession, NEW_COLUMNS, rows)


def prepare_planned(dialect: sa.Dialect, rows: list[tuple[Any, ...]]) -> PreparedInsert:
    """Return the INSERT of new planned sessions, to run later or in another process
    (the bulk import's writer)."""
    return prepare_insert(dialect, TreatmentSession, NEW_COLUMNS, rows)


@dataclass(frozen=True, slots=True)
class PlanChange:
    """A stored session brought in line with a new plan: cancelled, or planned again
    with the plan's phase, length and zone."""

    session_id: str
    status: SessionStatus
    phase: str
    minutes: int
    timezone: str


def apply_plan(db: Session, changes: Sequence[PlanChange], now: datetime) -> None:
    """Write a re-plan's changes to stored sessions, in one statement."""
    update_rows(
        db,
        TreatmentSession,
        [
            {
                "id": c.session_id, "status": c.status, "phase": c.phase,
                "minutes": c.minutes, "timezone": c.timezone, "updated_at": now,
            }
            for c in changes
        ],
    )  # fmt: skip


def change(db: Session, session: SessionRow, now: datetime, **values: Any) -> SessionRow:
    """Write new values of some columns of one session (what a patient or the clinic
    recorded); return the session as now stored."""
    update_rows(db, TreatmentSession, [{"id": session.id, **values, "updated_at": now}])
    return replace(session, **values, updated_at=now)


def mark(
    db: Session, sessions: Sequence[SessionRow], status: SessionStatus, now: datetime
) -> list[SessionRow]:
    """Give the sessions one status (the sweep marks missed and unrecorded ones); return
    them as now stored."""
    rows = [{"id": s.id, "status": status, "updated_at": now} for s in sessions]
    update_rows(db, TreatmentSession, rows)
    return [replace(s, status=status, updated_at=now) for s in sessions]


def add_unscheduled(
    db: Session,
    enrollment_id: str,
    local_date: date,
    timezone: str,
    phase: str,
    minutes: int,
    now: datetime,
) -> SessionRow:
    """Add an unscheduled planned session on `local_date`, reusing the day's cancelled
    row if there is one (one row per enrollment and date); return it."""
    cancelled = on_day(db, enrollment_id, local_date)
    if cancelled is not None:
        assert cancelled.status == SessionStatus.CANCELLED, cancelled.status
        return change(db, cancelled, now, status=SessionStatus.PLANNED, unscheduled=True)
    row = new_planned(
        enrollment_id, local_date, timezone, phase, minutes, False, now, unscheduled=True
    )
    insert_planned(db, [row])
    added = get(db, row[0])
    assert added is not None
    return added


def count_by_status(db: Session) -> dict[str, int]:
    """Return how many sessions are in each status."""
    rows = db.execute(sa.select(_C.status, sa.func.count()).group_by(_C.status))
    return {status: count for status, count in rows}
