"""Patients of a clinic."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from reminders.adherence import NO_RISK
from reminders.db.rows import insert_rows
from reminders.errors import Conflict, Gone, InvalidInput, NotFound
from reminders.ids import new_id
from reminders.kinds import TIMED_BY_PATIENT
from reminders.models import (
    Clinic,
    Enrollment,
    Patient,
    PatientCreate,
    PatientUpdate,
)
from reminders.runtime import Runtime
from reminders.services import reachability
from reminders.services.audit import Actor, AuditAction, record
from reminders.services.events import escalate, settle_open
from reminders.services.reminding import clinic_endpoints, subscribed
from reminders.services.replan import replan
from reminders.settings import Settings, validate_timezone
from reminders.states import (
    DeliveryState,
    EnrollmentStatus,
    EscalationReason,
)
from reminders.stores import outbox, session_store
from reminders.timing import QuietHours, parse_hhmm

UNSUBSCRIBED = "patient unsubscribed"


@dataclass(frozen=True, slots=True)
class PatientDefaults:
    """What a patient who names no reminder time or quiet hours gets: the operator's."""

    reminder_time: time
    quiet: QuietHours

    @classmethod
    def of(cls, settings: Settings) -> PatientDefaults:
        return cls(
            settings.default_reminder_time,
            QuietHours(settings.quiet_hours_start, settings.quiet_hours_end),
        )


def check_reachable_time(
    reminder_time: str, quiet_start: str | None, quiet_end: str | None,
    defaults: PatientDefaults, field: str,
) -> None:  # fmt: skip
    """Refuse a reminder time inside the patient's quiet hours, naming `field`: no
    reminder could ever be sent, and every session would count as missed."""
    quiet = (
        QuietHours(parse_hhmm(quiet_start), parse_hhmm(quiet_end))
        if quiet_start and quiet_end
        else defaults.quiet
    )
    if quiet.covers(parse_hhmm(reminder_time)):
        raise InvalidInput(
            field,
            f"a reminder at {reminder_time} falls inside the quiet hours "
            f"{quiet.start:%H:%M}-{quiet.end:%H:%M}, so none could ever be sent; choose a "
            "reminder time outside them",
        )


def add_patients(
    db: Session,
    clinic_id: str,
    patients: Sequence[PatientCreate],
    now: datetime,
    *,
    defaults: PatientDefaults,
) -> list[str]:
    """Add patients to a clinic in one statement; return their ids in order. A patient
    without a reminder time or quiet hours gets the operator's `defaults`.

    Raises NotFound for an unknown clinic, InvalidInput naming the field (with the
    position when there are several) for a bad time zone, a missing email address or a
    reminder time inside the quiet hours.
    """
    if db.get(Clinic, clinic_id) is None:
        raise NotFound("clinic", clinic_id)
    if any(p.channel == "webhook" for p in patients):
        check_webhook_channel(db, clinic_id)
    rows = [
        patient_row(clinic_id, patient, defaults, now, f"[{i}]." if len(patients) > 1 else "")
        for i, patient in enumerate(patients)
    ]
    with _one_per_external_id(db):
        insert_rows(db, Patient, rows)
    return [row["id"] for row in rows]


@contextmanager
def _one_per_external_id(db: Session) -> Iterator[None]:
    """Writes in a savepoint that refuse an external id another patient of the clinic
    has (the database's unique key decides, also between two requests)."""
    try:
        with db.begin_nested():
            yield
    except sa.exc.IntegrityError:
        raise Conflict("external_id: another patient of the clinic has this id") from None


def patient_row(
    clinic_id: str,
    patient: PatientCreate,
    defaults: PatientDefaults,
    now: datetime,
    where: str = "",
) -> dict[str, Any]:
    """Return the row of a new patient (the operator's `defaults` where the patient has
    no reminder time or quiet hours); raise InvalidInput naming the field, after
    `where`, for a bad time zone, a missing email address or a reminder time inside the
    quiet hours."""
    try:
        validate_timezone(patient.timezone)
    except ValueError as exc:
        raise InvalidInput(f"{where}timezone", str(exc)) from None
    if patient.channel == "email" and not patient.email:
        raise InvalidInput(f"{where}email", "required when the channel is email")
    quiet = patient.quiet_hours
    reminder_time = patient.reminder_time or defaults.reminder_time.strftime("%H:%M")
    check_reachable_time(
        reminder_time, quiet.start if quiet else None, quiet.end if quiet else None,
        defaults, f"{where}reminder_time",
    )  # fmt: skip
    return {
        "id": new_id(),
        "clinic_id": clinic_id,
        "name": patient.name,
        "email": patient.email,
        "timezone": patient.timezone,
        "reminder_time": reminder_time,
        "quiet_start": quiet.start if quiet else None,
        "quiet_end": quiet.end if quiet else None,
        "channel": patient.channel,
        "locale": patient.locale,
        "external_id": patient.external_id,
        "calendar_generation": 0,
        "risk_rank": NO_RISK,
        "adherence_rate": None,
        "missed_in_a_row": 0,
        "last_session_on": None,
        # Checked as it is made: a time inside the quiet hours is refused, and so is a
        # webhook patient without an endpoint taking reminders.
        "unreachable": None,
        "reachability_checked_at": now,
        "email_refused": None,
        "created_at": now,
    }


