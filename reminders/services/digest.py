"""The clinic's digest: what happened to its courses since the last one, in one email to
its alert address and one `clinic.digest` event for its systems.

At DIGEST_AT in the clinic's zone (UTC when it has none): every day, on Mondays only, or
never (`Clinic.digest`). Sent only when something is new since the previous one, and at
most once a local day. Patients are named by external id (a short id without one) with a
link to their page in the staff app, never by name; the event carries ids only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from reminders.kinds import DeliveryKind
from reminders.models import Clinic, DigestLine, Escalation, Patient
from reminders.runtime import Runtime
from reminders.services.events import emit, short_id
from reminders.services.reminding import alert_clinic
from reminders.states import REVIEW_REASONS, EscalationReason, EscalationState
from reminders.timing import zone

DIGEST_AT = time(7, 30)
# A clinic's first digest looks back this far.
FIRST_LOOK_BACK = timedelta(days=7)
# How each kind of line reads, in the order the digest lists them.
HEADINGS = {
    "completed": "Courses completed",
    "worsening": "Getting worse",
    "returned": "Back to induction",
    "relapse": "Relapses",
    "dormant": "Reminders stopped, no answer",
    "ended": "Courses that ran out of time",
}


# The line that already tells of an escalation's cause.
LINE_OF_REASON: dict[str, str] = {
    EscalationReason.WORSENING: "worsening",
    EscalationReason.DORMANT: "dormant",
    EscalationReason.EXPIRED: "ended",
}


def _local_now(clinic: Clinic, now: datetime) -> datetime:
    return now.astimezone(zone(clinic.timezone or "UTC"))


def is_due(clinic: Clinic, now: datetime) -> bool:
    """Return True when the clinic's digest is due at `now`: past DIGEST_AT on one of its
    days, and none sent yet that local day."""
    local = _local_now(clinic, now)
    if clinic.digest == "off" or local.time() < DIGEST_AT:
        return False
    if clinic.digest == "weekly" and local.weekday() != 0:
        return False
    sent = clinic.digest_sent_at
    return sent is None or _local_now(clinic, sent).date() < local.date()


def due_clinics(db: Session, _rt: Runtime, now: datetime) -> list[str]:
    """Return the clinics whose digest is due. A read: `send_digests` writes."""
    clinics = db.exec(select(Clinic).where(col(Clinic.digest) != "off")).all()
    return [c.id for c in clinics if is_due(c, now)]


def send_digests(db: Session, rt: Runtime, now: datetime, clinic_ids: Sequence[str]) -> int:
    """Send the digest of each of `clinic_ids` still due that has something new; return
    how many were sent. A clinic with nothing new is looked at again tomorrow."""
    sent = 0
    for clinic in db.exec(select(Clinic).where(col(Clinic.id).in_(clinic_ids))).all():
        if not is_due(clinic, now):
            continue
        since = clinic.digest_sent_at or now - FIRST_LOOK_BACK
        clinic.digest_sent_at = now
        db.add(clinic)
        digest = build(db, rt, clinic, since, now)
        if digest is None:
            continue
        _queue(db, clinic, digest, now)
        sent += 1
    return sent


def build(
    db: Session, rt: Runtime, clinic: Clinic, since: datetime, now: datetime
) -> dict[str, Any] | None:
    """Return the digest of what is new since `since` (subject, text and the event's
    data), or None when nothing is."""
    lines = db.exec(
        select(DigestLine)
        .where(DigestLine.clinic_id == clinic.id, col(DigestLine.created_at) > since)
        .order_by(col(DigestLine.created_at))
    ).all()
    open_ones = db.exec(
        select(Escalation)
        .where(Escalation.clinic_id == clinic.id, Escalation.state == EscalationState.OPEN)
        .order_by(col(Escalation.priority), col(Escalation.created_at))
    ).all()
    # An escalation the lines already name (a course gone dormant) is listed once.
    named: set[tuple[str | None, str | None]] = {(line.enrollment_id, line.kind) for line in lines}
    open_ones = [
        e for e in open_ones if (e.enrollment_id, LINE_OF_REASON.get(e.reason)) not in named
    ]
    fresh = [e for e in open_ones if e.created_at > since]
    if not lines and not fresh:
        return None
    patient_ids = {line.patient_id for line in lines} | {
        e.patient_id for e in open_ones if e.patient_id
    }
    references = _references(db, patient_ids)
    base = rt.settings.base_url.rstrip("/")

    def who(patient_id: str | None) -> str:
        if patient_id is None:
            return "the clinic"
        reference = references.get(patient_id, short_id(patient_id))
        return f"patient {reference} {base}/app/patients/{patient_id}"

    text: list[str] = [f"What happened since {since:%Y-%m-%d %H:%M} UTC."]
    for kind, heading in HEADINGS.items():
        found = [line for line in lines if line.kind == kind]
        if found:
            text += ["", f"{heading} ({len(found)}):"]
            text += [f"- {who(line.patient_id)}: {line.detail}" for line in found]
    reviews = [e for e in open_ones if e.reason in REVIEW_REASONS]
    if reviews:
        text += ["", f"Reviews waiting for a decision ({len(reviews)}):"]
        text += [f"- {who(e.patient_id)}: {e.reason}, {_age(e, now)}" for e in reviews]
    others = [e for e in open_ones if e.reason not in REVIEW_REASONS]
    if others:
        text += ["", f"Open escalations ({len(others)}), most urgent first:"]
        text += [f"- {who(e.patient_id)}: {e.reason}, {_age(e, now)}" for e in others]
    new = len(lines) + len(fresh)
    return {
        "subject": f"Reminders digest: {new} new, {len(open_ones)} open",
        "text": "\n".join(text),
        "data": {
            "clinic_id": clinic.id,
            "since": since.isoformat(),
            "lines": [
                {"kind": line.kind, "patient_id": line.patient_id,
                 "enrollment_id": line.enrollment_id, "at": line.created_at.isoformat()}
                for line in lines
            ],
            "open_escalations": [
                {"escalation_id": e.id, "reason": e.reason, "priority": e.priority,
                 "patient_id": e.patient_id, "opened_at": e.created_at.isoformat()}
                for e in open_ones
            ],
        },
    }  # fmt: skip


def _age(escalation: Escalation, now: datetime) -> str:
    days = (now - escalation.created_at).days
    return "opened today" if days == 0 else f"open {days} day{'s' if days > 1 else ''}"


def _references(db: Session, patient_ids: set[str]) -> dict[str, str]:
    """Each patient's external id where the clinic gave one."""
    if not patient_ids:
        return {}
    rows = db.execute(
        sa.select(col(Patient.id), col(Patient.external_id)).where(col(Patient.id).in_(patient_ids))
    )
    return {patient_id: external for patient_id, external in rows if external}


def _queue(db: Session, clinic: Clinic, digest: dict[str, Any], now: datetime) -> None:
    if clinic.alert_email:
        subject, text = digest["subject"], digest["text"]
        alert_clinic(db, clinic.id, subject, text, now, kind=DeliveryKind.DIGEST)
    emit(db, clinic.id, DeliveryKind.CLINIC_DIGEST, digest["data"], now)
