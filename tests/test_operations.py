"""Operational edges: a backlog after downtime, an endpoint that stays down for days."""

from __future__ import annotations

from datetime import timedelta

import pytest
from freezegun import freeze_time
from sqlmodel import Session, select

from reminders.dispatcher import Dispatcher, build_senders
from reminders.models import Clinic, TreatmentSession, WebhookEndpoint
from reminders.runtime import Runtime
from reminders.services import webhooks
from reminders.services.sweep import sweep
from reminders.states import DeliveryState
from reminders.stores import outbox
from tests.conftest import SETUP, at, enroll_patient, make_clinic, make_patient
from tests.servers import SmtpRecorder, WebhookReceiver

pytestmark = pytest.mark.both_databases


def test_backlog_after_downtime_drains_in_one_pass_without_stale_reminders(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    rt.settings.dispatch_batch_size = 25
    rt.settings.follow_up_after_min = 0
    clinic = make_clinic(db)
    start = at("2026-12-05 08:00")  # Saturday; sessions every other day
    for n in range(60):
        patient = make_patient(
            db, clinic, timezone="UTC", reminder_time="09:00", name=f"P{n}",
            email=f"p{n}@example.org",
        )  # fmt: skip
        enroll_patient(
            db, rt, clinic, patient, "2026-12-05", start, protocol="tap-water-hyperhidrosis",
            weekdays=["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        )  # fmt: skip
    with freeze_time(start):
        Dispatcher(rt, build_senders(rt), worker="test").dispatch()
    sent_before = len(smtp.messages)
    assert sent_before == 0
    # Down from Saturday 08:00 until Monday 10:00: Saturday's reminders are stale.
    restart = at("2026-12-07 10:00")
    with freeze_time(restart):
        sweep(rt, restart)
        handled = Dispatcher(rt, build_senders(rt), worker="test").dispatch()
    db.expire_all()
    rows = outbox.matching(db, kind="reminder")
    sessions = {s.id: s for s in db.exec(select(TreatmentSession))}
    stale = [d for d in rows if sessions[d.session_id].local_date.isoformat() == "2026-12-05"]  # type: ignore[index]
    fresh = [d for d in rows if sessions[d.session_id].local_date.isoformat() == "2026-12-07"]  # type: ignore[index]
    assert len(stale) == len(fresh) == 60
    assert {d.state for d in stale} == {DeliveryState.EXPIRED}
    assert {d.state for d in fresh} == {DeliveryState.SENT}
    reminders = [m for m in smtp.messages if m["Subject"] == "Your treatment session today"]
    assert len(reminders) == 60
    assert len({m["Message-ID"] for m in reminders}) == 60
    assert handled >= 120, "one dispatcher pass works through every batch that is due"


def test_endpoint_dead_for_days_is_disabled_and_the_clinic_told_once(
    db: Session, rt: Runtime, receiver: WebhookReceiver, smtp: SmtpRecorder
) -> None:
    clinic = make_clinic(db)
    row = db.get(Clinic, clinic)
    assert row is not None
    row.alert_email = "nurse@clinic.example.org"
    db.add(row)
    webhooks.add_endpoint(db, rt.settings, clinic, receiver.url, SETUP)
    db.commit()
    receiver.script.extend([(503, {})] * 10_000)
    start = at("2026-12-07 06:00")
    for n in range(3):
        patient = make_patient(
            db, clinic, timezone="UTC", reminder_time="09:00", channel="webhook", name=f"H{n}"
        )
        enroll_patient(db, rt, clinic, patient, "2026-12-07", start)
    moment = start
    disabled_at = None
    for _ in range(24 * 5):
        moment += timedelta(hours=1)
        with freeze_time(moment):
            sweep(rt, moment)
            Dispatcher(rt, build_senders(rt), worker="test").dispatch()
        db.expire_all()
        endpoint = db.exec(select(WebhookEndpoint)).one()
        if not endpoint.enabled and disabled_at is None:
            disabled_at = moment
            requests_when_disabled = len(receiver.received)
    assert disabled_at is not None
    assert timedelta(hours=72) <= disabled_at - start <= timedelta(hours=80)
    assert len(receiver.received) == requests_when_disabled, "nothing sent after disabling"
    alerts = [m for m in smtp.messages if m["To"] == "nurse@clinic.example.org"]
    # (The patients, who never confirm, are escalated for their misses until the endpoint
    # goes: from then on nothing can reach them, and the clinic is told that instead.)
    about_delivery = [
        m for m in alerts if "endpoint" in m.get_content() or "given up" in m.get_content()
    ]
    assert sorted(m["Subject"] for m in about_delivery) == [
        "A webhook endpoint was disabled", "Cannot reach 3 patient(s): no endpoint",
    ]  # fmt: skip
