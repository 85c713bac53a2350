"""`reminders import`: every good row enrolled and planned, every bad one reported by
line and column, and a second run skipping what the first imported."""

from __future__ import annotations

import io
import itertools
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from reminders.models import Delivery, Enrollment, Patient, ProtocolVersion, TreatmentSession
from reminders.runtime import Runtime
from reminders.services import importing
from reminders.services.importing import (
    BadFile,
    KnownRow,
    Refusal,
    Stop,
    import_patients,
    read_rows,
)
from reminders.stores import outbox
from reminders.stores.outbox import DeliveryRow
from tests.conftest import at, make_clinic

NOW = at("2026-12-07 07:00")
HEADER = "name,email,timezone,external_id,protocol,start_date,body_area,weekdays,screening"
GOOD = [
    "Ann Example,ann@example.org,Europe/Berlin,EHR-1,tap-water-hyperhidrosis,2026-12-07,"
    "palms,mon;wed;fri,none",
    "Bea Beispiel,bea@example.org,America/New_York,EHR-2,glycopyrrolate-hyperhidrosis,"
    "2026-12-08,palms,,none",
]


_RUNS = itertools.count()


def _import(
    rt: Runtime, clinic: str, *lines: str, dry_run: bool = False, update: bool = False
) -> importing.ImportReport:
    """Import `lines`, each run a minute after the one before, as runs of a command are
    (an import tells the patients it wrote by its instant)."""
    stream = io.StringIO("\n".join((HEADER, *lines)) + "\n")
    now = NOW + timedelta(minutes=next(_RUNS))
    return import_patients(rt, clinic, read_rows(stream), now, dry_run=dry_run, update=update)


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
    assert "already given on line 2" in report.refused[4].message
    assert _count(db, Patient) == 2 and _count(db, Enrollment) == 2
    sessions = db.exec(select(TreatmentSession)).all()
    assert report.sessions == len(sessions) > 0
    ann = db.exec(select(Patient).where(Patient.external_id == "EHR-1")).one()
    (enrollment,) = db.exec(select(Enrollment).where(Enrollment.patient_id == ann.id)).all()
    assert (enrollment.body_area, enrollment.weekdays) == ("palms", "mon,wed,fri")
    first = outbox.matching(db, kind="reminder", patient_id=ann.id)
    assert first, "the reminder of a session due soon is written with the import"


