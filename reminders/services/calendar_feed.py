"""A patient's private calendar feed: its link, revoking it, and the feed behind it.

The link (`/c/{token}.ics`) is the same in every message until the clinic revokes it:
the token is derived from the patient id and `Patient.calendar_generation`, which a
revocation counts up, and the database holds only its hash (`reminders.tokens`). What
the feed holds is built by `reminders.calendar`.
"""

from __future__ import annotations

import hmac
from datetime import date, datetime, timedelta
from email.utils import parseaddr

import sqlalchemy as sa
from sqlmodel import Session, col

from reminders import calendar
from reminders.i18n import translator
from reminders.models import Clinic, Patient
from reminders.runtime import Runtime
from reminders.stores import session_store
from reminders.timing import local_today, parse_hhmm
from reminders.tokens import (
    CALENDAR,
    calendar_link,
    calendar_token,
    delete_tokens,
    find_token,
    store_tokens,
)

# The feed shows the sessions of the last three months as well as the plan ahead: what
# the patient did is worth seeing, but a feed that grows for ever is fetched every few
# hours for ever.
SHOWN_PAST = timedelta(days=90)
# Event UIDs end in this rather than the service's host: a calendar must see the same
# event after the operator moves the service to another address.
UID_DOMAIN = "reminders"


def feed_link(db: Session, rt: Runtime, patient: Patient, now: datetime) -> str:
    """Return the patient's feed link, its token stored if it was not already."""
    link, row = calendar_link(
        rt.secret_key, rt.settings.base_url, patient.id, patient.calendar_generation, now
    )
    store_tokens(db, [row])
    return link


def revoke_feed(db: Session, rt: Runtime, patient: Patient, now: datetime) -> str:
    """Stop the patient's feed link from working and return the one that replaces it."""
    delete_tokens(db, patient.id, CALENDAR)
    # Counted up in the database, so two revocations at once cannot both hand out the
    # same new link.
    db.execute(
        sa.update(Patient)
        .where(col(Patient.id) == patient.id)
        .values(calendar_generation=col(Patient.calendar_generation) + 1)
    )
    db.refresh(patient, ["calendar_generation"])
    return feed_link(db, rt, patient, now)


def feed_of_token(db: Session, rt: Runtime, token: str, now: datetime) -> bytes | None:
    """Return the feed a link's token opens, or None if it opens none: unknown,
    revoked, or its patient erased."""
    row = find_token(db, token, CALENDAR, now)
    patient = db.get(Patient, row.patient_id) if row is not None else None
    if patient is None or patient.erased_at is not None:
        return None
    # A message prepared while the feed was being revoked may have stored the old
    # token again; only the current generation's token opens the feed.
    current = calendar_token(rt.secret_key, patient.id, patient.calendar_generation)
    if not hmac.compare_digest(token, current):
        return None
    clinic = db.get(Clinic, patient.clinic_id)
    assert clinic is not None  # foreign key
    return sessions_calendar(
        db, rt, patient, clinic, local_today(now, patient.timezone) - SHOWN_PAST
    )


def sessions_calendar(
    db: Session, rt: Runtime, patient: Patient, clinic: Clinic, since: date
) -> bytes:
    """The patient's sessions from `since` on as an iCalendar document: the feed, and
    the attachment of a welcome email. `patient` and `clinic` may be rows read by
    column, as the dispatcher reads them."""
    return calendar.feed(
        session_store.for_calendar(db, patient.id, since),
        calendar.FeedPatient(patient.timezone, parse_hhmm(patient.reminder_time)),
        organizer(rt, clinic),
        UID_DOMAIN,
        translator(patient.locale),
    )


def organizer(rt: Runtime, clinic: Clinic) -> calendar.Organizer:
    """The clinic as patients know it, and where a reply reaches it: its reply-to
    address, else the service's sender address."""
    name = clinic.display_name or clinic.name
    return calendar.Organizer(name, clinic.reply_to or parseaddr(rt.settings.email_from)[1])
