"""The sweep: what time passing causes. Marks missed sessions, keeps horizons rolling and
materialises reminders that come due. Each step finds its work in a read transaction and
writes it in short transactions of its own."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import sqlalchemy as sa
from sqlmodel import Session, col, select

from reminders.adherence import SessionFact, adherence
from reminders.db.engine import paced_batches, session_scope
from reminders.kinds import REMINDS
from reminders.lapse import NOT_DONE, LapseRule, standing
from reminders.models import Enrollment, Patient, WebhookEndpoint
from reminders.planner import PastSession
from reminders.runtime import Runtime
from reminders.safety import blame_patient
from reminders.services import digest, escalations, reachability, standings, webhooks, winding_down
from reminders.services.course_status import set_status
from reminders.services.events import emit, escalate
from reminders.services.protocol_versions import protocol_of
from reminders.services.reminding import (
    missed_notice_rows,
    missed_sessions,
    overdue_notice_rows,
    reminders_not_yet_written,
)
from reminders.services.replan import planner_inputs, replan
from reminders.services.sessions import session_event_data
from reminders.states import EnrollmentStatus, EscalationReason, SessionStatus
from reminders.stores import outbox, session_store
from reminders.stores.session_store import SessionRow
from reminders.timing import ZONE_SPREAD, local_today

# Small batches keep each write transaction short: API writes wait for them.
REPLAN_BATCH = 25
# A patient's standing is one read and one row written: cheaper than a re-plan.
STANDINGS_BATCH = 200


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep did."""

    missed: int
    replanned: int
    lapsed: int


def missing_enrollments(db: Session, rt: Runtime, now: datetime) -> list[str]:
    """Return the enrollments with sessions unconfirmed past their grace. A read:
    `mark_missed` marks them under the write lock."""
    return sorted({s.enrollment_id for s in missed_sessions(db, rt.settings, now)})


def mark_missed(db: Session, rt: Runtime, now: datetime, enrollment_ids: Sequence[str]) -> int:
    """Mark the sessions of `enrollment_ids` still unconfirmed past their grace as missed,
    re-plan those enrollments and tell the patients; return how many were marked.

    An appointment at the clinic is the staff's to record: unrecorded past its grace,
    it becomes `unrecorded` and the clinic is told, not the patient."""
    missed = missed_sessions(db, rt.settings, now, enrollment_ids)
    blamed, excused = _by_blame(db, [s for s in missed if not s.at_clinic])
    # A session never reminded because nothing could reach the patient is not their
    # miss: no notice, no event and no escalation of misses (the clinic hears of the
    # cause); the plan moves on all the same.
    marked = (
        session_store.mark(db, [s for s in missed if s.at_clinic], SessionStatus.UNRECORDED, now)
        + session_store.mark(db, blamed, SessionStatus.MISSED, now)
        + session_store.mark(db, excused, SessionStatus.NOT_REMINDED, now)
    )
    by_enrollment: dict[str, list[SessionRow]] = defaultdict(list)
    for session in marked:
        by_enrollment[session.enrollment_id].append(session)
    rows = []
    for enrollment_id, all_sessions in by_enrollment.items():
        enrollment = db.get(Enrollment, enrollment_id)
        assert enrollment is not None  # foreign key
        unrecorded = [s for s in all_sessions if s.status == SessionStatus.UNRECORDED]
        if unrecorded:
            _tell_clinic_of_unrecorded(db, enrollment, unrecorded, now)
        home = [s for s in all_sessions if not s.at_clinic]
        if not home:
            continue
        sessions = [s for s in home if s.status == SessionStatus.MISSED]
        for session in sessions:
            emit(
                db,
                enrollment.clinic_id,
                "session.missed",
                partial(session_event_data, db, session, enrollment),
                now,
                session_id=session.id,
                patient_id=enrollment.patient_id,
            )
        if enrollment.status != EnrollmentStatus.ACTIVE:
            continue
        patient = db.get(Patient, enrollment.patient_id)
        assert patient is not None  # foreign key
        replan(db, rt, enrollment, now, patient=patient)
        if not sessions:
            continue
        if winding_down.after_a_miss(db, rt, enrollment, patient, now):
            continue
        latest = max(sessions, key=lambda s: s.local_date)
        # A course winding down asks once a week and says nothing more.
        if patient.unsubscribed_at is None and enrollment.slowed_since is None:
            rows.extend(missed_notice_rows(db, rt.settings, latest, patient, now))
        _escalate_repeated_misses(db, rt, enrollment, patient, latest, now)
    outbox.queue(db, rows)
    return len(missed)


