"""The audit log: who changed what, and when.

Services that change something on a person's say-so (enrolling, overriding a screening,
pausing, resuming, withdrawing, acknowledging, webhook endpoints, staff) record it here,
in the same transaction as the change, so the log never claims what did not happen.
The `Actor` comes from whoever asked: a staff member in the web app, an API key (and
the person it names), the command line. Work the service does by itself is not a
person's action and is not recorded here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlmodel import Session

from reminders.models import AuditEvent


class AuditAction(StrEnum):
    ENROLL = "enroll"
    SCREENING_OVERRIDE = "screening.override"
    PAUSE = "enrollment.pause"
    RESUME = "enrollment.resume"
    WITHDRAW = "enrollment.withdraw"
    HOLD_DECISION = "enrollment.hold_decision"
    ACKNOWLEDGE = "escalation.acknowledge"
    PATIENT_UPDATE = "patient.update"
    ABSENCE_ADD = "absence.add"
    ENDPOINT_ADD = "endpoint.add"
    ENDPOINT_ROTATE = "endpoint.rotate"
    ENDPOINT_DELETE = "endpoint.delete"
    STAFF_ADD = "staff.add"
    STAFF_ROLE = "staff.role"
    STAFF_DISABLE = "staff.disable"
    STAFF_ENABLE = "staff.enable"
    CLINIC_UPDATE = "clinic.update"
    CLINIC_HOURS = "clinic.hours"
    CLINIC_CLOSE = "clinic.close"
    CLINIC_REOPEN = "clinic.reopen"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked for a change, as the log names them."""

    name: str
    staff_id: str | None = None

    @classmethod
    def staff(cls, staff_id: str, email: str) -> Actor:
        return cls(email, staff_id)


def record(
    db: Session,
    actor: Actor | None,
    clinic_id: str,
    action: AuditAction,
    subject: tuple[str, str | None],
    now: datetime,
    **detail: Any,
) -> None:
    """Add an entry for `action` on `subject` (type, id) by `actor`, in the caller's
    transaction; nothing when no person asked (`actor` None). `detail` holds ids, dates,
    choices and the person's own reason or note, never a patient's name or contact."""
    if actor is None:
        return
    subject_type, subject_id = subject
    db.add(
        AuditEvent(
            clinic_id=clinic_id,
            actor=actor.name,
            staff_id=actor.staff_id,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            detail=json.dumps(detail, default=str, sort_keys=True, ensure_ascii=False),
            created_at=now,
        )
    )
