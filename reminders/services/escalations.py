"""The clinic's escalation inbox: what needs a person, and who looked at it.

Escalations are opened by `events.escalate` (one open per patient and reason); staff
acknowledge them here. Acknowledging means "seen": it changes no plan's pace (resuming
a dormant course, or a confirmation, does). A review nobody decided is sent again every
REALERT_AFTER (`realert_undecided`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from reminders.errors import Conflict, NotFound
from reminders.models import Enrollment, Escalation, Patient
from reminders.runtime import Runtime
from reminders.services.audit import Actor, AuditAction, record
from reminders.services.events import announce, settle
from reminders.services.reading import Page, newest_escalations
from reminders.states import ONGOING, REVIEW_REASONS, EscalationReason, EscalationState


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


# A review nobody decided is sent to the clinic again this long after the last time.
REALERT_AFTER = timedelta(days=14)


def _still_waiting(db: Session, escalation: Escalation) -> bool:
    """A `no_response` review waits while its course is under way with the review open;
    a `no_improvement` one (raised at a course's end) until someone acknowledges it."""
    if escalation.reason != EscalationReason.NO_RESPONSE:
        return True
    enrollment = db.get(Enrollment, escalation.enrollment_id) if escalation.enrollment_id else None
    return (
        enrollment is not None
        and enrollment.status in ONGOING
        and enrollment.review_reason is not None
    )


def undecided_reviews(db: Session, _rt: Runtime, now: datetime) -> list[str]:
    """Return the open review escalations last sent REALERT_AFTER ago or more. A read:
    `realert_undecided` writes."""
    found = db.execute(
        sa.select(col(Escalation.id)).where(
            col(Escalation.state) == EscalationState.OPEN,
            col(Escalation.reason).in_(REVIEW_REASONS),
            col(Escalation.alerted_at) <= now - REALERT_AFTER,
        )
    )
    return list(found.scalars())


def realert_undecided(db: Session, _rt: Runtime, now: datetime, ids: Sequence[str]) -> int:
    """Send each of those reviews still open again: the same escalation, its email and
    `patient.escalation` event with `realert: n`. A `no_response` review the plan no
    longer holds (the patient responded, the course was withdrawn or erased) is settled
    instead. Returns how many were sent."""
    sent = 0
    for escalation in db.exec(select(Escalation).where(col(Escalation.id).in_(ids))).all():
        due = escalation.alerted_at is None or escalation.alerted_at <= now - REALERT_AFTER
        if escalation.state != EscalationState.OPEN or not due or escalation.patient_id is None:
            continue
        if not _still_waiting(db, escalation):
            settle(escalation, "reminders", "the review no longer waits for a decision", now)
            db.add(escalation)
            continue
        patient = db.get(Patient, escalation.patient_id)
        assert patient is not None  # foreign key
        escalation.realerts += 1
        escalation.alerted_at = now
        db.add(escalation)
        announce(db, patient, escalation.model_dump(), now, realert=escalation.realerts)
        sent += 1
    return sent
