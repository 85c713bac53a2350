"""A patient's sessions as an iCalendar feed (RFC 5545), for the calendar on their phone.

Pure: the sessions, the patient's settings and the clinic come in, the feed's bytes go
out; no database, no clock. A calendar keeps what it was given and replaces it only when
told it changed, so each session is one event whose identity never changes (`UID`) and
whose `SEQUENCE` grows with every change to its row. A session that will not take place
(skipped, or re-planned away) stays in the feed as `STATUS:CANCELLED`, so a calendar
that already shows it strikes it out instead of keeping it.

Only what the patient needs to turn up is in it: "Treatment session" or "Appointment at
the clinic", the minutes, and the clinic. Never the diagnosis, the protocol or the body
area (a calendar is often shared with family or an employer), and no link to a session
page (those expire; the feed is kept for months).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from gettext import NullTranslations
from typing import TYPE_CHECKING

from icalendar import Calendar, Event, Timezone, vCalAddress, vDuration
from icalendar.enums import STATUS, TRANSP

from reminders.states import SessionStatus
from reminders.timing import local_to_utc, zone

if TYPE_CHECKING:
    from reminders.stores.session_store import CalendarSession

PRODID = "-//reminders//treatment sessions//EN"
MEDIA_TYPE = "text/calendar; charset=utf-8"
# How often a calendar should fetch the feed again (RFC 7986): a plan changes with every
# confirmation, a few hours late is soon enough, and polling more only costs the server.
REFRESH_EVERY = timedelta(hours=6)
# What a session that is not going to happen looks like in a calendar; a missed or
# unrecorded (or not reminded) session did stand in the plan, so it stays as it was.
_EVENT_STATUS = {
    SessionStatus.PLANNED: STATUS.CONFIRMED,
    SessionStatus.CONFIRMED: STATUS.CONFIRMED,
    SessionStatus.MISSED: STATUS.CONFIRMED,
    SessionStatus.UNRECORDED: STATUS.CONFIRMED,
    SessionStatus.NOT_REMINDED: STATUS.CONFIRMED,
    SessionStatus.SKIPPED: STATUS.CANCELLED,
    SessionStatus.CANCELLED: STATUS.CANCELLED,
}
# A VTIMEZONE describes its zone's changes over a span of dates; this much either side
# of the sessions covers any event a calendar places near the span's ends.
_ZONE_MARGIN = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class FeedPatient:
    """What of the patient the events are made from: their zone and the local time they
    treat themselves at (their reminder time)."""

    timezone: str
    reminder_time: time


@dataclass(frozen=True, slots=True)
class Organizer:
    """The clinic as the events' organizer: the name patients know it by and where a
    reply reaches it."""

    name: str
    email: str


def feed(
    sessions: Sequence[CalendarSession],
    patient: FeedPatient,
    clinic: Organizer,
    host: str,
    translation: NullTranslations,
) -> bytes:
    """Return the patient's feed, its titles from `translation` (the patient's
    language): one event per session, UIDs `{session id}@{host}`."""
    title = translation.gettext("%(clinic)s: treatment sessions")
    calendar = Calendar()
    calendar.prodid = PRODID
    calendar.version = "2.0"
    calendar.calendar_name = title % {"clinic": clinic.name}
    # RFC 7986 asks for the VALUE parameter, which the property setter leaves out; the
    # X- property is the older spelling some clients (Outlook) read instead.
    calendar.add("refresh-interval", REFRESH_EVERY, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(REFRESH_EVERY))
    for session in sessions:
        calendar.add_component(_event(session, patient, clinic, host, translation))
    _add_zones(calendar, [s.local_date for s in sessions], patient.timezone)
    ical: bytes = calendar.to_ical()  # untyped in icalendar
    return ical


def _event(
    session: CalendarSession,
    patient: FeedPatient,
    clinic: Organizer,
    host: str,
    translation: NullTranslations,
) -> Event:
    count = session.minutes
    minutes = translation.ngettext("%(minutes)d minute", "%(minutes)d minutes", count)
    event = Event.new(
        uid=f"{session.id}@{host}",
        # Without a METHOD, DTSTAMP is when the event last changed (RFC 5545 3.8.7.2), not
        # when the feed was made: a feed fetched twice is the same feed.
        stamp=session.updated_at,
        last_modified=session.updated_at,
        sequence=sequence(session),
        status=_EVENT_STATUS[session.status],
        description=minutes % {"minutes": count},
        organizer=_organizer(clinic),
    )
    if session.at_clinic:
        # The service knows the appointment's day, not its hour (the clinic books it):
        # a day's event says so, where the patient's reminder time would mislead.
        event.summary = translation.gettext("Appointment at the clinic")
        event.add("dtstart", session.local_date)
        event.add("dtend", session.local_date + timedelta(days=1))
        event.add("transp", TRANSP.TRANSPARENT)
    else:
        event.summary = translation.gettext("Treatment session")
        event.add("dtstart", starts_at(session.local_date, patient.reminder_time, session.timezone))
        event.add("duration", timedelta(minutes=session.minutes))
    return event


def sequence(session: CalendarSession) -> int:
    """The event's revision: whole seconds from the row's creation to its last change.
    Every write to a session row sets `updated_at` (`stores.session_store`), so this
    grows with each change and stays the same between them."""
    return int((session.updated_at - session.created_at).total_seconds())


def starts_at(day: date, reminder_time: time, timezone: str) -> datetime:
    """The session's start as a wall-clock time in its zone: the reminder time, or, when
    a DST change skips it that day, the first minute after the gap (as reminders do)."""
    return local_to_utc(day, reminder_time, timezone).astimezone(zone(timezone))


def _organizer(clinic: Organizer) -> vCalAddress:
    address = vCalAddress(f"mailto:{clinic.email}")
    address.params["CN"] = clinic.name
    return address


def _add_zones(calendar: Calendar, days: Sequence[date], patient_zone: str) -> None:
    """Add a VTIMEZONE for every zone an event starts in. A feed with no session yet
    still carries the patient's zone: RFC 5545 wants at least one component."""
    if not days:
        calendar.add_component(Timezone.from_tzid(patient_zone))
        return
    calendar.add_missing_timezones(
        first_date=min(days) - _ZONE_MARGIN, last_date=max(days) + _ZONE_MARGIN
    )
