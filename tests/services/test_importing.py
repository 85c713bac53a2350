"""`reminders import`: every good row enrolled and planned, every bad one reported by
line and column, and a second run skipping what the first imported."""

from __future__ import annotations

import io

import pytest
from sqlmodel import Session, col, select

from reminders.models import Delivery, Enrollment, Patient, TreatmentSession
from reminders.runtime import Runtime
from reminders.services import importing
from reminders.services.importing import BadFile, Refusal, import_patients, read_rows
from tests.conftest import at, make_clinic

NOW = at("2026-12-07 07:00")
HEADER = "name,email,timezone,external_id,protocol,start_date,body_area,weekdays,screening"
GOOD = [
    "Ann Example,ann@example.org,Europe/Berlin,EHR-1,tap-water-hyperhidrosis,2026-12-07,"
    "palms,mon;wed;fri,none",
    "Bea Beispiel,bea@example.org,America/New_York,EHR-2,glycopyrrolate-hyperhidrosis,"
    "2026-12-08,,,none",
]


def _import(
    rt: Runtime, clinic: str, *lines: str, dry_run: bool = False, update: bool = False
) -> importing.ImportReport:
    stream = io.StringIO("\n".join((HEADER, *lines)) + "\n")
    return import_patients(rt, clinic, read_rows(stream), NOW, dry_run=dry_run, update=update)


def _count(db: Session, model: type) -> int:
    db.expire_all()
    return len(db.exec(select(model)).all())


@pytest.mark.both_databases
def test_good_rows_are_enrolled_and_planned_and_bad_ones_reported_by_line_and_column(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    report = _import(
        rt, clinic, *GOOD,
        "Cy,not-an-email,UTC,EHR-3,tap-water-hyperhidrosis,2026-12-07,palms,,none",
        "Di,di@example.org,UTC,EHR-4,no-such-protocol,2026-12-07,,,none",
        "Ed,ed@example.org,UTC,EHR-5,tap-water-hyperhidrosis,2026-12-07,palms,,pacemaker",
        "Fay,fay@example.org,UTC,,tap-water-hyperhidrosis,2026-12-07,palms,,none",
        "Gus,gus@example.org,UTC,EHR-1,tap-water-hyperhidrosis,2026-12-07,palms,,none",
        "Hal,hal@example.org,Mars/Base,EHR-8,tap-water-hyperhidrosis,2026-12-07,palms,,none",
    )  # fmt: skip
    assert report.imported == 2
    assert [(r.line, r.field) for r in report.refused] == [
        (4, "email"), (5, "protocol"), (6, "screening"), (7, "external_id"),
        (8, "external_id"), (9, "timezone"),
    ]  # fmt: skip
    assert "also on line 2" in report.refused[4].message
    assert _count(db, Patient) == 2 and _count(db, Enrollment) == 2
    sessions = db.exec(select(TreatmentSession)).all()
    assert report.sessions == len(sessions) > 0
    ann = db.exec(select(Patient).where(Patient.external_id == "EHR-1")).one()
    (enrollment,) = db.exec(select(Enrollment).where(Enrollment.patient_id == ann.id)).all()
    assert (enrollment.body_area, enrollment.weekdays) == ("palms", "mon,wed,fri")
    first = db.exec(
        select(Delivery).where(col(Delivery.patient_id) == ann.id, Delivery.kind == "reminder")
    ).all()
    assert first, "the reminder of a session due soon is written with the import"


@pytest.mark.both_databases
def test_a_second_run_skips_known_patients_and_update_changes_their_details(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    assert _import(rt, clinic, *GOOD).imported == 2
    again = _import(rt, clinic, *GOOD)
    assert (again.imported, again.known) == (0, [(2, "EHR-1"), (3, "EHR-2")])
    assert _count(db, Patient) == 2 and _count(db, Enrollment) == 2
    moved = GOOD[0].replace("ann@example.org", "ann@new.example")
    updated = _import(rt, clinic, moved, update=True)
    assert updated.updated == [(2, "EHR-1")]
    db.expire_all()
    ann = db.exec(select(Patient).where(Patient.external_id == "EHR-1")).one()
    assert ann.email == "ann@new.example"


def test_a_dry_run_checks_and_plans_everything_and_writes_nothing(db: Session, rt: Runtime) -> None:
    clinic = make_clinic(db)
    report = _import(rt, clinic, *GOOD, GOOD[0], dry_run=True)
    assert report.dry_run and report.imported == 2 and report.sessions > 0
    assert report.refused == [Refusal(4, "external_id", "also on line 2")]
    assert _count(db, Patient) == 0 and _count(db, TreatmentSession) == 0


def test_rows_over_several_batches_are_all_imported_and_duplicates_found_across_them(
    db: Session, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importing, "BATCH", 3)
    clinic = make_clinic(db)
    rows = [
        f"P{n},p{n}@example.org,UTC,EHR-{n},tap-water-hyperhidrosis,2026-12-07,palms,,none"
        for n in range(10)
    ]
    report = _import(rt, clinic, *rows, rows[0])
    assert report.imported == 10
    assert [(r.line, r.field) for r in report.refused] == [(12, "external_id")]
    assert _count(db, Patient) == 10 and _count(db, Enrollment) == 10


def test_a_file_with_an_unknown_or_missing_column_is_refused_whole(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    header = io.StringIO("name,timezone,external_id,start_date,shoe_size\n")
    with pytest.raises(BadFile, match=r"unknown column.*shoe_size.*missing column.*protocol"):
        import_patients(rt, clinic, read_rows(header), NOW)
    assert _count(db, Patient) == 0