def _by_blame(db: Session, sessions: list[SessionRow]) -> tuple[list[SessionRow], list[SessionRow]]:
    """Split sessions not done into the patient's misses and those never reminded
    because no reminder could reach the patient (`safety.blame_patient`): they are
    unsubscribed, unreachable, or reminded by webhook while every endpoint that would
    take their reminders is failing (before the service gives up on it)."""
    if not sessions:
        return [], []
    enrollment_ids = sorted({s.enrollment_id for s in sessions})
    # `reminding.subscribed` in SQL, for a healthy endpoint: one whose reminders arrive.
    events = col(WebhookEndpoint.events)
    takes_reminders = sa.exists().where(
        col(WebhookEndpoint.clinic_id) == col(Patient.clinic_id),
        col(WebhookEndpoint.enabled),
        col(WebhookEndpoint.failing_since).is_(None),
        sa.or_(events == "*", events.contains("session.reminder")),
    )
    cut_off = set(
        db.execute(
            sa.select(col(Enrollment.id))
            .join(Patient, col(Patient.id) == col(Enrollment.patient_id))
            .where(
                col(Enrollment.id).in_(enrollment_ids),
                sa.or_(
                    col(Patient.unsubscribed_at).is_not(None),
                    col(Patient.unreachable).is_not(None),
                    sa.and_(col(Patient.channel) == "webhook", ~takes_reminders),
                ),
            )
        ).scalars()
    )
    if not cut_off:
        return sessions, []
    reminded = outbox.sent_about(
        db, [s.id for s in sessions if s.enrollment_id in cut_off], REMINDS
    )
    blamed = {
        s.id for s in sessions if blame_patient(s.id in reminded, s.enrollment_id not in cut_off)
    }
    return [s for s in sessions if s.id in blamed], [s for s in sessions if s.id not in blamed]


def _tell_clinic_of_unrecorded(
    db: Session, enrollment: Enrollment, unrecorded: list[SessionRow], now: datetime
) -> None:
    patient = db.get(Patient, enrollment.patient_id)
    assert patient is not None  # foreign key
    days = ", ".join(str(s.local_date) for s in unrecorded)
    escalate(
        db,
        patient,
        EscalationReason.UNRECORDED,
        f"enrollment {enrollment.id}: appointment(s) on {days} not recorded; record them as"
        " done or skipped",
        now,
        enrollment_id=enrollment.id,
    )


def _escalate_repeated_misses(
    db: Session,
    rt: Runtime,
    enrollment: Enrollment,
    patient: Patient,
    latest: SessionRow,
    now: datetime,
) -> None:
    """Escalate N misses in a row in a phase that builds up the treatment (induction or
    a course), and wind the course down; ongoing phases are watched by the lapse check
    instead."""
    protocol = protocol_of(db, rt, enrollment)
    if protocol is None:
        return
    phase = next((p for p in protocol.phases if p.name == latest.phase), None)
    if phase is None or not phase.ends:
        return
    facts = [
        SessionFact(r.local_date, r.status, r.phase)
        for r in session_store.of_enrollment(db, enrollment.id)
    ]
    in_a_row = adherence(facts, latest.local_date).missed_in_a_row
    # Once per streak: when it reaches the threshold, not again for every further miss.
    if in_a_row >= rt.settings.escalate_after_misses and enrollment.slowed_since is None:
        escalate(
            db,
            patient,
            EscalationReason.MISSED_SESSIONS,
            f"enrollment {enrollment.id}: {in_a_row} {latest.phase} sessions missed in a row"
            f" (last on {latest.local_date})",
            now,
            session_id=latest.id,
            enrollment_id=enrollment.id,
        )
        winding_down.slow(db, rt, enrollment, patient, now)


