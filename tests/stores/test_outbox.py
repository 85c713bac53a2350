"""Claims, leases and the retry schedule, on a real database."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlmodel import Session

from reminders.decisions import Outcome, result_values, retry_delay
from reminders.models import Enrollment
from reminders.states import DeliveryAudience
from reminders.stores import outbox, session_store
from tests.conftest import at, make_clinic, make_patient

pytestmark = pytest.mark.both_databases

NOW = at("2026-12-07 09:00")
LEASE = timedelta(seconds=60)


def due_deliveries(db: Session, count: int, kind: str = "clinic_alert") -> list[str]:
    clinic = make_clinic(db)
    rows = [
        outbox.new_delivery(
            clinic_id=clinic,
            kind=kind,
            audience=DeliveryAudience.CLINIC,
            channel="email",
            target=clinic,
            now=NOW,
            due_at=NOW + timedelta(seconds=i),
        )
        for i in range(count)
    ]
    outbox.queue(db, rows)
    db.commit()
    return [r["id"] for r in rows]


def test_two_workers_never_claim_the_same_delivery(db: Session) -> None:
    ids = due_deliveries(db, 10)
    later = NOW + timedelta(seconds=30)
    first = outbox.claim(db, "a", later, 6, LEASE)
    db.commit()
    second = outbox.claim(db, "b", later, 6, LEASE)
    db.commit()
    assert len(first) == 6
    assert len(second) == 4
    assert {d.id for d in first} | {d.id for d in second} == set(ids)
    assert not {d.id for d in first} & {d.id for d in second}
    assert outbox.claim(db, "c", later, 6, LEASE) == []


def test_a_crashed_workers_claim_is_taken_over_after_the_lease(db: Session) -> None:
    due_deliveries(db, 1)
    (claimed,) = outbox.claim(db, "crashed", NOW, 10, LEASE)
    db.commit()
    assert outbox.claim(db, "b", NOW + timedelta(seconds=59), 10, LEASE) == []
    (taken,) = outbox.claim(db, "b", NOW + timedelta(seconds=61), 10, LEASE)
    db.commit()
    assert taken.id == claimed.id
    assert taken.attempts == 2
    sent = result_values(taken.attempts, taken.expires_at, Outcome("sent"), NOW)
    assert not outbox.finish(db, taken.id, "crashed", sent), "the old worker lost its claim"
    assert outbox.finish(db, taken.id, "b", sent)


def test_nothing_is_claimed_before_it_is_due(db: Session) -> None:
    due_deliveries(db, 1)
    assert outbox.claim(db, "a", NOW - timedelta(seconds=1), 10, LEASE) == []


def test_retry_schedule_backs_off_then_gives_up() -> None:
    middle = [retry_delay(n, lambda: 0.5) for n in range(1, 11)]
    assert [d.total_seconds() if d else None for d in middle] == [
        5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400, None,
    ]  # fmt: skip
    low = retry_delay(1, lambda: 0.0)
    high = retry_delay(1, lambda: 1.0)
    assert low is not None and high is not None
    assert low.total_seconds() == 4.5
    assert high.total_seconds() == 5.5


def test_out_of_retries_is_dead_and_past_the_window_is_expired(db: Session) -> None:
    due_deliveries(db, 1)
    (claimed,) = outbox.claim(db, "a", NOW, 10, LEASE)
    delivery = dataclasses.replace(claimed, attempts=10)
    retry = Outcome("retry", "HTTP 503")
    assert result_values(delivery.attempts, delivery.expires_at, retry, NOW)["state"] == "dead"
    delivery = dataclasses.replace(claimed, attempts=1, expires_at=NOW + timedelta(seconds=3))
    assert result_values(delivery.attempts, delivery.expires_at, retry, NOW)["state"] == "expired"
    delivery = dataclasses.replace(claimed, attempts=1, expires_at=None)
    values = result_values(
        delivery.attempts, delivery.expires_at, Outcome("retry", "429", 600.0), NOW
    )
    assert values["next_attempt_at"] == NOW + timedelta(seconds=600)


def test_unique_key_allows_one_reminder_per_session_kind_channel_and_target(
    db: Session,
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic)
    enrollment = Enrollment(
        clinic_id=clinic,
        patient_id=patient,
        protocol_id="glycopyrrolate-hyperhidrosis",
        start_date=NOW.date(),
        phase="repeat",
        created_at=NOW,
        updated_at=NOW,
    )
    db.add(enrollment)
    db.flush()
    session = session_store.new_planned(enrollment.id, NOW.date(), "UTC", "repeat", 20, False, NOW)
    session_store.insert_planned(db, [session])
    row = outbox.new_delivery(
        clinic_id=clinic, kind="reminder", audience=DeliveryAudience.PATIENT, channel="email",
        target=patient, now=NOW, patient_id=patient, session_id=session.id,
    )  # fmt: skip
    for n in range(3):
        outbox.queue(db, [{**row, "id": f"attempt-{n}"}])
    db.commit()
    assert [d.id for d in outbox.matching(db)] == ["attempt-0"]
