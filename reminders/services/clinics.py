"""Clinics and the days they are open."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlmodel import Session, col, select

from reminders.errors import InvalidInput, NotFound
from reminders.fields import checked, email_address, single_line
from reminders.models import Clinic, ClinicClosedDate, ClinicIdentity, utcnow
from reminders.services.api_keys import create_key
from reminders.services.audit import Actor, AuditAction, record
from reminders.weekdays import weekdays_of

FIRST_KEY_NAME = "first"


def create_clinic(db: Session, name: str, alert_email: str | None = None) -> tuple[Clinic, str]:
    """Create a clinic and its first API key (named "first"); return the clinic and the
    key, which is shown once and stored hashed.

    Raises InvalidInput if the name is blank, too long or not one line, or the alert
    email malformed.
    """
    name = _checked_name(name)
    if alert_email is not None:
        checked("alert_email", alert_email, email_address)
    clinic = Clinic(name=name, alert_email=alert_email)
    db.add(clinic)
    db.flush()
    _key, secret = create_key(db, clinic.id, FIRST_KEY_NAME, utcnow())
    return clinic, secret


def set_identity(
    db: Session, clinic_id: str, identity: ClinicIdentity, *, actor: Actor | None = None
) -> Clinic:
    """Set the fields `identity` gives of how patients see and reach the clinic; return
    the clinic. Raises NotFound."""
    clinic = get_clinic(db, clinic_id)
    changes = identity.changes()
    for name, value in changes.items():
        setattr(clinic, name, value)
    db.add(clinic)
    db.flush()
    if changes:
        record(
            db,
            actor,
            clinic_id,
            AuditAction.CLINIC_UPDATE,
            ("clinic", clinic_id),
            utcnow(),
            **changes,
        )
    return clinic


def set_contact(
    db: Session, clinic_id: str, name: str, alert_email: str | None, *, actor: Actor | None = None
) -> Clinic:
    """Rename the clinic and set where its alerts go (None: nowhere); return it. Raises
    NotFound, or InvalidInput naming `name` or `alert_email`."""
    clinic = get_clinic(db, clinic_id)
    clinic.name = _checked_name(name)
    clinic.alert_email = checked("alert_email", alert_email, email_address) if alert_email else None
    db.add(clinic)
    db.flush()
    record(
        db, actor, clinic_id, AuditAction.CLINIC_UPDATE, ("clinic", clinic_id), utcnow(),
        name=clinic.name, alert_email=clinic.alert_email,
    )  # fmt: skip
    return clinic


def _checked_name(name: str) -> str:
    name = checked("name", name, single_line).strip()
    if not name or len(name) > 200:
        raise InvalidInput("name", "must be 1 to 200 characters")
    return name


def list_clinics(db: Session) -> list[Clinic]:
    """Return every clinic, oldest first."""
    return list(db.exec(select(Clinic).order_by(col(Clinic.created_at), col(Clinic.id))))


def get_clinic(db: Session, clinic_id: str) -> Clinic:
    """Return the clinic; raises NotFound."""
    clinic = db.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound("clinic", clinic_id)
    return clinic


@dataclass(frozen=True, slots=True)
class ClinicDays:
    """When a clinic gives appointments: its open weekdays (0 = Monday) and the dates
    it is closed from a given day on."""

    open_weekdays: frozenset[int]
    closed: frozenset[date]


def clinic_days(db: Session, clinic_id: str, since: date) -> ClinicDays:
    """Return the clinic's open weekdays and its closed dates from `since` on."""
    clinic = db.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound("clinic", clinic_id)
    closed = db.execute(
        sa.select(col(ClinicClosedDate.local_date)).where(
            col(ClinicClosedDate.clinic_id) == clinic_id, col(ClinicClosedDate.local_date) >= since
        )
    ).scalars()
    return ClinicDays(weekdays_of(clinic.open_weekdays), frozenset(closed))
