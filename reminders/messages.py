"""Rendering messages: patient emails (plain text + HTML), clinic alerts, webhook bodies.

Subjects never name a diagnosis or a protocol: an email preview is often seen by others.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import date, datetime
from email.utils import format_datetime, parseaddr
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from reminders.channels.email import Email

SUBJECTS = {
    "reminder": "Your treatment session today",
    "day_before": "Your treatment session tomorrow",
    "follow_up": "Did you manage today's session?",
    "missed": "We missed your session",
    "overdue": "Time for your next session",
    "completed": "Your treatment course is complete",
    "appointment": "Your appointment tomorrow",
    "snooze": "Reminder: your treatment session today",
    "welcome": "Your treatment plan",
}

# Templates ship with the package and change only with a release (and a restart), so
# they are not looked up on disk again at every render.
_templates = Environment(
    loader=PackageLoader("reminders", "templates"),
    auto_reload=False,
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


@dataclass(frozen=True, slots=True)
class Links:
    """The patient's links: the session page (with a form per action) and unsubscribe."""

    session: str | None
    unsubscribe: str

    def action(self, name: str) -> str | None:
        """Return the session page link that opens with one action's form."""
        return f"{self.session}?action={name}" if self.session else None


@dataclass(frozen=True, slots=True)
class PatientMessage:
    """What a patient message says."""

    kind: str
    name: str
    local_date: date
    minutes: int | None
    body_area: str | None
    tips: tuple[str, ...]
    links: Links
    preparation: tuple[str, ...] = ()
    days_since: int | None = None
    sessions_done: int | None = None
    adherence: float | None = None
    # A welcome's: the clinic, the first session's day, when reminders come, the first
    # two weeks' session dates, and whether sessions are at the clinic.
    clinic: str | None = None
    first_day: date | None = None
    reminder_at: str | None = None
    schedule: tuple[date, ...] = ()
    at_clinic: bool = False

    @staticmethod
    def facts_from(payload: dict[str, Any]) -> dict[str, Any]:
        """Return the message fields a delivery's payload fixed when it was queued."""
        first_day = payload.get("first_day")
        return {
            "days_since": payload.get("days"),
            "sessions_done": payload.get("sessions"),
            "adherence": payload.get("adherence"),
            "clinic": payload.get("clinic"),
            "first_day": date.fromisoformat(first_day) if first_day else None,
            "reminder_at": payload.get("reminder_at"),
            "schedule": tuple(map(date.fromisoformat, payload.get("schedule", ()))),
            "at_clinic": bool(payload.get("at_clinic")),
        }


@functools.lru_cache(maxsize=16)
def _domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "reminders.invalid"


def _day(day: date) -> str:
    return f"{day:%A} {day.day} {day:%B}"


def patient_email(
    message: PatientMessage, *, delivery_id: str, sender: str, to: str, now: datetime
) -> Email:
    """Return the email for a patient message, with a stable Message-ID and RFC 8058
    one-click unsubscribe headers. Raises ValueError if `to` is not an address."""
    context = {
        "m": message,
        "day": _day(message.first_day or message.local_date),
        "schedule": [_day(d) for d in message.schedule],
        "confirm": message.links.action("confirm"),
        "skip": message.links.action("skip"),
        "snooze": message.links.action("snooze"),
        "away": message.links.action("away"),
    }
    email = Email()
    email.set_header("Subject", SUBJECTS[message.kind])
    email.set_sender(sender)
    email.set_address("To", message.name, to)
    email.set_header("Date", format_datetime(now))
    email.set_header("Message-ID", f"<{delivery_id}@{_domain(sender)}>")
    email.set_header("Auto-Submitted", "auto-generated")
    email.set_header("List-Unsubscribe", f"<{message.links.unsubscribe}>")
    email.set_header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    email.set_bodies(
        _templates.get_template("patient.txt").render(context),
        _templates.get_template("patient.html").render(context),
    )
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
    message on (by SMS, an app): ids, the day and the links; a welcome's plan."""
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
        "links": {"session": message.links.session, "unsubscribe": message.links.unsubscribe},
    }
    if message.kind == "welcome":
        data["plan"] = {
            "first_day": message.first_day.isoformat() if message.first_day else None,
            "schedule": [day.isoformat() for day in message.schedule],
            "reminder_at": message.reminder_at,
            "at_clinic": message.at_clinic,
        }
    return data


def clinic_email(
    subject: str, text: str, *, delivery_id: str, sender: str, to: str, now: datetime
) -> Email:
    """Return an alert email to a clinic's alert address. Raises ValueError if `to` is
    not an address."""
    email = Email()
    email.set_header("Subject", subject)
    email.set_sender(sender)
    email.set_address("To", None, to)
    email.set_header("Date", format_datetime(now))
    email.set_header("Message-ID", f"<{delivery_id}@{_domain(sender)}>")
    email.set_header("Auto-Submitted", "auto-generated")
    email.set_bodies(_templates.get_template("clinic_alert.txt").render(text=text))
    return email


def webhook_body(event: str, timestamp: datetime, data: dict[str, Any]) -> bytes:
    """Return the JSON body `{type, timestamp, data}` of a webhook."""
    document = {"type": event, "timestamp": timestamp.isoformat(), "data": data}
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
