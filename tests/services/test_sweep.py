"""The sweep finds its work in read transactions and writes it in short batches, each
re-checking what it was handed: API writes wait for the same lock on the event loop."""

from __future__ import annotations

import threading
import time
from datetime import date
from typing import cast

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from reminders.db import engine
from reminders.db.engine import session_scope
from reminders.models import Enrollment, SessionReport, TreatmentSession
from reminders.runtime import Runtime
from reminders.services import sessions
from reminders.services.sweep import (
    REPLAN_BATCH,
    SweepReport,
    check_lapses,
    lapse_candidates,
    mark_missed,
    missing_enrollments,
    sweep,
)
from reminders.stores import outbox, session_store
from tests.conftest import (
    at,
    enroll_in_ongoing_phase_with_first_session_done,
    enroll_patient,
    make_clinic,
    make_patient,
)


def _enroll_with_sessions_from_thursday(db: Session, rt: Runtime, count: int) -> None:
    """Enroll `count` patients on Monday 2026-12-07 with sessions from Thursday on, so a
    sweep on Wednesday finds nothing missed and every horizon to extend."""
    clinic = make_clinic(db)
    for n in range(count):
        patient = make_patient(db, clinic, timezone="UTC", email=f"p{n}@example.org")
        enroll_patient(
            db, rt, clinic, patient, "2026-12-07", at("2026-12-07 08:00"),
            weekdays=["thu", "fri", "sat"],
        )  # fmt: skip


def test_a_sweep_with_nothing_to_write_runs_while_a_writer_holds_the_lock(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic, timezone="UTC")
    now = at("2026-12-07 08:00")
    enroll_patient(db, rt, clinic, patient, "2026-12-07", now)
    sweep(rt, now)  # stores the new patient's standing
    reports: list[SweepReport] = []
    worker = threading.Thread(target=lambda: reports.append(sweep(rt, now)))
    with session_scope(rt.engine):
        worker.start()
        worker.join(timeout=10)
        finished_while_held = not worker.is_alive()
    worker.join()
    assert finished_while_held
    assert reports == [SweepReport(missed=0, replanned=0, lapsed=0)]


@pytest.mark.both_databases
def test_horizons_are_extended_for_every_enrollment_across_batches(
    db: Session, rt: Runtime
) -> None:
    count = REPLAN_BATCH + 7
    _enroll_with_sessions_from_thursday(db, rt, count)

    report = sweep(rt, at("2026-12-09 08:00"))

    assert report == SweepReport(missed=0, replanned=count, lapsed=0)
    db.expire_all()
    planned_on = set(db.exec(select(col(Enrollment.planned_on))))
    assert {str(day) for day in planned_on} == {"2026-12-09"}


def test_a_writer_waiting_while_the_sweep_writes_goes_before_its_next_batch(
    db: Session, rt: Runtime
) -> None:
    batches = 4
    _enroll_with_sessions_from_thursday(db, rt, batches * REPLAN_BATCH)
    # The lock API writes queue on; the sweep's first write takes it.
    lock = cast(threading.Lock, engine._write_lock(rt.engine))
    sweeper = threading.Thread(target=sweep, args=(rt, at("2026-12-09 08:00")))
    sweeper.start()
    deadline = time.monotonic() + 10
    while not lock.locked() and time.monotonic() < deadline:
        pass

    with session_scope(rt.engine) as writer:
        extended = writer.exec(
            select(sa.func.count()).where(col(Enrollment.planned_on) == date(2026, 12, 9))
        ).one()
    sweeper.join()

    assert extended % REPLAN_BATCH == 0
    assert 0 < extended < batches * REPLAN_BATCH


@pytest.mark.both_databases
def test_a_session_confirmed_after_the_scan_is_not_marked_missed(db: Session, rt: Runtime) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic, timezone="UTC")
    enrollment = enroll_patient(
        db, rt, clinic, patient, "2026-12-07", at("2026-12-07 08:00"), weekdays=["mon", "wed"]
    )
    now = at("2026-12-08 12:30")
    with session_scope(rt.engine, write=False) as reading:
        found = missing_enrollments(reading, rt, now)
    assert found == [enrollment]
    monday = session_store.of_enrollment(db, enrollment)[0]
    sessions.confirm_session(db, rt, clinic, monday.id, SessionReport(), now)
    db.commit()

    with session_scope(rt.engine) as writing:
        assert mark_missed(writing, rt, now, found) == 0

    db.expire_all()
    assert db.get(TreatmentSession, monday.id).status == "confirmed"  # type: ignore[union-attr]


@pytest.mark.both_databases
def test_a_lapse_ended_by_a_confirmation_after_the_scan_gets_no_nudge(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic, timezone="UTC")
    enrollment = enroll_in_ongoing_phase_with_first_session_done(db, rt, clinic, patient)
    sweep(rt, at("2026-12-15 12:30"))  # Monday the 14th is missed
    now = at("2026-12-18 12:30")
    with session_scope(rt.engine, write=False) as reading:
        found = lapse_candidates(reading, rt, now)
    assert found == [enrollment]
    db.expire_all()
    late = next(s for s in session_store.of_enrollment(db, enrollment) if s.status == "missed")
    sessions.confirm_session(db, rt, clinic, late.id, SessionReport(), now)
    db.commit()

    with session_scope(rt.engine) as writing:
        assert check_lapses(writing, rt, now, found) == 0

    nudges = outbox.matching(db, kind="overdue")
    assert nudges == []