@pytest.mark.both_databases
def test_a_second_run_skips_known_patients_and_update_changes_their_details(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    assert _import(rt, clinic, *GOOD).imported == 2
    again = _import(rt, clinic, *GOOD)
    assert (again.imported, again.known) == (0, [KnownRow(2, "EHR-1"), KnownRow(3, "EHR-2")])
    assert _count(db, Patient) == 2 and _count(db, Enrollment) == 2
    moved = GOOD[0].replace("ann@example.org", "ann@new.example")
    updated = _import(rt, clinic, moved, update=True)
    assert updated.updated == [KnownRow(2, "EHR-1")]
    db.expire_all()
    ann = db.exec(select(Patient).where(Patient.external_id == "EHR-1")).one()
    assert ann.email == "ann@new.example"


def test_a_dry_run_checks_and_plans_everything_and_writes_nothing(db: Session, rt: Runtime) -> None:
    clinic = make_clinic(db)
    report = _import(rt, clinic, *GOOD, GOOD[0], dry_run=True)
    assert report.dry_run and report.imported == 2 and report.sessions > 0
    assert report.refused == [Refusal(4, "external_id", "already given on line 2")]
    for model in (Patient, Enrollment, TreatmentSession, Delivery, ProtocolVersion):
        assert _count(db, model) == 0, model


@pytest.mark.parametrize("update", [False, True])
def test_a_row_repeated_far_down_the_file_is_refused_however_many_batches_apart(
    db: Session, rt: Runtime, monkeypatch: pytest.MonkeyPatch, update: bool
) -> None:
    monkeypatch.setattr(importing, "BATCH", 2)
    clinic = make_clinic(db)
    rows = [_row(n) for n in range(20)]
    report = _import(rt, clinic, *rows, rows[0].replace("p0@", "changed@"), update=update)
    assert report.imported == 20 and report.updated == [] and report.known == []
    assert [(r.line, r.field) for r in report.refused] == [(22, "external_id")]
    assert "an earlier line of this file" in report.refused[0].message
    assert _count(db, Patient) == 20 and _count(db, Enrollment) == 20
    emails = db.exec(select(Patient.email)).all()
    assert "changed@example.org" not in emails


def _row(n: int, email: str | None = None) -> str:
    return (
        f"P{n},{email or f'p{n}@example.org'},UTC,EHR-{n},tap-water-hyperhidrosis,"
        "2026-12-07,palms,,none"
    )


def test_a_batch_the_database_refuses_stops_the_import_after_the_batches_before_it(
    db: Session, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    if rt.engine.dialect.name != "sqlite":
        pytest.skip("the refusal is an SQLite trigger")
    monkeypatch.setattr(importing, "BATCH", 2)
    clinic = make_clinic(db)
    db.execute(sa.text(
        "CREATE TRIGGER refuse_p3 BEFORE INSERT ON patient WHEN NEW.external_id = 'EHR-3'"
        " BEGIN SELECT RAISE(ABORT, 'patient EHR-3 refused by the database'); END"
    ))  # fmt: skip
    db.commit()
    report = _import(rt, clinic, *(_row(n) for n in range(8)))
    assert report.stopped == Stop(
        4, "(sqlite3.IntegrityError) patient EHR-3 refused by the database"
    )
    assert report.imported == 2, "only the batch written before the refused one counts"
    assert _count(db, Patient) == 2
    again = _import(rt, clinic, *(_row(n) for n in range(2)))
    assert [k.external_id for k in again.known] == ["EHR-0", "EHR-1"]


def test_an_update_the_service_refuses_is_reported_and_the_import_goes_on(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    assert _import(rt, clinic, _row(1)).imported == 1
    rows = io.StringIO(
        "name,email,timezone,external_id,protocol,start_date,channel,screening,body_area\n"
        "P1,p1@example.org,UTC,EHR-1,tap-water-hyperhidrosis,2026-12-07,webhook,none,palms\n"
        "P2,p2@example.org,UTC,EHR-2,tap-water-hyperhidrosis,2026-12-07,email,none,palms\n"
    )
    report = import_patients(rt, clinic, read_rows(rows), NOW + timedelta(hours=1), update=True)
    assert [(r.line, r.field) for r in report.refused] == [(2, "channel")]
    assert (report.imported, report.updated) == (1, [])


def test_excel_files_with_a_byte_order_mark_and_rows_of_the_wrong_shape(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    text = (
        "\ufeff"
        + HEADER
        + "\r\n"
        + GOOD[0]
        + "\r\n"
        + "Short,s@example.org,UTC\r\n"
        + GOOD[1]
        + ",extra\r\n"
    )
    report = import_patients(rt, clinic, read_rows(io.StringIO(text, newline="")), NOW)
    assert report.imported == 1
    assert [(r.line, r.field, r.message) for r in report.refused] == [
        (3, "row", "fewer fields than the header names"),
        (4, "row", "more fields than the header names"),
    ]


def test_a_file_with_an_unknown_repeated_or_missing_column_is_refused_before_any_row() -> None:
    header = io.StringIO("name,timezone,external_id,start_date,shoe_size,name\n")
    with pytest.raises(
        BadFile, match=r"unknown column.*shoe_size.*repeated.*name.*missing.*protocol"
    ):
        read_rows(header)


def test_a_file_as_people_type_it_spaces_capitals_and_dates_in_their_own_words(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    text = (
        " Name , EMAIL,timezone,external_id,protocol,start_date,screening,channel,Body_Area\n"
        "Müller,m@example.org,Europe/Berlin,E1,Tap-Water-Hyperhidrosis,2026-12-07,None,Email,"
        "Hands\n"
        "X,x@example.org,UTC,E2,tap-water-hyperhidrosis,07.12.2026,none,email,palms\n"
        "Y,y@example.org,UTC,E3,tap-water-hyperhidrosis,2027-02-30,none,email,palms\n"
    )
    report = import_patients(rt, clinic, read_rows(io.StringIO(text)), NOW)
    assert report.imported == 1
    assert report.refused == [
        Refusal(3, "start_date", "not a date: write it as YYYY-MM-DD"),
        Refusal(4, "start_date", "no such date"),
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty: no header"),
        ("name;email;timezone\nA;b;UTC\n", "separated by ';'"),
    ],
)
def test_files_that_are_not_comma_separated_csv_say_so(text: str, problem: str) -> None:
    with pytest.raises(BadFile, match=problem):
        read_rows(io.StringIO(text))


ROW = "A,UTC,E1,tap-water-hyperhidrosis,2026-12-07,"
ABSURD = [
    pytest.param(",".join(f"c{n}" for n in range(1_000_000)) + "\n", "line 1: over 1,000,000",
                 id="a header of a million columns"),
    pytest.param(",".join(f"c{n}" for n in range(65)) + "\n", "header: 65 columns; .* at most 64",
                 id="a header of 65 columns"),
    pytest.param(HEADER + "\n" + ROW + "x" * (128 << 10) + "\n", "line 2: a field is over 10,000",
                 id="a field of 128 KiB"),
    pytest.param(HEADER + "\n" + ROW + "x" * 10_001 + "\n", "line 2: a field is over 10,000",
                 id="a field of 10,001 characters"),
    pytest.param(HEADER + "\n" + "A" * 1_000_001 + "\n", "line 2: over 1,000,000 characters",
                 id="a line of a million characters"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "problem"), ABSURD)
def test_absurd_files_are_refused_whole_naming_the_limit(text: str, problem: str) -> None:
    with pytest.raises(BadFile, match=problem):
        importing.check_file(io.StringIO(text))


def test_reading_rows_keeps_the_same_limits_as_the_check() -> None:
    # What the import reads after `check_file`: the same refusals, not csv's traceback.
    with pytest.raises(BadFile, match="header: 1000 columns"):
        read_rows(io.StringIO(",".join(f"c{n}" for n in range(1000)) + "\n"))
    for size in (10_001, 256 << 10):
        rows = read_rows(io.StringIO(HEADER + "\n" + ROW + "x" * size + "\n"))
        with pytest.raises(BadFile, match="line 2: a field is over 10,000 characters"):
            list(rows)


def _welcomes(db: Session) -> list[DeliveryRow]:
    return outbox.matching(db, kind="welcome")


def test_an_import_sends_no_welcome_unless_asked(db: Session, rt: Runtime) -> None:
    clinic = make_clinic(db)
    _import(rt, clinic, GOOD[0])
    assert _welcomes(db) == []
    stream = io.StringIO("\n".join((HEADER, GOOD[1])) + "\n")
    import_patients(rt, clinic, read_rows(stream), NOW, welcome=True)
    (welcome,) = _welcomes(db)
    bea = db.exec(select(Patient).where(Patient.external_id == "EHR-2")).one()
    assert (welcome.patient_id, welcome.audience) == (bea.id, "patient")


def test_a_reminder_time_inside_the_quiet_hours_is_refused_by_line_and_column(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    header = "name,email,timezone,external_id,protocol,start_date,reminder_time,screening"
    stream = io.StringIO(
        f"{header},body_area\n"
        "Ann,ann@example.org,UTC,EHR-1,tap-water-hyperhidrosis,2026-12-07,22:30,none,palms\n"
        "Bea,bea@example.org,UTC,EHR-2,tap-water-hyperhidrosis,2026-12-07,20:30,none,palms\n"
    )
    report = import_patients(rt, clinic, read_rows(stream), NOW)
    assert [(r.line, r.field) for r in report.refused] == [(2, "reminder_time")]
    assert "inside the quiet hours 21:00-08:00" in report.refused[0].message
    assert _count(db, Patient) == 1
