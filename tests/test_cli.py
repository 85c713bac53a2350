from __future__ import annotations

import itertools
import json
import os
import sqlite3
import stat
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time
from typer.testing import CliRunner

from reminders.cli import app
from reminders.db.engine import session_scope
from reminders.runtime import Runtime
from reminders.services import erasure
from reminders.services.sweep import sweep
from reminders.settings import load_settings
from tests.conftest import SETUP

runner = CliRunner()


@pytest.fixture(autouse=True)
def _var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMINDERS_VAR_DIR", str(tmp_path))


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_plan_preview_json_for_tap_water_matches_the_clinical_plan() -> None:
    code, out, _ = run(
        "plan", "preview", "--protocol", "tap-water-hyperhidrosis",
        "--start", "2026-12-07", "--json", "--response", "dry-after=4",
    )  # fmt: skip
    assert code == 0
    plan = json.loads(out)
    sessions = plan["sessions"]
    assert sessions[0]["date"] == "2026-12-07"
    induction = [s for s in sessions if s["phase"] == "induction"]
    assert [s["weekday"] for s in induction] == ["mon", "wed", "fri"] * 2
    maintenance = [s["date"] for s in sessions if s["phase"] == "maintenance"]
    gaps = [(json_date(b) - json_date(a)).days for a, b in itertools.pairwise(maintenance)]
    assert gaps[:3] == [7, 7, 14]
    assert max(gaps) == 28
    dates = [s["date"] for s in sessions]
    assert len(dates) == len(set(dates))


def json_date(text: str) -> date:
    return date.fromisoformat(text)


def test_plan_preview_table_is_readable() -> None:
    code, out, _ = run(
        "plan", "preview", "--protocol", "dexamethasone-plantar-heel", "--start", "2026-12-07"
    )
    assert code == 0
    assert "2026-12-07  Mon  twice-weekly  10" in out
    assert "weekly -> end of course" in out


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--protocol", "snake-oil", "--start", "2026-12-07"], "protocol"),
        (["--protocol", "tap-water-hyperhidrosis", "--start", "07/12/2026"], "start"),
        (["--protocol", "tap-water-hyperhidrosis", "--start", "2026-12-07",
          "--response", "dry"], "response"),
    ],
)  # fmt: skip
def test_plan_preview_bad_input_names_the_field(args: list[str], field: str) -> None:
    code, _, err = run("plan", "preview", *args)
    assert code != 0
    assert err.startswith(f"error: {field}:")


