"""Protocols given at the clinic: planned on its open days, never on a closed date; the
patient is told of the appointment the evening before with what to bring; staff record
it, and one nobody recorded is the clinic's to look at, not a missed notice."""

from __future__ import annotations

import pytest
from freezegun import freeze_time
from sqlmodel import Session, select

from reminders.dispatcher import Dispatcher, build_senders
from reminders.models import TreatmentSession
from reminders.runtime import Runtime
from reminders.services.sweep import sweep
from reminders.stores import outbox
from tests.api.conftest import NOW, Api
from tests.conftest import at
from tests.servers import SmtpRecorder

pytestmark = pytest.mark.both_databases


def upcoming(api: Api, enrollment: str) -> list[str]:
    return [s["date"] for s in api.get(f"/v1/enrollments/{enrollment}").json()["upcoming"]]


def test_appointments_fall_on_open_days_and_move_off_closed_dates(api: Api) -> None:
    hours = api.client.patch(
        "/v1/clinic",
        json={"timezone": "Europe/Berlin", "open_weekdays": ["mon", "wed", "thu"]},
        headers=api.headers(),
    )
    assert hours.status_code == 200, hours.text
    assert hours.json()["open_weekdays"] == ["mon", "wed", "thu"]
    patient = api.patient()
    enrollment = api.enroll(
        patient, protocol="dexamethasone-tendinopathy", body_area="elbow", weekdays=None
    )["id"]
    days = upcoming(api, enrollment)
    assert days[:4] == ["2026-12-07", "2026-12-09", "2026-12-14", "2026-12-16"]
    closed = api.post("/v1/clinic/closed-dates", {"date": "2026-12-09", "reason": "staff day"})
    assert closed.status_code == 201
    assert upcoming(api, enrollment)[:2] == ["2026-12-07", "2026-12-10"]
    assert api.get("/v1/clinic/closed-dates").json()["items"] == [
        {"date": "2026-12-09", "reason": "staff day"}
    ]
    assert api.delete("/v1/clinic/closed-dates/2026-12-09").status_code == 204
    assert upcoming(api, enrollment)[:2] == ["2026-12-07", "2026-12-09"]


def test_bad_clinic_hours_name_the_field(api: Api) -> None:
    for body, field in (
        ({"open_weekdays": []}, "open_weekdays"),
        ({"open_weekdays": ["someday"]}, "open_weekdays"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
    ):
        answer = api.client.patch("/v1/clinic", json=body, headers=api.headers())
        assert answer.status_code == 422, body
        assert field in str(answer.json()["detail"])
    assert api.get("/v1/clinic").json()["open_weekdays"] == ["mon", "tue", "wed", "thu", "fri"]


def test_the_patient_hears_of_the_appointment_the_evening_before_with_what_to_bring(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    patient = api.patient(timezone="UTC", reminder_time="18:00")
    api.enroll(patient, protocol="dexamethasone-tendinopathy", body_area="elbow", weekdays=None)
    for moment in ("2026-12-07 18:00", "2026-12-08 18:00", "2026-12-08 20:30"):
        with freeze_time(at(moment)):
            sweep(rt, at(moment))
            Dispatcher(rt, build_senders(rt), worker="test").dispatch()
    subjects = [m["Subject"] for m in smtp.messages if "ann@" in m["To"]]
    # The welcome, then only Wednesday's: Monday's was due the evening before the
    # enrollment.
    assert subjects == ["Your treatment plan", "Your appointment tomorrow"], subjects
    welcome = smtp.messages[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Your first appointment at the clinic is on" in welcome
    assert "the day before each appointment" in welcome
    text = smtp.messages[1].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "tomorrow, Wednesday, 9 December" in text
    assert "Bring the dexamethasone your doctor prescribed" in text
    assert "/s/" not in text, "staff record appointments: nothing for the patient to confirm"
    kinds = {d.kind for d in outbox.matching(db)}
    assert not kinds & {"reminder", "follow_up"}


def test_an_appointment_nobody_recorded_goes_to_the_clinic_not_to_the_patient(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    patient = api.patient(timezone="UTC", reminder_time="18:00")
    enrollment = api.enroll(
        patient, protocol="dexamethasone-tendinopathy", body_area="elbow", weekdays=None
    )["id"]
    with freeze_time(at("2026-12-08 12:30")):
        sweep(rt, at("2026-12-08 12:30"))
        Dispatcher(rt, build_senders(rt), worker="test").dispatch()
    db.expire_all()
    monday = db.exec(
        select(TreatmentSession).where(TreatmentSession.enrollment_id == enrollment)
    ).all()[0]
    assert monday.status == "unrecorded"
    assert not [m for m in smtp.messages if m["Subject"] == "We missed your session"]
    (escalation,) = api.get("/v1/escalations?state=open").json()["items"]
    assert escalation["reason"] == "unrecorded" and "2026-12-07" in escalation["detail"]
    api.clock[0] = NOW.replace(day=8, hour=13)
    recorded = api.post(f"/v1/sessions/{monday.id}/confirm", {"outcome": "5"})
    assert recorded.status_code == 200 and recorded.json()["status"] == "confirmed"


def test_a_paused_appointment_the_patient_was_told_of_is_called_off_and_resuming_gives_notice(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    patient = api.patient(timezone="UTC", reminder_time="18:00")
    enrollment = api.enroll(
        patient, protocol="dexamethasone-tendinopathy", body_area="elbow", weekdays=None
    )["id"]
    with freeze_time(at("2026-12-08 18:00")):
        sweep(rt, at("2026-12-08 18:00"))
        Dispatcher(rt, build_senders(rt), worker="test").dispatch()
    told = [m["Subject"] for m in smtp.messages if "ann@" in m["To"]]
    assert told[-1] == "Your appointment tomorrow"  # Wednesday's
    api.clock[0] = at("2026-12-09 07:00")  # the clinic pauses on Wednesday morning
    assert api.post(f"/v1/enrollments/{enrollment}/pause", {}).status_code == 200
    for moment in ("2026-12-09 07:00", "2026-12-09 08:00"):
        with freeze_time(at(moment)):
            Dispatcher(rt, build_senders(rt), worker="test").dispatch()
    called_off = [m for m in smtp.messages if m["Subject"] == "Your appointment is cancelled"]
    assert len(called_off) == 1
    text = called_off[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Wednesday, 9 December 2026 is cancelled: please do not come" in text
    api.clock[0] = at("2026-12-10 09:00")  # Thursday: resumed, two days' notice
    resumed = api.post(f"/v1/enrollments/{enrollment}/resume")
    assert resumed.status_code == 200
    assert upcoming(api, enrollment)[0] == "2026-12-14"  # Saturday is two days ahead: closed
