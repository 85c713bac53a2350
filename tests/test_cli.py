from __future__ import annotations

import itertools
import json
from datetime import date
from pathlib import Path

import pytest
from freezegun import freeze_time
from typer.testing import CliRunner

from reminders.cli import app

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


@freeze_time("2026-11-21 10:00:00")
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
        "enroll", patient, "--protocol", "sports-injury-short-course", "--start", "2026-11-21"
    )
    assert code != 0
    assert "screening" in err
    code, out, _ = run(
        "enroll", patient, "--protocol", "sports-injury-short-course",
        "--start", "2026-11-21", "--screened",
    )  # fmt: skip
    assert code == 0
    enrollment = out.split()[1]
    code, out, _ = run("plan", "show", enrollment, "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["phase"] == "course"
    first = shown["sessions"][0]
    assert first["date"] == "2026-11-21"
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
    from reminders import db as database
    from reminders.settings import load_settings

    database.migrate(load_settings().database_url, "0001")

    code, _, err = run("clinic", "create", "North")
    assert code == 2
    assert "the database is at schema revision 0001, this version needs" in err
    assert err.rstrip().endswith("run `reminders migrate`")
    assert run("migrate")[0] == 0
    assert run("clinic", "create", "North")[0] == 0


def test_protocols_are_listed_without_a_database() -> None:
    code, out, _ = run("protocols")
    assert code == 0
    assert "tap-water-hyperhidrosis" in out
