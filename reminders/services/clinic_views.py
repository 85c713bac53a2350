"""What the clinic's pages read: the day's sessions, patients by risk, one patient's
whole course. Scoped to one clinic like every other read; lists are paged on a stored,
stable key, so no page reads more than it shows (the patients' standing is kept by
`services.standings`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from reminders.adherence import DUE_STATES, Adherence, adherence
from reminders.errors import InvalidInput
from reminders.models import Enrollment, Escalation, Patient, PatientRisk, TreatmentSession
from reminders.services import patients
from reminders.services.enrollments import enrollments_of
from reminders.services.reading import (
    Page,
    adherence_public,
    newest_escalations,
    ongoing_facts,
    open_escalations_by_priority,
    session_facts,
)
from reminders.states import ONGOING, EscalationState, SessionStatus
from reminders.stores import outbox, session_store
from reminders.stores.outbox import DeliveryRow
from reminders.stores.session_store import SessionRow
from reminders.timing import local_today

PATIENTS_PAGE = 25
_CURSOR = re.compile(r"^[0-9.]{1,40}:[0-9a-f]{32}$")
# Less than this share of due sessions done, or a miss in a row, puts a patient on the
# day's "at risk" list.
AT_RISK_BELOW = 0.8


@dataclass(frozen=True, slots=True)
class DaySession:
    """A session due on its patient's today."""

    session_id: str
    patient_id: str
    patient_name: str
    status: str
    minutes: int
    at_clinic: bool


@dataclass(frozen=True, slots=True)
class Today:
    """The clinic's sessions on each patient's own today: how many, how many confirmed
    so far, and those `shown` (the first planned), by name."""

    total: int
    confirmed: int
    shown: list[DaySession]


def _due_on(db: Session, clinic_id: str, now: datetime) -> list[sa.ColumnElement[bool]]:
    """Sessions of the clinic that are due on a date that is today in one of its
    patients' zones (a handful of zones, so a date or two)."""
    zones = db.exec(select(Patient.timezone).where(Patient.clinic_id == clinic_id).distinct())
    days = {local_today(now, zone) for zone in zones}
    # Sessions first, by their status and date, then whether their enrollment is the
    # clinic's: starting from the clinic's enrollments would look up each one's days.
    of_clinic = select(Enrollment.id).where(Enrollment.clinic_id == clinic_id)
    return [
        col(TreatmentSession.status).in_((SessionStatus.PLANNED, *DUE_STATES)),
        col(TreatmentSession.local_date).in_(days),
        col(TreatmentSession.enrollment_id).in_(of_clinic),
    ]


def sessions_today(db: Session, clinic_id: str, now: datetime, shown: int = 100) -> Today:
    """Count the sessions on each patient's today in the database, by zone (a handful of
    groups, not thousands of rows), then read the first `shown` of them."""
    t = TreatmentSession
    due = _due_on(db, clinic_id, now)
    grouped: list[Any] = [t.timezone, t.local_date, t.status]
    counted: list[Any] = [*grouped, sa.func.count()]
    groups = db.execute(sa.select(*counted).where(*due).group_by(*grouped)).all()
    today = [(z, day, status, n) for z, day, status, n in groups if day == local_today(now, z)]
    if not today:
        return Today(0, 0, [])
    zone_days = {(zone, day) for zone, day, _status, _n in today}
    on_today = sa.or_(
        *(sa.and_(col(t.timezone) == zone, col(t.local_date) == day) for zone, day in zone_days)
    )
    shown_ids = sa.select(col(t.id)).where(*due, on_today).order_by(col(t.id)).limit(shown)
    columns: list[Any] = [t.id, Patient.id, Patient.name, t.status, t.minutes, t.at_clinic]
    query = (
        sa.select(*columns)
        .join(Enrollment, col(Enrollment.id) == col(t.enrollment_id))
        .join(Patient, col(Patient.id) == col(Enrollment.patient_id))
        .where(col(t.id).in_(shown_ids))
    )
    listed = sorted(
        (DaySession(*row) for row in db.execute(query)),
        key=lambda s: (s.patient_name.casefold(), s.session_id),
    )
    total = sum(n for _z, _d, _s, n in today)
    confirmed = sum(n for _z, _d, status, n in today if status == SessionStatus.CONFIRMED)
    return Today(total, confirmed, listed)


@dataclass(frozen=True, slots=True)
class Inbox:
    """A page of escalations and the names of the patients they are about."""

    escalations: Page[Escalation]
    names: dict[str, str]


def inbox(db: Session, clinic_id: str, state: str, cursor: str | None, limit: int) -> Inbox:
    """The clinic's escalations in `state`, with their patients' names: open ones most
    urgent first, acknowledged ones newest first."""
    found = (
        open_escalations_by_priority(db, clinic_id, cursor, limit)
        if state == EscalationState.OPEN
        else newest_escalations(db, clinic_id, state, cursor, limit)
    )
    about = {e.patient_id for e in found.items if e.patient_id}
    return Inbox(found, patients.names(db, clinic_id, about))


