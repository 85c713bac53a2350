"""Clinics' webhook endpoints."""

from __future__ import annotations

import re

from sqlmodel import Session

from reminders.channels.webhook import check_url, new_webhook_secret
from reminders.errors import InvalidInput, NotFound
from reminders.models import Clinic, WebhookEndpoint
from reminders.settings import Settings

EVENT_PATTERN = r"^(\*|[a-z_]+\.[a-z_]+)$"


def add_endpoint(
    db: Session, settings: Settings, clinic_id: str, url: str, events: str = "*"
) -> WebhookEndpoint:
    """Register an endpoint with a new secret; return it (the secret is shown once).

    Raises NotFound for an unknown clinic, InvalidInput naming `url` or `events`.
    """
    if db.get(Clinic, clinic_id) is None:
        raise NotFound("clinic", clinic_id)
    check_url(
        url, allow_http=settings.webhook_allow_http, allowed_hosts=settings.webhook_allowed_hosts
    )
    wanted = [e.strip() for e in events.split(",") if e.strip()]
    if not wanted or not all(re.fullmatch(EVENT_PATTERN, e) for e in wanted):
        raise InvalidInput("events", "expected * or event types like session.reminder")
    endpoint = WebhookEndpoint(
        clinic_id=clinic_id, url=url, secret=new_webhook_secret(), events=",".join(wanted)
    )
    db.add(endpoint)
    db.flush()
    return endpoint
