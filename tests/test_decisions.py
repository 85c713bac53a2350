"""`decide`: is a patient message worth sending now, later, or never? A table of cases
on plain values; no database."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from reminders.decisions import (
    SEND,
    Decision,
    Defer,
    End,
    Outcome,
    PatientMessageFacts,
    address_cut_off,
    decide,
    undeliverable_cause,
)
from reminders.states import DeliveryState
from reminders.timing import QuietHours

QUIET = QuietHours(time(21, 0), time(8, 0))
NONE_QUIET = QuietHours(time(0, 0), time(0, 0))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def facts(**changes: object) -> PatientMessageFacts:
    values: dict[str, object] = {
        "kind": "reminder",
        "expires_at": utc("2026-12-07 23:00"),  # midnight in Berlin
        "patient_reachable": True,
        "session_status": "planned",
        "enrollment_status": "active",
        "zone": "Europe/Berlin",
        "quiet": QUIET,
    }
    values.update(changes)
    return PatientMessageFacts(**values)  # type: ignore[arg-type]


CANCELLED, EXPIRED = DeliveryState.CANCELLED, DeliveryState.EXPIRED
NOON = "2026-12-07 11:00"


@pytest.mark.parametrize(
    ("case", "now", "expected"),
    [
        (facts(), NOON, SEND),
        (facts(patient_reachable=False), NOON, End(CANCELLED, "patient unsubscribed")),
        (facts(), "2026-12-07 23:00", End(EXPIRED, "useful window passed")),
        (facts(), "2026-12-08 09:00", End(EXPIRED, "useful window passed")),
        (facts(session_status="confirmed"), NOON, End(CANCELLED, "session confirmed")),
        (facts(session_status="cancelled"), NOON, End(CANCELLED, "session cancelled")),
        # A missed-session notice is about a session that is no longer planned.
        (facts(kind="missed", session_status="missed", expires_at=None), "2026-12-08 09:00", SEND),
        (facts(enrollment_status="paused"), NOON, End(CANCELLED, "enrollment paused")),
        # 06:00 Berlin is quiet until 08:00 Berlin (07:00 UTC), inside the window.
        (facts(), "2026-12-07 05:00", Defer(utc("2026-12-07 07:00"))),
        # 22:00 Berlin: quiet hours end tomorrow, after the session's day.
        (facts(), "2026-12-07 21:00", End(EXPIRED, "quiet hours until too late")),
        # Without a window, quiet hours only defer.
        (facts(kind="overdue", session_status=None, expires_at=None), "2026-12-07 21:00",
         Defer(utc("2026-12-08 07:00"))),
        (facts(quiet=NONE_QUIET), "2026-12-07 22:30", SEND),
        # An unreachable patient outranks everything else.
        (facts(patient_reachable=False, session_status="confirmed"), "2026-12-08 09:00",
         End(CANCELLED, "patient unsubscribed")),
    ],
)  # fmt: skip
def test_decide(case: PatientMessageFacts, now: str, expected: Decision) -> None:
    assert decide(case, utc(now)) == expected


CAUSES = [
    # (what, kind, channel, state, error, told already, expected cause)
    ("a webhook refused for good", "reminder", "webhook", "failed", "HTTP 400: bad body",
     False, "webhook: HTTP 400"),
    ("given up after retries", "reminder", "webhook", "dead", "timed out", False,
     "webhook: timed out"),
    ("an SMTP refusal is its reply code, not its text (it quotes the address)", "reminder",
     "email", "failed", "SMTP 550 5.1.1 <ann@example.org>: no such user", False,
     "email: SMTP 550"),
    ("no error text", "follow_up", "email", "dead", None, False, "email: unknown error"),
    ("still retrying: nothing to tell yet", "reminder", "webhook", "pending", "HTTP 500",
     False, None),
    ("sent", "reminder", "email", "sent", None, False, None),
    ("the clinic was told already (its endpoint is failing)", "reminder", "webhook",
     "failed", "HTTP 500", True, None),
    ("a message to the clinic itself", "escalation", "email", "dead", "SMTP 451 busy",
     False, None),
    ("an escalation event to the clinic", "patient.escalation", "webhook", "failed",
     "HTTP 500", False, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "channel", "state", "error", "told", "expected"),
    [case[1:] for case in CAUSES],
    ids=[case[0] for case in CAUSES],
)
def test_undeliverable_cause(
    kind: str, channel: str, state: str, error: str | None, told: bool, expected: str | None
) -> None:
    assert undeliverable_cause(kind, channel, state, error, told) == expected


@pytest.mark.parametrize(
    ("audience", "outcome", "cut_off"),
    [
        ("patient", Outcome("failed", "SMTP 550 no such user", address_refused=True), True),
        ("patient", Outcome("failed", "SMTP 554 sender refused"), False),
        ("patient", Outcome("failed", "message could not be encoded (ValueError)"), False),
        ("patient", Outcome("retry", "SMTP 451 try later", address_refused=True), False),
        ("clinic", Outcome("failed", "SMTP 550", address_refused=True), False),
        ("patient", None, False),
    ],
)
def test_only_an_address_refused_for_good_cuts_a_patient_off(
    audience: str, outcome: Outcome | None, cut_off: bool
) -> None:
    assert address_cut_off(audience, outcome) is cut_off
