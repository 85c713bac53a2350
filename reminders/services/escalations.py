"""The clinic's escalation inbox: what needs a person, and who looked at it.

Escalations are opened by `events.escalate` (one open per patient and reason); staff
acknowledge them here. Acknowledging means "seen": it changes no plan's pace (resuming
a dormant course, or a confirmation, does). A review nobody decided is sent again every
REALERT_AFTER (`realert_undecided`).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from reminders.errors import Conflict, NotFound
from reminders.models import Enrollment, Escalation, Patient
from reminders.runtime import Runtime
from reminders.services.audit import Actor, AuditAction, record
from reminders.services.events import settle
from reminders.services.reading import Page, newest_escalations
from reminders.services.replan import replan
from reminders.states import EnrollmentStatus, EscalationReason, EscalationState
from reminders.timing import local_today


def list_escalations(
    db: Session, clinic_id: str, state: str | None, cursor: str | None, limit: int
) -> Page[Escalation]:
    """Return a page of the clinic's escalations, newest first, optionally in one state."""
    return newest_escalations(db, clinic_id, state, cursor, limit)


def get_escalation(db: Session, clinic_id: str | None, escalation_id: str) -> Escalation:
    """Return one of the clinic's escalations; raise NotFound otherwise."""
    escalation = db.get(Escalation, escalation_id)
    if escalation is None or (clinic_id is not None and escalation.clinic_id != clinic_id):
        raise NotFound("escalation", escalation_id)
    return escalation


def acknowledge(
    db: Session,
    rt: Runtime,
    clinic_id: str | None,
    escalation_id: str,
    by: str,
    note: str | None,
    now: datetime,
    *,
    actor: Actor | None = None,
) -> Escalation:
    """Mark an open escalation as seen by `by`, with an optional note; return it. The
    same cause may then raise a new escalation. Raises NotFound, or Conflict when it
    was already acknowledged."""
    escalation = get_escalation(db, clinic_id, escalation_id)
    if escalation.state != EscalationState.OPEN:
        raise Conflict(f"escalation already acknowledged by {escalation.acknowledged_by}")
    settle(escalation, by, note, now)
    db.add(escalation)
    record(
        db, actor, escalation.clinic_id, AuditAction.ACKNOWLEDGE, ("escalation", escalation.id),
        now, reason=escalation.reason, patient_id=escalation.patient_id, note=note,
    )  # fmt: skip
    db.flush()
    return escalation
