"""When a message should leave: local wall-clock times in IANA zones, DST, quiet hours.

Pure functions, no clock: callers pass `now`. The rules of reminding (README, "The course"):
a local time that does not exist that day (DST gap) moves to the first valid minute
after it; a time that exists twice (DST fold) uses the first; quiet hours are never
broken; a message is worth sending only until its session's local day ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

# No zone on Earth has a gap longer than this; the search for the gap's end stops there.
_LONGEST_GAP_MIN = 180


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """Return the ZoneInfo for an IANA name (cached)."""
    return ZoneInfo(name)


@lru_cache(maxsize=4096)
def parse_hhmm(text: str) -> time:
    """Return the time in 'HH:MM'; raise ValueError otherwise."""
    hours, _, minutes = text.partition(":")
    if len(hours) != 2 or len(minutes) != 2 or not (hours + minutes).isdigit():
        raise ValueError(f"expected HH:MM, got {text!r}")
    return time(int(hours), int(minutes))


def _exists(local: datetime) -> bool:
    return local.astimezone(UTC).astimezone(local.tzinfo).replace(fold=0) == local.replace(fold=0)


def local_to_utc(day: date, at: time, tz: str) -> datetime:
    """Return the UTC instant of wall-clock `at` on local `day` in zone `tz`.

    In a DST gap the first valid minute after the gap is used; in a fold, the first
    occurrence (fold=0).
    """
    local = datetime.combine(day, at, tzinfo=zone(tz))
    if not _exists(local):
        for _ in range(_LONGEST_GAP_MIN):
            local += timedelta(minutes=1)
            if _exists(local):
                break
    return local.astimezone(UTC)


def end_of_local_day(day: date, tz: str) -> datetime:
    """Return the UTC instant at which local `day` ends (the next local midnight)."""
    return local_to_utc(day + timedelta(days=1), time(0, 0), tz)


# The widest gap between UTC and any local clock (UTC-12 to UTC+14): a window of
# local dates this wide around a UTC instant holds every zone's date of that instant.
ZONE_SPREAD = timedelta(hours=14)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Local times between which nothing is sent; `start` > `end` wraps midnight."""

    start: time
    end: time

    def covers(self, wall: time) -> bool:
        """Return True if the local wall-clock time falls in quiet hours."""
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end


def after_quiet_hours(instant: datetime, tz: str, quiet: QuietHours) -> datetime:
    """Return `instant` if it is outside quiet hours, else the instant they end."""
    local = instant.astimezone(zone(tz))
    wall = local.time().replace(tzinfo=None)
    if not quiet.covers(wall):
        return instant
    day = local.date()
    if quiet.start > quiet.end and wall >= quiet.start:
        day += timedelta(days=1)  # quiet hours started this evening; they end tomorrow
    return local_to_utc(day, quiet.end, tz)


@dataclass(frozen=True, slots=True)
class SendWindow:
    """When a message about a session may leave (`due`) and when it is stale (`expires`)."""

    due: datetime
    expires: datetime

    @property
    def useful(self) -> bool:
        """False when quiet hours push the send past the end of its useful window."""
        return self.due < self.expires


def send_window(
    day: date, at: time, tz: str, quiet: QuietHours, *, expires_on: date | None = None
) -> SendWindow:
    """Return the window for a message at wall-clock `at` on local `day`.

    The message is due at that time, or when quiet hours end; it expires when the local
    day `expires_on` (default: `day`) ends.
    """
    due = after_quiet_hours(local_to_utc(day, at, tz), tz, quiet)
    return SendWindow(due, end_of_local_day(expires_on or day, tz))


def send_window_after(first: SendWindow, minutes: int, tz: str, quiet: QuietHours) -> SendWindow:
    """Return the window of a message `minutes` after the one in `first` actually
    leaves (after quiet hours, if they held it back), expiring with it: a nudge never
    arrives together with the message it follows up."""
    due = after_quiet_hours(first.due + timedelta(minutes=minutes), tz, quiet)
    return SendWindow(due, first.expires)


def local_today(now: datetime, timezone: str) -> date:
    """Return the local date in `timezone` at the instant `now`."""
    return now.astimezone(zone(timezone)).date()
