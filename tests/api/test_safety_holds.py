"""A side effect that holds the plan, from the patient's link to the clinician's
decision; a problem reported days later lands on its own session; urgent things rank
first and say so."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from reminders.dispatcher import Dispatcher, build_senders
from reminders.models import Delivery, Enrollment, Escalation, TreatmentSession
from reminders.runtime import Runtime
from reminders.services.reading import open_escalations_by_priority
from reminders.states import DeliveryState
from tests.api.conftest import NOW, Api
from tests.api.test_patient_pages import links, remind
from tests.servers import SmtpRecorder


def _reminded(api: Api, rt: Runtime, smtp: SmtpRecorder) -> tuple[str, str, str]:
    """A patient in UTC reminded of Monday's session at 09:00; their patient and
    enrollment ids and the session link."""
    patient = api.patient(timezone="UTC", reminder_time="09:00")
    enrollment = api.enroll(patient, weekdays=["mon", "wed", "fri"])["id"]
    remind(rt, NOW.replace(hour=9))
    api.clock[0] = NOW.replace(hour=10)
    session_link, _ = links(smtp)
    return patient, enrollment, session_link


def _sessions(db: Session) -> list[tuple[str, str, bool, str | None, str | None]]:
    db.expire_all()
    rows = db.exec(select(TreatmentSession).order_by(TreatmentSession.local_date)).all()  # type: ignore[arg-type]
    return [
        (r.local_date.isoformat(), r.status, r.unscheduled, r.side_effect, r.side_effect_note)
        for r in rows
    ]


def _open(api: Api) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get("/v1/escalations?state=open").json()["items"]
    return items


def test_a_burn_from_the_link_holds_the_plan_and_tells_the_patient_what_to_do(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    api.patch("/v1/clinic", {"phone": "+49 30 1234567"})
    _patient, enrollment, link = _reminded(api, rt, smtp)
    page = api.client.post(f"{link}/confirm", data={"side_effect": "burn"})
    assert page.status_code == 200
    assert "Do not treat this area again until your clinic has contacted you." in page.text
    assert "If it is severe, call North Clinic: +49 30 1234567." in page.text
    assert "Your next session" not in page.text
    again = api.client.get(link).text
    assert "Your plan is on hold" in again
    assert "If it is severe, call North Clinic: +49 30 1234567." in again
    held = api.get(f"/v1/enrollments/{enrollment}").json()
    assert (held["status"], held["upcoming"]) == ("held", [])
    assert [s[1] for s in _sessions(db)][:1] == ["confirmed"]
    assert {s[1] for s in _sessions(db)[1:]} <= {"cancelled"}
    (escalation,) = _open(api)
    assert (escalation["reason"], escalation["priority"]) == ("side_effect", 1)
    db.expire_all()
    waiting = db.exec(select(Delivery).where(Delivery.kind == "reminder")).all()
    assert all(d.state != DeliveryState.PENDING for d in waiting)
    alert = db.exec(select(Delivery).where(Delivery.kind == "escalation")).one()
    assert json.loads(alert.payload)["subject"].startswith("Urgent: burn reported — patient EHR-")


def test_the_clinic_email_says_urgent_and_links_to_the_patients_page(
    api: Api, rt: Runtime, smtp: SmtpRecorder
) -> None:
    patient, _enrollment, link = _reminded(api, rt, smtp)
    api.client.post(f"{link}/confirm", data={"side_effect": "blistering"})
    remind(rt, api.clock[0])
    alert = smtp.messages[-1]
    assert alert["To"] == "nurse@clinic.example.org"
    assert alert["Subject"].startswith("Urgent: blistering reported — patient EHR-")
    text = alert.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f"https://reminders.example.org/app/patients/{patient}" in text
    assert "Ann" not in alert["Subject"] and "hyperhidrosis" not in alert["Subject"]


def test_nothing_is_reminded_while_held_and_a_decision_to_go_on_plans_from_tomorrow(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    _patient, enrollment, link = _reminded(api, rt, smtp)
    api.client.post(f"{link}/confirm", data={"side_effect": "burn"})
    sent_before = len(smtp.messages)
    for days in (2, 4):  # Wednesday and Friday: their reminders would be at 09:00
        api.clock[0] = NOW.replace(hour=9, minute=30) + timedelta(days=days)
        Dispatcher(rt.with_clock(lambda: api.clock[0]), build_senders(rt), worker="t").dispatch()
    to_patient = [m for m in smtp.messages[sent_before:] if m["To"] != "nurse@clinic.example.org"]
    assert to_patient == []
    api.clock[0] = NOW.replace(hour=10) + timedelta(days=2)  # Wednesday 10:00
    refused = api.post(f"/v1/enrollments/{enrollment}/pause", {})
    assert refused.status_code == 409 and "held" in refused.text
    decided = api.post(
        f"/v1/enrollments/{enrollment}/hold-decision",
        {"decision": "continue", "by": "Dr Weiss", "note": "settings checked, new pads"},
    )
    assert decided.status_code == 200, decided.text
    upcoming = [s["date"] for s in decided.json()["upcoming"]]
    assert upcoming[0] == "2026-12-11"  # Friday: the first allowed day after Wednesday
    assert _open(api) == []
    entries = api.get("/v1/audit-log").json()["items"]
    assert entries[0]["action"] == "enrollment.hold_decision"


def test_a_hold_decision_is_checked_field_by_field_and_only_for_a_held_plan(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    _patient, enrollment, link = _reminded(api, rt, smtp)
    url = f"/v1/enrollments/{enrollment}/hold-decision"
    not_held = api.post(url, {"decision": "continue", "by": "Dr Weiss"})
    assert not_held.status_code == 409
    api.client.post(f"{link}/confirm", data={"side_effect": "burn"})
    for body, field in (
        ({"decision": "maybe", "by": "Dr Weiss"}, "decision"),
        ({"decision": "continue"}, "by"),
        ({"decision": "continue", "by": ""}, "by"),
        ({"decision": "pause", "by": "Dr Weiss"}, "until"),
        ({"decision": "pause", "by": "Dr Weiss", "until": "2026-12-07"}, "until"),
        ({"decision": "continue", "by": "Dr Weiss", "until": "2026-12-20"}, "until"),
    ):
        answer = api.post(url, body)
        assert answer.status_code == 422, (body, answer.text)
        assert field in answer.text
    assert api.get(f"/v1/enrollments/{enrollment}").json()["status"] == "held"
    paused = api.post(url, {"decision": "pause", "by": "Dr Weiss", "until": "2026-12-21"})
    assert paused.status_code == 200
    assert (paused.json()["status"], paused.json()["paused_until"]) == ("paused", "2026-12-21")


def test_ending_a_held_course_withdraws_it_and_tells_the_patient(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    _patient, enrollment, link = _reminded(api, rt, smtp)
    api.client.post(f"{link}/confirm", data={"side_effect": "burn"})
    ended = api.post(
        f"/v1/enrollments/{enrollment}/hold-decision", {"decision": "end", "by": "Dr Weiss"}
    )
    assert ended.status_code == 200 and ended.json()["status"] == "withdrawn"
    remind(rt, api.clock[0])
    told = [
        m for m in smtp.messages if m["Subject"] == "Your clinic has ended your treatment course"
    ]
    assert len(told) == 1
    text = told[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "has ended this treatment course and will contact you" in text


def test_a_blister_noticed_the_next_morning_lands_on_its_own_session(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    _patient, enrollment, link = _reminded(api, rt, smtp)
    assert api.client.post(f"{link}/confirm", data={}).status_code == 200
    api.clock[0] = NOW.replace(hour=8) + timedelta(days=1)  # Tuesday 08:00
    form = api.client.get(f"{link}/problem")
    assert form.status_code == 200 and "Did you do this session?" not in form.text
    page = api.client.post(
        f"{link}/problem", data={"side_effect": "blistering", "note": "two small blisters"}
    )
    assert page.status_code == 200
    assert "Do not treat this area again" in page.text
    first, *rest = _sessions(db)
    assert first == ("2026-12-07", "confirmed", False, "blistering", "two small blisters")
    assert not any(unscheduled for _d, _s, unscheduled, _e, _n in rest)
    (escalation,) = _open(api)
    assert "2026-12-07" in escalation["detail"] and escalation["priority"] == 1
    assert escalation["patient_note"] == "two small blisters"
    assert api.get(f"/v1/enrollments/{enrollment}").json()["status"] == "held"


def test_other_with_words_reaches_a_person_and_keeps_the_plan_going(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    _patient, enrollment, link = _reminded(api, rt, smtp)
    page = api.client.post(
        f"{link}/confirm", data={"side_effect": "other", "side_effect_note": "dizzy, heart racing"}
    )
    assert page.status_code == 200 and "Your next session" in page.text
    (escalation,) = _open(api)
    assert (escalation["priority"], escalation["patient_note"]) == (6, "dizzy, heart racing")
    assert api.get(f"/v1/enrollments/{enrollment}").json()["status"] == "active"
    db.expire_all()
    alert = db.exec(select(Delivery).where(Delivery.kind == "escalation")).one()
    assert "dizzy" not in json.loads(alert.payload)["subject"]


def test_a_problem_with_a_session_not_yet_recorded_asks_whether_it_was_done(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    _patient, _enrollment, link = _reminded(api, rt, smtp)
    form = api.client.get(f"{link}/problem")
    assert "Did you do this session?" in form.text
    unanswered = api.client.post(f"{link}/problem", data={"side_effect": "redness"})
    assert unanswered.status_code == 422 and "whether you did this session" in unanswered.text
    assert _sessions(db)[0][1:4] == ("planned", False, None)
    unknown = api.client.post(f"{link}/problem", data={"side_effect": "glowing", "did_it": "yes"})
    assert unknown.status_code == 422
    done = api.client.post(
        f"{link}/problem", data={"side_effect": "redness", "did_it": "yes", "note": "itchy"}
    )
    assert done.status_code == 200 and "Your clinic sees it with your session." in done.text
    assert _sessions(db)[0] == ("2026-12-07", "confirmed", False, "redness", "itchy")
    assert _open(api) == []


def test_open_escalations_come_most_urgent_first_then_oldest(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    _p1, _e1, first_link = _reminded(api, rt, smtp)
    api.client.post(
        f"{first_link}/confirm", data={"side_effect": "other", "side_effect_note": "tingling"}
    )
    second = api.enroll(api.patient(timezone="UTC"), weekdays=["mon", "wed", "fri"])
    today = second["upcoming"][0]["id"]
    assert api.post(f"/v1/sessions/{today}/confirm", {"side_effect": "burn"}).status_code == 200
    clinic_id = api.get("/v1/clinic").json()["id"]
    ranked = open_escalations_by_priority(db, clinic_id, None, 1)
    assert [e.priority for e in ranked.items] == [1]
    following = open_escalations_by_priority(db, clinic_id, ranked.next_cursor, 10)
    assert [e.priority for e in following.items] == [6]
    assert following.next_cursor is None


def test_a_session_done_while_held_is_recorded_and_the_clinic_told_and_the_hold_stays(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    _patient, enrollment, link = _reminded(api, rt, smtp)
    api.client.post(f"{link}/confirm", data={"side_effect": "burn"})
    api.clock[0] = NOW.replace(hour=18) + timedelta(days=1)  # Tuesday evening
    page = api.client.post(f"{link}/confirm", data={"day": "2026-12-08"})
    assert page.status_code == 200
    assert "Do not treat this area again" in page.text
    assert ("2026-12-08", "confirmed", True, None, None) in _sessions(db)
    assert api.get(f"/v1/enrollments/{enrollment}").json()["status"] == "held"
    urgent = sorted(e["detail"] for e in _open(api) if e["priority"] == 1)
    assert len(urgent) == 2 and "recorded while the plan is held" in urgent[0] + urgent[1]
    db.expire_all()
    subjects = sorted(
        json.loads(d.payload)["subject"]
        for d in db.exec(select(Delivery).where(Delivery.kind == "escalation")).all()
    )
    assert subjects[0].startswith("Urgent: a session recorded while the plan is held — ")


def test_the_same_late_report_sent_twice_is_stored_and_told_once(api: Api, db: Session) -> None:
    enrollment = api.enroll(api.patient())
    today = enrollment["upcoming"][0]["id"]
    api.clock[0] = NOW.replace(hour=17)
    assert api.post(f"/v1/sessions/{today}/confirm", {}).status_code == 200
    report = {"side_effect": "redness", "side_effect_note": "itchy"}
    for _ in range(2):
        again = api.post(f"/v1/sessions/{today}/confirm", report)
        assert again.status_code == 200
        assert (again.json()["side_effect"], again.json()["side_effect_note"]) == (
            "redness", "itchy",
        )  # fmt: skip


def test_erasing_a_patient_whose_plan_is_held_ends_it_and_clears_their_words(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    patient, enrollment, link = _reminded(api, rt, smtp)
    api.client.post(f"{link}/confirm", data={"side_effect": "burn", "side_effect_note": "sore"})
    erased = api.delete(f"/v1/patients/{patient}")
    assert erased.status_code == 204, erased.text
    assert api.get(f"/v1/enrollments/{enrollment}").json()["status"] == "withdrawn"
    db.expire_all()
    assert {e.patient_note for e in db.exec(select(Escalation)).all()} == {None}


def test_a_completed_course_takes_no_more_sessions_but_a_problem_can_still_be_told(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    _patient, enrollment, link = _reminded(api, rt, smtp)
    assert api.client.post(f"{link}/confirm", data={}).status_code == 200
    db.expire_all()
    course = db.get(Enrollment, enrollment)
    assert course is not None
    course.status = "completed"  # as the course's last phase ending leaves it
    db.add(course)
    db.commit()
    api.clock[0] = NOW.replace(hour=10) + timedelta(days=1)
    refused = api.client.post(f"{link}/confirm", data={"day": "2026-12-08"})
    assert refused.status_code == 409
    assert "Your treatment course has ended: please contact your clinic." in refused.text
    assert [s[2] for s in _sessions(db) if s[1] == "confirmed"] == [False], "no extra session"
    told = api.client.post(f"{link}/problem", data={"side_effect": "redness", "note": "itchy"})
    assert told.status_code == 200
