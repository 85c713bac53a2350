"""Several dispatcher processes on one PostgreSQL database share the outbox through row
claims alone: nothing home-made coordinates them."""

from __future__ import annotations

import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, func, select

from reminders.dispatcher import CHANNELS, HELD_BATCHES
from reminders.models import Delivery, EnrollmentCreate, PatientCreate
from reminders.runtime import Runtime
from reminders.services import enrollments, patients, webhooks
from reminders.services.patients import PatientDefaults
from reminders.states import DeliveryState
from reminders.stores import outbox
from tests.conftest import SETUP, make_clinic
from tests.processes import count_deliveries, env_for, start, wait_for, zone_near_noon
from tests.servers import WebhookReceiver, free_port

REMINDERS = 5_000
BATCH = 50
pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def due_webhook_reminders(db: Session, rt: Runtime, receiver: WebhookReceiver) -> int:
    rt.settings.follow_up_after_min = 0
    clinic = make_clinic(db)
    webhooks.add_endpoint(db, rt.settings, clinic, receiver.url, SETUP)
    now = datetime.now(UTC)
    zone = zone_near_noon(now)
    today = now.astimezone(ZoneInfo(zone)).date()
    protocol = rt.protocols["glycopyrrolate-hyperhidrosis"]
    people = [
        PatientCreate(
            name=f"Patient {n}",
            timezone=zone,
            reminder_time="00:00",  # already due
            quiet_hours={"start": "00:00", "end": "00:00"},
            channel="webhook",
        )
        for n in range(REMINDERS)
    ]
    ids = patients.add_patients(db, clinic, people, now, defaults=PatientDefaults.of(rt.settings))
    screening = {c: False for c in protocol.contraindications}
    requests = [
        enrollments.EnrollRequest(
            pid,
            EnrollmentCreate(
                protocol=protocol.id,
                start_date=today,
                screening=screening,
                welcome=False,
                body_area="palms",
            ),
        )
        for pid in ids
    ]
    enrollments.enroll_many(db, rt, clinic, requests, now)
    db.commit()
    return count_deliveries(db)


def workers(tmp_path: Path, rt: Runtime) -> dict[str, str]:
    return env_for(
        tmp_path,
        database_url=rt.settings.database_url,
        webhook_allow_http="true",
        webhook_allowed_hosts="127.0.0.1",
        follow_up_after_min="0",
        # Long enough that no live batch outlives its claim on a busy machine.
        lease_s="10",
        dispatch_batch_size=str(BATCH),
        dispatch_interval_s="0.5",
    )


def stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(timeout=30)


def test_two_workers_share_the_outbox_and_send_each_reminder_once(
    db: Session, rt: Runtime, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    total = due_webhook_reminders(db, rt, receiver)
    assert total == REMINDERS
    env = workers(tmp_path, rt)
    first = start(env, "worker", "--port", str(free_port()), log=tmp_path / "a.log")
    second = start(env, "worker", "--port", str(free_port()), log=tmp_path / "b.log")
    try:
        wait_for(
            lambda: count_deliveries(db, DeliveryState.SENT) == total,
            180,
            "every reminder to be sent",
        )
    finally:
        stop(first, second)
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == len(set(ids)) == total, "no webhook-id received twice"
    shares = db.exec(select(Delivery.claimed_by, func.count()).group_by(Delivery.claimed_by)).all()
    assert len(shares) == 2, f"both workers took part: {shares}"


def test_a_killed_worker_leaves_its_claims_to_the_other_after_the_lease(
    db: Session, rt: Runtime, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    total = due_webhook_reminders(db, rt, receiver)
    receiver.delay_s = 0.005
    env = workers(tmp_path, rt)
    doomed = start(env, "worker", "--port", str(free_port()), log=tmp_path / "doomed.log")
    survivor = start(env, "worker", "--port", str(free_port()), log=tmp_path / "survivor.log")
    try:
        wait_for(lambda: len(receiver.unique_ids()) >= 1_000, 120, "the first thousand")
        wait_for(lambda: count_deliveries(db, DeliveryState.SENDING) > 0, 30, "a batch in flight")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
        wait_for(
            lambda: count_deliveries(db, DeliveryState.SENT) == total, 180, "the survivor to finish"
        )
    finally:
        stop(doomed, survivor)
    ids = {d.id for d in outbox.matching(db)}
    assert receiver.unique_ids() == ids, "de-duplicating on webhook-id, each exactly once"
    resent = len(receiver.received) - len(ids)
    # At least once: what the killed worker had sent but not yet recorded comes twice,
    # at most what it held (claimed and not yet recorded).
    held = BATCH * (HELD_BATCHES + len(CHANNELS))
    assert 0 <= resent <= held, "only what the killed worker held may come twice"
