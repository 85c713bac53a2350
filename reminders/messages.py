"""Rendering messages: patient emails (plain text + HTML) and the text relays send, in the
patient's language; clinic alerts; webhook bodies.

Subjects never name a diagnosis or a protocol: an email preview is often seen by others.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from email.utils import format_datetime, parseaddr
from gettext import NullTranslations
from typing import Any

from markupsafe import Markup, escape

from reminders import sms
from reminders.channels.email import Attachment, Email
from reminders.i18n import Formats, templates, translator
from reminders.kinds import KINDS, DeliveryKind
from reminders.locales import N_

# Protocols name body areas in English; patients read them in their language.
BODY_AREAS = {
    "palms": N_("palms"),
    "soles": N_("soles"),
    "underarms": N_("underarms"),
    "heel": N_("heel"),
    "achilles": N_("Achilles tendon"),
    "elbow": N_("elbow"),
    "knee": N_("knee"),
    "shoulder": N_("shoulder"),
    "ankle": N_("ankle"),
    "wrist": N_("wrist"),
    "arm": N_("arm"),
    "leg": N_("leg"),
}
SENDER_SUFFIX = "via Reminders"
_BLANK_LINES = re.compile(r"\n{3,}")
# A completed course this close to its plan, and better for it, is thanked for keeping
# to it.
KEPT_TO_PLAN = 0.8


@dataclass(frozen=True, slots=True)
class Links:
    """The patient's links: the session page (with a form per action) and unsubscribe."""

    session: str | None
    unsubscribe: str
    # The patient's calendar feed.
    calendar: str | None = None

    def action(self, name: str) -> str | None:
        """Return the session page link that opens with one action's form."""
        return f"{self.session}?action={name}" if self.session else None


@dataclass(frozen=True, slots=True)
class PatientMessage:
    """What a patient message says."""

    kind: str
    # None where the clinic keeps names out of its webhooks: a relayed text greets
    # without one.
    name: str | None
    local_date: date
    minutes: int | None
    body_area: str | None
    tips: tuple[str, ...]
    links: Links
    preparation: tuple[str, ...] = ()
    days_since: int | None = None
    sessions_done: int | None = None
    adherence: float | None = None
    locale: str = "en"
    # How the patient knows and reaches their clinic.
    clinic: str = ""
    clinic_phone: str | None = None
    # A welcome's: the first session's day, when reminders come, the first two weeks'
    # session dates, and whether sessions are at the clinic.
    first_day: date | None = None
    reminder_at: str | None = None
    schedule: tuple[date, ...] = ()
    at_clinic: bool = False
    # A completion's: whether the reports improved, and whether the clinic will be in
    # touch about what comes next (the course did not respond, or got worse).
    improved: bool | None = None
    clinic_follows_up: bool = False

    @staticmethod
    def facts_from(payload: dict[str, Any]) -> dict[str, Any]:
        """Return the message fields a delivery's payload fixed when it was queued."""
        first_day = payload.get("first_day")
        return {
            "days_since": payload.get("days"),
            "sessions_done": payload.get("sessions"),
            "adherence": payload.get("adherence"),
            "improved": payload.get("improved"),
            "clinic_follows_up": bool(payload.get("clinic_follows_up")),
            "first_day": date.fromisoformat(first_day) if first_day else None,
            "reminder_at": payload.get("reminder_at"),
            "schedule": tuple(map(date.fromisoformat, payload.get("schedule", ()))),
            "at_clinic": bool(payload.get("at_clinic")),
        }


@functools.lru_cache(maxsize=16)
def _domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "reminders.invalid"


@dataclass(frozen=True, slots=True)
class Rendered:
    """A patient message in the patient's language: subject, plain text and HTML."""

    subject: str
    text: str
    html: str


def _text(text: str | None) -> str:
    assert text is not None, "every message kind has its texts (tests/test_kinds.py)"
    return text


def session_length(t: NullTranslations, minutes: int | None, body_area: str | None) -> str | None:
    """ "The session takes 20 minutes (palms).", in the catalog's language."""
    if not minutes:
        return None
    if body_area:
        area = t.gettext(BODY_AREAS.get(body_area, body_area))
        text = t.ngettext(
            "The session takes %(num)d minute (%(area)s).",
            "The session takes %(num)d minutes (%(area)s).",
            minutes,
        )
        return text % {"num": minutes, "area": area}
    return t.ngettext(
        "The session takes %(num)d minute.", "The session takes %(num)d minutes.", minutes
    ) % {"num": minutes}


