"""The safety rules, each a table: what holds a plan, what reaches a person at the clinic,
when a patient cannot be reached, how a plan starts again, and how urgent each
escalation is."""

from __future__ import annotations

from datetime import date, time

import pytest

from reminders.safety import (
    DEFAULT_HOLD_ON,
    Priority,
    Unreachable,
    blame_patient,
    holds_plan,
    priority,
    restart_on,
    tells_the_clinic,
    unreachable_causes,
    worst,
)
from reminders.timing import QuietHours

EVENING = QuietHours(time(21, 0), time(8, 0))


@pytest.mark.parametrize(
    ("side_effect", "hold_on", "holds"),
    [
        ("burn", DEFAULT_HOLD_ON, True),
        ("blistering", DEFAULT_HOLD_ON, True),
        ("redness", DEFAULT_HOLD_ON, False),
        ("other", DEFAULT_HOLD_ON, False),
        (None, DEFAULT_HOLD_ON, False),
        ("burn", (), False),
        ("redness", ("redness",), True),
    ],
)
def test_a_plan_is_held_on_the_side_effects_its_protocol_names(
    side_effect: str | None, hold_on: tuple[str, ...], holds: bool
) -> None:
    assert holds_plan(side_effect, hold_on) is holds


@pytest.mark.parametrize(
    ("side_effect", "note", "hold_on", "told"),
    [
        ("burn", None, DEFAULT_HOLD_ON, True),
        ("blistering", None, (), True),
        ("other", "dizzy, heart racing", DEFAULT_HOLD_ON, True),
        ("other", "   ", DEFAULT_HOLD_ON, False),
        ("other", None, DEFAULT_HOLD_ON, False),
        ("redness", "a little", DEFAULT_HOLD_ON, False),
        ("redness", None, ("redness",), True),
        ("dryness", None, DEFAULT_HOLD_ON, False),
        ("none", "fine", DEFAULT_HOLD_ON, False),
        (None, None, DEFAULT_HOLD_ON, False),
    ],
)
def test_a_person_at_the_clinic_hears_of_what_needs_one(
    side_effect: str | None, note: str | None, hold_on: tuple[str, ...], told: bool
) -> None:
    assert tells_the_clinic(side_effect, note, hold_on) is told


@pytest.mark.parametrize(
    ("stored", "reported", "kept"),
    [
        (None, "redness", "redness"),
        ("burn", "redness", "burn"),
        ("redness", "blistering", "blistering"),
        ("other", "dryness", "other"),
        ("dryness", None, "dryness"),
        ("none", "burn", "burn"),
    ],
)
def test_a_session_keeps_the_worst_side_effect_it_was_told_of(
    stored: str | None, reported: str | None, kept: str
) -> None:
    assert worst(stored, reported) == kept


@pytest.mark.parametrize(
    ("reminder_time", "quiet", "channel", "endpoint", "refused", "causes"),
    [
        (time(18, 0), EVENING, "email", False, False, ()),
        (time(22, 30), EVENING, "email", False, False, (Unreachable.QUIET_HOURS,)),
        (time(7, 59), EVENING, "email", False, False, (Unreachable.QUIET_HOURS,)),
        (time(8, 0), EVENING, "email", False, False, ()),
        (time(21, 0), EVENING, "email", False, False, (Unreachable.QUIET_HOURS,)),
        (time(12, 0), QuietHours(time(12, 0), time(13, 0)), "email", False, False,
         (Unreachable.QUIET_HOURS,)),
        (time(12, 0), QuietHours(time(9, 0), time(9, 0)), "email", False, False, ()),
        (time(18, 0), EVENING, "webhook", False, False, (Unreachable.NO_ENDPOINT,)),
        (time(18, 0), EVENING, "webhook", True, False, ()),
        (time(18, 0), EVENING, "email", False, True, (Unreachable.EMAIL_REFUSED,)),
        (time(18, 0), EVENING, "webhook", True, True, ()),
        (time(23, 0), EVENING, "webhook", False, False,
         (Unreachable.QUIET_HOURS, Unreachable.NO_ENDPOINT)),
    ],
)  # fmt: skip
def test_a_patient_is_unreachable_for_every_cause_that_applies(
    reminder_time: time,
    quiet: QuietHours,
    channel: str,
    endpoint: bool,
    refused: bool,
    causes: tuple[Unreachable, ...],
) -> None:
    found = unreachable_causes(
        reminder_time, quiet, channel, reminder_endpoint=endpoint, email_refused=refused
    )
    assert found == causes


MONDAY = date(2027, 3, 1)


@pytest.mark.parametrize(
    ("given_at", "notice_days", "after_hold", "first_day"),
    [
        ("home", 2, False, None),
        ("home", 2, True, date(2027, 3, 2)),
        ("clinic", 2, False, date(2027, 3, 3)),
        ("clinic", 2, True, date(2027, 3, 3)),
        ("clinic", 0, False, MONDAY),
        ("clinic", 0, True, date(2027, 3, 2)),
        ("clinic", 5, True, date(2027, 3, 6)),
    ],
)
def test_a_plan_that_starts_again_gives_notice_where_it_needs_to(
    given_at: str, notice_days: int, after_hold: bool, first_day: date | None
) -> None:
    assert restart_on(MONDAY, given_at, notice_days, after_hold=after_hold) == first_day


@pytest.mark.parametrize(
    ("reason", "holds", "rank"),
    [
        ("side_effect", True, Priority.HOLD),
        ("side_effect", False, Priority.OTHER),
        ("unreachable", False, Priority.UNREACHABLE),
        ("no_response", False, Priority.REVIEW),
        ("missed_sessions", False, Priority.ADHERENCE),
        ("lapsed", False, Priority.ADHERENCE),
        ("unrecorded", False, Priority.ADHERENCE),
        ("unsubscribed", False, Priority.OTHER),
        ("undeliverable", False, Priority.OTHER),
    ],
)
def test_escalations_rank_by_how_urgent_their_cause_is(
    reason: str, holds: bool, rank: Priority
) -> None:
    assert priority(reason, holds=holds) == rank


def test_the_ranks_run_from_a_held_plan_to_the_rest() -> None:
    assert [p.name for p in sorted(Priority)] == [
        "HOLD", "WORSENING", "UNREACHABLE", "REVIEW", "ADHERENCE", "OTHER",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("reminded", "reachable", "blamed"),
    [
        (True, True, True),
        (True, False, True),  # the reminder went out before the cause arose
        (False, True, True),  # a passing failure: the clinic hears of it as undeliverable
        (False, False, False),  # nothing could reach them: not their miss
    ],
)
def test_a_session_not_done_is_the_patients_miss_only_if_a_reminder_could_reach_them(
    reminded: bool, reachable: bool, blamed: bool
) -> None:
    assert blame_patient(reminded, reachable) is blamed
