"""The sweep: what time passing causes. Marks missed sessions, keeps horizons rolling and
materialises reminders that come due. Each step is its own transaction."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, select

from reminders.db import insert_ignore, session_scope
from reminders.models import Delivery, Enrollment, Patient, TreatmentSession, utcnow
from reminders.runtime import Runtime
from reminders.services.enrollments import replan
from reminders.services.reminding import missed_notice_rows, missed_sessions, schedule_reminders

# Local dates trail UTC by up to 14 hours; an enrollment planned on an older local date
# than this has not been re-planned today anywhere on Earth.
_ZONE_SPREAD = timedelta(hours=14)
REPLAN_BATCH = 500


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep did."""

    missed: int
    replanned: int


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
        if enrollment.status != "active":
            continue
        replan(db, rt, enrollment, now)
        patient = db.get(Patient, enrollment.patient_id)
        assert patient is not None  # foreign key
        if patient.unsubscribed_at is None:
            latest = max(sessions, key=lambda s: s.local_date)
            rows.extend(missed_notice_rows(db, rt.settings, latest, patient, now))
    insert_ignore(db, Delivery, rows)
    return len(missed)


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
        schedule_reminders(db, rt.settings, now)
    return SweepReport(missed, replanned)
