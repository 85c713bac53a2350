"""Treatment sessions: the only code that reads and writes `treatment_session` rows.

Rows come out as `SessionRow`, frozen: a change is written here and the caller gets the
changed row back. The two hot readers get only the columns they use, also immutable:
`PlanRow` (every confirmation re-plans) and `MessageSession` (every batch of deliveries
the dispatcher prepares). What states a session moves through is drawn in
`reminders.states`.

Two places elsewhere name the table: the sweep's search for planned sessions without a
reminder (`services.reminding`, a join of sessions, patients and the outbox tuned for
that one job), and erasure's list of where a patient's data is held, which exports the
rows and clears the notes in them (`services.erasure`: one list for every table, so
export and erasure cannot drift apart).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date, datetime
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlmodel import Session

from reminders.db.rows import (
    PreparedInsert,
    count_by,
    in_chunks,
    insert_tuples,
    prepare_insert,
    read_columns,
    table_of,
    update_rows,
)
from reminders.ids import new_id
from reminders.models import Enrollment, Patient, TreatmentSession
from reminders.states import EnrollmentStatus, SessionStatus

_TABLE = table_of(TreatmentSession)
_C = _TABLE.c


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
        """The row of a `SELECT` of the whole table (columns in the table's order); built
        by position, as rows are read many at a time (a batch of deliveries' sessions)."""
        values = list(row)
        values[_STATUS] = SessionStatus(values[_STATUS])
        return cls(*values)


_KEYS = tuple(f.name for f in fields(SessionRow))
_STATUS = _KEYS.index("status")
assert tuple(_C.keys()) == _KEYS, "SessionRow must list the table's columns in order"
# Built once: confirmations run these on every request, and building a statement costs
# more than running it.
_BY_ID = sa.select(_TABLE).where(_C.id == sa.bindparam("session_id"))
_WITH_COURSE = (
    sa.select(Enrollment, Patient, *_C)
    .select_from(_TABLE)
    .join(Enrollment, Enrollment.id == _C.enrollment_id)  # type: ignore[arg-type]
    .join(Patient, Patient.id == Enrollment.patient_id)  # type: ignore[arg-type]
    .where(_C.id == sa.bindparam("session_id"))
)
_ON_DAY = sa.select(_TABLE).where(
    _C.enrollment_id == sa.bindparam("enrollment_id"), _C.local_date == sa.bindparam("day")
)


def _of_enrollment(*columns: sa.ColumnElement[Any]) -> sa.Select[Any]:
    return (
        sa.select(*columns)
        .where(_C.enrollment_id == sa.bindparam("enrollment_id"))
        .order_by(_C.local_date, _C.id)
    )


_OF_ENROLLMENT = _of_enrollment(*_C)


def get(db: Session, session_id: str) -> SessionRow | None:
    """Return the session `session_id`, or None."""
    found = read_columns(db, _BY_ID, {"session_id": session_id}).first()
    return None if found is None else SessionRow.of(found)


def with_course(db: Session, session_id: str) -> tuple[SessionRow, Enrollment, Patient] | None:
    """Return the session `session_id` with its enrollment and patient, or None: what
    every confirmation and skip starts from, in one query."""
    found = db.execute(_WITH_COURSE, {"session_id": session_id}).first()
    if found is None:
        return None
    enrollment, patient, *columns = found
    return SessionRow.of(columns), enrollment, patient


def on_day(db: Session, enrollment_id: str, day: date) -> SessionRow | None:
    """Return the enrollment's session on the local date `day` (at most one), or None."""
    found = read_columns(db, _ON_DAY, {"enrollment_id": enrollment_id, "day": day}).first()
    return None if found is None else SessionRow.of(found)


def of_enrollment(db: Session, enrollment_id: str) -> list[SessionRow]:
    """Return every session of an enrollment, oldest date first."""
    found = read_columns(db, _OF_ENROLLMENT, {"enrollment_id": enrollment_id})
    return [SessionRow.of(row) for row in found]


class PlanRow(NamedTuple):
    """What re-planning reads of a stored session: the planner's history and the diff
    against the new plan (`replanning.StoredSession`)."""

    id: str
    local_date: date
    status: SessionStatus
    hdss: int | None
    phase: str
    minutes: int
    timezone: str
    # The outcome reported on the protocol's scale (`outcomes.verdict` reads them).
    outcome: str | None


_PLAN_ROWS = _of_enrollment(*(_C[name] for name in PlanRow._fields))
_PLAN_STATUS = PlanRow._fields.index("status")


def plan_rows(db: Session, enrollment_id: str) -> list[PlanRow]:
    """Return what re-planning reads of an enrollment's sessions, oldest date first: the
    few columns it needs, as every confirmation re-plans."""
    found = read_columns(db, _PLAN_ROWS, {"enrollment_id": enrollment_id})
    return list(map(PlanRow._make, _with_status(found, _PLAN_STATUS)))


def _with_status(found: Iterable[Sequence[Any]], index: int) -> list[list[Any]]:
    """The rows as lists, the status at `index` as a `SessionStatus`."""
    rows = [list(row) for row in found]
    for row in rows:
        row[index] = SessionStatus(row[index])
    return rows


class MessageSession(NamedTuple):
    """What a message reads of the session it is about: the dispatcher reads these for
    every batch of deliveries it prepares."""

    id: str
    enrollment_id: str
    local_date: date
    timezone: str
    status: str
    minutes: int


def for_messages(db: Session, session_ids: Iterable[str]) -> list[MessageSession]:
    """Return what messages read of the sessions with these ids (those that exist)."""
    return _columns_of(db, MessageSession, _C.id, session_ids)


Columns = TypeVar("Columns", bound=NamedTuple)


def _columns_of(
    db: Session, shape: type[Columns], column: sa.ColumnElement[str], ids: Iterable[str]
) -> list[Columns]:
    """The `shape` fields (named as the table's columns) of the sessions whose `column`
    is one of `ids`."""
    wanted = sa.select(*(_C[name] for name in shape._fields))
    return [
        shape._make(row)
        for chunk in in_chunks(set(ids))
        for row in read_columns(db, wanted.where(column.in_(chunk)))
    ]


class CalendarSession(NamedTuple):
    """What a patient's calendar feed reads of a session (`reminders.calendar`)."""

    id: str
    local_date: date
    timezone: str
    status: SessionStatus
    minutes: int
    at_clinic: bool
    created_at: datetime
    updated_at: datetime


_ENROLLMENT = table_of(Enrollment)
_CALENDAR_SESSIONS = (
    sa.select(*(_C[name] for name in CalendarSession._fields))
    .join(_ENROLLMENT, _C.enrollment_id == _ENROLLMENT.c.id)
    .where(
        _ENROLLMENT.c.patient_id == sa.bindparam("patient_id"),
        _C.local_date >= sa.bindparam("since"),
    )
    .order_by(_C.local_date, _C.id)
)
_CALENDAR_STATUS = CalendarSession._fields.index("status")


def for_calendar(db: Session, patient_id: str, since: date) -> list[CalendarSession]:
    """Return the sessions of all the patient's enrollments on or after the local date
    `since`, in every status, oldest date first."""
    found = read_columns(db, _CALENDAR_SESSIONS, {"patient_id": patient_id, "since": since})
    return list(map(CalendarSession._make, _with_status(found, _CALENDAR_STATUS)))


def of_enrollments(db: Session, enrollment_ids: Iterable[str]) -> list[SessionRow]:
    """Return every session of the enrollments, by enrollment, oldest date first."""
    return _chunked(db, _C.enrollment_id, enrollment_ids)


class AdherenceRow(NamedTuple):
    """What adherence reads of a session (`adherence.SessionFact`), and its enrollment."""

    enrollment_id: str
    local_date: date
    status: str
    phase: str
    completed_at: datetime | None
    timezone: str


def facts_of_enrollments(db: Session, enrollment_ids: Iterable[str]) -> list[AdherenceRow]:
    """Return what adherence reads of every session of the enrollments (a few columns
    of each, for lists that work out the figures of many patients at once)."""
    return _columns_of(db, AdherenceRow, _C.enrollment_id, enrollment_ids)


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
) -> list[SessionRow]:
    """The sessions whose `column` is one of `ids` (and that `where` selects), by
    enrollment, oldest date first."""
    query = where if where is not None else sa.select(_TABLE)
    rows = [
        SessionRow.of(row)
        for chunk in in_chunks(set(ids))
        for row in read_columns(db, query.where(column.in_(chunk)))
    ]
    rows.sort(key=lambda r: (r.enrollment_id, r.local_date, r.id))
    return rows


def planned_ids() -> sa.Select[Any]:
    """A subquery: the ids of every planned session."""
    return sa.select(_C.id).where(_C.status == SessionStatus.PLANNED)


def ids_of_enrollment(enrollment_id: str) -> sa.Select[Any]:
    """A subquery: the ids of the enrollment's sessions."""
    return sa.select(_C.id).where(_C.enrollment_id == enrollment_id)


class NewSession(NamedTuple):
    """A new planned session, as `insert_planned` writes it (the columns it sets)."""

    id: str
    enrollment_id: str
    local_date: date
    timezone: str
    phase: str
    status: SessionStatus
    minutes: int
    unscheduled: bool
    at_clinic: bool
    created_at: datetime
    updated_at: datetime


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
) -> NewSession:
    """Return a new planned session, for `insert_planned`."""
    return NewSession(
        session_id or new_id(), enrollment_id, local_date, timezone, phase,
        SessionStatus.PLANNED, minutes, unscheduled, at_clinic, now, now,
    )  # fmt: skip


