from __future__ import annotations

import json
from datetime import date

import pytest
from sqlmodel import Session, func, select

from reminders.errors import Conflict, InvalidInput, NotFound
from reminders.models import (
    Enrollment,
    EnrollmentCreate,
    Patient,
    SessionReport,
    TreatmentSession,
)
from reminders.runtime import Runtime
from reminders.services import absences, course_status, enrollments, replan, sessions
from reminders.states import SessionStatus
from reminders.stores import outbox, session_store
from tests.conftest import CLEAR_SCREENING, at, first_area, make_clinic, make_patient

pytestmark = pytest.mark.both_databases

NOW = at("2026-12-07 07:00")  # Monday 08:00 in Berlin


def request(**fields: object) -> EnrollmentCreate:
    protocol = str(fields.get("protocol", "tap-water-hyperhidrosis"))
    data: dict[str, object] = {
        "protocol": protocol,
        "start_date": "2026-12-07",
        "screening": CLEAR_SCREENING,
        "body_area": first_area(protocol),
        **fields,
    }
    return EnrollmentCreate.model_validate(data)


def count(db: Session, model: type[Enrollment] | type[TreatmentSession]) -> int:
    return db.exec(select(func.count()).select_from(model)).one()


def planned_dates(db: Session, enrollment_id: str) -> list[str]:
    return [
        r.local_date.isoformat()
        for r in session_store.of_enrollment(db, enrollment_id)
        if r.status == "planned"
    ]


def test_enrolling_writes_the_first_horizon_from_the_start_date(db: Session, rt: Runtime) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic)
    enrollment = enrollments.enroll(db, rt, clinic, patient, request(), NOW)
    db.commit()
    assert enrollment.phase == "induction"
    assert planned_dates(db, enrollment.id) == [
        "2026-12-07", "2026-12-09", "2026-12-11", "2026-12-14", "2026-12-16", "2026-12-18",
    ]  # fmt: skip
    rows = session_store.of_enrollment(db, enrollment.id)
    assert {r.timezone for r in rows} == {"Europe/Berlin"}


def test_flagged_contraindication_refuses_enrollment_and_writes_nothing(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic)
    with pytest.raises(InvalidInput) as caught:
        enrollments.enroll(
            db, rt, clinic, patient, request(screening={**CLEAR_SCREENING, "pacemaker": True}), NOW
        )
    assert caught.value.field == "screening"
    assert "pacemaker" in caught.value.message
    db.rollback()
    assert count(db, Enrollment) == 0
    assert count(db, TreatmentSession) == 0


def test_override_with_reason_enrolls_and_stores_screening_and_reason(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic)
    enrollment = enrollments.enroll(
        db,
        rt,
        clinic,
        patient,
        request(
            screening={**CLEAR_SCREENING, "metal_implants": True},
            override_reason="Implant in the left knee; treating palms only.",
        ),
        NOW,
    )
    assert json.loads(enrollment.screening)["metal_implants"] is True
    assert enrollment.override_reason == "Implant in the left knee; treating palms only."


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"protocol": "snake-oil"}, "protocol"),
        ({"start_date": "2020-01-01"}, "start_date"),
        ({"start_date": "2030-01-01"}, "start_date"),
        ({"weekdays": ["mon", "funday"]}, "weekdays"),
        ({"weekdays": []}, "weekdays"),
        ({"screening": {"pacemaker": False}}, "screening"),
        ({"screening": {**CLEAR_SCREENING, "left_handed": False}}, "screening"),
        # Required where the protocol lists areas: one enrollment per treated area.
        ({"body_area": None}, "body_area"),
        ({"body_area": "nose"}, "body_area"),
    ],
)
def test_bad_enrollment_names_the_field_and_writes_nothing(
    db: Session, rt: Runtime, fields: dict[str, object], field: str
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic)
    with pytest.raises(InvalidInput) as caught:
        enrollments.enroll(db, rt, clinic, patient, request(**fields), NOW)
    assert caught.value.field == field
    db.rollback()
    assert count(db, Enrollment) == 0


def test_bulk_enrollment_with_one_bad_request_writes_nothing(db: Session, rt: Runtime) -> None:
    clinic = make_clinic(db)
    first = make_patient(db, clinic)
    second = make_patient(db, clinic)
    with pytest.raises(InvalidInput) as caught:
        enrollments.enroll_many(
            db,
            rt,
            clinic,
            [
                enrollments.EnrollRequest(first, request()),
                enrollments.EnrollRequest(second, request(protocol="snake-oil")),
            ],
            NOW,
        )
    assert caught.value.field == "[1].protocol"
    db.rollback()
    assert count(db, Enrollment) == 0