def lapse_candidates(db: Session, rt: Runtime, now: datetime) -> list[str]:
    """Return the active enrollments, not yet slowed for a lapse, with a session not done
    after their last confirmed one, early enough to be overdue on some local date. A
    read: `check_lapses` decides under the write lock."""
    oldest = (now + ZONE_SPREAD).date() - timedelta(days=rt.settings.overdue_nudge_days)
    return session_store.not_done_since_confirmed(db, NOT_DONE, oldest)


def check_lapses(db: Session, rt: Runtime, now: datetime, enrollment_ids: Sequence[str]) -> int:
    """Nudge the patients of those `enrollment_ids` in an ongoing phase (maintenance)
    who are behind their plan, and tell the clinic later; each once per lapse. After the
    clinic is told, the course winds down (`course_state`) until the patient confirms
    or the clinic resumes it. Returns how many were behind."""
    settings = rt.settings
    rule = LapseRule(settings.overdue_nudge_days, settings.lapse_escalation_days)
    count = 0
    for enrollment_id in enrollment_ids:
        enrollment = db.get(Enrollment, enrollment_id)
        if (
            enrollment is None
            or enrollment.status != EnrollmentStatus.ACTIVE
            or enrollment.slowed_since
        ):
            continue
        protocol = protocol_of(db, rt, enrollment)
        if protocol is None:
            continue
        phase = next((p for p in protocol.phases if p.name == enrollment.phase), None)
        if phase is None or phase.ends:
            continue
        patient = db.get(Patient, enrollment.patient_id)
        assert patient is not None  # foreign key
        today = local_today(now, patient.timezone)
        rows = session_store.of_enrollment(db, enrollment.id)
        history = [PastSession(r.local_date, r.status, r.hdss) for r in rows]
        inputs = planner_inputs(db, enrollment, protocol, today)
        behind = standing(
            history, today, rule, counts_from=enrollment.counting_from, absences=inputs.absences
        )
        if not (behind.overdue or behind.lapsed) or behind.due_since is None:
            continue
        count += 1
        due = next(r for r in rows if r.local_date == behind.due_since)
        if behind.overdue and patient.unsubscribed_at is None:
            outbox.queue(
                db,
                overdue_notice_rows(db, settings, due.id, patient, behind.days_past, now),
            )
        if behind.lapsed:
            escalate(
                db,
                patient,
                EscalationReason.LAPSED,
                f"enrollment {enrollment.id}: no session since the one due on "
                f"{behind.due_since} ({behind.days_past} days) in {enrollment.phase}",
                now,
                session_id=due.id,
                enrollment_id=enrollment.id,
            )
            winding_down.slow(db, rt, enrollment, patient, now)
    return count


def paused_until_due(db: Session, _rt: Runtime, now: datetime) -> list[str]:
    """Return the paused enrollments whose pause ends on or before today somewhere."""
    latest = (now + ZONE_SPREAD).date()
    found = db.execute(
        sa.select(col(Enrollment.id)).where(
            col(Enrollment.status) == EnrollmentStatus.PAUSED,
            col(Enrollment.paused_until).is_not(None),
            col(Enrollment.paused_until) <= latest,
        )
    )
    return list(found.scalars())


def resume_paused(db: Session, rt: Runtime, now: datetime, enrollment_ids: Sequence[str]) -> int:
    """Resume those of `enrollment_ids` whose pause has ended in the patient's zone."""
    resumed = 0
    for enrollment_id in enrollment_ids:
        enrollment = db.get(Enrollment, enrollment_id)
        paused = enrollment is not None and enrollment.status == EnrollmentStatus.PAUSED
        if enrollment is None or not paused or enrollment.paused_until is None:
            continue
        patient = db.get(Patient, enrollment.patient_id)
        assert patient is not None  # foreign key
        if local_today(now, patient.timezone) >= enrollment.paused_until:
            set_status(db, rt, None, enrollment.id, EnrollmentStatus.ACTIVE, now)
            resumed += 1
    return resumed


