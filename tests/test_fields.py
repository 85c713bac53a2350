"""The text rules every input shares, as a table; and the CLI, which reaches the
services by other paths than the API, refusing the same text on both databases."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from freezegun import freeze_time
from typer.testing import CliRunner

from reminders.cli import app
from reminders.fields import ascii_domain, email_address, note, single_line

RULES: list[tuple[Callable[[str], str], str, bool]] = [
    (single_line, "Ann Example", True),
    (single_line, "Zoë Ünal-O'Brien, Jr.", True),
    (single_line, "=?utf-8?b?YXR0YWNrZXI=?=", True),  # harmless text; the header encodes it
    (single_line, "Eve\r\nBcc: x@evil.example", False),
    (single_line, "Eve\nBcc", False),
    (single_line, "tab\there", False),
    (single_line, "nul\x00", False),
    (single_line, "del\x7f", False),
    (single_line, "nel\x85", False),
    (single_line, "line\u2028separator", False),
    (note, "first line\r\nsecond\tline\n", True),
    (note, "nul\x00", False),
    (note, "escape\x1b[31m", False),
    (note, "form\x0cfeed", False),
    (email_address, "ann@example.org", True),
    (email_address, "a@bä.co", True),
    (email_address, "ann@example.org\r\nBcc: x@evil.example", False),
    (email_address, "a\x00@example.org", False),
    (email_address, "a@-bä.co", False),
    (email_address, "Ann <ann@example.org>", False),
]


@pytest.mark.parametrize(("rule", "value", "accepted"), RULES)
def test_text_rules(rule: Callable[[str], str], value: str, accepted: bool) -> None:
    if accepted:
        assert rule(value) == value
    else:
        with pytest.raises(ValueError, match=r"control character|not an email|domain"):
            rule(value)


def test_international_domains_get_their_ascii_form() -> None:
    assert ascii_domain("bä.co") == "xn--b-0fa.co"
    assert ascii_domain("BÜCHER.example") == "xn--bcher-kva.example"
    assert ascii_domain("example.org") == "example.org"


runner = CliRunner()


@pytest.mark.both_databases
@freeze_time("2026-11-21 10:00:00")
def test_the_cli_refuses_control_characters_naming_the_option(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMINDERS_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("REMINDERS_DATABASE_URL", database_url)

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.stdout, result.stderr

    assert run("migrate")[0] == 0
    code, _, err = run("clinic", "create", "North\r\nClinic")
    assert (code, err.split(":")[:2]) == (1, ["error", " name"])
    code, _, err = run("clinic", "create", "North", "--alert-email", "a\x00@north.example")
    assert (code, err.split(":")[:2]) == (1, ["error", " alert_email"])
    code, out, _ = run("clinic", "create", "North Clinic")
    assert code == 0
    clinic = out.split()[1]
    common = ["patient", "add", "--clinic", clinic, "--timezone", "UTC"]
    code, _, err = run(*common, "--name", "Eve\r\nBcc: x@evil.example")
    assert (code, err.split(":")[:2]) == (1, ["error", " name"])
    code, out, _ = run(*common, "--name", "Ann", "--email", "a@bä.co")
    assert code == 0
    patient = out.split()[1]
    code, out, _ = run(
        "enroll", patient, "--protocol", "sports-injury-short-course",
        "--start", "2026-11-21", "--screened", "--body-area", "knee",
    )  # fmt: skip
    assert code == 0
    shown = json.loads(run("plan", "show", out.split()[1], "--json")[1])
    session = shown["sessions"][0]["id"]
    code, _, err = run("session", "skip", session, "--reason", "away\x1b[2J")
    assert (code, err.split(":")[:2]) == (1, ["error", " reason"])
    code, _, err = run("webhook", "add", "https://hooks.example.org/\nx", "--clinic", clinic)
    assert (code, err.split(":")[:2]) == (1, ["error", " url"])
