"""Winding down and running out of time, as tables of cases."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from reminders.course_state import expires_on, goes_dormant, is_short, unanswered_since
from reminders.planner import EnrollmentSettings, PastSession
from reminders.protocols import Protocol

DAY = date(2027, 1, 4)  # a Monday


def on(offset: int, status: str) -> PastSession:
    return PastSession(DAY + timedelta(days=offset), status)  # type: ignore[arg-type]


CASES = [
    ("misses before the clinic was told do not count", [on(-3, "missed"), on(-1, "missed")], 0),
    ("each weekly miss counts", [on(0, "missed"), on(7, "missed")], 2),
    ("a skip is an answer", [on(0, "missed"), on(7, "skipped"), on(14, "missed")], 1),
    ("a confirmation is an answer", [on(0, "missed"), on(7, "confirmed")], 0),
    ("planned and cancelled sessions are not misses", [on(0, "planned"), on(7, "cancelled")], 0),
]


@pytest.mark.parametrize(("history", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_unanswered_since(history: list[PastSession], expected: int) -> None:
    assert unanswered_since(history, DAY) == expected


def test_three_unanswered_weekly_sessions_make_a_course_dormant() -> None:
    history = [on(0, "missed"), on(7, "missed"), on(14, "missed")]
    assert goes_dormant(history, DAY)
    assert not goes_dormant(history[:2], DAY)
    assert not goes_dormant(history, None)  # never slowed: never dormant


def test_only_short_courses_expire_two_weeks_after_their_full_plan(
    protocols: dict[str, Protocol],
) -> None:
    short = {p for p, protocol in protocols.items() if is_short(protocol)}
    assert short == {
        "sports-injury-short-course",
        "dexamethasone-plantar-heel",
        "dexamethasone-tendinopathy",
        "magnesium-sulphate-spasticity",
    }
    sports = protocols["sports-injury-short-course"]
    # Five sessions two days apart: the last on day 9, so the course expires on day 23.
    assert expires_on(sports, EnrollmentSettings(DAY), None) == DAY + timedelta(days=22)
    resumed = DAY + timedelta(days=30)
    assert expires_on(sports, EnrollmentSettings(DAY), resumed) == resumed + timedelta(days=22)
    assert expires_on(protocols["tap-water-hyperhidrosis"], EnrollmentSettings(DAY), None) is None
