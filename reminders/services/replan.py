"""Keeping a plan current: the planner run again on the enrollment's history and inputs,
its sessions brought in line, and the patient and the clinic told of what changed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col

from reminders.adherence import DUE_STATES
from reminders.errors import Conflict
from reminders.kinds import DeliveryKind
from reminders.models import (
    AbsenceRow,
    Enrollment,
    Patient,
    ReviewDecisionRow,
)
from reminders.outcomes import Verdict, verdict
from reminders.planner import (
    Absence,
    EnrollmentSettings,
    PastSession,
    Plan,
    PlannedSession,
    ReviewDecision,
    at_the_clinic,
    plan,
)
from reminders.protocols import Protocol
from reminders.replanning import diff_sessions
from reminders.runtime import Runtime
from reminders.safety import over_treatment
from reminders.services import digest_lines
from reminders.services.clinics import clinic_days
from reminders.services.events import emit, escalate, patient_data
from reminders.services.protocol_versions import protocol_of
from reminders.services.reminding import (
    SessionToRemind,
    notice_rows,
    recipient,
    write_reminders_for,
)
from reminders.states import EnrollmentStatus, EscalationReason, SessionStatus
from reminders.stores import outbox, session_store
from reminders.stores.session_store import PlanChange, PlanRow
from reminders.timing import local_today
from reminders.weekdays import weekdays_of

LAPSE_LOOKBACK_DAYS = 120


def weekdays_from_text(text: str | None) -> frozenset[int] | None:
    """Return the weekday numbers stored as 'mon,wed,fri', or None for every day."""
    return None if text is None else weekdays_of(text)


def settings_of(
    enrollment: Enrollment,
    decisions: tuple[ReviewDecision, ...] = (),
    absences: tuple[Absence, ...] = (),
) -> EnrollmentSettings:
    """Return what the planner needs from a stored enrollment."""
    return EnrollmentSettings(
        start_date=enrollment.start_date,
        weekdays=weekdays_from_text(enrollment.weekdays),
        body_area=enrollment.body_area,
        decisions=decisions,
        absences=absences,
        slowed_since=enrollment.slowed_since,
        resume_on=enrollment.resume_on,
    )


# Built once: every confirmation re-plans, and re-planning reads both.
_ABSENCES = sa.select(col(AbsenceRow.first_date), col(AbsenceRow.last_date)).where(
    col(AbsenceRow.patient_id) == sa.bindparam("patient_id"),
    col(AbsenceRow.last_date) >= sa.bindparam("since"),
)
_DECISIONS = (
    sa.select(col(ReviewDecisionRow.local_date), col(ReviewDecisionRow.action))
    .where(col(ReviewDecisionRow.enrollment_id) == sa.bindparam("enrollment_id"))
    .order_by(col(ReviewDecisionRow.created_at))
)


def absences_of(db: Session, patient_id: str, since: date) -> tuple[Absence, ...]:
    """Return the patient's absences that end on or after `since`."""
    rows = db.execute(_ABSENCES, {"patient_id": patient_id, "since": since})
    return tuple(Absence(first, last) for first, last in rows)


def decisions_of(db: Session, enrollment_id: str) -> tuple[ReviewDecision, ...]:
    """Return the clinician's review decisions on an enrollment, oldest first."""
    rows = db.execute(_DECISIONS, {"enrollment_id": enrollment_id})
    return tuple(ReviewDecision(day, action) for day, action in rows)


def planner_inputs(
    db: Session, enrollment: Enrollment, protocol: Protocol, today: date
) -> EnrollmentSettings:
    """Return the enrollment's settings with every input the planner replays: review
    decisions, the absences that still matter and, for a protocol given at the clinic,
    the clinic's open days and closed dates."""
    # Absences from before the lookback cannot touch a plan or a lapse any more.
    since = today - timedelta(days=LAPSE_LOOKBACK_DAYS)
    inputs = settings_of(
        enrollment,
        decisions_of(db, enrollment.id),
        absences_of(db, enrollment.patient_id, since),
    )
    if protocol.given_at != "clinic":
        return inputs
    days = clinic_days(db, enrollment.clinic_id, today)
    return at_the_clinic(protocol, inputs, days.open_weekdays, days.closed)


