"""A dispatcher killed with SIGKILL mid-batch loses nothing: after the lease runs out a
restarted one sends the rest, and a receiver that de-duplicates on webhook-id sees each
delivery exactly once."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlmodel import Session

from reminders.runtime import Runtime
from reminders.services import webhooks
from reminders.states import DeliveryState
from reminders.stores import outbox
from tests.conftest import SETUP, enroll_patient, make_clinic, make_patient
from tests.processes import count_deliveries, env_for, start, wait_for, zone_near_noon
from tests.servers import WebhookReceiver, free_port

PATIENTS = 150


def test_sigkilled_dispatcher_loses_nothing_and_sends_nothing_twice_per_id(
    db: Session, rt: Runtime, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    clinic = make_clinic(db)
    webhooks.add_endpoint(db, rt.settings, clinic, receiver.url, SETUP)
    db.commit()
    now = datetime.now(UTC)
    zone = zone_near_noon(now)
    today = now.astimezone(ZoneInfo(zone)).date().isoformat()
    for n in range(PATIENTS):
        patient = make_patient(
            db,
            clinic,
            timezone=zone,
            reminder_time="00:00",  # already due: every reminder is due at once
            channel="webhook",
            quiet_hours={"start": "00:00", "end": "00:00"},
            name=f"Patient {n}",
        )
        enroll_patient(db, rt, clinic, patient, today, now, protocol="glycopyrrolate-hyperhidrosis")
    total = count_deliveries(db)
    assert total >= PATIENTS
    # Slow enough that a batch spends most of its life in flight, where the kill lands.
    receiver.delay_s = 0.2
    env = env_for(
        tmp_path,
        webhook_allow_http="true",
        webhook_allowed_hosts="127.0.0.1",
        lease_s="3",
        dispatch_batch_size="25",
        dispatch_interval_s="0.5",
    )
    log = tmp_path / "worker.log"
    first = start(env, "worker", "--port", str(free_port()), log=log)
    try:
        wait_for(lambda: len(receiver.unique_ids()) >= 40, 60, "the first deliveries")
        wait_for(lambda: count_deliveries(db, DeliveryState.SENDING) > 0, 30, "a batch in flight")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    stranded = count_deliveries(db, DeliveryState.SENDING)
    assert stranded > 0, "the kill should land mid-batch"
    assert len(receiver.unique_ids()) < total
    second = start(env, "worker", "--port", str(free_port()), log=log)
    try:
        wait_for(
            lambda: count_deliveries(db, DeliveryState.SENT) == total,
            90,
            "every delivery to be sent",
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=20)
    ids = {d.id for d in outbox.matching(db)}
    assert receiver.unique_ids() == ids
    duplicates = len(receiver.received) - len(ids)
    # Only what the killed worker held (sent or not, its result unrecorded) goes twice.
    assert 0 <= duplicates <= stranded, "only deliveries held at the kill may be sent again"
    assert second.returncode == 0, log.read_text()