def test_bulk_enrollment_refuses_a_patient_already_enrolled_in_that_treatment(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    enrolled = make_patient(db, clinic)
    other = make_patient(db, clinic)
    enrollments.enroll(db, rt, clinic, enrolled, request(), NOW)
    db.commit()
    with pytest.raises(Conflict, match=enrolled):
        enrollments.enroll_many(
            db,
            rt,
            clinic,
            [
                enrollments.EnrollRequest(other, request()),
                enrollments.EnrollRequest(enrolled, request()),
            ],
            NOW,
        )
    db.rollback()
    assert count(db, Enrollment) == 1


def test_bulk_enrollment_refuses_the_same_treatment_twice_in_one_batch(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic)
    twice = [enrollments.EnrollRequest(patient, request(body_area="palms"))] * 2
    with pytest.raises(Conflict):
        enrollments.enroll_many(db, rt, clinic, twice, NOW)
    db.rollback()
    assert count(db, Enrollment) == 0


def test_another_clinics_patient_is_not_found(db: Session, rt: Runtime) -> None:
    north = make_clinic(db, "North")
    south = make_clinic(db, "South")
    patient = make_patient(db, north)
    with pytest.raises(NotFound):
        enrollments.enroll(db, rt, south, patient, request(), NOW)


def test_second_active_enrollment_in_same_protocol_and_area_conflicts(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic)
    enrollments.enroll(db, rt, clinic, patient, request(body_area="palms"), NOW)
    with pytest.raises(Conflict):
        enrollments.enroll(db, rt, clinic, patient, request(body_area="palms"), NOW)
    feet = enrollments.enroll(db, rt, clinic, patient, request(body_area="soles"), NOW)
    assert session_store.of_enrollment(db, feet.id)[0].minutes == 30


def test_missed_session_is_replanned_at_the_earliest_allowed_day(db: Session, rt: Runtime) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic)
    enrollment = enrollments.enroll(
        db, rt, clinic, patient, request(weekdays=["mon", "wed", "fri"]), NOW
    )
    first, wednesday = session_store.of_enrollment(db, enrollment.id)[:2]
    sessions.confirm_session(db, rt, clinic, first.id, SessionReport(), NOW)
    session_store.mark(db, [wednesday], SessionStatus.MISSED, NOW)
    thursday = at("2026-12-10 09:00")
    replan.replan(db, rt, enrollment, thursday)
    assert planned_dates(db, enrollment.id)[0] == "2026-12-11"


def test_skipping_ahead_frees_that_day_and_replans(db: Session, rt: Runtime) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic)
    enrollment = enrollments.enroll(
        db, rt, clinic, patient, request(protocol="glycopyrrolate-hyperhidrosis"), NOW
    )
    rows = session_store.of_enrollment(db, enrollment.id)
    sessions.confirm_session(db, rt, clinic, rows[0].id, SessionReport(hdss=2), NOW)
    sessions.skip_session(db, rt, clinic, rows[1].id, "away", NOW)
    assert planned_dates(db, enrollment.id) == ["2026-12-15"]
    statuses = {
        r.local_date.isoformat(): r.status for r in session_store.of_enrollment(db, enrollment.id)
    }
    assert statuses["2026-12-14"] == "skipped"


def test_confirming_twice_is_harmless(db: Session, rt: Runtime) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic)
    enrollment = enrollments.enroll(db, rt, clinic, patient, request(), NOW)
    first = session_store.of_enrollment(db, enrollment.id)[0]
    report = SessionReport(hdss=2, current_ma=12.5, minutes=20)
    sessions.confirm_session(db, rt, clinic, first.id, report, NOW)
    again, replanned = sessions.confirm_session(db, rt, clinic, first.id, report, NOW)
    assert replanned is None
    assert (again.status, again.hdss, again.current_ma) == ("confirmed", 2, 12.5)


def test_confirming_a_later_days_session_is_refused(db: Session, rt: Runtime) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic)
    enrollment = enrollments.enroll(db, rt, clinic, patient, request(), NOW)
    wednesday = session_store.of_enrollment(db, enrollment.id)[1]
    with pytest.raises(InvalidInput) as caught:
        sessions.confirm_session(db, rt, clinic, wednesday.id, SessionReport(), NOW)
    assert caught.value.field == "session"


