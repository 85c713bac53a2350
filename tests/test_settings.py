from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from reminders.settings import SettingsError, load_settings, validate_timezone


def test_defaults_come_from_the_config_file_and_put_sqlite_under_var(tmp_path: Path) -> None:
    settings = load_settings(var_dir=tmp_path)
    assert settings.horizon_days == 14
    assert settings.quiet_hours_start == time(21, 0)
    assert settings.database_url == f"sqlite:///{tmp_path / 'reminders.sqlite3'}"
    assert settings.email_backend == "maildir"


def test_environment_overrides_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMINDERS_HORIZON_DAYS", "21")
    monkeypatch.setenv("REMINDERS_QUIET_HOURS_END", "07:30")
    settings = load_settings(var_dir=tmp_path)
    assert settings.horizon_days == 21
    assert settings.quiet_hours_end == time(7, 30)


def test_a_clinic_config_dir_supplies_its_own_file(tmp_path: Path) -> None:
    (tmp_path / "reminders.toml").write_text("horizon_days = 7\n")
    assert load_settings(config_dir=tmp_path).horizon_days == 7


def test_bad_value_names_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMINDERS_HORIZON_DAYS", "lots")
    with pytest.raises(SettingsError, match="horizon_days"):
        load_settings(var_dir=tmp_path)


def test_unknown_key_in_config_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "reminders.toml").write_text("horizon_dayz = 7\n")
    with pytest.raises(SettingsError, match="horizon_dayz"):
        load_settings(config_dir=tmp_path)


@pytest.mark.parametrize(
    "name", ["localtime", "posixrules", "Factory", "right/UTC", "posix/Europe/Berlin", "Mars/Base"]
)
def test_zones_that_are_not_a_patients_place_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        validate_timezone(name)


def test_a_default_reminder_time_inside_the_default_quiet_hours_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMINDERS_DEFAULT_REMINDER_TIME", "22:30")
    with pytest.raises(SettingsError, match=r"default_reminder_time .*22:30 falls inside"):
        load_settings(var_dir=tmp_path)
    monkeypatch.setenv("REMINDERS_QUIET_HOURS_START", "23:00")
    assert load_settings(var_dir=tmp_path).default_reminder_time.hour == 22
