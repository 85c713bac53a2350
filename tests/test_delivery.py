"""Reminders from plan to inbox or endpoint, against real SMTP and HTTP servers."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import icalendar
import pytest
from freezegun import freeze_time
from sqlmodel import Session, select
from standardwebhooks import Webhook

from reminders.dispatcher import Dispatcher, build_senders
from reminders.ids import hash_secret
from reminders.models import (
    Enrollment,
    Patient,
    PatientToken,
    TreatmentSession,
    WebhookEndpoint,
)
from reminders.runtime import Runtime
from reminders.services import replan, webhooks
from reminders.services.sweep import sweep
from reminders.states import DeliveryState
from reminders.stores import outbox, session_store
from reminders.stores.outbox import DeliveryRow
from tests.conftest import SETUP, at, enroll_patient, make_clinic, make_patient
from tests.servers import SmtpRecorder, WebhookReceiver

pytestmark = pytest.mark.both_databases

NO_QUIET = {"start": "00:00", "end": "00:00"}


def deliveries(db: Session, kind: str | None = None) -> list[DeliveryRow]:
    return outbox.matching(db, kind=kind)


def run(rt: Runtime, now: datetime | None = None) -> int:
    """One scheduler pass as the jobs would do it: sweep, then dispatch."""
    moment = now or datetime.now(UTC)
    sweep(rt, moment)
    return Dispatcher(rt, build_senders(rt), worker="test").dispatch()


def test_reminder_email_reaches_smtp_with_headers_links_and_tips(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic, timezone="Europe/Berlin", reminder_time="18:30")
    with freeze_time("2026-12-07 07:00:00"):
        enroll_patient(db, rt, clinic, patient, "2026-12-07", at("2026-12-07 07:00"))
    with freeze_time("2026-12-07 17:29:00"):
        run(rt)
    assert smtp.messages == []
    with freeze_time("2026-12-07 17:30:00"):
        run(rt)
    (message,) = smtp.messages
    (reminder,) = deliveries(db, kind="reminder")
    assert message["Subject"] == "Your treatment session today"
    assert "hyperhidrosis" not in message["Subject"].lower()
    assert "iontophoresis" not in message["Subject"].lower()
    assert message["Message-ID"] == f"<{reminder.id}@clinic.example.org>"
    assert message["To"] == "Ann Example <ann@example.org>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = message["List-Unsubscribe"].strip().strip("<>")
    assert unsubscribe.startswith("https://reminders.example.org/u/")
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Monday, 7 December" in text
    assert "20 minutes" in text
    assert "petroleum jelly" in text
    assert "petroleum jelly" in html
    confirm = next(line for line in text.splitlines() if line.startswith("Done it: confirm <"))
    token = confirm.split("/s/")[1].split("?")[0]
    assert len(token) >= 22  # at least 128 bits, URL-safe base64
    stored = db.get(PatientToken, hash_secret(token))
    assert stored is not None
    assert stored.purpose == "session"
    assert db.exec(select(PatientToken).where(PatientToken.token_hash == token)).first() is None
    assert reminder.state == DeliveryState.SENT


def test_a_new_patient_is_welcomed_with_the_clinic_and_the_first_weeks(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    clinic = make_clinic(db, name="North Clinic")
    patient = make_patient(db, clinic, timezone="Europe/Berlin", reminder_time="18:30")
    with freeze_time("2026-12-07 07:00:00"):
        enroll_patient(
            db, rt, clinic, patient, "2026-12-07", at("2026-12-07 07:00"), welcome=True,
            weekdays=["mon", "wed", "fri"],
        )  # fmt: skip
        run(rt)
    (message,) = smtp.messages
    assert message["Subject"] == "Your treatment plan"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "North Clinic has planned your treatment" in text
    assert "Your first session is on Monday, 7 December" in text
    assert "- Wednesday, 9 December" in text and "- Friday, 18 December" in text
    assert "Monday, 21 December" not in text, "two weeks, not the whole plan"
    assert "remind you at 18:30" in text
    assert "Stop these reminders <https://reminders.example.org/u/" in text
    assert "<li>Wednesday, 9 December 2026</li>" in html
    assert re.search(r"https://reminders\.example\.org/c/[\w-]{43}\.ics", text)
    (attached,) = message.iter_attachments()
    assert attached.get_content_type() == "text/calendar"
    assert attached.get_filename() == "sessions.ics"
    events = icalendar.Calendar.from_ical(attached.get_content()).events
    planned = db.exec(select(TreatmentSession).where(TreatmentSession.status == "planned")).all()
    assert {str(e["UID"]).partition("@")[0] for e in events} == {s.id for s in planned}
    first = min(events, key=lambda e: e.DTSTART)
    assert first.DTSTART.isoformat() == "2026-12-07T18:30:00+01:00"
    (welcome,) = deliveries(db, kind="welcome")
    assert welcome.state == DeliveryState.SENT


def test_temporary_smtp_failure_is_retried_with_the_same_message_id(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic, timezone="UTC", reminder_time="09:00")
    smtp.replies.append("451 4.3.0 mailbox busy, try later")
    with freeze_time("2026-12-07 09:00:00"):
        enroll_patient(db, rt, clinic, patient, "2026-12-07", at("2026-12-07 09:00"))
        run(rt)
    (reminder,) = deliveries(db, kind="reminder")
    assert (reminder.state, reminder.attempts) == (DeliveryState.PENDING, 1)
    assert reminder.last_error is not None and "451" in reminder.last_error
    assert timedelta(seconds=4) <= reminder.next_attempt_at - at("2026-12-07 09:00")
    assert smtp.messages == []
    with freeze_time("2026-12-07 09:00:10"):
        run(rt)
    (message,) = smtp.messages
    (reminder,) = deliveries(db, kind="reminder")
    assert (reminder.state, reminder.attempts) == (DeliveryState.SENT, 2)
    assert message["Message-ID"] == f"<{reminder.id}@clinic.example.org>"


def test_permanent_smtp_failure_is_not_retried(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic, timezone="UTC", reminder_time="09:00")
    smtp.replies.append("550 5.1.1 no such mailbox")
    with freeze_time("2026-12-07 09:00:00"):
        enroll_patient(db, rt, clinic, patient, "2026-12-07", at("2026-12-07 09:00"))
        run(rt)
    with freeze_time("2026-12-07 10:00:00"):
        run(rt)
    (reminder,) = deliveries(db, kind="reminder")
    assert reminder.state == DeliveryState.FAILED
    assert reminder.attempts == 1
    assert smtp.messages == []


def webhook_patient(db: Session, rt: Runtime, receiver: WebhookReceiver) -> tuple[str, str, str]:
    clinic = make_clinic(db)
    endpoint = webhooks.add_endpoint(db, rt.settings, clinic, receiver.url, SETUP)
    db.commit()
    patient = make_patient(
        db, clinic, timezone="UTC", reminder_time="09:00", channel="webhook", external_id="EHR-17"
    )
    return clinic, patient, endpoint.secret


def test_webhook_is_signed_per_standard_webhooks(
    db: Session, rt: Runtime, receiver: WebhookReceiver
) -> None:
    clinic, patient, secret = webhook_patient(db, rt, receiver)
    with freeze_time("2026-12-07 09:00:00"):
        enroll_patient(db, rt, clinic, patient, "2026-12-07", at("2026-12-07 09:00"))
        run(rt)
        (request,) = receiver.received
        event = Webhook(secret).verify(request.body, request.headers)
    (reminder,) = deliveries(db, kind="reminder")
    assert request.headers["webhook-id"] == reminder.id
    assert event["type"] == "session.reminder"
    assert event["data"]["external_id"] == "EHR-17"
    assert event["data"]["local_date"] == "2026-12-07"
    assert event["data"]["links"]["session"].startswith("https://reminders.example.org/s/")
    assert "name" not in event["data"]


def test_a_relayed_welcome_carries_the_plan_the_email_would_tell(
    db: Session, rt: Runtime, receiver: WebhookReceiver
) -> None:
    clinic, patient, secret = webhook_patient(db, rt, receiver)
    with freeze_time("2026-12-07 10:00:00"):
        enroll_patient(
            db, rt, clinic, patient, "2026-12-08", at("2026-12-07 10:00"), welcome=True,
            weekdays=["tue", "fri"],
        )  # fmt: skip
        run(rt)
        (request,) = receiver.received
        event = Webhook(secret).verify(request.body, request.headers)
    assert event["type"] == "patient.welcome"
    assert event["data"]["plan"] == {
        "first_day": "2026-12-08", "schedule": ["2026-12-08", "2026-12-11", "2026-12-15",
        "2026-12-18"], "reminder_at": "09:00", "at_clinic": False,
    }  # fmt: skip
    assert event["data"]["links"]["session"] is None


def test_receiver_failing_once_gets_the_same_webhook_id_twice(
    db: Session, rt: Runtime, receiver: WebhookReceiver
) -> None:
    clinic, patient, secret = webhook_patient(db, rt, receiver)
    receiver.script.append((500, {}))
    with freeze_time("2026-12-07 09:00:00"):
        enroll_patient(db, rt, clinic, patient, "2026-12-07", at("2026-12-07 09:00"))
        run(rt)
    (reminder,) = deliveries(db, kind="reminder")
    assert (reminder.state, reminder.last_error) == (DeliveryState.PENDING, "HTTP 500")
    with freeze_time("2026-12-07 09:00:10"):
        run(rt)
        for request in receiver.received:
            Webhook(secret).verify(request.body, request.headers)
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == reminder.id
    assert first.body == second.body
    assert deliveries(db, kind="reminder")[0].state == DeliveryState.SENT


def test_410_disables_the_endpoint_and_tells_the_clinic(
    db: Session, rt: Runtime, receiver: WebhookReceiver
) -> None:
    clinic, patient, _ = webhook_patient(db, rt, receiver)
    receiver.script.append((410, {}))
    with freeze_time("2026-12-07 09:00:00"):
        enroll_patient(db, rt, clinic, patient, "2026-12-07", at("2026-12-07 09:00"))
        run(rt)
    (reminder,) = deliveries(db, kind="reminder")
    assert reminder.state == DeliveryState.FAILED
    (endpoint,) = db.exec(select(WebhookEndpoint)).all()
    db.refresh(endpoint)
    assert not endpoint.enabled
    subjects = sorted(json.loads(a.payload)["subject"] for a in deliveries(db, kind="clinic_alert"))
    assert subjects == ["A webhook endpoint was disabled", "Cannot reach 1 patient(s): no endpoint"]
    with freeze_time("2026-12-07 09:30:00"):
        run(rt)
    assert len(receiver.received) == 1


def test_429_retry_after_is_honoured(db: Session, rt: Runtime, receiver: WebhookReceiver) -> None:
    clinic, patient, _ = webhook_patient(db, rt, receiver)
    receiver.script.append((429, {"Retry-After": "120"}))
    with freeze_time("2026-12-07 09:00:00"):
        enroll_patient(db, rt, clinic, patient, "2026-12-07", at("2026-12-07 09:00"))
        run(rt)
    (reminder,) = deliveries(db, kind="reminder")
    assert reminder.next_attempt_at >= at("2026-12-07 09:02")
    with freeze_time("2026-12-07 09:01:00"):
        run(rt)
    assert len(receiver.received) == 1
    with freeze_time("2026-12-07 09:02:10"):
        run(rt)
    assert len(receiver.received) == 2


def test_rotated_secret_signs_with_both_until_the_old_one_retires(
    db: Session, rt: Runtime, receiver: WebhookReceiver
) -> None:
    clinic, patient, old_secret = webhook_patient(db, rt, receiver)
    (endpoint,) = db.exec(select(WebhookEndpoint)).all()
    with freeze_time("2026-12-07 08:00:00"):
        rotated = webhooks.rotate_secret(db, clinic, endpoint.id, at("2026-12-07 08:00"))
        db.commit()
    with freeze_time("2026-12-07 09:00:00"):
        enroll_patient(db, rt, clinic, patient, "2026-12-07", at("2026-12-07 09:00"))
        run(rt)
        (request,) = receiver.received
        assert len(request.headers["webhook-signature"].split(" ")) == 2
        Webhook(old_secret).verify(request.body, request.headers)
        Webhook(rotated.secret).verify(request.body, request.headers)


def test_replanning_never_makes_a_second_reminder(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic, timezone="UTC", reminder_time="09:00")
    with freeze_time("2026-12-07 08:00:00"):
        enrollment_id = enroll_patient(
            db, rt, clinic, patient, "2026-12-07", at("2026-12-07 08:00")
        )
        enrollment = db.get(Enrollment, enrollment_id)
        assert enrollment is not None
        for _ in range(3):
            replan.replan(db, rt, enrollment, at("2026-12-07 08:00"))
            db.commit()
            sweep(rt, at("2026-12-07 08:00"))
    with freeze_time("2026-12-07 09:00:00"):
        run(rt)
        replan.replan(db, rt, enrollment, at("2026-12-07 09:00"))
        db.commit()
        run(rt)
    assert len(deliveries(db, kind="reminder")) == 1
    assert len(smtp.messages) == 1


def test_follow_up_nudges_once_when_unconfirmed_and_not_after_confirming(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    from reminders.models import SessionReport
    from reminders.services import sessions

    clinic = make_clinic(db)
    nudged = make_patient(db, clinic, timezone="UTC", reminder_time="09:00")
    confirmed = make_patient(db, clinic, timezone="UTC", reminder_time="09:00", name="Bo")
    with freeze_time("2026-12-07 09:00:00"):
        enroll_patient(db, rt, clinic, nudged, "2026-12-07", at("2026-12-07 09:00"))
        second = enroll_patient(db, rt, clinic, confirmed, "2026-12-07", at("2026-12-07 09:00"))
        run(rt)
        first_session = session_store.of_enrollment(db, second)[0]
        sessions.confirm_session(
            db, rt, clinic, first_session.id, SessionReport(), at("2026-12-07 09:30")
        )
        db.commit()
    with freeze_time("2026-12-07 11:00:00"):
        run(rt)
    with freeze_time("2026-12-07 13:00:00"):
        run(rt)
    subjects = [(m["To"], m["Subject"]) for m in smtp.messages]
    assert subjects.count(("Ann Example <ann@example.org>", "Did you manage today's session?")) == 1
    assert ("Bo <ann@example.org>", "Did you manage today's session?") not in subjects
    follow_ups = {d.patient_id: d.state for d in deliveries(db, kind="follow_up")}
    assert follow_ups == {nudged: "sent", confirmed: "cancelled"}


def test_unsubscribed_patient_gets_nothing_more(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    clinic = make_clinic(db)
    patient_id = make_patient(db, clinic, timezone="UTC", reminder_time="09:00")
    with freeze_time("2026-12-07 08:00:00"):
        enroll_patient(db, rt, clinic, patient_id, "2026-12-07", at("2026-12-07 08:00"))
    patient = db.get(Patient, patient_id)
    assert patient is not None
    patient.unsubscribed_at = at("2026-12-07 08:30")
    db.add(patient)
    db.commit()
    with freeze_time("2026-12-07 09:00:00"):
        run(rt)
    assert smtp.messages == []
    assert {d.state for d in deliveries(db, kind="reminder")} == {DeliveryState.CANCELLED}


def test_session_missed_past_grace_is_marked_replanned_and_patient_told(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic, timezone="UTC", reminder_time="09:00")
    with freeze_time("2026-12-07 08:00:00"):
        enrollment_id = enroll_patient(
            db,
            rt,
            clinic,
            patient,
            "2026-12-07",
            at("2026-12-07 08:00"),
            weekdays=["mon", "wed", "fri"],
        )
    with freeze_time("2026-12-08 11:59:00"):
        run(rt)
    assert session_store.of_enrollment(db, enrollment_id)[0].status == "planned"
    with freeze_time("2026-12-08 12:00:00"):
        run(rt)
    db.expire_all()
    rows = session_store.of_enrollment(db, enrollment_id)
    assert rows[0].status == "missed"
    planned = [r.local_date.isoformat() for r in rows if r.status == "planned"]
    assert planned[0] == "2026-12-09"
    assert "We missed your session" in [m["Subject"] for m in smtp.messages]


def test_two_days_down_sends_no_stale_reminders(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic, timezone="Europe/Berlin", reminder_time="18:00")
    with freeze_time("2026-12-07 06:00:00"):
        enroll_patient(db, rt, clinic, patient, "2026-12-07", at("2026-12-07 06:00"))
        sweep(rt, at("2026-12-07 06:00"))
    # the service is down from Monday morning until Wednesday 09:00 Berlin
    with freeze_time("2026-12-09 08:00:00"):
        run(rt)
    reminders = [m for m in smtp.messages if m["Subject"] == "Your treatment session today"]
    assert reminders == []
    states = {d.state for d in deliveries(db, kind="reminder")}
    assert "sent" not in states
    assert "expired" in states
    # Wednesday's reminder still goes out on time
    with freeze_time("2026-12-09 17:00:00"):
        run(rt)
    reminders = [m for m in smtp.messages if m["Subject"] == "Your treatment session today"]
    assert len(reminders) == 1
    assert "Wednesday, 9 December" in reminders[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]


def sent_at(smtp: SmtpRecorder) -> int:
    return len([m for m in smtp.messages if m["Subject"] == "Your treatment session today"])


def dst_case(
    db: Session, rt: Runtime, smtp: SmtpRecorder, tz: str, day: str, time: str, quiet: object
) -> None:
    clinic = make_clinic(db)
    # Times inside the quiet hours are refused now; patients stored before still have them.
    patient = make_patient(db, clinic, timezone=tz, stored_reminder_time=time, quiet_hours=quiet)
    start = datetime.fromisoformat(day).replace(tzinfo=UTC) - timedelta(days=1)
    with freeze_time(start):
        enroll_patient(db, rt, clinic, patient, day, start, protocol="glycopyrrolate-hyperhidrosis")


def expect_sent_at(rt: Runtime, smtp: SmtpRecorder, instant: str) -> None:
    moment = datetime.fromisoformat(instant).replace(tzinfo=UTC)
    with freeze_time(moment - timedelta(minutes=1)):
        run(rt)
    assert sent_at(smtp) == 0, f"sent before {instant}"
    with freeze_time(moment):
        run(rt)
    assert sent_at(smtp) == 1, f"not sent at {instant}"


def test_new_york_reminder_in_the_spring_gap_goes_at_the_first_valid_minute(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    dst_case(db, rt, smtp, "America/New_York", "2027-03-14", "02:30", NO_QUIET)
    expect_sent_at(rt, smtp, "2027-03-14 07:00")  # 03:00 EDT


def test_new_york_reminder_in_the_autumn_fold_goes_at_the_first_occurrence(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    dst_case(db, rt, smtp, "America/New_York", "2026-11-01", "01:30", NO_QUIET)
    expect_sent_at(rt, smtp, "2026-11-01 05:30")  # 01:30 EDT, not 01:30 EST


def test_berlin_spring_gap(db: Session, rt: Runtime, smtp: SmtpRecorder) -> None:
    dst_case(db, rt, smtp, "Europe/Berlin", "2027-03-28", "02:15", NO_QUIET)
    expect_sent_at(rt, smtp, "2027-03-28 01:00")  # 03:00 CEST


def test_berlin_evening_reminder_on_the_day_clocks_go_back(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    dst_case(db, rt, smtp, "Europe/Berlin", "2026-10-25", "18:00", None)
    expect_sent_at(rt, smtp, "2026-10-25 17:00")  # 18:00 CET


def test_lord_howe_half_hour_gap(db: Session, rt: Runtime, smtp: SmtpRecorder) -> None:
    dst_case(db, rt, smtp, "Australia/Lord_Howe", "2026-10-04", "02:10", NO_QUIET)
    expect_sent_at(rt, smtp, "2026-10-03 15:30")  # 02:30 at UTC+11


def test_lord_howe_half_hour_fold(db: Session, rt: Runtime, smtp: SmtpRecorder) -> None:
    dst_case(db, rt, smtp, "Australia/Lord_Howe", "2027-04-04", "01:45", NO_QUIET)
    expect_sent_at(rt, smtp, "2027-04-03 14:45")  # the first 01:45, at UTC+11


def test_early_reminder_waits_for_quiet_hours_to_end_across_dst(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    dst_case(db, rt, smtp, "America/New_York", "2027-03-14", "06:00", None)
    expect_sent_at(rt, smtp, "2027-03-14 12:00")  # quiet until 08:00 EDT


def test_late_reminder_pushed_past_its_day_by_quiet_hours_is_never_sent(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    dst_case(db, rt, smtp, "Europe/Berlin", "2026-12-07", "22:00", None)
    for instant in ("2026-12-07 21:00", "2026-12-08 07:00", "2026-12-08 12:00"):
        with freeze_time(instant):
            run(rt)
    assert sent_at(smtp) == 0
    assert {d.state for d in deliveries(db, kind="reminder")} == {DeliveryState.EXPIRED}


def test_patient_quiet_hours_override_the_default(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    dst_case(
        db, rt, smtp, "Europe/Berlin", "2026-12-07", "07:00", {"start": "22:00", "end": "09:30"}
    )
    expect_sent_at(rt, smtp, "2026-12-07 08:30")  # 09:30 CET


def test_sessions_carry_the_patient_zone(db: Session, rt: Runtime) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic, timezone="Australia/Lord_Howe")
    with freeze_time("2026-12-06 20:00:00"):
        enrollment_id = enroll_patient(
            db, rt, clinic, patient, "2026-12-07", at("2026-12-06 20:00")
        )
    rows = db.exec(select(TreatmentSession).where(TreatmentSession.enrollment_id == enrollment_id))
    assert {r.timezone for r in rows} == {"Australia/Lord_Howe"}


def test_day_before_reminder_when_the_operator_enables_it(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    rt.settings.day_before_reminder = True
    clinic = make_clinic(db)
    patient = make_patient(db, clinic, timezone="UTC", reminder_time="18:00")
    with freeze_time("2026-12-06 08:00:00"):
        enroll_patient(db, rt, clinic, patient, "2026-12-07", at("2026-12-06 08:00"))
    with freeze_time("2026-12-06 18:00:00"):
        run(rt)
    assert [m["Subject"] for m in smtp.messages] == ["Your treatment session tomorrow"]
    assert "Monday, 7 December" in smtp.messages[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