def insert_planned(db: Session, rows: Sequence[NewSession]) -> None:
    """Insert new planned sessions (from `new_planned`)."""
    insert_tuples(db, TreatmentSession, NewSession._fields, list(rows))


def prepare_planned(dialect: sa.Dialect, rows: Sequence[NewSession]) -> PreparedInsert:
    """Return the INSERT of new planned sessions, to run later or in another process
    (the bulk import's writer)."""
    return prepare_insert(dialect, TreatmentSession, NewSession._fields, list(rows))


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


def restamp_planned(db: Session, patient_id: str, now: datetime) -> None:
    """Record that the patient's planned sessions changed without a column of their own
    changing: their reminder time or zone moved, and with it the time a calendar shows
    them at (`calendar.sequence` follows `updated_at`)."""
    of_patient = sa.select(_ENROLLMENT.c.id).where(_ENROLLMENT.c.patient_id == patient_id)
    db.execute(
        sa.update(_TABLE)
        .where(_C.enrollment_id.in_(of_patient), _C.status == SessionStatus.PLANNED)
        .values(updated_at=now)
    )


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
    *,
    cancelled: SessionRow | None = None,
) -> SessionRow:
    """Add an unscheduled planned session on `local_date`; a `cancelled` row of that
    day is planned again instead (one row per enrollment and date). Return it."""
    if cancelled is not None:
        return change(
            db, cancelled, now, status=SessionStatus.PLANNED, unscheduled=True,
            timezone=timezone, phase=phase, minutes=minutes,
        )  # fmt: skip
    new = new_planned(
        enrollment_id, local_date, timezone, phase, minutes, False, now, unscheduled=True
    )
    insert_planned(db, [new])
    empty = dict.fromkeys(_KEYS)
    return SessionRow(**{**empty, **new._asdict()})


