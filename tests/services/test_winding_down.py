"""A course winds down when the patient stops answering: weekly, then dormant; a
confirmation or a resume brings it back where it stood; acknowledging changes no pace."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from reminders.models import Delivery, Enrollment, Escalation, SessionReport
from reminders.runtime import Runtime
from reminders.services import course_status, escalations, sessions
from reminders.services.sweep import sweep
from reminders.states import EnrollmentStatus, SessionStatus
from reminders.stores import session_store
from tests.conftest import (
    at,
    enroll_in_ongoing_phase_with_first_session_done,
    make_clinic,
    make_patient,
)


def sweep_daily(rt: Runtime, first_day: int, last_day: int) -> None:
    start = at("2026-12-07 12:30")
    for offset in range(first_day, last_day + 1):
        sweep(rt, start + timedelta(days=offset))


def enrollment_of(db: Session, enrollment_id: str) -> Enrollment:
    db.expire_all()
    found = db.get(Enrollment, enrollment_id)
    assert found is not None
    return found


def test_a_patient_who_never_answers_goes_dormant_and_a_late_confirmation_wakes_the_course(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic, timezone="UTC", reminder_time="09:00")
    enrollment_id = enroll_in_ongoing_phase_with_first_session_done(db, rt, clinic, patient)
    sweep_daily(rt, 1, 70)
    enrollment = enrollment_of(db, enrollment_id)
    assert enrollment.status == EnrollmentStatus.DORMANT and enrollment.phase == "repeat"
    rows = session_store.of_enrollment(db, enrollment_id)
    assert not [r for r in rows if r.status == SessionStatus.PLANNED], "nothing planned"
    reasons = [e.reason for e in db.exec(select(Escalation)).all()]
    assert sorted(reasons) == ["dormant", "lapsed"]
    (stopped,) = db.exec(select(Delivery).where(Delivery.kind == "reminders_stopped")).all()
    assert stopped.patient_id == patient
    # Acknowledging is "seen": the course stays as it is.
    for escalation in db.exec(select(Escalation)).all():
        escalations.acknowledge(
            db, rt, clinic, escalation.id, "nurse", None, at("2027-02-20 09:00")
        )
    db.commit()
    assert enrollment_of(db, enrollment_id).status == EnrollmentStatus.DORMANT
    # The patient confirms the last session they were asked for, from its link.
    last = max((r for r in rows if r.status == SessionStatus.MISSED), key=lambda r: r.local_date)
    sessions.confirm_session(db, rt, None, last.id, SessionReport(), at("2027-02-20 10:00"))
    db.commit()
    woken = enrollment_of(db, enrollment_id)
    assert (woken.status, woken.phase, woken.slowed_since) == ("active", "repeat", None)
    assert [r for r in session_store.of_enrollment(db, enrollment_id) if r.status == "planned"]


def test_the_clinic_can_resume_or_withdraw_a_dormant_course(db: Session, rt: Runtime) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic, timezone="UTC", reminder_time="09:00")
    enrollment_id = enroll_in_ongoing_phase_with_first_session_done(db, rt, clinic, patient)
    sweep_daily(rt, 1, 70)
    assert enrollment_of(db, enrollment_id).status == EnrollmentStatus.DORMANT
    course_status.set_status(db, rt, clinic, enrollment_id, "active", at("2027-02-20 09:00"))
    db.commit()
    resumed = enrollment_of(db, enrollment_id)
    assert (resumed.status, resumed.slowed_since) == ("active", None)
    course_status.set_status(db, rt, clinic, enrollment_id, "withdrawn", at("2027-02-21 09:00"))
    db.commit()
    assert enrollment_of(db, enrollment_id).status == EnrollmentStatus.WITHDRAWN