# What differs between the messages of one burst (the patient's name and links) is
# rendered as these marks and filled in afterwards, so a burst renders each kind of
# message once. No input can hold them: text fields refuse control characters.
_NAME, _SESSION, _UNSUBSCRIBE, _CALENDAR = "\x00N\x00", "\x00S\x00", "\x00U\x00", "\x00C\x00"


def render(message: PatientMessage, *, html: bool = True) -> Rendered:
    """Render `message` in its locale, with the locale's dates and times; without the
    HTML (empty) when `html` is False: a relay sends text."""
    links = message.links
    marked = replace(
        message,
        name=_NAME if message.name else None,
        links=Links(
            _SESSION if links.session else None, _UNSUBSCRIBE, _CALENDAR if links.calendar else None
        ),
    )
    rendered = _render_marked(marked, html)
    filled = {
        _SESSION: links.session or "",
        _UNSUBSCRIBE: links.unsubscribe,
        _CALENDAR: links.calendar or "",
    }
    text, page = rendered.text, rendered.html
    # Links are URL-safe as they are; a name is escaped for the HTML.
    for mark, value in filled.items():
        text, page = text.replace(mark, value), page.replace(mark, value)
    name = message.name or ""
    return Rendered(
        rendered.subject, text.replace(_NAME, name), page.replace(_NAME, str(escape(name)))
    )


@functools.lru_cache(maxsize=1024)
def _render_marked(message: PatientMessage, html: bool) -> Rendered:
    t = translator(message.locale)
    formats = Formats(message.locale)
    day = formats.day(message.first_day or message.local_date)
    reminder_at = message.reminder_at
    context = {
        "m": message,
        "locale": message.locale,
        "day": day,
        "length": session_length(t, message.minutes, message.body_area),
        "schedule": [formats.day(d) for d in message.schedule],
        "reminder_at": formats.time(time.fromisoformat(reminder_at)) if reminder_at else None,
        "percent": int(message.adherence * 100 + 0.5) if message.adherence is not None else None,
        # Thanks only where it worked: a course that did not respond is not a success
        # (a completion queued before outcomes were read says nothing of them: None).
        "kept_to_plan": (message.adherence is None or message.adherence >= KEPT_TO_PLAN)
        and message.improved is not False,
        "confirm": message.links.action("confirm"),
        "skip": message.links.action("skip"),
        "snooze": message.links.action("snooze"),
        "away": message.links.action("away"),
        "problem": f"{message.links.session}/problem" if message.links.session else None,
    }
    environment = templates(message.locale)
    text = environment.get_template("patient.txt").render(context)
    if html:
        context["strong_day"] = Markup("<strong>%s</strong>") % day
    return Rendered(
        t.gettext(_text(KINDS[DeliveryKind(message.kind)].subject)),
        # Sections a message leaves out leave their blank lines behind.
        _BLANK_LINES.sub("\n\n", text),
        environment.get_template("patient.html").render(context) if html else "",
    )


def sms_text(message: PatientMessage) -> str:
    """The message as one GSM-7 SMS with the session's link (a relayed message's is short)."""
    t = translator(message.locale)
    link = message.links.session or ""
    return sms.fit(
        t.gettext(_text(KINDS[DeliveryKind(message.kind)].sms)),
        "clinic",
        clinic=message.clinic,
        day=Formats(message.locale).short_day(message.first_day or message.local_date),
        link=link,
    )


def patient_email(
    message: PatientMessage,
    *,
    delivery_id: str,
    sender: str,
    to: str,
    now: datetime,
    reply_to: str | None = None,
    attachments: Sequence[Attachment] = (),
) -> Email:
    """Return the email for a patient message: from the clinic "via Reminders" at the
    operator's address, answered to the clinic's `reply_to`, with a stable Message-ID and
    RFC 8058 one-click unsubscribe headers. Raises ValueError if `to` is not an address."""
    rendered = render(message)
    email = Email()
    email.set_header("Subject", rendered.subject)
    clinic = message.clinic
    email.set_sender(sender, f"{clinic} {SENDER_SUFFIX}" if clinic else None)
    if reply_to:
        email.set_address("Reply-To", clinic or None, reply_to)
    email.set_address("To", message.name, to)
    email.set_header("Date", format_datetime(now))
    email.set_header("Message-ID", f"<{delivery_id}@{_domain(sender)}>")
    email.set_header("Content-Language", message.locale)
    email.set_header("Auto-Submitted", "auto-generated")
    email.set_header("List-Unsubscribe", f"<{message.links.unsubscribe}>")
    email.set_header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    email.set_bodies(rendered.text, rendered.html, attachments)
    return email


