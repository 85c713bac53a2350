"""The scheduler's dispatch job wakes for the next due delivery rather than waiting for
its tick, so a reminder leaves within about a second of its due instant; stopping waits
for the jobs under way and never hangs."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from reminders.dispatcher import Dispatcher, build_senders
from reminders.models import Clinic, Delivery
from reminders.runtime import Runtime
from reminders.scheduler import JOB_DEFAULTS, build_scheduler, stop_scheduler
from reminders.services import webhooks
from reminders.services.events import emit
from reminders.services.reminding import alert_clinic
from reminders.states import DeliveryState
from tests.conftest import SETUP, make_clinic
from tests.processes import wait_for
from tests.servers import SmtpRecorder, WebhookReceiver


def test_dispatch_wakes_for_the_next_due_delivery_not_its_tick(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    rt.settings.dispatch_interval_s = 30  # a tick far away: only aiming can explain timeliness
    rt.settings.sweep_interval_s = 3600
    clinic = make_clinic(db)
    rt_clinic = db.get(Clinic, clinic)
    assert rt_clinic is not None
    rt_clinic.alert_email = "nurse@clinic.example.org"
    db.add(rt_clinic)
    due = datetime.now(UTC) + timedelta(seconds=1.5)
    alert_clinic(db, clinic, "Due soon", "A test alert.", due)
    db.commit()
    scheduler, job, _beats = build_scheduler(rt, Dispatcher(rt, build_senders(rt)))
    scheduler.start()
    try:
        wait_for(lambda: len(smtp.messages) == 1, 10, "the alert")
        arrived = time.time()
    finally:
        stop_scheduler(scheduler, job)
    assert 0 <= arrived - due.timestamp() < 1.0
    assert JOB_DEFAULTS == {"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}


def test_stopping_while_a_dispatch_runs_waits_for_it_and_returns(
    db: Session, rt: Runtime, receiver: WebhookReceiver
) -> None:
    # APScheduler 3 holds its job store lock while shutdown(wait=True) waits for running
    # jobs; the dispatch job, aiming its next run as it ends, would wait for that lock.
    rt.settings.sweep_interval_s = 3600
    clinic = make_clinic(db)
    webhooks.add_endpoint(db, rt.settings, clinic, receiver.url, SETUP)
    now = datetime.now(UTC)
    emit(db, clinic, "session.confirmed", {"session_id": "s1"}, now)
    emit(db, clinic, "session.confirmed", {"session_id": "s2"}, now + timedelta(hours=1))
    db.commit()
    receiver.delay_s = 1.0
    scheduler, dispatch, _beats = build_scheduler(rt, Dispatcher(rt, build_senders(rt)))
    scheduler.start()

    def sending() -> bool:
        with Session(rt.engine) as check:
            states = check.exec(
                select(Delivery.state).where(Delivery.state == DeliveryState.SENDING)
            )
            return states.first() is not None

    # The dispatch job runs at start; once it has claimed, it waits for the receiver.
    wait_for(sending, 5, "the dispatch job to claim the due webhook")
    stopping = threading.Thread(target=stop_scheduler, args=(scheduler, dispatch), daemon=True)
    stopping.start()
    stopping.join(timeout=10)
    assert not stopping.is_alive(), "stopping the scheduler hung"
    assert len(receiver.received) == 1  # the running send was waited for, not cut off
