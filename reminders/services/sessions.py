"""Recording what a patient did: confirmations and skips. Each re-plans the enrollment."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import partial
from typing import Any

from sqlmodel import Session

from reminders.errors import Conflict, CourseEnded, InvalidInput, NotFound
from reminders.fields import checked, note
from reminders.models import Enrollment, Patient, SessionReport
from reminders.outcomes import OutcomeScale, RatedBy, SideEffect
from reminders.planner import Plan
from reminders.runtime import Runtime
from reminders.safety import DEFAULT_HOLD_ON, holds_plan, tells_the_clinic, worst
from reminders.services import holds as holds_service
from reminders.services import winding_down
from reminders.services.events import emit, escalate, patient_data
from reminders.services.protocol_versions import protocol_of
from reminders.services.replan import replan
from reminders.states import FINISHED, EnrollmentStatus, EscalationReason, SessionStatus
from reminders.stores import session_store
from reminders.stores.session_store import SessionRow
from reminders.timing import local_to_utc, local_today

# A device clock or a phone a few minutes ahead should not turn a report away.
CLOCK_SKEW = timedelta(minutes=5)
# A session in these states is still to be recorded: its link preselects its own date.
OPEN = frozenset({SessionStatus.PLANNED, SessionStatus.MISSED})


def get_session(
    db: Session, clinic_id: str | None, session_id: str
) -> tuple[SessionRow, Enrollment, Patient]:
    """Return the session, its enrollment and patient. Raise NotFound if missing or
    another clinic's."""
    found = session_store.with_course(db, session_id)
    if found is None or (clinic_id is not None and found[1].clinic_id != clinic_id):
        raise NotFound("session", session_id)
    return found


def _course_open(enrollment: Enrollment) -> None:
    """A completed course takes no more sessions: more would be treatment nobody planned
    (a problem about one done can still be reported)."""
    if enrollment.status in FINISHED:
        raise CourseEnded()


def _recordable(session: SessionRow, now: datetime, *, ahead_ok: bool) -> None:
    if session.status == SessionStatus.CANCELLED:
        raise Conflict("the session was cancelled by a re-plan; record an unscheduled one")
    if not ahead_ok and session.local_date > local_today(now, session.timezone):
        raise InvalidInput("session", f"is planned for {session.local_date}, a later day")


def confirm_session(
    db: Session,
    rt: Runtime,
    clinic_id: str | None,
    session_id: str,
    report: SessionReport,
    now: datetime,
    *,
    reported_by: RatedBy = "clinician",
) -> tuple[SessionRow, Plan | None]:
    """Record a session as done, with the optional report, and re-plan.

    Confirming an already confirmed session returns (session, None); a side effect it
    did not hold yet is added to it (`add_problem`), the same report again changes
    nothing. A side effect of blistering or a burn tells the clinic at once. Raises NotFound,
    InvalidInput (a later day, completed_at in the future, an outcome the protocol's
    scale does not have, or one only a clinician rates) or Conflict.
    """
    session, enrollment, patient = get_session(db, clinic_id, session_id)
    if session.status == SessionStatus.CONFIRMED:
        # A side effect often shows hours later; it must still reach the clinic. A retried
        # request repeats what is stored: nothing new to add.
        words = (report.side_effect_note or "").strip()
        already = report.side_effect == session.side_effect and (
            not words or words in (session.side_effect_note or "").split("\n")
        )
        if report.side_effect is not None and not already:
            session, _ = add_problem(
                db, rt, session, enrollment, patient, report.side_effect,
                report.side_effect_note, now,
            )  # fmt: skip
        return session, None
    _course_open(enrollment)
    _recordable(session, now, ahead_ok=False)
    completed_at = report.completed_at or now
    if completed_at.tzinfo is None:
        raise InvalidInput("completed_at", "needs a time zone offset")
    if completed_at > now + CLOCK_SKEW:
        raise InvalidInput("completed_at", "is in the future")
    protocol = protocol_of(db, rt, enrollment)
    outcome = _outcome(protocol.scale if protocol else None, report, reported_by)
    side_effect = report.side_effect
    session = session_store.change(
        db,
        session,
        now,
        status=SessionStatus.CONFIRMED,
        completed_at=completed_at,
        hdss=int(outcome) if outcome and protocol and protocol.outcome_scale == "hdss" else None,
        outcome=outcome,
        side_effect=side_effect,
        side_effect_note=(report.side_effect_note or "").strip() or None,
        current_ma=report.current_ma,
        minutes_done=report.minutes,
    )
    _emit_session_event(db, "session.confirmed", session, enrollment, patient, now)
    if enrollment.status == EnrollmentStatus.HELD:
        # Done from an old link while the plan waits for a clinician: they must know.
        escalate(
            db, patient, EscalationReason.SIDE_EFFECT,
            f"enrollment {enrollment.id}: a session on {session.local_date} was recorded "
            f"while the plan is held (session {session.id})",
            now, session_id=session.id, enrollment_id=enrollment.id,
            held="a session recorded while the plan is held",
        )  # fmt: skip
    _side_effect_reported(db, rt, session, enrollment, patient, now)
    winding_down.wake(enrollment, now)
    return session, replan(db, rt, enrollment, now, patient=patient, just_confirmed=session.id)


