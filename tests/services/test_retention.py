"""Finished deliveries and expired links are deleted after the retention period; the
sessions adherence is counted from are not."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from reminders.models import Delivery, PatientToken, TreatmentSession
from reminders.runtime import Runtime
from reminders.services.reminding import alert_clinic
from reminders.services.retention import purge_old
from reminders.stores import outbox
from reminders.tokens import store_tokens, token_row
from tests.conftest import at, enroll_patient, make_clinic, make_patient

NOW = at("2026-12-07 07:00")
KEEP = timedelta(days=90)


@pytest.mark.both_databases
def test_old_finished_deliveries_and_expired_tokens_go_and_sessions_stay(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic)
    enroll_patient(db, rt, clinic, patient, "2026-12-07", NOW)
    for n in range(3):
        alert_clinic(db, clinic, f"Alert {n}", "ids only", NOW)
    db.commit()
    old, recent, waiting = outbox.matching(db, kind="clinic_alert")
    long_ago = NOW - KEEP - timedelta(days=1)
    for delivery, state, due in ((old, "sent", long_ago), (recent, "sent", NOW),
                                 (waiting, "pending", long_ago)):  # fmt: skip
        db.execute(
            sa.update(Delivery)
            .where(col(Delivery.id) == delivery.id)
            .values(state=state, due_at=due)
        )
    store_tokens(db, [
        token_row("expired-token", patient, None, "unsubscribe", NOW - timedelta(days=1), NOW),
        token_row("live-token", patient, None, "unsubscribe", NOW + timedelta(days=1), NOW),
    ])  # fmt: skip
    db.commit()
    sessions_before = len(db.exec(select(TreatmentSession)).all())

    purged = purge_old(db, NOW, KEEP)
    db.commit()

    assert purged == {"deliveries": 1, "link tokens": 1, "idempotent answers": 0}
    left = {d.id for d in outbox.matching(db)}
    assert old.id not in left and {recent.id, waiting.id} <= left
    assert [t.purpose for t in db.exec(select(PatientToken)).all()] == ["unsubscribe"]
    assert len(db.exec(select(TreatmentSession)).all()) == sessions_before
