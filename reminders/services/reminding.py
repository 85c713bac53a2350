"""Turning plans into deliveries: reminders, follow-ups and missed sessions.

Deliveries are written in the transaction of whatever causes them. A reminder is
materialised once it is due within LOOKAHEAD, by the re-plan that creates its session or
else by the sweep; the database's unique key makes a second one impossible.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, NamedTuple, Protocol

import sqlalchemy as sa
from sqlmodel import Session, col

from reminders.db.rows import in_chunks, read_columns, table_of
from reminders.kinds import DeliveryKind, event_of
from reminders.models import Delivery, Enrollment, Patient, TreatmentSession, WebhookEndpoint
from reminders.settings import Settings
from reminders.states import DeliveryAudience, DeliveryState, EnrollmentStatus, SessionStatus
from reminders.stores import outbox, session_store
from reminders.stores.session_store import SessionRow
from reminders.timing import (
    ZONE_SPREAD,
    QuietHours,
    SendWindow,
    end_of_local_day,
    parse_hhmm,
    send_window,
    send_window_after,
    zone,
)

LOOKAHEAD = timedelta(hours=36)
NOTICE_USEFUL = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who a patient message goes to and when the patient may be disturbed."""

    clinic_id: str
    patient_id: str
    channel: str
    reminder_time: time
    quiet: QuietHours