def check_webhook_channel(db: Session, clinic_id: str) -> None:
    """A patient reminded by webhook needs an endpoint that takes reminders; without
    one they would silently get none."""
    if not any(subscribed(e, "session.reminder") for e in clinic_endpoints(db, clinic_id)):
        raise InvalidInput(
            "channel",
            "the clinic has no webhook endpoint taking session.reminder: register one "
            "first, or remind this patient by email",
        )


def add_patient(
    db: Session,
    clinic_id: str,
    patient: PatientCreate,
    now: datetime,
    *,
    defaults: PatientDefaults,
) -> Patient:
    """Add one patient; return it. Raises as `add_patients`."""
    (patient_id,) = add_patients(db, clinic_id, [patient], now, defaults=defaults)
    added = db.get(Patient, patient_id)
    assert added is not None
    return added


def get_patient(db: Session, clinic_id: str | None, patient_id: str) -> Patient:
    """Return the patient; raise NotFound if missing or another clinic's, Gone if
    erased."""
    patient = db.get(Patient, patient_id)
    if patient is None or (clinic_id is not None and patient.clinic_id != clinic_id):
        raise NotFound("patient", patient_id)
    if patient.erased_at is not None:
        raise Gone(f"patient {patient_id!r} was erased on {patient.erased_at:%Y-%m-%d}")
    return patient


def find_patient(db: Session, clinic_id: str, id_or_external_id: str) -> Patient:
    """Return the clinic's patient with this id or, failing that, this external id;
    raise NotFound if neither."""
    patient = db.get(Patient, id_or_external_id)
    if patient is not None and patient.clinic_id == clinic_id:
        return get_patient(db, clinic_id, patient.id)
    by_external = db.exec(
        select(Patient).where(
            Patient.clinic_id == clinic_id, Patient.external_id == id_or_external_id
        )
    ).first()
    if by_external is None:
        raise NotFound("patient", id_or_external_id)
    return by_external


def external_ids(db: Session, patient_ids: set[str]) -> dict[str, str | None]:
    """Return each patient's external id (None when the clinic gave none)."""
    if not patient_ids:
        return {}
    rows = db.execute(
        sa.select(col(Patient.id), col(Patient.external_id)).where(
            col(Patient.id).in_(sorted(patient_ids))
        )
    )
    return {patient_id: external for patient_id, external in rows}


def names(db: Session, clinic_id: str, patient_ids: set[str]) -> dict[str, str]:
    """Return the names of those of `patient_ids` who are the clinic's and not erased."""
    if not patient_ids:
        return {}
    rows = db.execute(
        sa.select(col(Patient.id), col(Patient.name)).where(
            col(Patient.id).in_(sorted(patient_ids)),
            col(Patient.clinic_id) == clinic_id,
            col(Patient.erased_at).is_(None),
        )
    )
    return {patient_id: name for patient_id, name in rows}


