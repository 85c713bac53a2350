"""The sweep's safety net: reminders for sessions that came into the lookahead window
after they were planned."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import Session, col, select

from reminders.models import Delivery
from reminders.runtime import Runtime
from reminders.services.reminding import reminders_not_yet_written
from reminders.stores import session_store
from tests.conftest import at, enroll_patient, make_clinic, make_patient

pytestmark = pytest.mark.both_databases


@pytest.mark.parametrize(
    "quiet_hours", [None, {"start": "22:00", "end": "07:00"}], ids=["default", "own"]
)
def test_reminder_is_found_once_its_session_comes_into_the_window(
    db: Session, rt: Runtime, quiet_hours: dict[str, str] | None
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(
        db, clinic, timezone="Europe/Berlin", reminder_time="18:30", quiet_hours=quiet_hours
    )
    enrollment = enroll_patient(db, rt, clinic, patient, "2026-12-07", at("2026-12-07 06:00"))
    by_date = {s.local_date: s for s in session_store.of_enrollment(db, enrollment)}
    wednesday, friday = by_date[date(2026, 12, 9)], by_date[date(2026, 12, 11)]
    reminders = db.exec(select(Delivery.session_id).where(col(Delivery.kind) == "reminder"))
    assert wednesday.id not in set(reminders)  # too far off when it was planned

    # Tuesday noon: Wednesday's 18:30 reminder (17:30 UTC) is 29.5 hours away.
    found = reminders_not_yet_written(db, rt.settings, at("2026-12-08 12:00"))

    reminded = {row["session_id"] for row in found if row["kind"] == "reminder"}
    assert wednesday.id in reminded
    assert friday.id not in reminded