def add_problem(
    db: Session,
    rt: Runtime,
    session: SessionRow,
    enrollment: Enrollment,
    patient: Patient,
    side_effect: str,
    note: str | None,
    now: datetime,
) -> tuple[SessionRow, bool]:
    """Add a problem the patient reports about a session to what it holds: the worst
    side effect so far and every note, each on a line of its own. The session's status
    stays as it is and no session is made or cancelled. Tells the clinic
    (`session.problem_reported`) and holds the plan when the side effect calls for it;
    returns the session as stored and whether a person at the clinic was alerted."""
    words = (note or "").strip() or None
    notes = "\n".join(n for n in (session.side_effect_note, words) if n) or None
    if notes is not None and len(notes) > MAX_NOTES:
        raise InvalidInput("side_effect_note", f"at most {MAX_NOTES} characters in all")
    session = session_store.change(
        db, session, now, side_effect=worst(session.side_effect, side_effect),
        side_effect_note=notes,
    )  # fmt: skip
    data = partial(_problem_data, db, session, enrollment, patient, side_effect, words)
    # Not tied to the session's row: events about a session go once per type, and a
    # patient may report a problem about one session more than once.
    emit(db, enrollment.clinic_id, "session.problem_reported", data, now, patient_id=patient.id)
    alerted = _side_effect_reported(
        db, rt, session, enrollment, patient, now, reported=side_effect, words=words
    )
    return session, alerted


# A session's notes, from every report about it (the column's size).
MAX_NOTES = 2000


def _problem_data(
    db: Session,
    session: SessionRow,
    enrollment: Enrollment,
    patient: Patient,
    reported: str,
    note: str | None,
) -> dict[str, Any]:
    return {
        **session_event_data(db, session, enrollment, patient),
        "reported": reported,
        "note": note,
    }


def _side_effect_reported(
    db: Session,
    rt: Runtime,
    session: SessionRow,
    enrollment: Enrollment,
    patient: Patient,
    now: datetime,
    *,
    reported: str | None = None,
    words: str | None = None,
) -> bool:
    """Tell the clinic of a side effect that needs a person (`safety.tells_the_clinic`),
    and hold the plan when the protocol says it must (unless it is held already, or
    over). `reported` and `words`: what this report said, where the session already
    held an earlier one. Returns whether a person at the clinic was alerted."""
    said = reported or session.side_effect
    said_in_words = words if reported else session.side_effect_note
    protocol = protocol_of(db, rt, enrollment)
    hold_on = protocol.hold_on if protocol else DEFAULT_HOLD_ON
    if not tells_the_clinic(said, said_in_words, hold_on):
        return False
    holds = holds_plan(said, hold_on)
    escalate(
        db,
        patient,
        EscalationReason.SIDE_EFFECT,
        f"enrollment {enrollment.id}: {said} reported about the session on "
        f"{session.local_date} (session {session.id})",
        now,
        session_id=session.id,
        enrollment_id=enrollment.id,
        held=f"{said} reported" if holds else None,
        patient_note=session.side_effect_note,
    )
    if holds:
        holds_service.hold(db, rt, enrollment, patient, now)
    return True