def replan(
    db: Session,
    rt: Runtime,
    enrollment: Enrollment,
    now: datetime,
    *,
    patient: Patient | None = None,
    just_confirmed: str | None = None,
) -> Plan:
    """Re-run the planner for an enrollment and bring its planned sessions in line.

    Planned sessions from today on that the new plan drops are cancelled; a cancelled
    row on a date the plan wants again is reused, so there is never a second session on
    one date. Reminders due soon for the new plan are scheduled in the same transaction.
    A paused or withdrawn enrollment keeps no planned sessions. Returns the plan
    (for an inactive enrollment, the plan it would have). Raises Conflict if the
    enrollment's protocol is no longer installed. `patient` saves reading the
    enrollment's patient where the caller has it; `just_confirmed`: the session whose
    confirmation this re-plan follows, whose report the clinic may need to hear of.
    """
    protocol = protocol_of(db, rt, enrollment)
    if protocol is None:
        raise Conflict(f"protocol {enrollment.protocol_id!r} is not installed")
    patient = patient or db.get(Patient, enrollment.patient_id)
    assert patient is not None  # foreign key
    today = local_today(now, patient.timezone)
    rows = session_store.plan_rows(db, enrollment.id)
    history = [PastSession(r.local_date, r.status, r.hdss) for r in rows]
    inputs = planner_inputs(db, enrollment, protocol, today)
    new_plan = plan(protocol, inputs, history, today, rt.settings.horizon_days)
    active = enrollment.status == EnrollmentStatus.ACTIVE
    at_clinic = protocol.given_at == "clinic"
    planned, dropped = _bring_sessions_in_line(
        db, enrollment.id, rows, new_plan.sessions if active else (), today, patient.timezone,
        at_clinic, now,
    )  # fmt: skip
    if (
        at_clinic
        and dropped
        and enrollment.status in (EnrollmentStatus.PAUSED, EnrollmentStatus.HELD)
    ):
        _tell_of_cancelled_appointments(db, rt, patient, dropped, now)
    _tell_clinic_of_changes(db, enrollment, patient, new_plan, rows, now)
    reading = _verdict(protocol, _reports(rows))
    _tell_of_response(db, enrollment, patient, protocol, rows, reading, just_confirmed, now)
    completed = new_plan.completed and active
    if completed:
        _tell_of_completion(db, rt, enrollment, patient, protocol, new_plan, rows, reading, now)
    _record_plan(enrollment, new_plan, completed, rows, today, now)
    if enrollment.status == EnrollmentStatus.ACTIVE and patient.unsubscribed_at is None:
        who = recipient(patient, rt.settings)
        soon = [SessionToRemind(i, day, patient.timezone, who, at_clinic) for i, day in planned]
        write_reminders_for(db, rt.settings, now, soon)
    return new_plan


def _bring_sessions_in_line(
    db: Session,
    enrollment_id: str,
    rows: list[PlanRow],
    wanted: Sequence[PlannedSession],
    today: date,
    timezone: str,
    at_clinic: bool,
    now: datetime,
) -> tuple[list[tuple[str, date]], list[PlanRow]]:
    """Write what makes the stored sessions match `wanted` (see `replanning`); return
    the id and date of each wanted session, and the planned sessions it cancelled."""
    diff = diff_sessions(rows, wanted, today, timezone)
    session_store.apply_plan(
        db,
        [PlanChange(r.id, SessionStatus.CANCELLED, r.phase, r.minutes, r.timezone)
         for r in diff.cancel]
        + [PlanChange(row_id, SessionStatus.PLANNED, s.phase, s.minutes, timezone)
           for row_id, s in diff.revise],
        now,
    )  # fmt: skip
    fresh = {
        s.local_date: session_store.new_planned(
            enrollment_id, s.local_date, timezone, s.phase, s.minutes, at_clinic, now
        )
        for s in diff.add
    }
    session_store.insert_planned(db, list(fresh.values()))
    planned = [
        (row_id or fresh[s.local_date].id, s.local_date)
        for row_id, s in zip(diff.rows, wanted, strict=True)
    ]
    return planned, list(diff.cancel)


def _tell_of_cancelled_appointments(
    db: Session, rt: Runtime, patient: Patient, dropped: list[PlanRow], now: datetime
) -> None:
    """An appointment the patient was already reminded of, and that a pause or a hold
    took away, gets one message saying so: they would come for nothing. (A course that
    ends says so in its own message.)"""
    told = outbox.sent_about(db, [r.id for r in dropped], {DeliveryKind.APPOINTMENT})
    kind = DeliveryKind.APPOINTMENT_CANCELLED
    rows = [
        row
        for session in dropped
        if session.id in told
        for row in notice_rows(db, rt.settings, kind, session.id, patient, now)
    ]
    outbox.queue(db, rows)


