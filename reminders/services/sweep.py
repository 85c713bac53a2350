"""The sweep: what time passing causes. Marks missed sessions, keeps horizons rolling and
materialises reminders that come due. Each step is its own transaction."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import sqlalchemy as sa
from sqlmodel import Session, col, select

from reminders.adherence import SessionFact, adherence
from reminders.db import insert_ignore, session_scope
from reminders.models import Delivery, Enrollment, Patient, TreatmentSession, utcnow
from reminders.runtime import Runtime
from reminders.services.enrollments import local_today, replan, sessions_of
from reminders.services.events import emit, escalate
from reminders.services.reminding import (
    missed_notice_rows,
    missed_sessions,
    overdue_notice_rows,
    reminders_not_yet_written,
)
from reminders.services.sessions import session_event_data

# Local dates trail UTC by up to 14 hours; an enrollment planned on an older local date
# than this has not been re-planned today anywhere on Earth.
_ZONE_SPREAD = timedelta(hours=14)
# Small batches keep each write transaction short: API writes wait for them.
REPLAN_BATCH = 100


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep did."""

    missed: int
    replanned: int
    lapsed: int


def mark_missed(db: Session, rt: Runtime, now: datetime) -> int:
    """Mark sessions unconfirmed past their grace as missed, re-plan their enrollments and
    tell the patients; return how many were marked."""
    missed = missed_sessions(db, rt.settings, now)
    by_enrollment: dict[str, list[TreatmentSession]] = defaultdict(list)
    changed = utcnow()
    for session in missed:
        session.status = "missed"
        session.updated_at = changed
        db.add(session)
        by_enrollment[session.enrollment_id].append(session)
    db.flush()
    rows = []
    for enrollment_id, sessions in by_enrollment.items():
        enrollment = db.get(Enrollment, enrollment_id)
        assert enrollment is not None  # foreign key
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
        if enrollment.status != "active":
            continue
        replan(db, rt, enrollment, now)
        patient = db.get(Patient, enrollment.patient_id)
        assert patient is not None  # foreign key
        latest = max(sessions, key=lambda s: s.local_date)
        if patient.unsubscribed_at is None:
            rows.extend(missed_notice_rows(db, rt.settings, latest, patient, now))
        _escalate_repeated_misses(db, rt, enrollment, patient, latest, now)
    insert_ignore(db, Delivery, rows)
    return len(missed)


def _escalate_repeated_misses(
    db: Session,
    rt: Runtime,
    enrollment: Enrollment,
    patient: Patient,
    latest: TreatmentSession,
    now: datetime,
) -> None:
    """Escalate N misses in a row in a phase that builds up the treatment (induction or
    a course); ongoing phases are watched by the lapse check instead."""
    protocol = rt.protocols.get(enrollment.protocol_id)
    if protocol is None:
        return
    phase = next((p for p in protocol.phases if p.name == latest.phase), None)
    if phase is None or not phase.ends:
        return
    facts = [SessionFact(r.local_date, r.status, r.phase) for r in sessions_of(db, enrollment.id)]
    in_a_row = adherence(facts, latest.local_date).missed_in_a_row
    # Once per streak: when it reaches the threshold, not again for every further miss.
    if in_a_row == rt.settings.escalate_after_misses:
        escalate(
            db,
            patient,
            "missed_sessions",
            f"{in_a_row} {latest.phase} sessions missed in a row (last on {latest.local_date})",
            now,
            session_id=latest.id,
        )


def check_lapses(db: Session, rt: Runtime, now: datetime) -> int:
    """Nudge patients in an ongoing phase (maintenance) whose last session is long ago,
    and escalate to the clinic later; each once per lapse. Returns how many lapsed."""
    settings = rt.settings
    last_done = sa.func.max(TreatmentSession.local_date)
    oldest = (now + _ZONE_SPREAD).date() - timedelta(days=settings.overdue_nudge_days)
    lapsed = db.execute(
        sa.select(Enrollment.id, last_done)  # type: ignore[call-overload]
        .join(TreatmentSession, col(TreatmentSession.enrollment_id) == Enrollment.id)
        .where(col(Enrollment.status) == "active", col(TreatmentSession.status) == "confirmed")
        .group_by(Enrollment.id)
        .having(last_done <= oldest)
    ).all()
    count = 0
    for enrollment_id, _ in lapsed:
        enrollment = db.get(Enrollment, enrollment_id)
        assert enrollment is not None
        protocol = rt.protocols.get(enrollment.protocol_id)
        phase = (
            next((p for p in protocol.phases if p.name == enrollment.phase), None)
            if protocol
            else None
        )
        if phase is None or phase.ends:
            continue
        patient = db.get(Patient, enrollment.patient_id)
        assert patient is not None  # foreign key
        rows = sessions_of(db, enrollment.id)
        last = max((r for r in rows if r.status == "confirmed"), key=lambda r: r.local_date)
        days = (local_today(now, patient.timezone) - last.local_date).days
        if days < settings.overdue_nudge_days:
            continue
        count += 1
        if patient.unsubscribed_at is None:
            insert_ignore(db, Delivery, overdue_notice_rows(db, settings, last, patient, days, now))
        if days >= settings.lapse_escalation_days:
            escalate(
                db,
                patient,
                "lapsed",
                f"no session for {days} days in {enrollment.phase} (last on {last.local_date})",
                now,
                session_id=last.id,
            )
    return count


def extend_horizons(db: Session, rt: Runtime, now: datetime, limit: int = REPLAN_BATCH) -> int:
    """Re-plan up to `limit` active enrollments not re-planned today; return how many."""
    stale_before = (now - _ZONE_SPREAD).date()
    stale = db.exec(
        select(Enrollment)
        .where(Enrollment.status == "active")
        .where((Enrollment.planned_on == None) | (Enrollment.planned_on < stale_before))  # type: ignore[operator]  # noqa: E711
        .limit(limit)
    ).all()
    for enrollment in stale:
        replan(db, rt, enrollment, now)
    return len(stale)


def sweep(rt: Runtime, now: datetime) -> SweepReport:
    """Run every sweep step once; return what was done."""
    with session_scope(rt.engine) as db:
        missed = mark_missed(db, rt, now)
    replanned = 0
    while True:
        with session_scope(rt.engine) as db:
            done = extend_horizons(db, rt, now)
        replanned += done
        if done < REPLAN_BATCH:
            break
    with session_scope(rt.engine) as db:
        lapsed = check_lapses(db, rt, now)
    with session_scope(rt.engine, write=False) as db:
        reminders = reminders_not_yet_written(db, rt.settings, now)
    if reminders:
        with session_scope(rt.engine) as db:
            insert_ignore(db, Delivery, reminders)
    return SweepReport(missed, replanned, lapsed)