class DeliveryPreferences(Protocol):
    """What `recipient` reads: a Patient row, or the same columns read in bulk."""

    @property
    def id(self) -> str: ...
    @property
    def clinic_id(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def reminder_time(self) -> str: ...
    @property
    def quiet_start(self) -> str | None: ...
    @property
    def quiet_end(self) -> str | None: ...


PATIENT_FACT_COLUMNS = (
    col(Patient.id),
    col(Patient.clinic_id),
    col(Patient.timezone),
    col(Patient.reminder_time),
    col(Patient.quiet_start),
    col(Patient.quiet_end),
    col(Patient.channel),
    col(Patient.unsubscribed_at),
)


@dataclass(frozen=True, slots=True)
class PatientFacts:
    """What planning and reminding need of a patient, read as plain columns
    (PATIENT_FACT_COLUMNS) where many patients are read at once."""

    id: str
    clinic_id: str
    timezone: str
    reminder_time: str
    quiet_start: str | None
    quiet_end: str | None
    channel: str
    unsubscribed_at: datetime | None


def recipient(patient: DeliveryPreferences, settings: Settings) -> Recipient:
    """Return the patient's delivery preferences, with the operator's quiet hours as the
    default."""
    quiet = _quiet_hours(patient.quiet_start, patient.quiet_end, settings)
    return Recipient(
        patient.clinic_id, patient.id, patient.channel, parse_hhmm(patient.reminder_time), quiet
    )


def _quiet_hours(start: str | None, end: str | None, settings: Settings) -> QuietHours:
    return QuietHours(
        parse_hhmm(start) if start else settings.quiet_hours_start,
        parse_hhmm(end) if end else settings.quiet_hours_end,
    )


@dataclass(frozen=True, slots=True)
class Subscription:
    """An enabled webhook endpoint and the event types it takes ('*' for all)."""

    id: str
    clinic_id: str
    events: frozenset[str]


# Built once: every event asks. Table columns keep them plain Core reads.
_ENDPOINTS = table_of(WebhookEndpoint).c
_ENABLED_ENDPOINTS = sa.select(_ENDPOINTS.id, _ENDPOINTS.clinic_id, _ENDPOINTS.events).where(
    _ENDPOINTS.enabled.is_(True)
)
_ENABLED_ENDPOINTS_OF_CLINICS = _ENABLED_ENDPOINTS.where(
    _ENDPOINTS.clinic_id.in_(sa.bindparam("clinic_ids", expanding=True))
)
# One clinic is the common case (every event); an expanding IN costs a recompile.
_ENABLED_ENDPOINTS_OF_CLINIC = _ENABLED_ENDPOINTS.where(
    _ENDPOINTS.clinic_id == sa.bindparam("clinic_id")
)


def _subscription(endpoint_id: str, clinic_id: str, events: str) -> Subscription:
    return Subscription(endpoint_id, clinic_id, frozenset(e.strip() for e in events.split(",")))


def endpoints_by_clinic(db: Session, clinic_ids: set[str]) -> dict[str, list[Subscription]]:
    """Return each clinic's enabled webhook endpoints."""
    found: dict[str, list[Subscription]] = defaultdict(list)
    ids = sorted(clinic_ids)
    for some in in_chunks(ids):
        chunk = {"clinic_ids": some}
        for row in read_columns(db, _ENABLED_ENDPOINTS_OF_CLINICS, chunk):
            found[row.clinic_id].append(_subscription(row.id, row.clinic_id, row.events))
    return found


def clinic_endpoints(db: Session, clinic_id: str) -> list[Subscription]:
    """Return one clinic's enabled webhook endpoints."""
    found = read_columns(db, _ENABLED_ENDPOINTS_OF_CLINIC, {"clinic_id": clinic_id})
    return [_subscription(row.id, row.clinic_id, row.events) for row in found]


def subscribed(endpoint: Subscription, event: str) -> bool:
    """Return True if the endpoint wants this event type."""
    return "*" in endpoint.events or event in endpoint.events


def patient_delivery_rows(
    who: Recipient,
    kind: str,
    session_id: str | None,
    window: SendWindow,
    now: datetime,
    endpoints: list[Subscription],
    payload: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Return outbox rows for one patient message: one email, or one webhook per endpoint
    of the clinic that takes the event. A window already closed gives an expired row."""
    useful = window.useful and now < window.expires
    state = DeliveryState.PENDING if useful else DeliveryState.EXPIRED
    if who.channel == "email":
        targets = [("email", who.patient_id)]
    else:
        event = event_of(kind)
        targets = [("webhook", e.id) for e in endpoints if subscribed(e, event)]
    body = json.dumps(payload or {})
    return [
        outbox.new_delivery(
            clinic_id=who.clinic_id,
            kind=kind,
            audience=DeliveryAudience.PATIENT,
            channel=channel,
            target=target,
            now=now,
            due_at=window.due,
            expires_at=window.expires,
            patient_id=who.patient_id,
            session_id=session_id,
            payload=body,
            state=state,
        )
        for channel, target in targets
    ]


class SessionToRemind(NamedTuple):
    """A planned session whose messages may fall due soon, and its patient."""

    session_id: str
    local_date: date
    timezone: str
    who: Recipient
    at_clinic: bool = False


@lru_cache(maxsize=4096)
def _session_windows(
    day: date,
    at: time,
    tz: str,
    quiet: QuietHours,
    follow_up_after_min: int,
    day_before: bool,
    at_clinic: bool,
) -> tuple[tuple[str, SendWindow], ...]:
    # Cached: a bulk enrollment asks the same question for many patients.
    if at_clinic:
        # The patient is reminded of the appointment the evening before ("tomorrow", so
        # useful only that day); staff record it: nothing to confirm, no follow-up.
        before = day - timedelta(days=1)
        return (("appointment", send_window(before, at, tz, quiet)),)
    reminder = send_window(day, at, tz, quiet)
    windows = [("reminder", reminder)]
    if follow_up_after_min:
        follow_up = send_window_after(reminder, follow_up_after_min, tz, quiet)
        if follow_up.useful:
            windows.append(("follow_up", follow_up))
    if day_before:
        before = day - timedelta(days=1)
        windows.append(("day_before", send_window(before, at, tz, quiet)))
    return tuple(windows)


def _windows_for(
    settings: Settings,
    day: date,
    tz: str,
    reminder_time: time,
    quiet: QuietHours,
    at_clinic: bool,
) -> tuple[tuple[str, SendWindow], ...]:
    """Return (kind, window) of each message for a session on local `day` in `tz`."""
    return _session_windows(
        day,
        reminder_time,
        tz,
        quiet,
        settings.follow_up_after_min,
        settings.day_before_reminder,
        at_clinic,
    )


def reminder_rows(
    settings: Settings,
    now: datetime,
    sessions: Iterable[SessionToRemind],
    endpoints: dict[str, list[Subscription]],
) -> list[dict[str, Any]]:
    """Return the reminder, follow-up, day-before and appointment rows due within
    LOOKAHEAD for the sessions."""
    rows: list[dict[str, Any]] = []
    horizon = now + LOOKAHEAD
    for session_id, day, tz, who, at_clinic in sessions:
        windows = _windows_for(settings, day, tz, who.reminder_time, who.quiet, at_clinic)
        for kind, window in windows:
            if window.due <= horizon:
                rows.extend(
                    patient_delivery_rows(
                        who, kind, session_id, window, now, endpoints.get(who.clinic_id, [])
                    )
                )
    return rows


def reminder_rows_for(
    db: Session,
    settings: Settings,
    now: datetime,
    sessions: list[SessionToRemind],
) -> list[dict[str, Any]]:
    """Return the reminder rows due within LOOKAHEAD for sessions already in hand (just
    planned or re-planned), without asking the database for the sessions again."""
    first, last = lookahead_days(now)
    soon = [s for s in sessions if first <= s.local_date <= last]
    if not soon:
        return []
    webhook_clinics = {s.who.clinic_id for s in soon if s.who.channel == "webhook"}
    endpoints = endpoints_by_clinic(db, webhook_clinics) if webhook_clinics else {}
    return reminder_rows(settings, now, soon, endpoints)


def write_reminders_for(
    db: Session,
    settings: Settings,
    now: datetime,
    sessions: list[SessionToRemind],
) -> None:
    """Write the rows of `reminder_rows_for`; one already there is kept."""
    outbox.queue(db, reminder_rows_for(db, settings, now, sessions))


def lookahead_days(now: datetime) -> tuple[date, date]:
    """Return the first and last local dates whose sessions may have a reminder due
    within LOOKAHEAD, in any zone."""
    return (now - ZONE_SPREAD).date(), (now + LOOKAHEAD + ZONE_SPREAD).date()


def _not_yet_reminded(*columns: Any) -> sa.Select[Any]:
    """Planned sessions of active, subscribed enrollments between the local dates
    `first_day` and `last_day` (bound later) that have no reminder yet."""
    return (
        sa.select(*columns)
        .join(Enrollment, col(Enrollment.id) == TreatmentSession.enrollment_id)
        .join(Patient, col(Patient.id) == Enrollment.patient_id)
        .where(
            col(TreatmentSession.status) == SessionStatus.PLANNED,
            col(TreatmentSession.local_date) >= sa.bindparam("first_day"),
            col(TreatmentSession.local_date) <= sa.bindparam("last_day"),
            col(Enrollment.status) == EnrollmentStatus.ACTIVE,
            col(Patient.unsubscribed_at).is_(None),
            # Most sessions got their reminder when they were planned; skip those.
            ~sa.exists().where(
                col(Delivery.session_id) == TreatmentSession.id,
                col(Delivery.kind).in_((DeliveryKind.REMINDER, DeliveryKind.APPOINTMENT)),
            ),
        )
    )


# When a session's messages fall due depends only on these values, which many sessions
# share (quiet hours not set read as ''; NULL would never match in the IN below).
_WINDOW_KEY = (
    col(TreatmentSession.local_date),
    col(TreatmentSession.timezone),
    col(Patient.reminder_time),
    sa.func.coalesce(col(Patient.quiet_start), ""),
    sa.func.coalesce(col(Patient.quiet_end), ""),
    col(TreatmentSession.at_clinic),
)
_WINDOW_KEYS_NOT_YET_REMINDED = _not_yet_reminded(*_WINDOW_KEY).distinct()
_SESSIONS_NOT_YET_REMINDED = _not_yet_reminded(
    col(TreatmentSession.id),
    col(TreatmentSession.local_date),
    col(TreatmentSession.timezone),
    col(TreatmentSession.at_clinic),
    *PATIENT_FACT_COLUMNS,
).where(sa.tuple_(*_WINDOW_KEY).in_(sa.bindparam("keys", expanding=True)))


def reminders_not_yet_written(
    db: Session, settings: Settings, now: datetime
) -> list[dict[str, Any]]:
    """Return the reminder (and follow-up, and day-before) rows that fall due within
    LOOKAHEAD for planned sessions of active enrollments that have none yet: the sweep's
    safety net for sessions that came into the window after they were planned.

    Reads only, so the sweep holds no write lock while it looks: most sessions it finds
    are not due yet and need nothing written. A session cancelled before the rows are
    written is harmless; the dispatcher cancels its messages when they come due.

    The date window is wide enough for every zone, so it holds most of a day's sessions,
    and hardly any is due yet. The database first names the distinct (date, zone,
    reminder time, quiet hours) among them; only the sessions of those that fall due
    soon are read: read row by row, the whole window holds the GIL long enough every
    minute to slow every API request in flight."""
    first_day, last_day = lookahead_days(now)
    days = {"first_day": first_day, "last_day": last_day}
    horizon = now + LOOKAHEAD
    due_soon = []
    for day, tz, reminder_time, quiet_start, quiet_end, at_clinic in db.execute(
        _WINDOW_KEYS_NOT_YET_REMINDED, days
    ):
        quiet = _quiet_hours(quiet_start, quiet_end, settings)
        at = parse_hhmm(reminder_time)
        windows = _windows_for(settings, day, tz, at, quiet, at_clinic)
        if any(window.due <= horizon for _, window in windows):
            due_soon.append((day, tz, reminder_time, quiet_start, quiet_end, at_clinic))
    sessions: list[SessionToRemind] = []
    for keys in in_chunks(due_soon):
        chunk = {**days, "keys": keys}
        found = db.execute(_SESSIONS_NOT_YET_REMINDED, chunk)
        for session_id, day, tz, at_clinic, *preferences in found:
            who = recipient(PatientFacts(*preferences), settings)
            sessions.append(SessionToRemind(session_id, day, tz, who, at_clinic))
    if not sessions:
        return []
    webhook_clinics = {s.who.clinic_id for s in sessions if s.who.channel == "webhook"}
    endpoints = endpoints_by_clinic(db, webhook_clinics) if webhook_clinics else {}
    return reminder_rows(settings, now, sessions, endpoints)


def missed_sessions(
    db: Session, settings: Settings, now: datetime, enrollment_ids: Sequence[str] | None = None
) -> list[SessionRow]:
    """Return planned sessions whose local day ended more than the grace period ago, of
    every enrollment or only of `enrollment_ids`."""
    grace = timedelta(hours=settings.missed_grace_h)
    # A local day ends at the earliest 14 hours before the UTC day does.
    latest = (now - grace + ZONE_SPREAD - timedelta(days=1)).date()
    candidates = session_store.planned_until(db, latest, enrollment_ids)
    return [s for s in candidates if end_of_local_day(s.local_date, s.timezone) + grace <= now]


def notice_rows(
    db: Session,
    settings: Settings,
    kind: str,
    session_id: str | None,
    patient: PatientFacts | Patient,
    now: datetime,
    payload: dict[str, Any] | None = None,
    *,
    endpoints: list[Subscription] | None = None,
) -> list[dict[str, Any]]:
    """Rows for a patient notice about a session (missed, overdue, course completed,
    welcome), sent now or when quiet hours end, useful for a day. One per session and
    kind, ever. `endpoints`: the clinic's, where the caller has read them."""
    who = recipient(patient, settings)
    local_now = now.astimezone(zone(patient.timezone))
    window = send_window(
        local_now.date(),
        local_now.time().replace(second=0, microsecond=0),
        patient.timezone,
        who.quiet,
    )
    # Not before it was written: the wall clock above has whole minutes.
    window = SendWindow(max(window.due, now), now + NOTICE_USEFUL)
    if endpoints is None:
        endpoints = clinic_endpoints(db, who.clinic_id) if who.channel == "webhook" else []
    return patient_delivery_rows(who, kind, session_id, window, now, endpoints, payload)


def missed_notice_rows(
    db: Session, settings: Settings, session: SessionRow, patient: Patient, now: datetime
) -> list[dict[str, Any]]:
    """Rows telling the patient a session was missed (and that the plan has moved on)."""
    return notice_rows(db, settings, "missed", session.id, patient, now)


def overdue_notice_rows(
    db: Session,
    settings: Settings,
    due_session_id: str,
    patient: Patient,
    days: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """Rows nudging a patient `days` past the session they were due for; one per lapse,
    as the unique key ties it to that session."""
    return notice_rows(db, settings, "overdue", due_session_id, patient, now, {"days": days})


def alert_clinic(
    db: Session,
    clinic_id: str,
    subject: str,
    text: str,
    now: datetime,
    *,
    kind: str = DeliveryKind.CLINIC_ALERT,
) -> None:
    """Queue an email to the clinic's alert address, in the caller's transaction (`kind`:
    an alert, or the clinic's digest)."""
    alert = outbox.new_delivery(
        clinic_id=clinic_id, kind=kind, audience=DeliveryAudience.CLINIC,
        channel="email", target=clinic_id, now=now,
        payload=json.dumps({"subject": subject, "text": text}),
    )  # fmt: skip
    outbox.queue(db, [alert])


def snooze(
    db: Session, settings: Settings, session: SessionRow, patient: Patient, now: datetime
) -> datetime | None:
    """Remind the patient again later today (once per session); return when, or None if
    quiet hours or the end of the day leave no time. Asking again returns the time
    already set."""
    existing = outbox.of_session(db, session.id, "snooze")
    if existing is not None:
        due_at, state = existing
        waiting_or_sent = (DeliveryState.PENDING, DeliveryState.SENDING, DeliveryState.SENT)
        return due_at if state in waiting_or_sent else None
    who = recipient(patient, settings)
    later = (now + timedelta(minutes=settings.snooze_minutes)).astimezone(zone(session.timezone))
    if later.date() != session.local_date:
        return None
    window = send_window(
        session.local_date,
        later.time().replace(second=0, microsecond=0),
        session.timezone,
        who.quiet,
    )
    if not window.useful:
        return None
    endpoints = clinic_endpoints(db, who.clinic_id) if who.channel == "webhook" else []
    rows = patient_delivery_rows(who, "snooze", session.id, window, now, endpoints)
    outbox.queue(db, rows)
    return window.due