def _outcome(scale: OutcomeScale | None, report: SessionReport, by: RatedBy) -> str | None:
    """Return the outcome code to store, checked against the protocol's scale."""
    given = report.outcome
    field = "outcome"
    if report.hdss is not None:
        if given is not None and given != str(report.hdss):
            raise InvalidInput("hdss", "give outcome or hdss, not two different values")
        given, field = str(report.hdss), "hdss"
    if given is None:
        return None
    if scale is None:
        raise InvalidInput(field, "this protocol asks no outcome")
    if field == "hdss" and scale.id != "hdss":
        raise InvalidInput("hdss", f"this protocol asks {scale.name}; send it as outcome")
    if given not in scale.values:
        raise InvalidInput(field, f"{scale.name}: one of {', '.join(scale.values)}")
    if scale.rated_by == "clinician" and by == "patient":
        raise InvalidInput(field, f"{scale.name} is rated by the clinician")
    return given


def skip_session(
    db: Session,
    rt: Runtime,
    clinic_id: str | None,
    session_id: str,
    reason: str | None,
    now: datetime,
) -> tuple[SessionRow, Plan | None]:
    """Record that the patient will not do a session, and re-plan.

    Skipping an already skipped session changes nothing and returns (session, None).
    Raises NotFound, InvalidInput or Conflict (a confirmed or cancelled session).
    """
    session, enrollment, patient = get_session(db, clinic_id, session_id)
    if session.status == SessionStatus.SKIPPED:
        return session, None
    if session.status == SessionStatus.CONFIRMED:
        raise Conflict("the session is already confirmed")
    # A patient may skip ahead ("away on Friday"); the re-plan keeps that day free.
    _recordable(session, now, ahead_ok=True)
    if reason is not None and len(checked("reason", reason, note)) > 500:
        raise InvalidInput("reason", "at most 500 characters")
    session = session_store.change(
        db, session, now, status=SessionStatus.SKIPPED, skip_reason=reason
    )
    _emit_session_event(db, "session.skipped", session, enrollment, patient, now)
    return session, replan(db, rt, enrollment, now, patient=patient)


def session_event_data(
    db: Session,
    session: SessionRow,
    enrollment: Enrollment,
    patient: Patient | None = None,
) -> dict[str, Any]:
    """Return the data of a session.* event: ids, date and what was reported. `patient`
    saves reading the enrollment's patient where the caller has it."""
    patient = patient or db.get(Patient, enrollment.patient_id)
    assert patient is not None  # foreign key
    return {
        **patient_data(db, patient),
        "enrollment_id": enrollment.id,
        "session_id": session.id,
        "local_date": session.local_date.isoformat(),
        "timezone": session.timezone,
        "phase": session.phase,
        "status": session.status,
        "unscheduled": session.unscheduled,
        "completed_at": session.completed_at.isoformat() if session.completed_at else None,
        "hdss": session.hdss,
        "outcome": session.outcome,
        "side_effect": session.side_effect,
        "note": session.side_effect_note,
        "current_ma": session.current_ma,
        "minutes": session.minutes_done,
        "skip_reason": session.skip_reason,
    }


def _emit_session_event(
    db: Session,
    event: str,
    session: SessionRow,
    enrollment: Enrollment,
    patient: Patient,
    now: datetime,
) -> None:
    emit(
        db,
        enrollment.clinic_id,
        event,
        partial(session_event_data, db, session, enrollment, patient),
        now,
        session_id=session.id,
        patient_id=enrollment.patient_id,
    )


