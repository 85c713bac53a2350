"""Whether each patient can be reached at all (`safety.unreachable_causes`), kept on the
patient, and the clinic told when that changes: one `unreachable` escalation per patient
and cause, settled when the cause is gone, and one email per clinic and cause listing the
patients it newly cut off.

Worked out again whenever a cause may have changed: the patient's own details (their
update), the clinic's endpoints (one disabled after failures), an email refused for good
(the dispatcher), and by the sweep for any patient not yet checked (those from before
this rule, which the migration left unchecked).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from reminders.models import Enrollment, Patient
from reminders.runtime import Runtime
from reminders.safety import Unreachable, unreachable_causes
from reminders.services.events import escalate, settle_once, short_id
from reminders.services.reminding import alert_clinic, clinic_endpoints, recipient, subscribed
from reminders.settings import Settings
from reminders.states import ONGOING, EscalationReason

# What each cause means, for the clinic's inbox and email (ids and settings only).
CAUSES = {
    Unreachable.QUIET_HOURS: "the reminder time falls inside the patient's quiet hours",
    Unreachable.NO_ENDPOINT: "reminded by webhook, and no enabled endpoint takes session.reminder",
    Unreachable.EMAIL_REFUSED: "the mail server refused the patient's address for good",
}
# What the clinic can do about each.
REMEDIES = {
    Unreachable.QUIET_HOURS: "set a reminder time outside the quiet hours",
    Unreachable.NO_ENDPOINT: "register or re-enable an endpoint, or remind them by email",
    Unreachable.EMAIL_REFUSED: "correct the email address, or remind them by webhook",
}


def causes_of(patient: Patient) -> tuple[Unreachable, ...]:
    """The causes stored on the patient when last checked."""
    return (
        tuple(Unreachable(c) for c in patient.unreachable.split(",")) if patient.unreachable else ()
    )


def refresh(db: Session, settings: Settings, patients: Sequence[Patient], now: datetime) -> int:
    """Work out again whether each of `patients` can be reached and store it; tell the
    clinic of each new cause and settle those that are gone. Returns how many of them
    cannot be reached."""
    takes_reminders: dict[str, bool] = {}
    newly: dict[tuple[str, Unreachable], list[Patient]] = defaultdict(list)
    unreachable = 0
    for patient in patients:
        if patient.erased_at is not None:
            continue
        clinic = patient.clinic_id
        if clinic not in takes_reminders:
            endpoints = clinic_endpoints(db, clinic)
            takes_reminders[clinic] = any(subscribed(e, "session.reminder") for e in endpoints)
        who = recipient(patient, settings)
        causes = unreachable_causes(
            who.reminder_time,
            who.quiet,
            patient.channel,
            reminder_endpoint=takes_reminders[clinic],
            email_refused=bool(patient.email) and patient.email_refused == patient.email,
        )
        before = causes_of(patient)
        for cause in causes:
            # Each current cause, not only new ones: one found before the patient had a
            # course is told once they have one (an open escalation is not opened again).
            if _tell(db, patient, cause, now):
                newly[(clinic, cause)].append(patient)
        for cause in before:
            if cause not in causes:
                _settle(db, patient, cause, now)
        unreachable += bool(causes)
        if causes == before and patient.reachability_checked_at is not None:
            continue  # nothing to write: most of a clinic's patients, most of the time
        patient.unreachable = ",".join(causes) or None
        patient.reachability_checked_at = now
        db.add(patient)
    for (clinic, cause), cut_off in newly.items():
        _email_clinic(db, settings, clinic, cause, cut_off, now)
    db.flush()
    return unreachable


def _open_key(patient: Patient, cause: Unreachable) -> str:
    return f"{patient.id}:{cause}"


def _tell(db: Session, patient: Patient, cause: Unreachable, now: datetime) -> bool:
    """Open the escalation for this patient and cause (unless it is open); True if new.
    Only a patient in a course under way needs reminders."""
    if not _in_a_course(db, patient):
        return False
    return escalate(
        db, patient, EscalationReason.UNREACHABLE, f"{cause}: {CAUSES[cause]}", now,
        once=_open_key(patient, cause), email=False,
    )  # fmt: skip


def _in_a_course(db: Session, patient: Patient) -> bool:
    found = db.exec(
        select(Enrollment.id).where(
            Enrollment.patient_id == patient.id, col(Enrollment.status).in_(ONGOING)
        )
    ).first()
    return found is not None


def _settle(db: Session, patient: Patient, cause: Unreachable, now: datetime) -> None:
    settle_once(
        db, _open_key(patient, cause), EscalationReason.UNREACHABLE, "the service",
        f"{cause} no longer applies", now,
    )  # fmt: skip


def _email_clinic(
    db: Session, settings: Settings, clinic_id: str, cause: Unreachable, cut_off: list[Patient],
    now: datetime,
) -> None:  # fmt: skip
    """One email for the patients one cause newly cut off: each by the clinic's id for
    them and a link to their page, never by name."""
    base = settings.base_url.rstrip("/")
    lines = [
        f"- patient {p.external_id or short_id(p.id)}: {base}/app/patients/{p.id}" for p in cut_off
    ]
    count = len(cut_off)
    alert_clinic(
        db,
        clinic_id,
        f"Cannot reach {count} patient(s): {cause.replace('_', ' ')}",
        f"No reminder can reach these patients: {CAUSES[cause]}. Until this is put right "
        f"their sessions are not counted as missed. To put it right: {REMEDIES[cause]}.\n\n"
        + "\n".join(lines),
        now,
    )


def unchecked(db: Session, _rt: Runtime, _now: datetime) -> list[str]:
    """Return the patients whose reachability was never worked out. A read: the sweep's
    `check_unchecked` does the work in batches."""
    found = db.execute(
        sa.select(col(Patient.id)).where(
            col(Patient.reachability_checked_at).is_(None), col(Patient.erased_at).is_(None)
        )
    )
    return list(found.scalars())


def check_unchecked(db: Session, rt: Runtime, now: datetime, patient_ids: Sequence[str]) -> int:
    """Work out the reachability of `patient_ids` (a sweep step); return how many
    cannot be reached."""
    found = db.exec(select(Patient).where(col(Patient.id).in_(patient_ids))).all()
    return refresh(db, rt.settings, [p for p in found if p.reachability_checked_at is None], now)


def refresh_webhook_patients(db: Session, settings: Settings, clinic_id: str, now: datetime) -> int:
    """Work out again the reachability of the clinic's patients reminded by webhook, after
    its endpoints changed."""
    found = db.exec(
        select(Patient).where(
            Patient.clinic_id == clinic_id,
            Patient.channel == "webhook",
            col(Patient.erased_at).is_(None),
        )
    ).all()
    return refresh(db, settings, list(found), now)