def _record_plan(
    enrollment: Enrollment,
    new_plan: Plan,
    completed: bool,
    rows: list[PlanRow],
    today: date,
    now: datetime,
) -> None:
    """Keep what the planner says of the enrollment on its row: phase, interval, open
    review, completion, and whether it still runs slowed (a confirmation ends that)."""
    slowed = enrollment.slowed_since
    confirmed_since_slowed = slowed is not None and any(
        r.status == SessionStatus.CONFIRMED and r.local_date >= slowed for r in rows
    )
    planner_says = {
        "phase": new_plan.phase,
        "interval_days": new_plan.interval_days,
        "review_reason": "; ".join(new_plan.review) or None,
        "status": EnrollmentStatus.COMPLETED if completed else enrollment.status,
        "planned_on": today,
        "slowed_since": None if confirmed_since_slowed else slowed,
    }
    if any(getattr(enrollment, key) != value for key, value in planner_says.items()):
        for key, value in planner_says.items():
            setattr(enrollment, key, value)
        enrollment.updated_at = now


def _tell_clinic_of_changes(
    db: Session,
    enrollment: Enrollment,
    patient: Patient,
    new_plan: Plan,
    rows: list[PlanRow],
    now: datetime,
) -> None:
    """Emit plan.phase_changed for a phase the history moved into, and escalate a new
    'no response' review; both once only (the event is tied to the session that caused
    it, the escalation is one open per patient and reason)."""
    by_date = {r.local_date: r for r in rows if r.status == SessionStatus.CONFIRMED}
    history = [c for c in new_plan.changes[: new_plan.history_changes] if not c.is_review]
    if history and new_plan.phase != enrollment.phase:
        change = history[-1]
        cause = by_date.get(change.on)
        emit(
            db,
            enrollment.clinic_id,
            "plan.phase_changed",
            {
                **patient_data(db, patient),
                "enrollment_id": enrollment.id,
                "from": enrollment.phase,
                "to": new_plan.phase,
                "reason": change.reason,
                "on": change.on.isoformat(),
            },
            now,
            session_id=cause.id if cause else None,
            patient_id=patient.id,
        )
        if change.reason == "relapse":
            line = f"{enrollment.phase} -> {new_plan.phase} on {change.on}"
            digest_lines.note(db, enrollment, "returned", line, now)
    review = "; ".join(new_plan.review)
    if review and review != enrollment.review_reason:
        escalate(
            db,
            patient,
            EscalationReason.NO_RESPONSE,
            f"enrollment {enrollment.id}: {review}; please decide: continue, move on or end",
            now,
            enrollment_id=enrollment.id,
        )


def _reports(rows: list[PlanRow], before: date | None = None) -> list[str]:
    """The outcomes reported with the confirmed sessions, oldest first (before a day)."""
    return [
        r.outcome
        for r in rows
        if r.status == SessionStatus.CONFIRMED
        and r.outcome is not None
        and (before is None or r.local_date < before)
    ]


def _verdict(protocol: Protocol, reports: list[str]) -> Verdict | None:
    """The verdict of `reports`, where the protocol has a rule."""
    if protocol.scale is None or protocol.outcome is None:
        return None
    return verdict(protocol.scale, protocol.outcome, reports)


def _tell_of_response(
    db: Session,
    enrollment: Enrollment,
    patient: Patient,
    protocol: Protocol,
    rows: list[PlanRow],
    reading: Verdict | None,
    just_confirmed: str | None,
    now: datetime,
) -> None:
    """Tell the clinic what a report just given says: worsening at once, when this
    report makes the course read as worsening (an escalation, urgent where the rule
    says), and for the digest a relapse: a report not dry in an ongoing phase after a
    dry one (a patient never dry yet is the review's to catch)."""
    session = next((r for r in rows if r.id == just_confirmed), None)
    if session is None:
        return
    _over_treatment(db, enrollment, patient, protocol, rows, session, now)
    if session.outcome is None:
        return
    earlier = _verdict(protocol, _reports(rows, session.local_date))
    was_worse = earlier is not None and earlier.kind == "worsening"
    was_urgent = was_worse and earlier is not None and earlier.urgent
    worse = reading is not None and reading.kind == "worsening"
    # Once when the course turns worse, and once more when it becomes urgent: the urgent
    # one is a cause of its own, so an open normal one does not swallow it.
    if reading is not None and worse and (not was_worse or (reading.urgent and not was_urgent)):
        opened = escalate(
            db, patient, EscalationReason.WORSENING,
            f"enrollment {enrollment.id}: {protocol.outcome_scale} {reading.first} at first,"
            f" {reading.last} on {session.local_date}",
            now, session_id=session.id, enrollment_id=enrollment.id, urgent=reading.urgent,
            once=f"{enrollment.id}:urgent" if reading.urgent else None,
        )  # fmt: skip
        if opened:
            line = f"{protocol.outcome_scale} {reading.first} -> {reading.last}"
            digest_lines.note(db, enrollment, "worsening", line, now)
    phase = next((p for p in protocol.phases if p.name == session.phase), None)
    relapse = session.hdss is not None and session.hdss > protocol.hdss_dry_max
    was_dry = any(
        r.hdss is not None and r.hdss <= protocol.hdss_dry_max
        for r in rows
        if r.status == SessionStatus.CONFIRMED and r.local_date < session.local_date
    )
    if relapse and was_dry and phase is not None and not phase.ends:
        line = f"HDSS {session.hdss} on {session.local_date} in {session.phase}"
        digest_lines.note(db, enrollment, "relapse", line, now)