def update_patient(
    db: Session,
    rt: Runtime,
    clinic_id: str,
    patient_id: str,
    update: PatientUpdate,
    now: datetime,
    by: str,
    *,
    actor: Actor | None = None,
) -> Patient:
    """Change a patient; re-plan their active enrollments and re-time pending reminders
    when the zone, reminder time, quiet hours or channel changed; unsubscribe or
    resubscribe them (`by` is recorded with the consent). Returns the patient.

    Raises NotFound, or InvalidInput naming the field.
    """
    patient = get_patient(db, clinic_id, patient_id)
    changes = update.model_dump(exclude_unset=True)
    # Which fields, not their values: those are the patient's name and contact details.
    fields = sorted(name for name, value in changes.items() if getattr(patient, name, 0) != value)
    subject = ("patient", patient.id)
    record(db, actor, clinic_id, AuditAction.PATIENT_UPDATE, subject, now, fields=fields)
    subscribed = changes.pop("subscribed", None)
    consent = changes.pop("consent", None)
    if consent is not None and subscribed is not True:
        raise InvalidInput("consent", "only goes with subscribed: true")
    if "timezone" in changes:
        if changes["timezone"] is None:
            raise InvalidInput("timezone", "cannot be removed")
        try:
            validate_timezone(changes["timezone"])
        except ValueError as exc:
            raise InvalidInput("timezone", str(exc)) from None
    for required in ("name", "reminder_time", "channel", "locale"):
        if required in changes and changes[required] is None:
            raise InvalidInput(required, "cannot be removed")
    if changes.get("channel") == "webhook":
        check_webhook_channel(db, clinic_id)
    if {"reminder_time", "quiet_hours"} & update.model_fields_set:
        start, end = patient.quiet_start, patient.quiet_end
        if "quiet_hours" in update.model_fields_set:
            wanted = update.quiet_hours
            start, end = (wanted.start, wanted.end) if wanted else (None, None)
        check_reachable_time(
            changes.get("reminder_time") or patient.reminder_time, start, end,
            PatientDefaults.of(rt.settings),
            "quiet_hours" if "quiet_hours" in update.model_fields_set else "reminder_time",
        )  # fmt: skip
    changes.pop("quiet_hours", None)
    if "quiet_hours" in update.model_fields_set:  # null goes back to the operator's default
        patient.quiet_start = update.quiet_hours.start if update.quiet_hours else None
        patient.quiet_end = update.quiet_hours.end if update.quiet_hours else None
    for name, value in changes.items():
        setattr(patient, name, value)
    channel = patient.channel
    if channel == "email" and not patient.email:
        raise InvalidInput("email", "required when the channel is email")
    with _one_per_external_id(db):
        db.add(patient)
    if subscribed is False:
        unsubscribe(db, patient, now)
    elif subscribed is True and patient.unsubscribed_at is not None:
        resubscribe(db, rt, patient, consent, by, now)
        return patient
    elif consent is not None:
        raise Conflict("the patient has not unsubscribed: there is nothing to consent to")
    timing = {"timezone", "reminder_time", "quiet_hours", "channel"}
    if {"timezone", "reminder_time"} & update.model_fields_set:
        session_store.restamp_planned(db, patient.id, now)
    if timing & update.model_fields_set:
        retime_reminders(db, rt, patient, now)
    if (timing | {"email"}) & update.model_fields_set:
        reachability.refresh(db, rt.settings, [patient], now)
    return patient


def resubscribe(
    db: Session, rt: Runtime, patient: Patient, consent: str | None, by: str, now: datetime
) -> None:
    """Send the patient messages again, recording how they agreed to it and who said
    so; their coming sessions get their reminders back. Raises InvalidInput without
    consent."""
    if not consent:
        raise InvalidInput("consent", "required to resubscribe: say how the patient agreed")
    patient.unsubscribed_at = None
    patient.resubscribed_at = now
    patient.resubscribed_by = by
    patient.resubscribe_consent = consent
    db.add(patient)
    # Reminders cancelled by the unsubscribe still hold their sessions' places.
    outbox.forget_unsent(
        db, patient.id, state=DeliveryState.CANCELLED, reason=UNSUBSCRIBED,
        session_ids=session_store.planned_ids(),
    )  # fmt: skip
    settle_open(
        db, EscalationReason.UNSUBSCRIBED, by, "resubscribed with consent", now,
        patient_id=patient.id,
    )  # fmt: skip
    db.flush()
    retime_reminders(db, rt, patient, now)


def retime_reminders(db: Session, rt: Runtime, patient: Patient, now: datetime) -> None:
    """After a patient's timing or channel changed: re-plan their active enrollments (so
    sessions carry the new zone), drop pending reminders made under the old settings and
    make them again under the new ones."""
    enrollments = db.exec(
        select(Enrollment).where(
            Enrollment.patient_id == patient.id, Enrollment.status == EnrollmentStatus.ACTIVE
        )
    ).all()
    outbox.forget_unsent(db, patient.id, TIMED_BY_PATIENT)
    for enrollment in enrollments:
        replan(db, rt, enrollment, now)


def unsubscribe(db: Session, patient: Patient, now: datetime) -> bool:
    """Stop every message to the patient and tell the clinic; return False if the
    patient had already unsubscribed (nothing changes then)."""
    if patient.unsubscribed_at is not None:
        return False
    patient.unsubscribed_at = now
    db.add(patient)
    outbox.cancel_to_patient(db, patient.id, UNSUBSCRIBED)
    escalate(
        db, patient, EscalationReason.UNSUBSCRIBED, "the patient unsubscribed from reminders", now
    )
    db.flush()
    return True
