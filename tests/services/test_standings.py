"""Patients' stored standing, kept by the sweep, and the lists that sort by it."""

from __future__ import annotations

from datetime import datetime

from freezegun import freeze_time
from sqlmodel import Session

from reminders.adherence import NO_RISK
from reminders.db.engine import session_scope
from reminders.models import SessionReport
from reminders.runtime import Runtime
from reminders.services import clinic_views, sessions, standings
from reminders.services.sweep import sweep
from reminders.stores import session_store
from tests.conftest import at, enroll_patient, make_clinic, make_patient


def _first_session(db: Session, enrollment_id: str) -> str:
    return session_store.of_enrollment(db, enrollment_id)[0].id


def test_the_sweep_stores_who_missed_and_who_confirmed_and_the_list_puts_misses_first(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    start = at("2026-12-07 08:00")
    keen = make_patient(db, clinic, timezone="UTC", name="Keen", external_id="EHR-1")
    slipping = make_patient(db, clinic, timezone="UTC", name="Slipping", external_id="EHR-2")
    new = make_patient(db, clinic, timezone="UTC", name="New", external_id="EHR-3")
    keen_course = enroll_patient(db, rt, clinic, keen, "2026-12-07", start)
    enroll_patient(db, rt, clinic, slipping, "2026-12-07", start)
    with freeze_time(start):
        sessions.confirm_session(
            db, rt, clinic, _first_session(db, keen_course), SessionReport(), start
        )
        db.commit()
    later = at("2026-12-09 09:00")  # the first sessions' days are over, with their grace
    with freeze_time(later):
        sweep(rt, later)
    db.expire_all()
    stored = {p.id: p for p in clinic_views.patients_by_risk(db, clinic, None, None).items}
    assert stored[keen].adherence_rate == 1.0
    assert stored[slipping].missed_in_a_row >= 1
    assert stored[new].risk_rank == NO_RISK
    assert list(stored) == [slipping, keen, new]
    assert [p.name for p in clinic_views.at_risk(db, clinic)] == ["Slipping"]


def test_the_patient_list_pages_on_a_stable_key_and_searches_names_and_ids(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    for n in range(7):
        make_patient(db, clinic, name=f"Patient {n}", external_id=f"EHR-{n}")
    seen, cursor = [], None
    while True:
        page = clinic_views.patients_by_risk(db, clinic, None, cursor, limit=3)
        seen += [p.name for p in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == [f"Patient {n}" for n in range(7)]
    assert len(seen) == 7
    found = clinic_views.patients_by_risk(db, clinic, "ehr-3", None).items
    assert [p.name for p in found] == ["Patient 3"]
    assert clinic_views.patients_by_risk(db, clinic, "100%_", None).items == []


def test_today_counts_each_patients_own_today_across_the_date_line(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    now = at("2026-12-07 12:00")  # 8 Dec 02:00 in Kiritimati, 7 Dec 01:00 in Pago Pago
    every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    ahead = make_patient(db, clinic, timezone="Pacific/Kiritimati", name="Ahead")
    behind = make_patient(db, clinic, timezone="Pacific/Pago_Pago", name="Behind")
    for patient in (ahead, behind):
        enroll_patient(db, rt, clinic, patient, "2026-12-07", now, weekdays=every_day)
    today = clinic_views.sessions_today(db, clinic, now)
    assert (today.total, today.confirmed) == (2, 0)
    assert [s.patient_name for s in today.shown] == ["Ahead", "Behind"]
    by_patient = {s.patient_id: s for s in today.shown}
    dates = {
        p: session_store.get(db, by_patient[p].session_id).local_date  # type: ignore[union-attr]
        for p in (ahead, behind)
    }
    assert (str(dates[ahead]), str(dates[behind])) == ("2026-12-08", "2026-12-07")


def test_a_look_finds_only_the_patients_whose_standing_would_change(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    start = at("2026-12-07 08:00")
    steady = make_patient(db, clinic, timezone="UTC", external_id="EHR-1")
    confirming = make_patient(db, clinic, timezone="UTC", external_id="EHR-2")
    enroll_patient(db, rt, clinic, steady, "2026-12-07", start)
    course = enroll_patient(db, rt, clinic, confirming, "2026-12-07", start)
    assert _changed(rt, start) == sorted([steady, confirming]), "the first look: everyone"
    sweep(rt, start)
    # Both enrollments changed within the look's overlap, but their figures stand.
    assert _changed(rt, start) == []
    done = at("2026-12-07 10:00")
    sessions.confirm_session(db, rt, clinic, _first_session(db, course), SessionReport(), done)
    db.commit()
    assert _changed(rt, done) == [confirming]
    sweep(rt, done)
    assert _changed(rt, done) == []


def _changed(rt: Runtime, now: datetime) -> list[str]:
    with session_scope(rt.engine, write=False) as db:
        return standings.changed_patients(db, rt, now)
