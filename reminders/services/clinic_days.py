"""Setting when a clinic gives appointments: its zone, open weekdays, closed dates.

Changing them re-plans the clinic's active enrollments in protocols given at the
clinic, so no appointment stays on a day the clinic is closed.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Session, col, select

from reminders.db.rows import insert_ignore
from reminders.errors import InvalidInput, NotFound
from reminders.ids import new_id
from reminders.models import Clinic, ClinicChange, ClinicClosedDate, Enrollment
from reminders.runtime import Runtime
from reminders.services.audit import Actor, AuditAction, record
from reminders.services.clinics import set_identity
from reminders.services.replan import replan
from reminders.settings import validate_timezone
from reminders.states import EnrollmentStatus
from reminders.weekdays import parse_weekdays, stored_weekdays


def set_hours(
    db: Session,
    rt: Runtime,
    clinic_id: str,
    now: datetime,
    *,
    timezone: str | None = None,
    open_weekdays: list[str] | None = None,
    actor: Actor | None = None,
) -> Clinic:
    """Change the clinic's zone and/or open weekdays and re-plan; return the clinic.
    Raises NotFound, or InvalidInput naming the field."""
    clinic = db.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound("clinic", clinic_id)
    if timezone is not None:
        try:
            clinic.timezone = validate_timezone(timezone)
        except ValueError as exc:
            raise InvalidInput("timezone", str(exc)) from None
    if open_weekdays is not None:
        clinic.open_weekdays = stored_weekdays(parse_weekdays(open_weekdays, "open_weekdays"))
    db.add(clinic)
    db.flush()
    _replan_at_clinic(db, rt, clinic_id, now)
    record(
        db, actor, clinic_id, AuditAction.CLINIC_HOURS, ("clinic", clinic_id), now,
        timezone=clinic.timezone, open_weekdays=clinic.open_weekdays,
    )  # fmt: skip
    return clinic


def change_clinic(
    db: Session,
    rt: Runtime,
    clinic_id: str,
    change: ClinicChange,
    now: datetime,
    *,
    actor: Actor | None = None,
) -> Clinic:
    """Apply what `change` gives of the clinic's identity and hours; return the clinic.
    Only new hours re-plan the appointments. Raises NotFound, or InvalidInput naming the
    field."""
    clinic = set_identity(db, clinic_id, change, now, actor=actor)
    zone_changes = change.timezone is not None and change.timezone != clinic.timezone
    days = change.open_weekdays
    days_change = (
        days is not None
        and stored_weekdays(parse_weekdays(days, "open_weekdays")) != clinic.open_weekdays
    )
    if zone_changes or days_change:
        clinic = set_hours(
            db, rt, clinic_id, now, timezone=change.timezone, open_weekdays=days, actor=actor
        )
    return clinic


def close_on(
    db: Session,
    rt: Runtime,
    clinic_id: str,
    day: date,
    reason: str | None,
    now: datetime,
    *,
    actor: Actor | None = None,
) -> None:
    """Record that the clinic is closed on `day` and re-plan (closing twice is
    harmless). Raises NotFound."""
    if db.get(Clinic, clinic_id) is None:
        raise NotFound("clinic", clinic_id)
    row = {
        "id": new_id(),
        "clinic_id": clinic_id,
        "local_date": day,
        "reason": reason,
        "created_at": now,
    }
    insert_ignore(db, ClinicClosedDate, [row])
    _replan_at_clinic(db, rt, clinic_id, now)
    subject = ("clinic", clinic_id)
    record(db, actor, clinic_id, AuditAction.CLINIC_CLOSE, subject, now, day=day, reason=reason)


def reopen_on(
    db: Session,
    rt: Runtime,
    clinic_id: str,
    day: date,
    now: datetime,
    *,
    actor: Actor | None = None,
) -> None:
    """Remove a closed date and re-plan. Raises NotFound if it was not closed."""
    row = db.exec(
        select(ClinicClosedDate).where(
            ClinicClosedDate.clinic_id == clinic_id, ClinicClosedDate.local_date == day
        )
    ).first()
    if row is None:
        raise NotFound("closed date", day.isoformat())
    db.delete(row)
    db.flush()
    _replan_at_clinic(db, rt, clinic_id, now)
    record(db, actor, clinic_id, AuditAction.CLINIC_REOPEN, ("clinic", clinic_id), now, day=day)


def closed_dates(db: Session, clinic_id: str) -> list[ClinicClosedDate]:
    """Return the clinic's closed dates, earliest first."""
    query = select(ClinicClosedDate).where(ClinicClosedDate.clinic_id == clinic_id)
    return list(db.exec(query.order_by(col(ClinicClosedDate.local_date))))


def _replan_at_clinic(db: Session, rt: Runtime, clinic_id: str, now: datetime) -> None:
    at_clinic = [p.id for p in rt.protocols.values() if p.given_at == "clinic"]
    if not at_clinic:
        return
    active = db.exec(
        select(Enrollment).where(
            Enrollment.clinic_id == clinic_id,
            Enrollment.status == EnrollmentStatus.ACTIVE,
            col(Enrollment.protocol_id).in_(at_clinic),
        )
    )
    for enrollment in active:
        replan(db, rt, enrollment, now)