def _not_replanned_today(now: datetime) -> sa.ColumnElement[bool]:
    stale_before = (now - ZONE_SPREAD).date()
    return sa.and_(
        col(Enrollment.status) == EnrollmentStatus.ACTIVE,
        sa.or_(col(Enrollment.planned_on).is_(None), col(Enrollment.planned_on) < stale_before),
    )


def stale_enrollments(db: Session, _rt: Runtime, now: datetime) -> list[str]:
    """Return the active enrollments not re-planned today. A read: `extend_horizons`
    re-plans them under the write lock."""
    found = db.execute(sa.select(col(Enrollment.id)).where(_not_replanned_today(now)))
    return list(found.scalars())


def extend_horizons(db: Session, rt: Runtime, now: datetime, enrollment_ids: Sequence[str]) -> int:
    """Re-plan those of `enrollment_ids` still active and not re-planned today (a
    confirmation may have re-planned one since it was found); return how many. A short
    course past its time ends instead (`winding_down.expire_if_due`): once a day is
    often enough to look."""
    stale = db.exec(
        select(Enrollment)
        .where(col(Enrollment.id).in_(enrollment_ids))
        .where(_not_replanned_today(now))
    ).all()
    for enrollment in stale:
        patient = db.get(Patient, enrollment.patient_id)
        assert patient is not None  # foreign key
        if not winding_down.expire_if_due(db, rt, enrollment, patient, now):
            replan(db, rt, enrollment, now, patient=patient)
    return len(stale)


Finder = Callable[[Session, Runtime, datetime], list[str]]
Step = Callable[[Session, Runtime, datetime, Sequence[str]], int]


def _find_then_write(
    rt: Runtime, now: datetime, find: Finder, write: Step, batch: int = REPLAN_BATCH
) -> int:
    """Find the enrollments a step concerns in a read transaction, then run the step on
    them in paced write batches of `batch` (the single-writer rule's part 3, in
    `db.engine`); return the sum of what it did.

    Small batches keep each wait for the write lock short: API writes wait for it on the
    event loop itself, and once a day every enrollment needs its horizon extended. Every
    step re-checks what it is handed: a confirmation may have come in between.
    """
    with session_scope(rt.engine, write=False) as db:
        found = find(db, rt, now)
    return paced_batches(rt.engine, found, batch, lambda db, ids: write(db, rt, now, ids))


def sweep(rt: Runtime, now: datetime) -> SweepReport:
    """Run every sweep step once; return what was done."""
    _find_then_write(rt, now, paused_until_due, resume_paused)
    _find_then_write(rt, now, webhooks.long_failing, webhooks.disable_long_failing)
    # Before misses are judged: a patient no reminder can reach is not blamed for one.
    _find_then_write(rt, now, reachability.unchecked, reachability.check_unchecked, STANDINGS_BATCH)
    missed = _find_then_write(rt, now, missing_enrollments, mark_missed)
    replanned = _find_then_write(rt, now, stale_enrollments, extend_horizons)
    lapsed = _find_then_write(rt, now, lapse_candidates, check_lapses)
    # After the steps that change sessions: standings are made of them.
    if _find_then_write(rt, now, standings.changed_patients, standings.refresh, STANDINGS_BATCH):
        with session_scope(rt.engine) as db:
            standings.note_look(db, now)
    _find_then_write(rt, now, escalations.undecided_reviews, escalations.realert_undecided)
    # After the steps above: what they noted goes into today's digest.
    _find_then_write(rt, now, digest.due_clinics, digest.send_digests)
    with session_scope(rt.engine, write=False) as db:
        reminders = reminders_not_yet_written(db, rt.settings, now)
    if reminders:
        with session_scope(rt.engine) as db:
            outbox.queue(db, reminders)
    return SweepReport(missed, replanned, lapsed)