def _over_treatment(
    db: Session,
    enrollment: Enrollment,
    patient: Patient,
    protocol: Protocol,
    rows: list[PlanRow],
    session: PlanRow,
    now: datetime,
) -> None:
    """More sessions recorded in 7 days than the protocol's weekly maximum
    (`safety.over_treatment`): the clinic hears of it."""
    done = [r.local_date for r in rows if r.status == SessionStatus.CONFIRMED]
    if over_treatment(done, session.local_date, protocol.max_per_week):
        escalate(
            db, patient, EscalationReason.OVER_TREATMENT,
            f"enrollment {enrollment.id}: more than {protocol.max_per_week} sessions recorded "
            f"in the 7 days to {session.local_date}, the protocol's maximum",
            now, session_id=session.id, enrollment_id=enrollment.id,
        )  # fmt: skip


def _tell_of_completion(
    db: Session,
    rt: Runtime,
    enrollment: Enrollment,
    patient: Patient,
    protocol: Protocol,
    new_plan: Plan,
    rows: list[PlanRow],
    reading: Verdict | None,
    now: datetime,
) -> None:
    """The course has ended: an `enrollment.completed` event for the clinic with the
    outcome's first and last reports, a digest line, and a completion message for the
    patient (both tied to the last confirmed session); and a review escalation when it
    ended without improving, or a clinician ended it at a review."""
    confirmed = [r for r in rows if r.status == SessionStatus.CONFIRMED]
    due = [r for r in rows if r.status in DUE_STATES]
    last = max(confirmed, key=lambda r: r.local_date) if confirmed else None
    rate = round(len(confirmed) / len(due), 3) if due else None
    ended_at_review = any(c.to_phase is None and c.reason == "decision" for c in new_plan.changes)
    not_better = reading is not None and reading.kind in ("unchanged", "worsening")
    # The patient hears the clinic will be in touch; the clinic is asked to decide only
    # where the protocol reviews at the end and no clinician has just decided.
    needs_review = ended_at_review or not_better
    asks_clinic = (
        not_better
        and not ended_at_review
        and protocol.outcome is not None
        and protocol.outcome.review == "no_improvement"
    )
    kind = reading.kind if reading is not None else "unknown"
    outcome = {
        "scale": protocol.outcome_scale,
        "verdict": kind,
        "first": reading.first if reading else None,
        "last": reading.last if reading else None,
    }
    digest_lines.note(
        db, enrollment, "completed",
        f"{len(confirmed)} sessions, adherence {rate}, {protocol.outcome_scale} "
        f"{outcome['first']} -> {outcome['last']} ({kind})",
        now,
    )  # fmt: skip
    if asks_clinic:
        escalate(
            db, patient, EscalationReason.NO_IMPROVEMENT,
            f"enrollment {enrollment.id}: course completed, verdict {kind} "
            f"({protocol.outcome_scale} {outcome['first']} -> {outcome['last']}); please "
            "decide what comes next",
            now, enrollment_id=enrollment.id,
        )  # fmt: skip
    emit(
        db,
        enrollment.clinic_id,
        "enrollment.completed",
        {
            **patient_data(db, patient),
            "enrollment_id": enrollment.id,
            "protocol": enrollment.protocol_id,
            "sessions_done": len(confirmed),
            "adherence": rate,
            "last_session": last.local_date.isoformat() if last else None,
            "outcome": outcome,
        },
        now,
        session_id=last.id if last else None,
        patient_id=patient.id,
    )
    if last is None or patient.unsubscribed_at is not None:
        return
    payload = {
        "sessions": len(confirmed),
        "adherence": rate,
        "improved": reading is not None and reading.improved,
        "clinic_follows_up": needs_review,
    }
    outbox.queue(
        db,
        notice_rows(db, rt.settings, "completed", last.id, patient, now, payload),
    )