def at_risk(db: Session, clinic_id: str, limit: int = 10) -> list[Patient]:
    """Return the patients most at risk (misses in a row, a low rate), worst first."""
    query = (
        select(Patient)
        .where(
            Patient.clinic_id == clinic_id,
            col(Patient.erased_at).is_(None),
            sa.or_(col(Patient.missed_in_a_row) > 0, col(Patient.adherence_rate) < AT_RISK_BELOW),
        )
        .order_by(col(Patient.risk_rank), col(Patient.id))
        .limit(limit)
    )
    return list(db.exec(query))


def patients_by_risk(
    db: Session,
    clinic_id: str,
    search: str | None,
    cursor: str | None,
    limit: int = PATIENTS_PAGE,
    *,
    under_treatment: bool = False,
    cursor_field: str = "after",
) -> Page[Patient]:
    """Return a page of the clinic's patients (only those with an ongoing enrollment, if
    `under_treatment`), most at risk first by their stored standing, whose name or
    external id contains `search`; the cursor is the last row's rank and id. Raises
    InvalidInput naming `cursor_field` for a cursor this list did not give out."""
    query = select(Patient).where(Patient.clinic_id == clinic_id, col(Patient.erased_at).is_(None))
    if under_treatment:
        ongoing = select(Enrollment.id).where(
            col(Enrollment.patient_id) == col(Patient.id), col(Enrollment.status).in_(ONGOING)
        )
        query = query.where(ongoing.exists())
    if search:
        pattern = f"%{_escaped_like(search.strip().lower())}%"
        query = query.where(
            sa.or_(
                sa.func.lower(Patient.name).like(pattern, escape="\\"),
                sa.func.lower(Patient.external_id).like(pattern, escape="\\"),
            )
        )
    if cursor:
        if not _CURSOR.fullmatch(cursor):
            raise InvalidInput(cursor_field, "not a position this list gave out")
        rank, _, patient_id = cursor.partition(":")
        query = query.where(sa.tuple_(Patient.risk_rank, Patient.id) > sa.tuple_(rank, patient_id))
    rows = db.exec(query.order_by(col(Patient.risk_rank), col(Patient.id)).limit(limit + 1)).all()
    items = list(rows[:limit])
    more = len(rows) > limit
    return Page(items, f"{items[-1].risk_rank}:{items[-1].id}" if more else None)


def adherence_page(
    db: Session, clinic_id: str, now: datetime, cursor: str | None, limit: int
) -> Page[PatientRisk]:
    """A page of the clinic's patients under treatment, most at risk first, each with
    their adherence worked out at `now`. The order is the standing the sweep keeps
    (`services.standings`), so a page reads its own patients' sessions and no others."""
    page = patients_by_risk(
        db, clinic_id, None, cursor, limit, under_treatment=True, cursor_field="cursor"
    )
    sessions = ongoing_facts(db, col(Enrollment.patient_id).in_([p.id for p in page.items]))
    items = [
        PatientRisk(
            patient_id=p.id,
            name=p.name,
            external_id=p.external_id,
            adherence=adherence_public(adherence(sessions[p.id], local_today(now, p.timezone))),
        )
        for p in page.items
    ]
    return Page(items, page.next_cursor)


def _escaped_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class CalendarDay:
    """A day of the coming weeks and the session on it, if any is still to come or done."""

    day: date
    session: SessionRow | None


@dataclass(frozen=True, slots=True)
class Course:
    """One enrollment with its sessions, oldest first."""

    enrollment: Enrollment
    sessions: list[SessionRow]

    def coming_weeks(self, today: date, weeks: int = 4) -> list[list[CalendarDay]]:
        """The `weeks` weeks from `today`, a row of seven days each."""
        shown = {
            s.local_date: s
            for s in self.sessions
            if s.local_date >= today and s.status != SessionStatus.CANCELLED
        }
        days = [today + timedelta(days=n) for n in range(7 * weeks)]
        cells = [CalendarDay(day, shown.get(day)) for day in days]
        return [cells[start : start + 7] for start in range(0, len(cells), 7)]

    def done(self) -> list[SessionRow]:
        """The sessions that were due (confirmed, skipped or missed), newest first."""
        return [s for s in reversed(self.sessions) if s.status in DUE_STATES]


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """Everything the patient page shows."""

    patient: Patient
    courses: list[Course]
    adherence: Adherence
    deliveries: list[DeliveryRow]


def patient_record(
    db: Session, patient: Patient, now: datetime, messages: int = 30
) -> PatientRecord:
    """Return a patient's enrollments, sessions, adherence and latest messages."""
    courses = [
        Course(e, session_store.of_enrollment(db, e.id))
        for e in reversed(enrollments_of(db, patient.id))
    ]
    facts = session_facts([s for c in courses for s in c.sessions])
    return PatientRecord(
        patient=patient,
        courses=courses,
        adherence=adherence(facts, local_today(now, patient.timezone)),
        deliveries=outbox.newest_to_patient(db, patient.id, messages),
    )
