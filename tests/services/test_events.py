"""What the clinic is told, and when, through a real webhook receiver and SMTP server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time
from sqlmodel import Session, select
from standardwebhooks import Webhook

from reminders.dispatcher import Dispatcher, build_senders
from reminders.models import Clinic, Delivery, Enrollment, SessionReport
from reminders.runtime import Runtime
from reminders.services import sessions, webhooks
from reminders.services.sweep import sweep
from reminders.states import DeliveryState
from reminders.stores import session_store
from tests.conftest import (
    SETUP,
    at,
    enroll_in_ongoing_phase_with_first_session_done,
    enroll_patient,
    make_clinic,
    make_patient,
)
from tests.servers import SmtpRecorder, WebhookReceiver

pytestmark = pytest.mark.both_databases


def setup(db: Session, rt: Runtime, receiver: WebhookReceiver) -> tuple[str, str, str]:
    clinic = make_clinic(db)
    row = db.get(Clinic, clinic)
    assert row is not None
    row.alert_email = "nurse@clinic.example.org"
    db.add(row)
    secret = webhooks.add_endpoint(db, rt.settings, clinic, receiver.url, SETUP).secret
    db.commit()
    patient = make_patient(db, clinic, timezone="UTC", reminder_time="09:00", external_id="EHR-9")
    return clinic, patient, secret


def send(rt: Runtime, moment: datetime) -> None:
    with freeze_time(moment):
        sweep(rt, moment)
        Dispatcher(rt, build_senders(rt), worker="test").dispatch()


def events(receiver: WebhookReceiver, secret: str) -> list[dict[str, object]]:
    """Every request, its signature verified as of the moment it was sent."""
    verified = []
    for request in receiver.received:
        sent = datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), UTC)
        with freeze_time(sent):
            verified.append(Webhook(secret).verify(request.body, request.headers))
    return verified


def test_confirmations_and_the_move_to_maintenance_are_signed_events(
    db: Session, rt: Runtime, receiver: WebhookReceiver, smtp: SmtpRecorder
) -> None:
    clinic, patient, secret = setup(db, rt, receiver)
    start = at("2026-12-07 08:00")
    enrollment_id = enroll_patient(db, rt, clinic, patient, "2026-12-07", start)
    for _ in range(6):
        enrollment = db.get(Enrollment, enrollment_id)
        assert enrollment is not None
        planned = [
            r for r in session_store.of_enrollment(db, enrollment_id) if r.status == "planned"
        ]
        moment = datetime.combine(planned[0].local_date, start.timetz()).replace(hour=20)
        sessions.confirm_session(db, rt, clinic, planned[0].id, SessionReport(hdss=1), moment)
        db.commit()
    send(rt, moment)
    received = events(receiver, secret)
    types = [e["type"] for e in received]
    assert types.count("session.confirmed") == 6
    (change,) = [e for e in received if e["type"] == "plan.phase_changed"]
    assert change["data"]["from"] == "induction"  # type: ignore[index]
    assert change["data"]["to"] == "maintenance"  # type: ignore[index]
    assert change["data"]["reason"] == "dry"  # type: ignore[index]
    assert change["data"]["external_id"] == "EHR-9"  # type: ignore[index]
    assert "patient_name" not in change["data"]  # type: ignore[operator]


def test_two_misses_in_a_row_in_induction_escalate_once(
    db: Session, rt: Runtime, receiver: WebhookReceiver, smtp: SmtpRecorder
) -> None:
    clinic, patient, secret = setup(db, rt, receiver)
    enroll_patient(
        db, rt, clinic, patient, "2026-12-07", at("2026-12-07 08:00"), weekdays=["mon", "wed"]
    )
    send(rt, at("2026-12-08 12:30"))  # Monday missed
    send(rt, at("2026-12-10 12:30"))  # Wednesday missed
    send(rt, at("2026-12-10 13:30"))  # a later sweep changes nothing
    received = events(receiver, secret)
    types = [e["type"] for e in received]
    assert types.count("session.missed") == 2
    (escalation,) = [e for e in received if e["type"] == "patient.escalation"]
    assert escalation["data"]["reason"] == "missed_sessions"  # type: ignore[index]
    alerts = [m for m in smtp.messages if m["To"] == "nurse@clinic.example.org"]
    (alert,) = [m for m in alerts if not m["Subject"].startswith("Reminders digest")]
    assert "2 induction sessions missed in a row" in alert.get_content()


def test_a_patient_behind_the_plan_is_nudged_at_three_days_the_clinic_told_at_seven_then_weekly(
    db: Session, rt: Runtime, receiver: WebhookReceiver, smtp: SmtpRecorder
) -> None:
    clinic, patient, secret = setup(db, rt, receiver)
    enroll_in_ongoing_phase_with_first_session_done(db, rt, clinic, patient)
    for day in range(8, 32):  # the session due on Monday the 14th is never done
        send(rt, at(f"2026-12-{day:02d} 12:30"))
    overdue = [m for m in smtp.messages if m["Subject"] == "Time for your next session"]
    assert len(overdue) == 1
    text = overdue[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "planned for Monday, 14 December 2026 has not been done yet (3 days ago)" in text
    lapses = [e for e in events(receiver, secret) if e["type"] == "patient.escalation"]
    assert [e["data"]["reason"] for e in lapses] == ["lapsed"]  # type: ignore[index]
    reminders = [m for m in smtp.messages if m["Subject"] == "Your treatment session today"]
    days = sorted(int(m["Date"].split()[1]) for m in reminders)
    assert days == [14, 21, 28]  # weekly, as the protocol asks; not daily retries


def test_a_dead_delivery_escalates_to_the_clinic_by_email(
    db: Session, rt: Runtime, receiver: WebhookReceiver, smtp: SmtpRecorder
) -> None:
    clinic, patient, _ = setup(db, rt, receiver)
    enroll_patient(
        db, rt, clinic, patient, "2026-12-07", at("2026-12-07 08:00"),
        protocol="glycopyrrolate-hyperhidrosis",
    )  # fmt: skip
    # Long-lived, so it can use up the whole retry schedule (about three days).
    reminder = db.exec(select(Delivery).where(Delivery.kind == "reminder")).one()
    reminder.expires_at = at("2027-01-31 00:00")
    db.add(reminder)
    db.commit()
    smtp.replies.extend(["451 4.2.2 mailbox over quota"] * 10)
    moment = at("2026-12-07 09:00")
    for _ in range(12):
        with freeze_time(moment):
            Dispatcher(rt, build_senders(rt), worker="test").dispatch()
        moment += timedelta(hours=25)
    db.expire_all()
    given_up = db.get(Delivery, reminder.id)
    assert given_up is not None
    assert (given_up.state, given_up.attempts) == (DeliveryState.DEAD, 10)
    alerts = [m for m in smtp.messages if m["To"] == "nurse@clinic.example.org"]
    assert len(alerts) == 1
    assert "(email: SMTP 451)" in alerts[0].get_content()  # the code, never the text
    assert "10 attempt(s)" in alerts[0].get_content()
    assert any(b"undeliverable" in r.body for r in receiver.received), "and by webhook"
