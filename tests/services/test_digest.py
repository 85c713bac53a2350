"""The clinic's digest: sent at 07:30 its time when something is new, at most once a
day, by email to an alert-only clinic (a real SMTP server) and as a signed event."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from freezegun import freeze_time
from sqlmodel import Session, select
from standardwebhooks import Webhook

from reminders.dispatcher import Dispatcher, build_senders
from reminders.models import Clinic, Delivery, Enrollment, SessionReport
from reminders.runtime import Runtime
from reminders.services import clinics, sessions, webhooks
from reminders.services.digest import is_due
from reminders.services.sweep import sweep
from reminders.stores import session_store
from tests.conftest import SETUP, at, enroll_patient, make_clinic, make_patient
from tests.servers import SmtpRecorder, WebhookReceiver


def confirm_each(
    db: Session, rt: Runtime, enrollment_id: str, reports: list[str], when: datetime
) -> None:
    """Confirm the enrollment's planned sessions in order at 10:00 of their days, with
    `reports` as outcomes; a sweep at noon each day keeps the horizon going."""
    for report in reports:
        planned = [
            s for s in session_store.of_enrollment(db, enrollment_id) if s.status == "planned"
        ]
        session = planned[0]
        moment = datetime.combine(session.local_date, when.timetz())
        sessions.confirm_session(db, rt, None, session.id, SessionReport(outcome=report), moment)
        db.commit()


def dispatch(rt: Runtime, now: datetime) -> None:
    Dispatcher(rt.with_clock(lambda: now), build_senders(rt), worker="test").dispatch()


def digests(db: Session) -> list[str]:
    return list(db.exec(select(Delivery.payload).where(Delivery.kind == "digest")))


def test_an_alert_only_clinic_hears_of_yesterdays_completion_and_relapse(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    clinic_id = make_clinic(db)
    clinics.set_contact(db, clinic_id, "North Clinic", "desk@north.example.org", SETUP)
    db.commit()
    runner = make_patient(db, clinic_id, timezone="UTC", external_id="SPORT-1", name="Runa Runner")
    sweaty = make_patient(db, clinic_id, timezone="UTC", external_id="HYP-2", name="Hugo Hand",
                          email="hugo@example.org")  # fmt: skip
    course = enroll_patient(
        db, rt, clinic_id, runner, "2026-12-07", at("2026-12-07 08:00"),
        protocol="sports-injury-short-course", body_area="knee",
    )  # fmt: skip
    weekly = enroll_patient(
        db, rt, clinic_id, sweaty, "2026-12-07", at("2026-12-07 08:00"),
        protocol="glycopyrrolate-hyperhidrosis", body_area="palms",
    )  # fmt: skip
    # The first digest: what happened on the day it was set up (nothing yet).
    sweep(rt, at("2026-12-07 07:45"))
    assert digests(db) == []
    confirm_each(db, rt, course, ["6", "5", "4", "3", "2"], at("2026-12-07 10:00"))
    confirm_each(db, rt, weekly, ["1", "4"], at("2026-12-07 10:00"))
    enrollment = db.get(Enrollment, course)
    assert enrollment is not None and enrollment.status == "completed"
    # Given at the clinic on open days, the course's last session was on Wednesday 16th.
    morning = at("2026-12-17 07:31")
    sweep(rt, morning)
    (payload,) = digests(db)
    dispatch(rt, morning)
    (email,) = [m for m in smtp.messages if m["To"] == "desk@north.example.org"]
    text = email.get_content()
    assert "Courses completed (1):" in text and "patient SPORT-1" in text
    assert "pain-nrs 6 -> 2 (improved)" in text
    assert "Relapses (1):" in text and "patient HYP-2" in text
    assert f"/app/patients/{runner}" in text
    assert "Runa" not in text and "Hugo" not in text and "Runa" not in email["Subject"]
    assert json.loads(payload)["subject"] == email["Subject"]
    # At most once a day; and not again while nothing is new.
    sweep(rt, at("2026-12-17 18:00"))
    sweep(rt, at("2026-12-18 07:40"))
    assert len(digests(db)) == 1


def test_a_clinic_with_an_endpoint_gets_the_digest_as_a_signed_event_with_ids_only(
    db: Session, rt: Runtime, receiver: WebhookReceiver
) -> None:
    clinic_id = make_clinic(db)
    endpoint = webhooks.add_endpoint(db, rt.settings, clinic_id, receiver.url, SETUP)
    secret = endpoint.secret
    db.commit()
    patient = make_patient(db, clinic_id, timezone="UTC", external_id="HYP-3")
    weekly = enroll_patient(
        db, rt, clinic_id, patient, "2026-12-07", at("2026-12-07 08:00"),
        protocol="glycopyrrolate-hyperhidrosis", body_area="palms",
    )  # fmt: skip
    confirm_each(db, rt, weekly, ["1", "4"], at("2026-12-07 10:00"))
    morning = at("2026-12-15 07:35")
    with freeze_time(morning):
        sweep(rt, morning)
        dispatch(rt, morning)
        (event,) = [r for r in receiver.received if json.loads(r.body)["type"] == "clinic.digest"]
        Webhook(secret).verify(event.body, event.headers)
    data = json.loads(event.body)["data"]
    assert [line["kind"] for line in data["lines"]] == ["relapse"]
    assert data["lines"][0]["patient_id"] == patient
    assert "Ann" not in event.body.decode() and "ann@example.org" not in event.body.decode()


@pytest.mark.parametrize(
    ("schedule", "zone", "now", "due"),
    [
        ("daily", None, "2026-12-08 07:29", False),
        ("daily", None, "2026-12-08 07:30", True),
        ("daily", "Europe/Berlin", "2026-12-08 06:30", True),  # 07:30 in Berlin
        ("daily", "America/New_York", "2026-12-08 07:30", False),  # 02:30 there
        ("weekly", None, "2026-12-08 08:00", False),  # a Tuesday
        ("weekly", None, "2026-12-14 08:00", True),  # a Monday
        ("off", None, "2026-12-14 08:00", False),
    ],
)
def test_when_a_digest_is_due(schedule: str, zone: str | None, now: str, due: bool) -> None:
    clinic = Clinic(id="c", name="C", digest=schedule, timezone=zone, created_at=SETUP)
    assert is_due(clinic, at(now)) is due
    sent_today = Clinic(id="c", name="C", digest=schedule, timezone=zone, created_at=SETUP,
                        digest_sent_at=at(now) - timedelta(minutes=1))  # fmt: skip
    assert not is_due(sent_today, at(now))


def test_a_digest_schedule_is_a_clinic_setting(db: Session) -> None:
    from reminders.models import ClinicIdentity

    clinic_id = make_clinic(db)
    clinics.set_identity(db, clinic_id, ClinicIdentity(digest="weekly"), SETUP)
    stored = db.exec(select(Clinic).where(Clinic.id == clinic_id)).one()
    assert stored.digest == "weekly"
    assert clinics.public_view(db, clinic_id).digest == "weekly"