def test_pause_cancels_planned_sessions_and_resume_plans_again(db: Session, rt: Runtime) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic)
    enrollment = enrollments.enroll(db, rt, clinic, patient, request(), NOW)
    course_status.set_status(db, rt, clinic, enrollment.id, "paused", NOW)
    assert planned_dates(db, enrollment.id) == []
    later = at("2026-12-14 07:00")
    course_status.set_status(db, rt, clinic, enrollment.id, "active", later)
    assert planned_dates(db, enrollment.id)[0] == "2026-12-14"
    # cancelled rows are reused, so there is still one row per date
    dates = [r.local_date for r in session_store.of_enrollment(db, enrollment.id)]
    assert len(dates) == len(set(dates))


def test_finishing_a_course_completes_the_enrollment(db: Session, rt: Runtime) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic, timezone="UTC")
    enrollment = enrollments.enroll(
        db, rt, clinic, patient, request(protocol="sports-injury-short-course"), NOW
    )
    for row in session_store.of_enrollment(db, enrollment.id):
        day_after = at(f"{row.local_date.isoformat()} 20:00")
        sessions.confirm_session(db, rt, clinic, row.id, SessionReport(), day_after)
    assert enrollment.status == "completed"
    assert planned_dates(db, enrollment.id) == []
    # Given at the clinic, on its open days: Mon 7, Wed 9, Fri 11, Mon 14, Wed 16.
    assert session_store.of_enrollment(db, enrollment.id)[-1].local_date == date(2026, 12, 16)


def test_enrolling_welcomes_the_patient_with_the_first_weeks_of_the_plan(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db, name="North Clinic")
    patient = make_patient(db, clinic)
    enrollment = enrollments.enroll(
        db, rt, clinic, patient, request(weekdays=["mon", "wed", "fri"]), NOW
    )
    planned = session_store.of_enrollment(db, enrollment.id)
    (welcome,) = outbox.matching(db, kind="welcome")
    assert (welcome.patient_id, welcome.session_id) == (patient, planned[0].id)
    facts = json.loads(welcome.payload)
    two_weeks = [r.local_date.isoformat() for r in planned if r.local_date < date(2026, 12, 21)]
    assert facts == {
        "clinic": "North Clinic", "first_day": "2026-12-07", "reminder_at": "18:00",
        "schedule": two_weeks, "at_clinic": False,
    }  # fmt: skip
    course_status.set_status(db, rt, clinic, enrollment.id, "paused", NOW)
    course_status.set_status(db, rt, clinic, enrollment.id, "active", NOW)
    welcomes = outbox.matching(db, kind="welcome")
    assert len(welcomes) == 1, "a re-plan welcomes nobody again"


def test_a_course_starting_beyond_the_horizon_is_welcomed_with_its_own_first_weeks(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    quiet = {"start": "21:00", "end": "08:00"}
    patient = make_patient(db, clinic, stored_reminder_time="07:00", quiet_hours=quiet)
    start = date(2027, 1, 4)  # four weeks ahead: nothing of it is planned yet
    enrollments.enroll(
        db, rt, clinic, patient, request(start_date=start, weekdays=["mon", "thu"]), NOW
    )
    (welcome,) = outbox.matching(db, kind="welcome")
    facts = json.loads(welcome.payload)
    assert facts["first_day"] == "2027-01-04" and welcome.session_id is None
    assert facts["schedule"] == ["2027-01-04", "2027-01-07", "2027-01-11", "2027-01-14"]
    assert facts["reminder_at"] == "08:00", "the time reminders really come: after quiet hours"


def test_a_patient_away_is_neither_planned_nor_welcomed_for_those_days(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic)
    away = db.get(Patient, patient)
    assert away is not None
    absences.add_absence(db, rt, away, date(2026, 12, 7), date(2026, 12, 9), None, "nurse", NOW)
    enrollment = enrollments.enroll(
        db, rt, clinic, patient, request(weekdays=["mon", "wed", "fri"]), NOW
    )
    first = session_store.of_enrollment(db, enrollment.id)[0]
    assert first.local_date == date(2026, 12, 11)
    (welcome,) = outbox.matching(db, kind="welcome")
    assert json.loads(welcome.payload)["first_day"] == "2026-12-11"


def test_a_welcome_promises_no_reminder_time_that_quiet_hours_would_break(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic, stored_reminder_time="22:30")  # in the quiet hours
    enrollments.enroll(db, rt, clinic, patient, request(), NOW)
    (welcome,) = outbox.matching(db, kind="welcome")
    assert json.loads(welcome.payload)["reminder_at"] is None
    assert welcome.due_at == NOW, "due when written, not at the start of the minute"
