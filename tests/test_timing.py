from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from reminders.timing import (
    QuietHours,
    after_quiet_hours,
    end_of_local_day,
    local_to_utc,
    send_window,
    send_window_after,
)

QUIET = QuietHours(time(21, 0), time(8, 0))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("tz", "day", "at", "expected"),
    [
        # spring forward: 02:00 -> 03:00; 02:30 does not exist, first valid minute is 03:00
        ("America/New_York", date(2027, 3, 14), time(2, 30), "2027-03-14 07:00"),
        ("Europe/Berlin", date(2027, 3, 28), time(2, 15), "2027-03-28 01:00"),
        # Lord Howe springs forward by 30 minutes: 02:00 -> 02:30
        ("Australia/Lord_Howe", date(2026, 10, 4), time(2, 10), "2026-10-03 15:30"),
        # fall back: 01:30 happens twice in New York; the first is EDT (UTC-4)
        ("America/New_York", date(2026, 11, 1), time(1, 30), "2026-11-01 05:30"),
        ("Europe/Berlin", date(2026, 10, 25), time(2, 30), "2026-10-25 00:30"),
        # Lord Howe falls back 02:00 -> 01:30; 01:45 twice, first at UTC+11
        ("Australia/Lord_Howe", date(2027, 4, 4), time(1, 45), "2027-04-03 14:45"),
        # an ordinary day
        ("Europe/Berlin", date(2026, 12, 7), time(18, 30), "2026-12-07 17:30"),
    ],
)
def test_local_time_resolves_dst_gaps_forward_and_folds_to_the_first(
    tz: str, day: date, at: time, expected: str
) -> None:
    assert local_to_utc(day, at, tz) == utc(expected)


def test_end_of_local_day_is_the_next_local_midnight_even_on_a_short_day() -> None:
    assert end_of_local_day(date(2027, 3, 14), "America/New_York") == utc("2027-03-15 04:00")
    assert end_of_local_day(date(2026, 12, 7), "Australia/Lord_Howe") == utc("2026-12-07 13:00")


def test_quiet_hours_that_wrap_midnight() -> None:
    assert QUIET.covers(time(22, 0))
    assert QUIET.covers(time(7, 59))
    assert not QUIET.covers(time(8, 0))
    assert not QUIET.covers(time(20, 59))
    assert not QuietHours(time(13, 0), time(14, 0)).covers(time(12, 0))
    assert QuietHours(time(13, 0), time(14, 0)).covers(time(13, 30))


def test_a_send_in_quiet_hours_waits_for_their_end() -> None:
    evening = utc("2026-12-07 21:30")  # 22:30 in Berlin
    assert after_quiet_hours(evening, "Europe/Berlin", QUIET) == utc("2026-12-08 07:00")
    early = utc("2026-12-08 05:00")  # 06:00 in Berlin
    assert after_quiet_hours(early, "Europe/Berlin", QUIET) == utc("2026-12-08 07:00")


def test_a_late_reminder_pushed_past_its_day_is_not_useful() -> None:
    window = send_window(date(2026, 12, 7), time(22, 0), "Europe/Berlin", QUIET)
    assert not window.useful
    on_time = send_window(date(2026, 12, 7), time(18, 0), "Europe/Berlin", QUIET)
    assert on_time.useful
    assert on_time.due == utc("2026-12-07 17:00")
    assert on_time.expires == utc("2026-12-07 23:00")


def test_a_follow_up_keeps_its_distance_from_a_reminder_quiet_hours_held_back() -> None:
    reminder = send_window(date(2026, 12, 7), time(0, 0), "Europe/Berlin", QUIET)
    assert reminder.due == datetime(2026, 12, 7, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
    follow_up = send_window_after(reminder, 120, "Europe/Berlin", QUIET)
    assert follow_up.due == datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    assert follow_up.expires == reminder.expires


def test_a_follow_up_that_would_land_in_quiet_hours_is_of_no_use_that_day() -> None:
    reminder = send_window(date(2026, 12, 7), time(20, 0), "Europe/Berlin", QUIET)
    assert not send_window_after(reminder, 120, "Europe/Berlin", QUIET).useful
