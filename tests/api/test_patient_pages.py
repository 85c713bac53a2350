"""The patient's side: links from a real reminder email lead to pages that confirm, skip,
snooze and unsubscribe; GET never changes anything."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from freezegun import freeze_time
from sqlmodel import Session, select

from reminders.dispatcher import Dispatcher, build_senders
from reminders.models import Patient, TreatmentSession
from reminders.runtime import Runtime
from reminders.states import DeliveryState
from reminders.stores import outbox
from tests.api.conftest import NOW, Api
from tests.servers import SmtpRecorder


def remind(rt: Runtime, at: datetime) -> None:
    with freeze_time(at):
        Dispatcher(rt, build_senders(rt), worker="test").dispatch()


def links(smtp: SmtpRecorder) -> tuple[str, str]:
    text = smtp.messages[-1].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    session = re.search(r"https://reminders\.example\.org(/s/[\w-]+)", text)
    unsubscribe = re.search(r"https://reminders\.example\.org(/u/[\w-]+)", text)
    assert session and unsubscribe
    return session.group(1), unsubscribe.group(1)


def reminded_patient(api: Api, rt: Runtime, smtp: SmtpRecorder) -> tuple[str, str, str]:
    patient = api.patient(timezone="UTC", reminder_time="09:00")
    api.enroll(patient, weekdays=["mon", "wed", "fri"])
    remind(rt, NOW.replace(hour=9))
    api.clock[0] = NOW.replace(hour=10)
    session_link, unsubscribe_link = links(smtp)
    return patient, session_link, unsubscribe_link


def statuses(db: Session) -> list[str]:
    db.expire_all()
    rows = db.exec(select(TreatmentSession).order_by(TreatmentSession.local_date)).all()  # type: ignore[arg-type]
    return [r.status for r in rows]


def test_get_shows_the_session_and_changes_nothing(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    _, session_link, _ = reminded_patient(api, rt, smtp)
    before = statuses(db)
    page = api.client.get(session_link + "?action=confirm")
    assert page.status_code == 200
    assert "Monday, 7 December" in page.text
    assert "20 minutes" in page.text
    assert "petroleum jelly" in page.text
    assert '<form method="post" action="' in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert statuses(db) == before


def test_confirming_from_the_link_records_hdss_and_a_second_time_is_refused(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    patient, session_link, _ = reminded_patient(api, rt, smtp)
    done = api.client.post(f"{session_link}/confirm", data={"hdss": "2", "current_ma": "12,5"})
    assert done.status_code == 200
    assert "Your session on Monday, 7 December 2026 is recorded" in done.text
    assert "Wednesday, 9 December" in done.text
    again = api.client.post(f"{session_link}/confirm", data={"hdss": "4"})
    assert again.status_code == 409
    assert "Nothing was recorded" in again.text
    assert "already recorded" in again.text
    assert "is recorded. Thank you" not in again.text
    db.expire_all()
    first = db.exec(select(TreatmentSession).where(TreatmentSession.status == "confirmed")).one()
    assert (first.hdss, first.current_ma) == (2, 12.5)
    assert api.get(f"/v1/patients/{patient}/adherence").json()["confirmed"] == 1


def test_bad_form_values_get_a_clear_page(api: Api, rt: Runtime, smtp: SmtpRecorder) -> None:
    _, session_link, _ = reminded_patient(api, rt, smtp)
    for form in ({"hdss": "7"}, {"hdss": "dry"}, {"current_ma": "lots"}):
        answer = api.client.post(f"{session_link}/confirm", data=form)
        assert answer.status_code == 422
        assert "check what you entered" in answer.text


def test_extra_session_is_recorded_as_unscheduled_and_caps_still_hold(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    rt.settings.day_before_reminder = True
    _, monday_link, _ = reminded_patient(api, rt, smtp)
    api.client.post(f"{monday_link}/confirm")
    remind(rt, NOW + timedelta(days=1, hours=2))  # Tuesday 09:00: "tomorrow is a treatment day"
    assert smtp.messages[-1]["Subject"] == "Your treatment session tomorrow"
    wednesday_link, _ = links(smtp)
    api.clock[0] = NOW + timedelta(days=1, hours=12)  # the patient does it on Tuesday evening
    extra = api.client.post(f"{wednesday_link}/confirm")
    assert extra.status_code == 200
    db.expire_all()
    rows = db.exec(select(TreatmentSession).order_by(TreatmentSession.local_date)).all()  # type: ignore[arg-type]
    tuesday = next(r for r in rows if r.local_date.isoformat() == "2026-12-08")
    assert (tuesday.status, tuesday.unscheduled) == ("confirmed", True)
    planned = [r.local_date for r in rows if r.status == "planned"]
    done = [r.local_date for r in rows if r.status == "confirmed"]
    assert len(set(planned + done)) == len(planned + done), "one session a day"
    for day in planned:
        window = [d for d in planned + done if day - timedelta(days=6) <= d <= day]
        assert len(window) <= 5, "never more than the weekly maximum in any 7 days"


def test_mondays_link_used_on_tuesday_asks_the_day_and_records_exactly_that(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    _, monday_link, _ = reminded_patient(api, rt, smtp)
    api.client.post(f"{monday_link}/confirm", data={"day": "2026-12-07"})
    api.clock[0] = NOW + timedelta(days=1, hours=10)  # Tuesday evening
    page = api.client.get(monday_link)
    assert 'value="2026-12-07"' in page.text
    assert 'value="2026-12-08" checked' in page.text  # Monday is recorded: today preselected
    monday_again = api.client.post(f"{monday_link}/confirm", data={"day": "2026-12-07"})
    assert monday_again.status_code == 409
    assert "already recorded" in monday_again.text
    tuesday = api.client.post(f"{monday_link}/confirm", data={"day": "2026-12-08"})
    assert tuesday.status_code == 200
    assert "Your session on Tuesday, 8 December 2026 is recorded" in tuesday.text
    db.expire_all()
    done = db.exec(select(TreatmentSession).where(TreatmentSession.status == "confirmed")).all()
    assert sorted(r.local_date.isoformat() for r in done) == ["2026-12-07", "2026-12-08"]
    other_day = api.client.post(f"{monday_link}/confirm", data={"day": "2026-12-09"})
    assert other_day.status_code == 422
    assert "Choose one of the days offered." in other_day.text


def test_an_unconfirmed_sessions_link_used_later_preselects_and_records_its_own_day(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    _, monday_link, _ = reminded_patient(api, rt, smtp)
    api.clock[0] = NOW + timedelta(days=1, hours=2)  # Tuesday morning
    page = api.client.get(monday_link)
    assert 'value="2026-12-07" checked' in page.text
    late = api.client.post(f"{monday_link}/confirm", data={"day": "2026-12-07"})
    assert "Your session on Monday, 7 December 2026 is recorded" in late.text
    assert statuses(db)[0] == "confirmed"


def test_a_session_link_expires_a_week_after_its_session(
    api: Api, rt: Runtime, smtp: SmtpRecorder
) -> None:
    _, monday_link, _ = reminded_patient(api, rt, smtp)
    api.clock[0] = NOW + timedelta(days=7, hours=12)  # the next Monday, still the 7th day
    assert api.client.get(monday_link).status_code == 200
    api.clock[0] = NOW + timedelta(days=8, hours=1)
    assert api.client.get(monday_link).status_code == 404


def test_skip_from_link_replans_and_snooze_reminds_later(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    _, session_link, _ = reminded_patient(api, rt, smtp)
    snoozed = api.client.post(f"{session_link}/snooze")
    assert "11:00" in snoozed.text
    remind(rt, NOW.replace(hour=11))
    assert smtp.messages[-1]["Subject"] == "Reminder: your treatment session today"
    skipped = api.client.post(f"{session_link}/skip", data={"reason": "away"})
    assert skipped.status_code == 200
    assert statuses(db)[0] == "skipped"


def test_unsubscribe_asks_on_get_stops_on_post_and_tells_the_clinic(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    patient, _, unsubscribe_link = reminded_patient(api, rt, smtp)
    asked = api.client.get(unsubscribe_link)
    assert asked.status_code == 200
    assert "Stop treatment reminders?" in asked.text
    assert db.get(Patient, patient).unsubscribed_at is None  # type: ignore[union-attr]
    stopped = api.client.post(unsubscribe_link, content=b"List-Unsubscribe=One-Click")
    assert stopped.status_code == 200
    db.expire_all()
    assert db.get(Patient, patient).unsubscribed_at is not None  # type: ignore[union-attr]
    pending = outbox.matching(db, state=DeliveryState.PENDING, patient_id=patient)
    assert {d.kind for d in pending} == {"escalation"}
    remind(rt, NOW.replace(hour=11, minute=5))
    assert smtp.messages[-1]["To"] == "nurse@clinic.example.org"
    assert smtp.messages[-1]["Subject"].startswith("Unsubscribed from reminders — patient ")
    assert "unsubscribed" in smtp.messages[-1].get_content()


def test_expired_or_made_up_tokens_get_a_clear_page(
    api: Api, rt: Runtime, smtp: SmtpRecorder
) -> None:
    _, session_link, unsubscribe_link = reminded_patient(api, rt, smtp)
    for url in ("/s/made-up-token-abcdefghijkl", "/u/made-up-token-abcdefghijkl"):
        answer = api.client.get(url)
        assert answer.status_code == 404
        assert "expired" in answer.text
    assert api.client.post("/s/made-up-token-abcdefghijkl/confirm").status_code == 404
    assert api.client.get(unsubscribe_link.replace("/u/", "/s/")).status_code == 404
    api.clock[0] = NOW + timedelta(days=60)
    assert api.client.get(session_link).status_code == 404


def test_the_page_asks_the_protocols_own_question_and_a_blister_alerts_the_clinic(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    # Every shipped pain protocol is given at the clinic: a clinic's own home course.
    sports = rt.protocols["sports-injury-short-course"]
    rt.protocols["sports-at-home"] = sports.model_copy(
        update={"id": "sports-at-home", "given_at": "home"}
    )
    patient = api.patient(timezone="UTC", reminder_time="09:00")
    api.enroll(patient, protocol="sports-at-home", body_area="knee", weekdays=None)
    remind(rt, NOW.replace(hour=9))
    api.clock[0] = NOW.replace(hour=10)
    session_link, _ = links(smtp)
    page = api.client.get(session_link).text
    assert "How much pain do you have now?" in page
    assert "sweating" not in page
    assert "Blisters" in page
    done = api.client.post(
        f"{session_link}/confirm", data={"outcome": "4", "side_effect": "blistering"}
    )
    assert done.status_code == 200
    assert api.get("/v1/escalations?state=open").json()["items"][0]["reason"] == "side_effect"
    db.expire_all()
    row = db.exec(select(TreatmentSession).where(TreatmentSession.status == "confirmed")).one()
    assert (row.outcome, row.side_effect, row.hdss) == ("4", "blistering", None)


def test_a_clinician_rated_scale_is_not_taken_from_the_patient(
    api: Api, rt: Runtime, db: Session
) -> None:
    from reminders.errors import InvalidInput
    from reminders.models import SessionReport
    from reminders.services import sessions

    patient = api.patient(timezone="UTC", reminder_time="09:00")
    enrollment = api.enroll(
        patient, protocol="magnesium-sulphate-spasticity", body_area="leg", weekdays=None
    )
    first = enrollment["upcoming"][0]["id"]
    report = SessionReport(outcome="2")
    with pytest.raises(InvalidInput, match="rated by the clinician"):
        sessions.confirm_session(db, rt, None, first, report, NOW, reported_by="patient")
    db.rollback()
    by_staff = api.post(f"/v1/sessions/{first}/confirm", {"outcome": "2"})
    assert by_staff.status_code == 200 and by_staff.json()["outcome"] == "2"


def test_im_away_from_a_reminder_plans_nothing_inside_the_dates(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    patient, session_link, _ = reminded_patient(api, rt, smtp)
    text = smtp.messages[-1].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "?action=away" in text
    bad = api.client.post(f"{session_link}/away", data={"from": "2026-12-10", "to": "2026-12-08"})
    assert bad.status_code == 422 and "The last day must not be before the first." in bad.text
    away = api.client.post(f"{session_link}/away", data={"from": "2026-12-08", "to": "2026-12-13"})
    assert away.status_code == 200
    assert (
        "No sessions and no reminders from Tuesday, 8 December 2026 to Sunday, 13 December 2026"
        in away.text
    )
    assert "Monday, 14 December" in away.text
    (absence,) = api.get(f"/v1/patients/{patient}/absences").json()["items"]
    assert absence["set_by"] == "patient"
    db.expire_all()
    inside = db.exec(select(TreatmentSession).where(TreatmentSession.status == "planned")).all()
    assert not [r for r in inside if "2026-12-08" <= r.local_date.isoformat() <= "2026-12-13"]


def test_a_patient_cannot_backdate_an_absence_from_a_link(
    api: Api, rt: Runtime, smtp: SmtpRecorder
) -> None:
    patient, session_link, _ = reminded_patient(api, rt, smtp)
    back = api.client.post(f"{session_link}/away", data={"from": "2026-12-01", "to": "2026-12-10"})
    assert back.status_code == 422 and "The first day must be today or later." in back.text
    assert api.get(f"/v1/patients/{patient}/absences").json()["items"] == []


def test_a_skip_reason_with_a_control_character_is_refused_and_the_session_stays(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    _, session_link, _ = reminded_patient(api, rt, smtp)
    refused = api.client.post(f"{session_link}/skip", data={"reason": "away\x1b[2J"})
    assert refused.status_code == 422
    assert "Please check what you entered" in refused.text
    assert statuses(db)[0] == "planned"
    kept = api.client.post(f"{session_link}/skip", data={"reason": "away\r\nback Friday"})
    assert kept.status_code == 200
    assert statuses(db)[0] == "skipped"


def test_an_answer_off_the_scale_is_refused_saying_so_and_records_nothing(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    _, session_link, _ = reminded_patient(api, rt, smtp)
    before = statuses(db)
    refused = api.client.post(f"{session_link}/confirm", data={"day": "2026-12-07", "outcome": "9"})
    assert refused.status_code == 422
    assert "Nothing was recorded" in refused.text
    assert "Choose an answer from the list." in refused.text
    assert statuses(db) == before
