"""Clinics and the days they are open."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from reminders.db.rows import read_columns, table_of
from reminders.errors import InvalidInput, NotFound
from reminders.fields import checked, email_address, single_line
from reminders.models import Clinic, ClinicClosedDate, ClinicIdentity, ClinicPublic
from reminders.services.api_keys import create_key
from reminders.services.audit import Actor, AuditAction, record
from reminders.weekdays import weekdays_of

FIRST_KEY_NAME = "first"


def create_clinic(
    db: Session, name: str, now: datetime, alert_email: str | None = None
) -> tuple[Clinic, str]:
    """Create a clinic and its first API key (named "first"); return the clinic and the
    key, which is shown once and stored hashed.

    Raises InvalidInput if the name is blank, too long or not one line, or the alert
    email malformed.
    """
    name = _checked_name(name)
    if alert_email is not None:
        checked("alert_email", alert_email, email_address)
    clinic = Clinic(name=name, alert_email=alert_email, created_at=now)
    db.add(clinic)
    db.flush()
    _key, secret = create_key(db, clinic.id, FIRST_KEY_NAME, now)
    return clinic, secret


def set_identity(
    db: Session,
    clinic_id: str,
    identity: ClinicIdentity,
    now: datetime,
    *,
    actor: Actor | None = None,
) -> Clinic:
    """Set the fields `identity` gives of how patients see and reach the clinic; return
    the clinic. Raises NotFound."""
    clinic = get_clinic(db, clinic_id)
    return _change(db, clinic, identity.changes(), now, actor)


def set_contact(
    db: Session,
    clinic_id: str,
    name: str,
    alert_email: str | None,
    now: datetime,
    *,
    actor: Actor | None = None,
) -> Clinic:
    """Rename the clinic and set where its alerts go (None: nowhere); return it. Raises
    NotFound, or InvalidInput naming `name` or `alert_email`."""
    clinic = get_clinic(db, clinic_id)
    address = checked("alert_email", alert_email, email_address) if alert_email else None
    return _change(db, clinic, {"name": _checked_name(name), "alert_email": address}, now, actor)


def _change(
    db: Session, clinic: Clinic, wanted: dict[str, str | None], now: datetime, actor: Actor | None
) -> Clinic:
    """Set the fields that differ, and record those in the audit log."""
    changes = {name: value for name, value in wanted.items() if getattr(clinic, name) != value}
    for name, value in changes.items():
        setattr(clinic, name, value)
    db.add(clinic)
    db.flush()
    if changes:
        subject = ("clinic", clinic.id)
        record(db, actor, clinic.id, AuditAction.CLINIC_UPDATE, subject, now, **changes)
    return clinic


def _checked_name(name: str) -> str:
    name = checked("name", name, single_line).strip()
    if not name or len(name) > 200:
        raise InvalidInput("name", "must be 1 to 200 characters")
    return name


def list_clinics(db: Session) -> list[Clinic]:
    """Return every clinic, oldest first."""
    return list(db.exec(select(Clinic).order_by(col(Clinic.created_at), col(Clinic.id))))


# Every check of a key (GET /v1/clinic) reads it: plain columns, the statement built once.
_TABLE = table_of(Clinic)
_PUBLIC = sa.select(*(_TABLE.c[name] for name in ClinicPublic.model_fields)).where(
    _TABLE.c.id == sa.bindparam("clinic_id")
)


def public_view(db: Session, clinic_id: str) -> ClinicPublic:
    """Return the clinic as the API shows it; raises NotFound."""
    row = read_columns(db, _PUBLIC, {"clinic_id": clinic_id}).first()
    if row is None:
        raise NotFound("clinic", clinic_id)
    return ClinicPublic.of(row)


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
