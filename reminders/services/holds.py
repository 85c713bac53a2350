"""Safety holds: a side effect that holds a plan stops it until a clinician decides.

Which reports hold a plan, and how a plan starts again, are `reminders.safety`'s rules;
this module makes the moves: `hold` when such a report comes in, `decide_hold` when a
clinician answers (continue, pause until a day, or end the course).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session

from reminders.errors import Conflict, InvalidInput
from reminders.fields import checked, note, single_line
from reminders.models import Enrollment, HoldDecisionCreate, Patient
from reminders.runtime import Runtime
from reminders.safety import restart_on
from reminders.services.audit import Actor, AuditAction, record
from reminders.services.enrollments import get_enrollment
from reminders.services.events import settle_open
from reminders.services.protocol_versions import protocol_of
from reminders.services.reminding import notice_rows
from reminders.services.replan import replan
from reminders.states import (
    EnrollmentStatus,
    EscalationReason,
    SessionStatus,
)
from reminders.stores import outbox, session_store
from reminders.timing import local_today

DECISIONS = ("continue", "pause", "end")
PAUSED_AFTER_HOLD = "held after a side effect"
# What may be held: a plan already held, or ended, stays as it is.
_HOLDABLE = (EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED)


def hold(db: Session, rt: Runtime, enrollment: Enrollment, patient: Patient, now: datetime) -> bool:
    """Hold the enrollment's plan: nothing planned, reminded or counted as missed until a
    clinician decides. Its planned sessions are cancelled, and so is every message to
    the patient about them still waiting. Returns False if it was not holdable (already
    held, or the course has ended)."""
    if enrollment.status not in _HOLDABLE:
        return False
    enrollment.status = EnrollmentStatus.HELD
    enrollment.paused_until = None
    enrollment.resume_on = None
    enrollment.updated_at = now
    db.add(enrollment)
    db.flush()
    replan(db, rt, enrollment, now, patient=patient)
    # The re-plan cancels from today on; a session of an earlier day still open (in its
    # grace) must not become a miss either.
    still_open = [
        s for s in session_store.of_enrollment(db, enrollment.id)
        if s.status == SessionStatus.PLANNED
    ]  # fmt: skip
    session_store.mark(db, still_open, SessionStatus.CANCELLED, now)
    outbox.cancel_to_patient_about(
        db, patient.id, session_store.ids_of_enrollment(enrollment.id), HELD
    )
    return True


# Why messages about a held plan's sessions were cancelled.
HELD = "plan held after a side effect"


@dataclass(frozen=True, slots=True)
class HoldDecision:
    """A clinician's answer to a hold: `continue`, `pause` until a day, or `end`."""

    decision: str
    by: str
    note: str | None = None
    until: date | None = None

    @classmethod
    def of(cls, asked: HoldDecisionCreate) -> HoldDecision:
        """The decision as the API, the CLI and the staff app take it."""
        return cls(asked.decision, asked.by, asked.note, asked.until)


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

    `continue` plans again at the plan's own pace, from tomorrow at the earliest (a
    clinic-given course: its notice days ahead); `pause` holds it until `until`, when it resumes by
    itself; `end` withdraws it (reason `side_effect`) and tells the patient. The
    decision settles the side-effect escalations and goes in the audit log. Raises
    InvalidInput naming the field, NotFound, or Conflict when the plan is not held."""
    if answer.decision not in DECISIONS:
        raise InvalidInput("decision", f"must be one of {', '.join(DECISIONS)}")
    by = checked("by", answer.by, single_line).strip()
    if not by or len(by) > 200:
        raise InvalidInput("by", "name the clinician who decided (at most 200 characters)")
    text = None
    if answer.note:
        text = checked("note", answer.note, note).strip() or None
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
    if protocol is None:
        raise Conflict(f"protocol {enrollment.protocol_id!r} is not installed")
    if answer.decision == "continue":
        enrollment.status = EnrollmentStatus.ACTIVE
        enrollment.counting_from = today
        enrollment.slowed_since = None
        enrollment.resume_on = restart_on(
            today, protocol.given_at, protocol.notice_days, after_hold=True
        )
    elif answer.decision == "pause":
        enrollment.status = EnrollmentStatus.PAUSED
        enrollment.paused_until = answer.until
        enrollment.pause_reason = PAUSED_AFTER_HOLD
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
