"""Changes to a course's status the clinic asks for: pause, resume and withdraw, answers
to a review, and a move to the current version of its protocol."""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Session

from reminders.errors import Conflict, InvalidInput
from reminders.models import (
    Enrollment,
    Patient,
    ReviewDecisionRow,
)
from reminders.runtime import Runtime
from reminders.safety import restart_on
from reminders.services.audit import Actor, AuditAction, record
from reminders.services.enrollments import get_enrollment
from reminders.services.events import settle_open
from reminders.services.protocol_versions import move_to_current, protocol_of
from reminders.services.replan import replan
from reminders.states import ONGOING, EnrollmentStatus, EscalationReason
from reminders.timing import local_today

STATUS_ACTIONS = {
    EnrollmentStatus.PAUSED: AuditAction.PAUSE,
    EnrollmentStatus.ACTIVE: AuditAction.RESUME,
    EnrollmentStatus.WITHDRAWN: AuditAction.WITHDRAW,
}


def set_status(
    db: Session,
    rt: Runtime,
    clinic_id: str | None,
    enrollment_id: str,
    status: str,
    now: datetime,
    *,
    until: date | None = None,
    reason: str | None = None,
    actor: Actor | None = None,
) -> Enrollment:
    """Pause, resume or withdraw an enrollment and re-plan; return it. The change is
    recorded as `actor`'s doing.

    A pause may end by itself on `until` (a local date after today). Resuming counts
    nothing of the pause: the plan starts again from today, and so does the count of
    days behind it. Raises NotFound, InvalidInput, or Conflict for a change its current
    state does not allow.
    """
    allowed = {
        EnrollmentStatus.PAUSED: (EnrollmentStatus.ACTIVE, EnrollmentStatus.DORMANT),
        EnrollmentStatus.ACTIVE: (EnrollmentStatus.PAUSED, EnrollmentStatus.DORMANT),
        # A held plan ends only by a clinician's decision on it (`services.holds`).
        EnrollmentStatus.WITHDRAWN: (
            EnrollmentStatus.ACTIVE,
            EnrollmentStatus.PAUSED,
            EnrollmentStatus.DORMANT,
        ),
    }
    if status not in allowed:
        raise InvalidInput("status", "must be paused, active or withdrawn")
    wanted = EnrollmentStatus(status)
    enrollment = get_enrollment(db, clinic_id, enrollment_id)
    patient = db.get(Patient, enrollment.patient_id)
    assert patient is not None  # foreign key
    today = local_today(now, patient.timezone)
    if until is not None and status != EnrollmentStatus.PAUSED:
        raise InvalidInput("until", "only a pause has an end date")
    if until is not None and until <= today:
        raise InvalidInput("until", f"must be after today ({today}, the patient's date)")
    if enrollment.status == status:
        return enrollment
    if enrollment.status == EnrollmentStatus.HELD:
        raise Conflict("the plan is held after a side effect: a clinician decides how it goes on")
    if enrollment.status not in allowed[wanted]:
        raise Conflict(f"enrollment is {enrollment.status}; cannot become {status}")
    enrollment.status = status
    enrollment.paused_until = until if status == EnrollmentStatus.PAUSED else None
    enrollment.pause_reason = reason if status == EnrollmentStatus.PAUSED else None
    if status == EnrollmentStatus.ACTIVE:
        # Resuming is the clinic acting: the plan's own pace, counted from today.
        enrollment.counting_from = today
        enrollment.slowed_since = None
        protocol = protocol_of(db, rt, enrollment)
        if protocol is not None:
            enrollment.resume_on = restart_on(
                today, protocol.given_at, protocol.notice_days, after_hold=False
            )
    enrollment.updated_at = now
    db.add(enrollment)
    db.flush()
    replan(db, rt, enrollment, now, patient=patient)
    record(
        db, actor, enrollment.clinic_id, STATUS_ACTIONS[wanted], ("enrollment", enrollment.id),
        now, patient_id=patient.id, until=until, reason=reason,
    )  # fmt: skip
    return enrollment


def decide_review(
    db: Session,
    rt: Runtime,
    clinic_id: str | None,
    enrollment_id: str,
    action: str,
    now: datetime,
    *,
    decided_by: str | None = None,
    note: str | None = None,
) -> Enrollment:
    """Record a clinician's answer to an open review and re-plan: `continue` (another
    block of the phase's maximum), `move_on` (the next phase) or `end` (the course ends).
    The escalation that asked for the review is settled by it. Raises NotFound,
    InvalidInput, or Conflict when no review is open."""
    if action not in ("continue", "move_on", "end"):
        raise InvalidInput("decision", "must be continue, move_on or end")
    enrollment = get_enrollment(db, clinic_id, enrollment_id)
    if enrollment.status != EnrollmentStatus.ACTIVE or not enrollment.review_reason:
        raise Conflict("the enrollment has no open review")
    patient = db.get(Patient, enrollment.patient_id)
    assert patient is not None  # foreign key
    db.add(
        ReviewDecisionRow(
            enrollment_id=enrollment.id,
            local_date=local_today(now, patient.timezone),
            action=action,
            decided_by=decided_by,
            note=note,
            created_at=now,
        )
    )
    settle_open(
        db, EscalationReason.NO_RESPONSE, decided_by or "a clinician",
        f"review decided: {action}", now, enrollment_id=enrollment.id,
    )  # fmt: skip
    db.flush()
    replan(db, rt, enrollment, now, patient=patient)
    return enrollment


def move_to_current_protocol(
    db: Session, rt: Runtime, clinic_id: str | None, enrollment_id: str, now: datetime
) -> tuple[Enrollment, int | None, int]:
    """Move an enrollment to the installed version of its protocol and re-plan; return
    it with the versions (before, after). Raises NotFound or Conflict."""
    enrollment = get_enrollment(db, clinic_id, enrollment_id)
    before, after = move_to_current(db, rt, enrollment, now)
    if enrollment.status in ONGOING:
        replan(db, rt, enrollment, now)
    return enrollment, before, after
