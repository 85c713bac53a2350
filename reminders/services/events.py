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

from sqlmodel import Session

from reminders.db import insert_ignore
from reminders.ids import daily_id, new_id
from reminders.models import Clinic, Delivery, Patient
from reminders.services.reminding import clinic_endpoints, subscribed

# Types a clinic endpoint can subscribe to: messages for the patient (relayed by the
# clinic's systems, e.g. to SMS) and events about the patient for the clinic.
EVENT_TYPES: tuple[str, ...] = (
    "session.reminder",
    "session.follow_up",
    "patient.missed_notice",
    "patient.overdue",
    "session.missed",
    "session.confirmed",
    "session.skipped",
    "plan.phase_changed",
    "patient.escalation",
)


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
    once: str | None = None,
) -> None:
    """Queue `event` to every enabled endpoint of the clinic that takes it. `data` may
    be a function, called only if some endpoint wants the event. With `once`, an event
    with the same key is queued at most once a day."""
    endpoints = [e for e in clinic_endpoints(db, clinic_id) if subscribed(e, event)]
    if not endpoints:
        return
    payload = json.dumps(data() if callable(data) else data, sort_keys=True, default=str)
    rows = [
        {
            "id": daily_id(f"{once}|{endpoint.id}", now.date()) if once else new_id(),
            "clinic_id": clinic_id,
            "patient_id": patient_id,
            "session_id": session_id,
            "kind": event,
            "channel": "webhook",
            "target": endpoint.id,
            "state": "pending",
            "due_at": now,
            "expires_at": None,
            "next_attempt_at": now,
            "attempts": 0,
            "payload": payload,
            "created_at": now,
        }
        for endpoint in endpoints
    ]
    insert_ignore(db, Delivery, rows)


def escalate(
    db: Session,
    patient: Patient,
    reason: str,
    detail: str,
    now: datetime,
    *,
    session_id: str | None = None,
    once: str | None = None,
) -> None:
    """Tell the clinic a patient needs attention: a `patient.escalation` webhook and an
    email to the clinic's alert address. Tied to a session, it is sent once per session;
    given a key `once`, once a day per key (one cause, however many messages it hits).
    """
    data = {**patient_data(db, patient), "reason": reason, "detail": detail}
    emit(
        db,
        patient.clinic_id,
        "patient.escalation",
        data,
        now,
        session_id=session_id,
        patient_id=patient.id,
        once=once,
    )
    reference = patient.external_id or patient.id
    text = f"Patient {reference} needs attention: {detail}"
    insert_ignore(
        db,
        Delivery,
        [
            {
                "id": daily_id(f"{once}|email", now.date()) if once else new_id(),
                "clinic_id": patient.clinic_id,
                "patient_id": patient.id,
                "session_id": session_id,
                "kind": "escalation",
                "channel": "email",
                "target": patient.clinic_id,
                "state": "pending",
                "due_at": now,
                "expires_at": None,
                "next_attempt_at": now,
                "attempts": 0,
                "payload": json.dumps({"subject": "A patient needs attention", "text": text}),
                "created_at": now,
            }
        ],
    )
