"""A patient's absences: dates they are away, set by the clinic or from a reminder.

Nothing is planned, reminded, missed or escalated inside an absence: adding or removing
one re-plans every active enrollment of the patient, which cancels the sessions inside
it (and so their reminders) and picks the plan up after it within the caps.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlmodel import Session, col, select

from reminders.errors import InvalidInput, NotFound
from reminders.models import AbsenceRow, Enrollment, Patient
from reminders.runtime import Runtime
from reminders.services.audit import Actor, AuditAction, record
from reminders.services.replan import replan
from reminders.states import EnrollmentStatus
from reminders.timing import local_today

# Long enough for a holiday or a hospital stay; longer is a pause.
MAX_ABSENCE_DAYS = 90


class AbsenceRefusal(StrEnum):
    """Why an absence's dates are refused: the API's message, which the patient's page
    puts in the patient's words."""

    ENDS_BEFORE_START = "must not be before from"
    ENDED = "is in the past"
    STARTED = "must be today or later"
    TOO_LONG = f"an absence lasts at most {MAX_ABSENCE_DAYS} days; pause instead"


def add_absence(
    db: Session,
    rt: Runtime,
    patient: Patient,
    first: date,
    last: date,
    reason: str | None,
    set_by: str,
    now: datetime,
    *,
    actor: Actor | None = None,
) -> AbsenceRow:
    """Record that the patient is away from `first` to `last` (local dates, both
    included) and re-plan; return the absence, recorded as `actor`'s doing. Raises
    InvalidInput naming the field."""
    today = local_today(now, patient.timezone)
    if last < first:
        raise InvalidInput("to", AbsenceRefusal.ENDS_BEFORE_START)
    if last < today:
        raise InvalidInput("to", AbsenceRefusal.ENDED)
    if set_by == "patient" and first < today:
        # Days already behind the plan are the clinic's to excuse, not the link's.
        raise InvalidInput("from", AbsenceRefusal.STARTED)
    if (last - first).days + 1 > MAX_ABSENCE_DAYS:
        raise InvalidInput("to", AbsenceRefusal.TOO_LONG)
    absence = AbsenceRow(
        clinic_id=patient.clinic_id,
        patient_id=patient.id,
        first_date=first,
        last_date=last,
        reason=reason,
        set_by=set_by,
        created_at=now,
    )
    db.add(absence)
    db.flush()
    _replan_patient(db, rt, patient, now)
    record(
        db, actor, patient.clinic_id, AuditAction.ABSENCE_ADD, ("patient", patient.id), now,
        first=first, last=last,
    )  # fmt: skip
    return absence


def list_absences(db: Session, patient: Patient) -> list[AbsenceRow]:
    """Return the patient's absences, earliest first."""
    query = select(AbsenceRow).where(AbsenceRow.patient_id == patient.id)
    return list(db.exec(query.order_by(col(AbsenceRow.first_date), col(AbsenceRow.id))))


def remove_absence(
    db: Session, rt: Runtime, clinic_id: str | None, absence_id: str, now: datetime
) -> None:
    """Delete an absence (the patient is back early) and re-plan; raise NotFound."""
    absence = db.get(AbsenceRow, absence_id)
    if absence is None or (clinic_id is not None and absence.clinic_id != clinic_id):
        raise NotFound("absence", absence_id)
    patient = db.get(Patient, absence.patient_id)
    assert patient is not None  # foreign key
    db.delete(absence)
    db.flush()
    _replan_patient(db, rt, patient, now)


def _replan_patient(db: Session, rt: Runtime, patient: Patient, now: datetime) -> None:
    active = db.exec(
        select(Enrollment).where(
            Enrollment.patient_id == patient.id, Enrollment.status == EnrollmentStatus.ACTIVE
        )
    )
    for enrollment in active:
        replan(db, rt, enrollment, now, patient=patient)