def not_done_since_confirmed(db: Session, not_done: Collection[str], oldest: date) -> list[str]:
    """Return the active enrollments, not slowed for a lapse, whose sessions after their
    last confirmed one include one in a `not_done` status, the first of them on or
    before `oldest`."""
    not_done_date = sa.case((_C.status.in_(sorted(not_done)), _C.local_date))
    confirmed_date = sa.case((_C.status == SessionStatus.CONFIRMED, _C.local_date))
    enrollment = table_of(Enrollment).c
    return list(
        read_columns(
            db,
            sa.select(enrollment.id)
            .join(_TABLE, _C.enrollment_id == enrollment.id)
            .where(
                enrollment.status == EnrollmentStatus.ACTIVE,
                enrollment.slowed_since.is_(None),
                _C.status.in_((SessionStatus.CONFIRMED, *sorted(not_done))),
            )
            .group_by(enrollment.id)
            .having(
                sa.func.max(not_done_date)
                > sa.func.coalesce(sa.func.max(confirmed_date), date.min),
                sa.func.min(not_done_date) <= oldest,
            ),
        ).scalars()
    )


def count_by_status(db: Session) -> dict[tuple[Any, ...], int]:
    """Return how many sessions are in each status, by `(status,)`."""
    return count_by(db, _C.status)
