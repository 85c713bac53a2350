"""Telling the clinic: signed webhook events and escalations.

An event is a delivery per subscribed endpoint, written in the transaction of what
happened. Events about a session are unique per session, type and endpoint, so
confirming twice, or a sweep running twice, never tells the clinic twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from reminders.db.rows import insert_ignore
from reminders.ids import new_id
from reminders.messages import alert_subject
from reminders.models import Clinic, Escalation, Patient
from reminders.safety import priority
from reminders.services.reminding import clinic_endpoints, subscribed
from reminders.states import DeliveryAudience, EscalationReason, EscalationState
from reminders.stores import outbox


def patient_data(db: Session, patient: Patient) -> dict[str, Any]:
    """Return how events name a patient: ids always, the name only where the clinic
    has asked for names in webhooks."""
    data: dict[str, Any] = {"patient_id": patient.id, "external_id": patient.external_id}
    clinic = db.get(Clinic, patient.clinic_id)
    if clinic is not None and clinic.webhook_include_names:
        data["patient_name"] = patient.name
    return data


def emit(
    db: Session,
    clinic_id: str,
    event: str,
    data: dict[str, Any] | Callable[[], dict[str, Any]],
    now: datetime,
    *,
    session_id: str | None = None,
    patient_id: str | None = None,
) -> None:
    """Queue `event` to every enabled endpoint of the clinic that takes it. `data` may
    be a function, called only if some endpoint wants the event."""
    endpoints = [e for e in clinic_endpoints(db, clinic_id) if subscribed(e, event)]
    if not endpoints:
        return
    payload = json.dumps(data() if callable(data) else data, sort_keys=True, default=str)
    events = [
        outbox.new_delivery(
            clinic_id=clinic_id,
            kind=event,
            audience=DeliveryAudience.INTEGRATION,
            channel="webhook",
            target=endpoint.id,
            now=now,
            patient_id=patient_id,
            session_id=session_id,
            payload=payload,
        )
        for endpoint in endpoints
    ]
    outbox.queue(db, events)


def escalate(
    db: Session,
    patient: Patient,
    reason: str,
    detail: str,
    now: datetime,
    *,
    session_id: str | None = None,
    enrollment_id: str | None = None,
    once: str | None = None,
    held: str | None = None,
    patient_note: str | None = None,
    email: bool = True,
    urgent: bool = False,
) -> bool:
    """Tell the clinic a patient needs attention, unless the same cause is still open:
    store it for the clinic's inbox, and queue a `patient.escalation` webhook and, where
    the clinic has an alert address, an email. Returns True if a new one was opened.

    A cause is the reason for one enrollment (for the patient where none is named), for
    one session where a side effect was reported (one that held the plan is a cause of
    its own), or the key `once` (one cause however many messages it hits, e.g. a mail
    server refusing them). `detail` must hold ids and dates only: it is stored and shown
    to whoever reads the inbox. `held`: what happened to a held plan (the most
    urgent rank); `patient_note`: the patient's own words, for staff and the clinic's
    systems, never for an email subject or a log. `email=False`: the caller tells the
    clinic by email itself (one email for many patients); `urgent`: the email's subject
    says so.
    """
    escalation_id = new_id()
    about = once or (session_id if reason == EscalationReason.SIDE_EFFECT else enrollment_id)
    open_key = open_key_of(about or patient.id, reason) + (":hold" if held else "")
    row = {
        "id": escalation_id,
        "clinic_id": patient.clinic_id,
        "patient_id": patient.id,
        "enrollment_id": enrollment_id,
        "session_id": session_id,
        "reason": reason,
        "priority": int(priority(reason, holds=held is not None)),
        "detail": detail,
        "patient_note": patient_note,
        "state": EscalationState.OPEN,
        "open_key": open_key,
        "alerted_at": now,
        "realerts": 0,
        "created_at": now,
    }
    insert_ignore(db, Escalation, [row])
    holder = db.exec(select(Escalation.id).where(Escalation.open_key == open_key)).first()
    if holder != escalation_id:
        return False
    announce(db, patient, row, now, held=held, email=email, urgent=urgent)
    return True


def announce(
    db: Session,
    patient: Patient,
    escalation: dict[str, Any],
    now: datetime,
    *,
    held: str | None = None,
    email: bool = True,
    urgent: bool = False,
    realert: int = 0,
) -> None:
    """Queue the `patient.escalation` event and, where the clinic has an alert address,
    the email for an escalation (its row's values); `realert`: how many times it has
    been sent again (a review nobody decided)."""
    data = {
        **patient_data(db, patient),
        "escalation_id": escalation["id"],
        "enrollment_id": escalation["enrollment_id"],
        "session_id": escalation["session_id"],
        "reason": escalation["reason"],
        "priority": escalation["priority"],
        "detail": escalation["detail"],
        "note": escalation["patient_note"],
        **({"realert": realert} if realert else {}),
    }
    emit(db, patient.clinic_id, "patient.escalation", data, now, patient_id=patient.id)
    clinic = db.get(Clinic, patient.clinic_id)
    if not email or clinic is None or not clinic.alert_email:
        return
    reference = patient.external_id or short_id(patient.id)
    reason, detail = escalation["reason"], escalation["detail"]
    again = f" (reminder {realert}: still waiting for a decision)" if realert else ""
    text = f"Patient {reference} needs attention ({reason}){again}: {detail}"
    payload = {
        "subject": alert_subject(reason, reference, held=held, urgent=urgent),
        "text": text,
        "patient_page": f"/app/patients/{patient.id}",
    }
    alert = outbox.new_delivery(
        clinic_id=patient.clinic_id, kind="escalation", audience=DeliveryAudience.CLINIC,
        channel="email", target=patient.clinic_id, now=now, patient_id=patient.id,
        payload=json.dumps(payload),
    )  # fmt: skip
    outbox.queue(db, [alert])


def open_key_of(about: str, reason: str) -> str:
    """The key that keeps one escalation open per cause: what it is about, and why."""
    return f"{about}:{reason}"


def settle_once(db: Session, about: str, reason: str, by: str, note: str, now: datetime) -> None:
    """Settle the open escalation raised with `once=about` for `reason`, if there is one."""
    key = open_key_of(about, reason)
    for escalation in db.exec(select(Escalation).where(Escalation.open_key == key)):
        settle(escalation, by, note, now)
        db.add(escalation)


def short_id(row_id: str) -> str:
    """The last eight characters of an id (its random part): enough for staff to tell
    patients apart in a subject line."""
    return row_id[-8:]


def settle(escalation: Escalation, by: str, note: str | None, now: datetime) -> None:
    """Mark an open escalation as dealt with by `by`; the same cause may then open a
    new one. The caller adds the row to its session."""
    escalation.state = EscalationState.ACKNOWLEDGED
    escalation.open_key = None
    escalation.acknowledged_by = by
    escalation.acknowledged_at = now
    escalation.note = note


def settle_open(
    db: Session,
    reason: str,
    by: str,
    note: str,
    now: datetime,
    *,
    enrollment_id: str | None = None,
    patient_id: str | None = None,
) -> None:
    """Settle the open escalation for `reason` of the enrollment (or of the patient), if
    there is one: the clinic answered it another way, e.g. with a review decision or by
    resubscribing the patient."""
    about = (
        Escalation.enrollment_id == enrollment_id
        if enrollment_id is not None
        else Escalation.patient_id == patient_id
    )
    found = db.exec(
        select(Escalation).where(
            about, Escalation.reason == reason, Escalation.state == EscalationState.OPEN
        )
    )
    for escalation in found:
        settle(escalation, by, note, now)
        db.add(escalation)
