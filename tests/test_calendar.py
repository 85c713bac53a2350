"""The calendar feed as built (`reminders.calendar`), read by two independent parsers:
icalendar, and vobject, which builds its zones from the feed's own VTIMEZONEs, so a
wrong VTIMEZONE shows as a wrong instant. The feed served through its link is tested in
tests/api/test_calendar_feed.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import icalendar
import vobject  # type: ignore[import-untyped]  # a test-only second parser, untyped

from reminders.calendar import FeedPatient, Organizer, feed, starts_at
from reminders.i18n import translator
from reminders.states import SessionStatus
from reminders.stores.session_store import CalendarSession
from tests.conftest import at

CLINIC = Organizer("North Clinic", "desk@clinic.example.org")
ENGLISH = translator("en")
CREATED = at("2027-03-01 10:00")


@dataclass(frozen=True)
class Seen:
    """One event as a parser reads it; both parsers must read the same."""

    wall: datetime | date  # the start as written: a local wall-clock time, or a day
    instant: datetime | None  # the start in UTC; None for a day's event
    status: str
    sequence: int
    summary: str


def read_feed(body: bytes) -> dict[str, Seen]:
    """The feed's events by UID, as icalendar reads them, checked against vobject; every
    zone an event starts in has its VTIMEZONE."""
    calendar = icalendar.Calendar.from_ical(body)
    first = {str(e["UID"]): _seen(e.start, e["STATUS"], e["SEQUENCE"], e["SUMMARY"])
             for e in calendar.events}  # fmt: skip
    second = {
        e.uid.value: _seen(e.dtstart.value, e.status.value, e.sequence.value, e.summary.value)
        for e in vobject.readOne(body.decode()).contents.get("vevent", [])
    }
    assert first == second
    starts = [e["DTSTART"].params.get("TZID") for e in calendar.events]
    assert {z for z in starts if z} <= {tz.tz_name for tz in calendar.timezones}
    return first


def _seen(start: datetime | date, status: Any, sequence: Any, summary: Any) -> Seen:
    if isinstance(start, datetime):
        return Seen(start.replace(tzinfo=None), start.astimezone(UTC), str(status),
                    int(str(sequence)), str(summary))  # fmt: skip
    return Seen(start, None, str(status), int(str(sequence)), str(summary))


def session(
    name: str, day: date, timezone: str = "UTC", status: SessionStatus = SessionStatus.PLANNED
) -> CalendarSession:
    return CalendarSession(name, day, timezone, status, 20, False, CREATED, CREATED)


def test_a_time_skipped_or_repeated_by_a_dst_change_is_placed_as_reminders_are() -> None:
    # In a gap, the first minute after it; a time that exists twice, the first of them.
    cases = {
        "gap-berlin": ("Europe/Berlin", date(2027, 3, 28), "03:00", "2027-03-28 01:00"),
        "gap-new-york": ("America/New_York", date(2027, 3, 14), "03:00", "2027-03-14 07:00"),
        "fold-berlin": ("Europe/Berlin", date(2027, 10, 31), "02:30", "2027-10-31 00:30"),
    }
    sessions = [session(name, day, tz) for name, (tz, day, _, _) in cases.items()]
    patient = FeedPatient("Europe/Berlin", time(2, 30))
    events = read_feed(feed(sessions, patient, CLINIC, "reminders.example.org", ENGLISH))
    for name, (tz, day, wall, instant) in cases.items():
        local = datetime.combine(day, time.fromisoformat(wall))
        assert starts_at(day, time(2, 30), tz).replace(tzinfo=None) == local
        assert events[f"{name}@reminders.example.org"].wall == local
        assert events[f"{name}@reminders.example.org"].instant == at(instant)


def test_a_session_that_will_not_happen_is_cancelled_and_the_rest_stand() -> None:
    sessions = [
        session(status.value, date(2027, 3, 1) + timedelta(days=n), status=status)
        for n, status in enumerate(SessionStatus)
    ]
    body = feed(sessions, FeedPatient("UTC", time(9, 0)), CLINIC, "h", ENGLISH)
    statuses = {uid.partition("@")[0]: e.status for uid, e in read_feed(body).items()}
    assert statuses == {
        "planned": "CONFIRMED", "confirmed": "CONFIRMED", "missed": "CONFIRMED",
        "unrecorded": "CONFIRMED", "not_reminded": "CONFIRMED", "skipped": "CANCELLED",
        "cancelled": "CANCELLED",
    }  # fmt: skip


def test_sequence_counts_the_seconds_from_creation_to_the_last_change() -> None:
    changed = session("s", date(2027, 3, 1))._replace(updated_at=CREATED + timedelta(hours=2))
    body = feed([changed], FeedPatient("UTC", time(9, 0)), CLINIC, "h", ENGLISH)
    assert read_feed(body)["s@h"].sequence == 7200
    event = icalendar.Calendar.from_ical(body).events[0]
    assert event.last_modified == event.stamp == CREATED + timedelta(hours=2)


def test_the_title_and_description_are_in_the_patients_language() -> None:
    german = translator("de")
    body = feed(
        [session("s", date(2027, 3, 1))], FeedPatient("UTC", time(9, 0)), CLINIC, "h", german
    )
    event = icalendar.Calendar.from_ical(body).events[0]
    assert str(event["SUMMARY"]) == german.gettext("Treatment session")
    minutes = german.ngettext("%(minutes)d minute", "%(minutes)d minutes", 20)
    assert str(event["DESCRIPTION"]) == minutes % {"minutes": 20}
    assert str(event["ORGANIZER"]) == "mailto:desk@clinic.example.org"
    assert event["ORGANIZER"].params["CN"] == "North Clinic"
    assert "North Clinic" in str(icalendar.Calendar.from_ical(body)["X-WR-CALNAME"])


def test_a_feed_with_no_session_is_still_a_valid_calendar() -> None:
    body = feed([], FeedPatient("America/Sao_Paulo", time(9, 0)), CLINIC, "h", ENGLISH)
    assert read_feed(body) == {}
    calendar = icalendar.Calendar.from_ical(body)
    assert [tz.tz_name for tz in calendar.timezones] == ["America/Sao_Paulo"]
    assert vobject.readOne(body.decode()).vtimezone.tzid.value == "America/Sao_Paulo"
