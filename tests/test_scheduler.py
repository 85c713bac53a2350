"""The scheduler's dispatch job wakes for the next due delivery rather than waiting for
its tick, so a reminder leaves within about a second of its due instant."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from reminders.dispatcher import Dispatcher, build_senders
from reminders.models import Clinic
from reminders.runtime import Runtime
from reminders.scheduler import JOB_DEFAULTS, build_scheduler
from reminders.services.reminding import alert_clinic
from tests.conftest import make_clinic
from tests.processes import wait_for
from tests.servers import SmtpRecorder


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
    scheduler, _job = build_scheduler(rt, Dispatcher(rt, build_senders(rt)))
    scheduler.start()
    try:
        wait_for(lambda: len(smtp.messages) == 1, 10, "the alert")
        arrived = time.time()
    finally:
        scheduler.shutdown(wait=True)
    assert 0 <= arrived - due.timestamp() < 1.0
    assert JOB_DEFAULTS == {"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