def report_problem(
    db: Session,
    rt: Runtime,
    link: SessionRow,
    side_effect: str,
    note: str | None,
    did_it: bool | None,
    now: datetime,
) -> tuple[SessionRow, bool]:
    """Record a problem the patient reports, from a session's link, about that session:
    its own day, whatever day it is now, and on a held or completed course too.

    A session at home not recorded as done needs the patient's answer to "did you do
    it?": yes records it confirmed on its own day (a cancelled one stays as it is), no
    keeps its status; an appointment at the clinic is the staff's to record, so it is
    not asked. Then `add_problem`, whose answer it returns. Raises InvalidInput naming
    `side_effect`, `did_it`, `side_effect_note` or `session` (a later day's)."""
    if side_effect not in PROBLEMS:
        raise InvalidInput("side_effect", f"one of {', '.join(PROBLEMS)}")
    session, enrollment, patient = get_session(db, None, link.id)
    if session.local_date > local_today(now, session.timezone):
        raise InvalidInput("session", f"is planned for {session.local_date}, a later day")
    if session.status != SessionStatus.CONFIRMED and not session.at_clinic:
        if did_it is None:
            raise InvalidInput("did_it", "say whether you did this session")
        course_open = enrollment.status not in FINISHED
        if did_it and course_open and session.status != SessionStatus.CANCELLED:
            # Done on its own day, at an hour nobody knows: noon of it, so it counts as
            # on time (today's is done by now).
            today = session.local_date == local_today(now, session.timezone)
            done_at = now if today else local_to_utc(session.local_date, NOON, session.timezone)
            session, _ = confirm_session(
                db, rt, None, session.id, SessionReport(completed_at=done_at), now,
                reported_by="patient",
            )  # fmt: skip
    return add_problem(db, rt, session, enrollment, patient, side_effect, note, now)


NOON = time(12, 0)
# What a problem report may name: every side effect but "nothing to report".
PROBLEMS: tuple[str, ...] = tuple(e for e in SideEffect if e != SideEffect.NONE)


def link_days(link_day: date, link_open: bool, today: date) -> tuple[tuple[date, ...], date]:
    """Return the days a session link may record a session on, and the one to preselect.

    Used on its own day, or before it, a link records today. Used later, it offers its
    own date (preselected while that session is still open) or today (preselected once
    the link's own session is recorded).
    """
    if link_day >= today:
        return (today,), today
    return (link_day, today), link_day if link_open else today


def confirm_from_link(
    db: Session,
    rt: Runtime,
    link: SessionRow,
    day: date | None,
    report: SessionReport,
    now: datetime,
) -> SessionRow:
    """Record what a patient reports from a session link, on `day`: the link's own date
    or today (None: the preselected one, see `link_days`); return the session recorded.

    Today with nothing planned records an extra, unscheduled session; the re-plan keeps
    the caps (one a day, the weekly maximum in any 7 days) for everything still planned.
    Raises InvalidInput for any other day, and Conflict when that day's session is
    already recorded or was cancelled: the patient is told, never thanked for nothing.
    """
    enrollment = db.get(Enrollment, link.enrollment_id)
    assert enrollment is not None  # foreign key
    patient = db.get(Patient, enrollment.patient_id)
    assert patient is not None  # foreign key
    _course_open(enrollment)
    today = local_today(now, patient.timezone)
    choices, preselected = link_days(link.local_date, link.status in OPEN, today)
    day = day or preselected
    if day not in choices:
        allowed = " or ".join(d.isoformat() for d in choices)
        raise InvalidInput("day", f"must be {allowed}")
    target = link if day == link.local_date else session_store.on_day(db, link.enrollment_id, day)
    if target is not None and target.status == SessionStatus.CONFIRMED:
        raise Conflict(f"a session on {day.isoformat()} is already recorded")
    if target is not None and target.status != SessionStatus.CANCELLED:
        confirmed, _ = confirm_session(db, rt, None, target.id, report, now, reported_by="patient")
        return confirmed
    if day != today:
        raise Conflict(f"the session on {day.isoformat()} was moved by a re-plan")
    protocol = protocol_of(db, rt, enrollment)
    minutes = protocol.session_minutes(enrollment.body_area) if protocol else link.minutes
    extra = session_store.add_unscheduled(
        db, enrollment.id, today, patient.timezone, enrollment.phase, minutes, now,
        cancelled=target,
    )  # fmt: skip
    confirmed, _ = confirm_session(db, rt, None, extra.id, report, now, reported_by="patient")
    return confirmed