def relayed_message(
    message: PatientMessage,
    *,
    delivery_id: str,
    patient_id: str,
    external_id: str | None,
    session_id: str | None,
    enrollment_id: str | None,
    timezone: str,
) -> dict[str, Any]:
    """Return the data of a webhook that asks the clinic's systems to pass a patient
    message on (by SMS, an app): ids, the day and the links; the message in the patient's
    language, as text and as one SMS; a welcome's plan."""
    data: dict[str, Any] = {
        "delivery_id": delivery_id,
        "kind": message.kind,
        "patient_id": patient_id,
        "external_id": external_id,
        "session_id": session_id,
        "enrollment_id": enrollment_id,
        "local_date": message.local_date.isoformat(),
        "timezone": timezone,
        "minutes": message.minutes,
        "links": {
            "session": message.links.session,
            "unsubscribe": message.links.unsubscribe,
            "calendar": message.links.calendar,
        },
    }
    rendered = render(message, html=False)
    data["message"] = {
        "locale": message.locale,
        "subject": rendered.subject,
        "text": rendered.text,
        "sms": sms_text(message),
    }
    if message.kind == "welcome":
        data["plan"] = {
            "first_day": message.first_day.isoformat() if message.first_day else None,
            "schedule": [day.isoformat() for day in message.schedule],
            "reminder_at": message.reminder_at,
            "at_clinic": message.at_clinic,
        }
    return data


def staff_text(
    kind: str, *, email: str, clinic: str, until: datetime, link: str | None, login: str
) -> tuple[str, str]:
    """Return the subject and text of an email to a staff member: a setup or reset
    `link` valid `until`, or word that their account is locked `until`."""
    text = templates("en").get_template("staff_email.txt").render(
        kind=kind, email=email, clinic=clinic, link=link, login=login,
        until=until.strftime("%Y-%m-%d %H:%M"),
    )  # fmt: skip
    return _text(KINDS[DeliveryKind(kind)].subject), text


# The clinic's alert email says what happened in its subject, so a burn never looks like
# a lapse in the inbox; the patient is named by the clinic's own id, never by name, and
# no subject names a condition.
ALERT_SUBJECTS = {
    "side_effect": "Side effect reported — patient {reference}",
    "unreachable": "Cannot reach patient {reference}",
    "no_response": "Review waiting — patient {reference}",
    "no_improvement": "Course ended without improvement — patient {reference}",
    "worsening": "Getting worse — patient {reference}",
    "dormant": "Reminders stopped, no answer — patient {reference}",
    "expired": "Course ran out of time — patient {reference}",
    "over_treatment": "More sessions than the plan allows — patient {reference}",
    "missed_sessions": "Missed sessions — patient {reference}",
    "lapsed": "Stopped confirming sessions — patient {reference}",
    "unrecorded": "Appointment not recorded — patient {reference}",
    "unsubscribed": "Unsubscribed from reminders — patient {reference}",
    "undeliverable": "Messages not delivered — patient {reference}",
}
HOLD_SUBJECT = "Urgent: {what} — patient {reference}"


def alert_subject(
    reason: str, reference: str, *, held: str | None = None, urgent: bool = False
) -> str:
    """Return the subject of the clinic's alert for `reason` about the patient
    `reference` (their external id, else a short id); `held`: what happened to a held
    plan ("burn reported")."""
    if held is not None:
        return HOLD_SUBJECT.format(what=held, reference=reference)
    if urgent:
        return "Urgent: " + alert_subject(reason, reference)
    return ALERT_SUBJECTS.get(reason, "A patient needs attention — {reference}").format(
        reference=reference
    )


def clinic_email(
    subject: str, text: str, *, delivery_id: str, sender: str, to: str, now: datetime
) -> Email:
    """Return an email to the clinic: to its alert address, or to one of its staff.
    Raises ValueError if `to` is not an address."""
    email = Email()
    email.set_header("Subject", subject)
    email.set_sender(sender)
    email.set_address("To", None, to)
    email.set_header("Date", format_datetime(now))
    email.set_header("Message-ID", f"<{delivery_id}@{_domain(sender)}>")
    email.set_header("Auto-Submitted", "auto-generated")
    email.set_bodies(templates("en").get_template("clinic_alert.txt").render(text=text))
    return email


def webhook_body(event: str, timestamp: datetime, data: dict[str, Any]) -> bytes:
    """Return the JSON body `{type, timestamp, data}` of a webhook."""
    document = {"type": event, "timestamp": timestamp.isoformat(), "data": data}
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
