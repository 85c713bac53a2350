"""Winding a course down when the patient stops answering, and ending a short course
that ran out of time; `course_state` holds the rules and draws the states."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from reminders.course_state import EXPIRES_AFTER, expires_on, goes_dormant, is_short
from reminders.kinds import DeliveryKind
from reminders.models import Enrollment, Patient
from reminders.planner import PastSession
from reminders.runtime import Runtime
from reminders.services import digest_lines
from reminders.services.events import escalate
from reminders.services.protocol_versions import protocol_of
from reminders.services.reminding import notice_rows
from reminders.services.replan import planner_inputs, replan
from reminders.states import EnrollmentStatus, EscalationReason, SessionStatus
from reminders.stores import outbox, session_store
from reminders.timing import local_today


def slow(db: Session, rt: Runtime, enrollment: Enrollment, patient: Patient, now: datetime) -> None:
    """The clinic has been told the patient stopped: from today the course winds down."""
    if enrollment.slowed_since is not None:
        return
    enrollment.slowed_since, enrollment.updated_at = local_today(now, patient.timezone), now
    replan(db, rt, enrollment, now, patient=patient)


def wake(enrollment: Enrollment, now: datetime) -> None:
    """A confirmation on a dormant course: it goes on where it stood (the re-plan that
    follows ends the slowing, since a session was confirmed after it began)."""
    if enrollment.status == EnrollmentStatus.DORMANT:
        enrollment.status, enrollment.updated_at = EnrollmentStatus.ACTIVE, now


def after_a_miss(
    db: Session, rt: Runtime, enrollment: Enrollment, patient: Patient, now: datetime
) -> bool:
    """Make a slowed course dormant once its weekly sessions have gone unanswered
    (`course_state.goes_dormant`); return True if it did."""
    if enrollment.status != EnrollmentStatus.ACTIVE or enrollment.slowed_since is None:
        return False
    rows = session_store.plan_rows(db, enrollment.id)
    history = [PastSession(r.local_date, r.status, r.hdss) for r in rows]
    if not goes_dormant(history, enrollment.slowed_since):
        return False
    last = max((r for r in rows if r.status == SessionStatus.MISSED), key=lambda r: r.local_date)
    since = f"no answer since {enrollment.slowed_since}"
    why = f"{since}; reminders stopped, the patient was asked to contact the clinic"
    _stop(db, rt, enrollment, patient, EscalationReason.DORMANT, why, since, last.id, now)
    return True


def expire_if_due(
    db: Session, rt: Runtime, enrollment: Enrollment, patient: Patient, now: datetime
) -> bool:
    """End a short course as `expired` once past its full plan's last day plus
    `course_state.EXPIRES_AFTER`, and tell the clinic; return True if it did. A patient
    who confirmed a session within that time, or whose review waits for a clinician, is
    still under treatment: not ended."""
    protocol = protocol_of(db, rt, enrollment)
    if protocol is None or not is_short(protocol) or enrollment.status != EnrollmentStatus.ACTIVE:
        return False
    today = local_today(now, patient.timezone)
    settings = planner_inputs(db, enrollment, protocol, today)
    ends = expires_on(protocol, settings, enrollment.counting_from)
    if ends is None or today < ends:
        return False
    rows = session_store.plan_rows(db, enrollment.id)
    recent = today - EXPIRES_AFTER
    if enrollment.review_reason or any(
        r.status == SessionStatus.CONFIRMED and r.local_date > recent for r in rows
    ):
        return False
    past = [r for r in rows if r.status in _PAST]
    last = max(past, key=lambda r: r.local_date).id if past else None
    done = sum(1 for r in rows if r.status == SessionStatus.CONFIRMED)
    enrollment.end_reason = "expired"
    line = f"ran out of time on {ends}, {done} sessions done"
    why = f"the course {line}; ended"
    _stop(db, rt, enrollment, patient, EscalationReason.EXPIRED, why, line, last, now)
    return True


# Sessions whose day has passed, one of which the final message is tied to.
_PAST = (SessionStatus.CONFIRMED, SessionStatus.MISSED, SessionStatus.UNRECORDED)
# The status each way of stopping leaves the enrollment in.
_STOPPED = {
    EscalationReason.DORMANT: EnrollmentStatus.DORMANT,
    EscalationReason.EXPIRED: EnrollmentStatus.ENDED,
}


def _stop(
    db: Session,
    rt: Runtime,
    enrollment: Enrollment,
    patient: Patient,
    reason: EscalationReason,
    why: str,
    line: str,
    session_id: str | None,
    now: datetime,
) -> None:
    """Nothing more is planned or sent but one message asking the patient to contact
    the clinic (`session_id`: the session it is about, one message per session); the
    clinic is told once, for `reason` (`why`), and the digest has `line`."""
    status = _STOPPED[reason]
    enrollment.status, enrollment.updated_at = status, now
    db.add(enrollment)
    db.flush()
    replan(db, rt, enrollment, now, patient=patient)
    digest_lines.note(db, enrollment, str(status), line, now)
    if patient.unsubscribed_at is None and session_id is not None:
        kind = DeliveryKind.REMINDERS_STOPPED
        outbox.queue(db, notice_rows(db, rt.settings, kind, session_id, patient, now))
    detail = f"enrollment {enrollment.id}: {why}"
    escalate(db, patient, reason, detail, now, enrollment_id=enrollment.id)