@freeze_time("2026-11-23 10:00:00")
def test_clinic_patient_enroll_show_confirm_flow() -> None:
    assert run("migrate")[0] == 0
    code, out, _ = run("clinic", "create", "North Clinic")
    assert code == 0
    clinic = out.split()[1]
    api_key = out.splitlines()[1].split()[2]
    assert api_key.startswith("rk_")
    code, out, _ = run(
        "patient", "add", "--clinic", clinic, "--name", "Ann", "--email", "ann@example.org",
        "--timezone", "UTC",
    )  # fmt: skip
    assert code == 0
    patient = out.split()[1]
    code, out, err = run(
        "enroll", patient, "--protocol", "sports-injury-short-course", "--start", "2026-11-23",
        "--body-area", "knee",
    )  # fmt: skip
    assert code != 0
    assert "screening" in err
    code, out, _ = run(
        "enroll", patient, "--protocol", "sports-injury-short-course",
        "--start", "2026-11-23", "--screened", "--body-area", "knee",
    )  # fmt: skip
    assert code == 0
    enrollment = out.split()[1]
    code, out, _ = run("plan", "show", enrollment, "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["phase"] == "course"
    first = shown["sessions"][0]
    assert first["date"] == "2026-11-23"
    code, _, err = run("session", "confirm", first["id"], "--hdss", "7")
    assert code != 0
    assert err.startswith("error: hdss:")
    assert run("session", "confirm", first["id"], "--current-ma", "10")[0] == 0
    shown = json.loads(run("plan", "show", enrollment, "--json")[1])
    assert shown["sessions"][0]["status"] == "confirmed"


def test_bad_setting_stops_with_the_setting_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMINDERS_HORIZON_DAYS", "0")
    code, _, err = run("migrate")
    assert code == 2
    assert "horizon_days" in err


@pytest.mark.parametrize("command", [["serve"], ["worker"], ["clinic", "create", "North"]])
def test_a_command_on_a_database_never_migrated_stops_and_says_to_migrate(
    command: list[str],
) -> None:
    code, _, err = run(*command)
    assert code == 2
    assert "the database has no schema yet: run `reminders migrate`" in err


def test_a_database_at_an_older_revision_is_named_with_the_one_needed() -> None:
    from reminders.db import schema
    from reminders.settings import load_settings

    schema.migrate(load_settings().database_url, "0001")

    code, _, err = run("clinic", "create", "North")
    assert code == 2
    assert "the database is at schema revision 0001, this version needs" in err
    assert err.rstrip().endswith("run `reminders migrate`")
    code, out, _ = run("migrate")
    assert code == 0 and out.startswith("database upgraded from revision 0001 to ")
    assert run("clinic", "create", "North")[0] == 0
    code, out, _ = run("migrate")
    assert code == 0 and out.startswith("database is up to date (revision ")


def test_migrate_on_a_new_database_says_it_created_it() -> None:
    code, out, _ = run("migrate")
    assert code == 0 and out.startswith("database created at revision ")


def test_protocols_are_listed_without_a_database() -> None:
    code, out, _ = run("protocols")
    assert code == 0
    assert "tap-water-hyperhidrosis" in out


def _enrolled_patient() -> tuple[str, str, str]:
    """Migrate, add a clinic and a patient in UTC, enroll in tap water from today; return
    (clinic, patient, enrollment)."""
    assert run("migrate")[0] == 0
    clinic = run("clinic", "create", "North Clinic")[1].split()[1]
    patient = run(
        "patient", "add", "--clinic", clinic, "--name", "Ann", "--email", "ann@example.org",
        "--timezone", "UTC",
    )[1].split()[1]  # fmt: skip
    out = run(
        "enroll", patient, "--protocol", "tap-water-hyperhidrosis", "--start", "2026-12-07",
        "--screened", "--body-area", "palms",
    )[1]  # fmt: skip
    return clinic, patient, out.split()[1]


@freeze_time("2026-12-07 10:00:00")
def test_a_patients_calendar_link_is_printed_and_revoked() -> None:
    _, patient, _ = _enrolled_patient()
    code, link, _ = run("patient", "calendar", patient)
    assert code == 0
    assert link.startswith("http://127.0.0.1:8000/c/") and link.strip().endswith(".ics")
    assert run("patient", "calendar", patient)[1] == link
    code, new, _ = run("patient", "calendar", patient, "--revoke")
    assert code == 0 and new != link
    assert run("patient", "calendar", patient)[1] == new
    code, _, err = run("patient", "calendar", "0" * 32)
    assert code == 1 and err.startswith("error: patient")


@freeze_time("2026-12-07 10:00:00")
def test_enrollment_pause_until_resume_and_withdraw() -> None:
    _, _, enrollment = _enrolled_patient()
    code, out, _ = run("enrollment", "pause", enrollment, "--until", "2026-12-21")
    assert (code, out.strip()) == (0, f"enrollment {enrollment} paused until 2026-12-21")
    code, _, err = run("enrollment", "pause", enrollment, "--until", "someday")
    assert code != 0 and err.startswith("error: until:")
    assert run("enrollment", "resume", enrollment)[1].strip() == f"enrollment {enrollment} active"
    assert run("enrollment", "withdraw", enrollment)[0] == 0
    code, _, err = run("enrollment", "resume", enrollment)
    assert code != 0 and "withdrawn" in err


@freeze_time("2026-12-07 10:00:00")
def test_absences_are_added_listed_and_removed_from_the_command_line() -> None:
    _, patient, enrollment = _enrolled_patient()
    code, out, _ = run("absence", "add", patient, "--from", "2026-12-09", "--to", "2026-12-13")
    assert code == 0
    absence = out.split()[1]
    shown = json.loads(run("plan", "show", enrollment, "--json")[1])
    planned = [s["date"] for s in shown["sessions"] if s["status"] == "planned"]
    assert "2026-12-09" not in planned and "2026-12-14" in planned
    assert absence in run("absence", "list", patient)[1]
    code, _, err = run("absence", "add", patient, "--from", "2026-12-13", "--to", "2026-12-09")
    assert code != 0 and err.startswith("error: to:")
    assert run("absence", "remove", absence)[0] == 0
    assert absence not in run("absence", "list", patient)[1]


def test_escalations_are_listed_and_acknowledged_from_the_command_line() -> None:
    with freeze_time("2026-12-07 10:00:00"):
        clinic, _patient, _enrollment = _enrolled_patient()
        assert run("escalation", "list", "--clinic", clinic)[1].count("\n") == 1  # header only
    with freeze_time("2026-12-10 13:00:00"):  # Monday and Wednesday missed
        runtime = Runtime.from_settings(load_settings())
        try:
            sweep(runtime, runtime.clock())
        finally:
            runtime.close()
        code, out, _ = run("escalation", "list", "--clinic", clinic)
        assert code == 0 and "missed_sessions" in out
        escalation = out.splitlines()[1].split()[0]
        code, _, err = run("escalation", "ack", escalation, "--by", "")
        assert code != 0 and err.startswith("error: by:")
        code, out, _ = run("escalation", "ack", escalation, "--by", "Nurse Kim", "--note", "called")
        assert (code, out.strip()) == (0, f"escalation {escalation} acknowledged by Nurse Kim")
        assert "missed_sessions" not in run("escalation", "list", "--clinic", clinic)[1]


def test_plan_preview_shows_a_review_point_for_a_non_responder() -> None:
    code, out, _ = run(
        "plan", "preview", "--protocol", "tap-water-hyperhidrosis", "--start", "2026-12-07",
        "--days", "40", "--response", "never-dry",
    )  # fmt: skip
    assert code == 0
    assert "after 2027-01-01: review: no response in induction" in out
    assert "maintenance" not in out
    code, out, _ = run(
        "plan", "preview", "--protocol", "dexamethasone-tendinopathy", "--start", "2026-12-07",
        "--json",
    )  # fmt: skip
    assert json.loads(out)["ends_on"] == "2026-12-18"


def test_simulate_prints_the_course_as_json() -> None:
    code, out, _ = run(
        "simulate", "--protocol", "dexamethasone-tendinopathy", "--start", "2026-12-07",
        "--days", "30", "--story", "dry", "--json",
    )  # fmt: skip
    assert code == 0, out
    result = json.loads(out)
    # Given at the clinic: appointment reminders the evening before, staff record them;
    # the completion is in the next morning's digest.
    assert result["totals"] == {
        "appointment": 5, "clinic.digest": 1, "completed": 1, "enrollment.completed": 1,
        "session.confirmed": 6, "welcome": 1,
    }  # fmt: skip
    assert {d["phase"] for d in result["days"][-5:]} == {"completed"}
    code, _, err = run(
        "simulate", "--protocol", "dexamethasone-tendinopathy", "--start", "2026-12-07",
        "--story", "sleepy",
    )  # fmt: skip
    assert code != 0 and err.startswith("error: story:")


@freeze_time("2026-12-07 10:00:00")
def test_clinic_hours_and_closed_dates_from_the_command_line() -> None:
    clinic, patient, _ = _enrolled_patient()
    code, out, _ = run("clinic", "hours", clinic, "--open", "mon,wed", "--timezone", "UTC")
    assert (code, out.strip()) == (0, f"clinic {clinic} open mon,wed")
    code, _, err = run("clinic", "hours", clinic, "--open", "funday")
    assert code != 0 and err.startswith("error: open_weekdays:")
    assert run("clinic", "close", clinic, "--date", "2026-12-09")[0] == 0
    code, out, _ = run(
        "enroll", patient, "--protocol", "dexamethasone-tendinopathy", "--start", "2026-12-07",
        "--screened", "--body-area", "elbow",
    )  # fmt: skip
    assert code == 0
    dates = [line.split()[0] for line in out.splitlines()[2:]]
    assert dates[:3] == ["2026-12-07", "2026-12-14", "2026-12-16"]


@freeze_time("2026-12-07 10:00:00")
def test_a_clinic_names_itself_to_patients_from_the_command_line() -> None:
    clinic, _patient, _ = _enrolled_patient()
    code, out, _ = run(
        "clinic", "identity", clinic, "--display-name", "Clínica Sol", "--reply-to",
        "contato@clinicasol.example", "--phone", "+55 11 5555-0000",
    )  # fmt: skip
    assert code == 0
    assert "Clínica Sol" in out and "contato@clinicasol.example" in out
    code, _, err = run("clinic", "identity", clinic, "--phone", "ring ring")
    assert code != 0 and err.startswith("error: phone:")
    code, out, _ = run("clinic", "show", clinic, "--json")
    assert json.loads(out)["phone"] == "+55 11 5555-0000"


def test_version_is_printed() -> None:
    code, out, _ = run("--version")
    assert (code, out.split()[0]) == (0, "reminders")
    assert out.split()[1][0].isdigit()


def test_what_migrate_creates_is_its_owners_alone(tmp_path: Path) -> None:
    var = tmp_path / "fresh"
    done = subprocess.run(
        [sys.executable, "-m", "reminders", "migrate"],
        env={**os.environ, "REMINDERS_VAR_DIR": str(var)}, capture_output=True, check=True,
    )  # fmt: skip
    assert done.returncode == 0
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    for path in var.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path.name


@freeze_time("2026-12-07 10:00:00")
def test_clinics_and_patients_are_listed_and_shown() -> None:
    assert run("migrate")[0] == 0
    clinic = run("clinic", "create", "North Clinic", "--alert-email", "nurse@north.org")[1]
    clinic = clinic.split()[1]
    run("clinic", "create", "South Clinic")
    code, out, _ = run("clinic", "list", "--json")
    assert code == 0
    assert sorted(c["name"] for c in json.loads(out)) == ["North Clinic", "South Clinic"]
    shown = json.loads(run("clinic", "show", clinic, "--json")[1])
    assert (shown["id"], shown["alert_email"]) == (clinic, "nurse@north.org")
    assert run("clinic", "show", "0" * 32)[0] == 1
    for n, external in enumerate(("EHR-1", "EHR-2")):
        run(
            "patient", "add", "--clinic", clinic, "--name", f"P{n}", "--timezone", "UTC",
            "--email", f"p{n}@example.org", "--external-id", external,
        )  # fmt: skip
    listed = json.loads(run("patient", "list", "--clinic", clinic, "--json")[1])
    assert sorted(p["external_id"] for p in listed) == ["EHR-1", "EHR-2"]
    code, out, _ = run("patient", "list", "--clinic", clinic, "--external-id", "EHR-2")
    assert code == 0 and "EHR-2" in out and "EHR-1" not in out
    (second,) = [p["id"] for p in listed if p["external_id"] == "EHR-2"]
    run("enroll", second, "--protocol", "glycopyrrolate-hyperhidrosis", "--start", "2026-12-07",
        "--screened", "--body-area", "palms")  # fmt: skip
    shown = json.loads(run("patient", "show", "EHR-2", "--clinic", clinic, "--json")[1])
    assert shown["id"] == second
    assert [e["protocol"] for e in shown["enrollments"]] == ["glycopyrrolate-hyperhidrosis"]
    code, _, err = run("patient", "show", second, "--clinic", "0" * 32)
    assert code == 1 and "not found" in err


def test_backup_copies_the_database_consistently_while_it_is_written(tmp_path: Path) -> None:
    import sqlite3
    import threading

    assert run("migrate")[0] == 0
    assert run("clinic", "create", "North Clinic")[0] == 0
    settings = load_settings()
    writing = threading.Event()
    stop = threading.Event()

    def keep_writing() -> None:
        rt = Runtime.from_settings(settings)
        from sqlmodel import Session

        from reminders.services import clinics

        try:
            while not stop.is_set():
                with Session(rt.engine) as db:
                    clinics.create_clinic(db, "Busy Clinic", SETUP)
                    db.commit()
                writing.set()
        finally:
            rt.close()

    writer = threading.Thread(target=keep_writing)
    writer.start()
    writing.wait(10)
    copy = tmp_path / "backup.sqlite3"
    try:
        code, out, err = run("backup", str(copy))
    finally:
        stop.set()
        writer.join(10)
    assert code == 0, err
    assert out.startswith(f"database copied to {copy}")
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    with sqlite3.connect(copy) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        names = {row[0] for row in db.execute("SELECT name FROM clinic")}
    assert "North Clinic" in names
    code, _, err = run("backup", str(copy))
    assert code == 2 and "exists" in err, "a backup never overwrites a file"


def test_backup_without_a_database_says_so_and_leaves_no_file(tmp_path: Path) -> None:
    copy = tmp_path / "backup.sqlite3"
    code, _, err = run("backup", str(copy))
    assert code == 2 and "run `reminders migrate` first" in err
    assert not copy.exists()
    database = Path(str(load_settings().database_url).removeprefix("sqlite:///"))
    assert not database.exists(), "no empty database was made to copy"


def test_restore_checks_the_backup_keeps_the_database_it_replaces_and_migrates(
    tmp_path: Path,
) -> None:
    assert run("migrate")[0] == 0
    run("clinic", "create", "Before Clinic")
    copy = tmp_path / "copy.sqlite3"
    assert run("backup", str(copy))[0] == 0
    run("clinic", "create", "After Clinic")

    code, out, err = run("restore", str(copy), "--yes")
    assert code == 0, err
    assert f"{copy}: a sound database at schema revision" in out
    assert "database restored from" in out
    names = [c["name"] for c in json.loads(run("clinic", "list", "--json")[1])]
    assert names == ["Before Clinic"]
    (saved,) = [
        f for f in tmp_path.glob("reminders.sqlite3.before-restore-*")
        if not f.name.endswith(("-wal", "-shm"))
    ]  # fmt: skip
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    with sqlite3.connect(saved) as db:
        kept = {row[0] for row in db.execute("SELECT name FROM clinic")}
    assert kept == {"Before Clinic", "After Clinic"}


def test_restore_refuses_what_is_not_a_sound_backup_and_changes_nothing(tmp_path: Path) -> None:
    assert run("migrate")[0] == 0
    run("clinic", "create", "Kept Clinic")
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database at all" * 100)
    code, _, err = run("restore", str(junk), "--yes")
    assert code == 2 and "is not a reminders database" in err
    code, _, err = run("restore", str(tmp_path / "missing.sqlite3"), "--yes")
    assert code == 2 and "is not a file" in err
    code, _, _ = run("restore", str(tmp_path / "reminders.sqlite3"))  # asks; no answer: no
    assert code == 1
    names = [c["name"] for c in json.loads(run("clinic", "list", "--json")[1])]
    assert names == ["Kept Clinic"]


def test_keys_are_created_listed_and_revoked_from_the_command_line() -> None:
    assert run("migrate")[0] == 0
    clinic = run("clinic", "create", "North Clinic")[1].split()[1]
    code, out, _ = run("key", "create", "ehr-sync", "--clinic", clinic)
    assert code == 0 and out.splitlines()[1].startswith("rk_")
    listed = json.loads(run("key", "list", "--clinic", clinic, "--json")[1])
    assert [k["name"] for k in listed] == ["first", "ehr-sync"]
    code, out, _ = run("key", "revoke", "ehr-sync", "--clinic", clinic)
    assert code == 0 and "revoked" in out
    code, _, err = run("key", "revoke", "first", "--clinic", clinic)
    assert code == 1 and "last key" in err
    code, _, err = run("key", "create", "bad name!", "--clinic", clinic)
    assert code == 1 and "name:" in err


def test_restore_erases_again_the_patients_erased_since_the_backup(tmp_path: Path) -> None:
    assert run("migrate")[0] == 0
    clinic = run("clinic", "create", "North Clinic")[1].split()[1]
    added = run("patient", "add", "--clinic", clinic, "--name", "Zelda Quimby",
                "--email", "zelda@example.org", "--timezone", "UTC")[1]  # fmt: skip
    patient = added.split()[1]
    copy = tmp_path / "copy.sqlite3"
    assert run("backup", str(copy))[0] == 0
    rt = Runtime.from_settings(load_settings())
    try:
        with session_scope(rt.engine) as db:
            erasure.erase_patient(db, rt, clinic, patient, "api key first", rt.clock())
    finally:
        rt.close()

    code, out, err = run("restore", str(copy), "--yes")
    assert code == 0, err
    assert "1 patient(s) erased since the backup were erased again" in out
    database = Path(str(load_settings().database_url).removeprefix("sqlite:///"))
    files = [database, database.with_name(database.name + "-wal")]
    assert all(b"Zelda" not in f.read_bytes() for f in files if f.exists())
    code, _, err = run("patient", "show", patient, "--clinic", clinic)
    assert code == 1 and "erased" in err


# Ticking: each run of the command is an instant of its own, as it would be by hand.
@freeze_time("2026-12-07 10:00:00", tick=True)
def test_import_reports_each_refused_row_and_a_second_run_skips_what_is_imported(
    tmp_path: Path,
) -> None:
    assert run("migrate")[0] == 0
    clinic = run("clinic", "create", "North Clinic")[1].split()[1]
    rows = tmp_path / "patients.csv"
    rows.write_text(
        "name,email,timezone,external_id,protocol,start_date,screening,body_area\n"
        "Ann,ann@example.org,Europe/Berlin,EHR-1,tap-water-hyperhidrosis,2026-12-07,none,palms\n"
        "Bea,bea@example,UTC,EHR-2,tap-water-hyperhidrosis,2026-12-07,none,palms\n"
    )
    dry = run("import", str(rows), "--clinic", clinic, "--dry-run")
    assert dry[0] == 1 and "1 patient(s) would be imported" in dry[1]
    assert json.loads(run("patient", "list", "--clinic", clinic, "--json")[1]) == []
    code, out, _ = run("import", str(rows), "--clinic", clinic)
    assert code == 1
    assert "1 patient(s) imported and enrolled" in out
    assert "line 3: email:" in out
    code, out, _ = run("import", str(rows), "--clinic", clinic, "--json")
    report = json.loads(out)
    assert code == 1, "the refused row is refused again"
    assert (report["imported"], report["known"]) == (0, [{"line": 2, "external_id": "EHR-1"}])
    code, _, err = run("import", str(tmp_path / "missing.csv"), "--clinic", clinic)
    assert code == 2 and "cannot read" in err
    latin = tmp_path / "latin.csv"
    latin.write_bytes("name,timezone\nMüller,UTC\n".encode("latin-1"))
    code, _, err = run("import", str(latin), "--clinic", clinic)
    assert code == 2 and "not UTF-8" in err


def test_import_refuses_an_absurd_file_in_one_line_with_exit_code_2(tmp_path: Path) -> None:
    assert run("migrate")[0] == 0
    clinic = run("clinic", "create", "North Clinic")[1].split()[1]
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{n}" for n in range(100)) + "\n")
    code, out, err = run("import", str(wide), "--clinic", clinic)
    assert (code, out) == (2, "")
    assert err == f"error: {wide}: header: 100 columns; an import file has at most 64\n"


def test_staff_add_prints_a_setup_link_that_opens_the_password_page(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from reminders.api import create_app
    from reminders.runtime import Runtime
    from reminders.settings import load_settings

    assert run("migrate")[0] == 0
    clinic = run("clinic", "create", "North Clinic")[1].split()[1]
    code, out, _ = run("staff", "add", "--clinic", clinic, "--email", "Boss@North.example",
                       "--role", "admin")  # fmt: skip
    assert code == 0, out
    link = out.split("service runs): ")[1].strip()
    assert link.startswith("http://127.0.0.1:8000/app/setup/")
    code, out, err = run("staff", "add", "--clinic", clinic, "--email", "boss@north.example")
    assert code != 0 and "already has a staff account" in out + err
    rt = Runtime.from_settings(load_settings(var_dir=tmp_path))
    with TestClient(create_app(rt), base_url="http://127.0.0.1:8000") as client:
        page = client.get(link.removeprefix("http://127.0.0.1:8000"))
    rt.close()
    assert page.status_code == 200
    assert "choose your password" in page.text
    assert "boss@north.example" in page.text
    listed = run("staff", "list", "--clinic", clinic)[1]
    assert listed.split("\t")[1:] == ["boss@north.example", "admin", "\n"]


@freeze_time("2026-12-07 10:00:00")
def test_a_burn_holds_the_plan_until_a_clinician_decides_on_the_command_line() -> None:
    _, _, enrollment = _enrolled_patient()
    shown = json.loads(run("enrollment", "show", enrollment, "--json")[1])
    today = shown["sessions"][0]["id"]
    assert run("session", "confirm", today, "--side-effect", "burn")[0] == 0
    held = json.loads(run("enrollment", "show", enrollment, "--json")[1])
    assert held["status"] == "held"
    assert [s["status"] for s in held["sessions"] if s["status"] == "planned"] == []
    code, _, err = run("enrollment", "pause", enrollment)
    assert code != 0 and "held" in err
    code, _, err = run(
        "enrollment", "hold-decision", enrollment, "--decision", "pause", "--by", "Dr W"
    )
    assert code != 0 and err.startswith("error: until:")
    code, out, _ = run(
        "enrollment", "hold-decision", enrollment, "--decision", "continue", "--by", "Dr W",
        "--note", "new pads",
    )  # fmt: skip
    assert (code, out.strip()) == (0, f"enrollment {enrollment} active")
    planned = [
        s["date"]
        for s in json.loads(run("enrollment", "show", enrollment, "--json")[1])["sessions"]
        if s["status"] == "planned"
    ]
    assert planned[0] == "2026-12-09"  # Wednesday: the first allowed day after today


def test_the_burn_story_holds_reminders_until_the_decision_as_json() -> None:
    code, out, _ = run(
        "simulate", "--protocol", "tap-water-hyperhidrosis", "--start", "2026-12-14",
        "--days", "60", "--story", "burn", "--json",
    )  # fmt: skip
    assert code == 0, out
    days = json.loads(out)["days"]
    (reported,) = [d["date"] for d in days if "escalation:side_effect" in d["clinic"]]
    decided = (date.fromisoformat(reported) + timedelta(days=3)).isoformat()
    reminded = [d["date"] for d in days if "reminder" in d["patient"]]
    assert not [d for d in reminded if reported < d <= decided]
    assert [d for d in reminded if d > decided]
    assert not [d for d in days if "missed" in d["patient"]]


@freeze_time("2026-12-07 10:00:00")
def test_a_reminder_time_inside_the_quiet_hours_is_refused_on_the_command_line() -> None:
    clinic, _, _ = _enrolled_patient()
    code, _, err = run(
        "patient", "add", "--clinic", clinic, "--name", "Bea", "--email", "bea@example.org",
        "--timezone", "UTC", "--reminder-time", "22:30",
    )  # fmt: skip
    assert code != 0 and err.startswith("error: reminder_time:") and "quiet hours" in err
