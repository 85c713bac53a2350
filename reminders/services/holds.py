"""Safety holds: a side effect that holds a plan stops it until a clinician decides.

Which reports hold a plan, and how a plan starts again, are `reminders.safety`'s rules;
this module makes the moves: `hold` when such a report comes in, `decide_hold` when a
clinician answers (continue, pause until a day, or end the course).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Session, col

from reminders.errors import Conflict, InvalidInput
from reminders.fields import checked, note, single_line
from reminders.models import Delivery, Enrollment, Patient, TreatmentSession
from reminders.runtime import Runtime
from reminders.safety import restart_on
from reminders.services.audit import Actor, AuditAction, record
from reminders.services.enrollments import get_enrollment, local_today, replan
from reminders.services.events import settle_open
from reminders.services.protocol_versions import protocol_of
from reminders.services.reminding import notice_rows
from reminders.states import (
    DeliveryAudience,
    DeliveryState,
    EnrollmentStatus,
    EscalationReason,
    SessionStatus,
)
from reminders.stores import outbox, session_store

DECISIONS = ("continue", "pause", "end")
# What a held plan may be: a plan already ended stays as it is.
HOLDABLE = (EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED)


def hold(db: Session, rt: Runtime, enrollment: Enrollment, patient: Patient, now: datetime) -> bool:
    """Hold the enrollment's plan: nothing planned, reminded or counted as missed until a
    clinician decides. Its planned sessions are cancelled, and so is every message to
    the patient about them still waiting. Returns False if it was not holdable (already
    held, or the course has ended)."""
    if enrollment.status not in HOLDABLE:
        return False
    enrollment.status = EnrollmentStatus.HELD
    enrollment.paused_until = None
    enrollment.resume_on = None
    enrollment.updated_at = now
    db.add(enrollment)
    db.flush()
    replan(db, rt, enrollment, now, patient=patient)
    sessions = sa.select(col(TreatmentSession.id)).where(
        col(TreatmentSession.enrollment_id) == enrollment.id
    )
    db.execute(
        sa.update(Delivery)
        .where(
            col(Delivery.session_id).in_(sessions),
            col(Delivery.audience) == DeliveryAudience.PATIENT,
            col(Delivery.state) == DeliveryState.PENDING,
        )
        .values(state=DeliveryState.CANCELLED, last_error="plan held after a side effect")
    )
    return True


@dataclass(frozen=True, slots=True)
class HoldDecision:
    """A clinician's answer to a hold: `continue`, `pause` until a day, or `end`."""

    decision: str
    by: str
    note: str | None = None
    until: date | None = None


def decide_hold(
    db: Session,
    rt: Runtime,
    clinic_id: str | None,
    enrollment_id: str,
    answer: HoldDecision,
    now: datetime,
    *,
    actor: Actor | None = None,
) -> Enrollment:
    """Record a clinician's decision on a held plan and act on it; return the enrollment.

    `continue` plans again from the first allowed day after today (a clinic-given
    course: its notice days ahead); `pause` holds it until `until`, when it resumes by
    itself; `end` withdraws it (reason `side_effect`) and tells the patient. The
    decision settles the side-effect escalations and goes in the audit log. Raises
    InvalidInput naming the field, NotFound, or Conflict when the plan is not held."""
    if answer.decision not in DECISIONS:
        raise InvalidInput("decision", f"must be one of {', '.join(DECISIONS)}")
    by = checked("by", answer.by, single_line).strip()
    if not by or len(by) > 200:
        raise InvalidInput("by", "name the clinician who decided (at most 200 characters)")
    text = checked("note", answer.note, note).strip() or None if answer.note else None
    if text is not None and len(text) > 2000:
        raise InvalidInput("note", "at most 2000 characters")
    enrollment = get_enrollment(db, clinic_id, enrollment_id)
    patient = db.get(Patient, enrollment.patient_id)
    assert patient is not None  # foreign key
    today = local_today(now, patient.timezone)
    if answer.decision == "pause":
        if answer.until is None:
            raise InvalidInput("until", "a pause needs the day it ends")
        if answer.until <= today:
            raise InvalidInput("until", f"must be after today ({today}, the patient's date)")
    elif answer.until is not None:
        raise InvalidInput("until", "only a pause has an end date")
    if enrollment.status != EnrollmentStatus.HELD:
        raise Conflict(f"enrollment is {enrollment.status}, not held")
    protocol = protocol_of(db, rt, enrollment)
    if answer.decision == "continue":
        enrollment.status = EnrollmentStatus.ACTIVE
        enrollment.counting_from = today
        enrollment.slowed_since = None
        enrollment.resume_on = restart_on(
            today,
            protocol.given_at if protocol else "home",
            protocol.notice_days if protocol else 0,
            after_hold=True,
        )
    elif answer.decision == "pause":
        enrollment.status = EnrollmentStatus.PAUSED
        enrollment.paused_until = answer.until
        enrollment.pause_reason = "side effect"
    else:
        enrollment.status = EnrollmentStatus.WITHDRAWN
    enrollment.updated_at = now
    db.add(enrollment)
    settle_open(
        db, EscalationReason.SIDE_EFFECT, by, text or f"hold decided: {answer.decision}", now,
        enrollment_id=enrollment.id,
    )  # fmt: skip
    db.flush()
    replan(db, rt, enrollment, now, patient=patient)
    if answer.decision == "end":
        # The notice is about the course's last session done or reported (its date
        # and links are the message's); a course always has one before a hold.
        last = max(
            (r for r in session_store.of_enrollment(db, enrollment.id)
             if r.status != SessionStatus.CANCELLED and r.local_date <= today),
            key=lambda r: r.local_date, default=None,
        )  # fmt: skip
        outbox.queue(
            db,
            notice_rows(db, rt.settings, "course_ended", last.id if last else None, patient, now),
        )
    record(
        db, actor, enrollment.clinic_id, AuditAction.HOLD_DECISION, ("enrollment", enrollment.id),
        now, patient_id=patient.id, decision=answer.decision, by=by, note=text,
        until=answer.until, reason="side_effect" if answer.decision == "end" else None,
    )  # fmt: skip
    return enrollment
