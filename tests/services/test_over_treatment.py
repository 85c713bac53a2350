"""More sessions than the protocol's weekly maximum: recorded (it happened), and the
clinic is told; the patient's page says more is not better."""

from __future__ import annotations

from sqlmodel import Session, select

from reminders.models import Escalation, SessionReport
from reminders.runtime import Runtime
from reminders.safety import over_treatment
from reminders.services import sessions
from reminders.stores import session_store
from tests.conftest import (
    at,
    enroll_in_ongoing_phase_with_first_session_done,
    make_clinic,
    make_patient,
)


def test_a_second_session_in_a_week_of_a_weekly_protocol_tells_the_clinic(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic, timezone="UTC")
    # Weekly glycopyrrolate, Monday's session done.
    enrollment = enroll_in_ongoing_phase_with_first_session_done(db, rt, clinic, patient)
    (monday,) = [r for r in session_store.of_enrollment(db, enrollment) if r.status == "confirmed"]
    assert db.exec(select(Escalation)).all() == []
    # From Monday's link, on Wednesday: an extra session, the week's second.
    link = session_store.get(db, monday.id)
    assert link is not None
    extra = sessions.confirm_from_link(db, rt, link, None, SessionReport(), at("2026-12-09 10:00"))
    db.commit()
    assert extra.status == "confirmed" and extra.local_date.isoformat() == "2026-12-09"
    (escalation,) = db.exec(select(Escalation)).all()
    assert (escalation.reason, escalation.session_id) == ("over_treatment", extra.id)
    assert "more than 1 sessions" in escalation.detail


def test_over_treatment_counts_the_seven_days_ending_on_the_day() -> None:
    done = [at(f"2026-12-{d:02d} 00:00").date() for d in (1, 3, 5, 7)]
    day = done[-1]
    assert over_treatment(done, day, 3)  # 3rd, 5th, 7th and the 1st (7 days back)
    assert not over_treatment(done, day, 4)
    assert not over_treatment(done[1:], day, 3)
