"""Clinics' webhook endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from reminders.channels.webhook import check_url, new_webhook_secret
from reminders.errors import Conflict, InvalidInput, NotFound
from reminders.fields import checked, single_line
from reminders.kinds import EVENT_TYPES
from reminders.models import Clinic, Enrollment, Patient, WebhookEndpoint
from reminders.runtime import Runtime
from reminders.services import reachability
from reminders.services.audit import Actor, AuditAction, record
from reminders.services.reminding import alert_clinic, clinic_endpoints, subscribed
from reminders.settings import Settings
from reminders.states import ONGOING
from reminders.stores import outbox

# Long enough for a clinic to deploy the new secret to its receivers.
ROTATION_OVERLAP = timedelta(hours=24)


def check_endpoint_url(settings: Settings, url: str) -> None:
    """Raise InvalidInput('url', ...) unless webhooks may go to `url`. It resolves the
    host, which blocks: on an event loop, run it in a thread."""
    check_url(
        url, allow_http=settings.webhook_allow_http, allowed_hosts=settings.webhook_allowed_hosts
    )


def add_endpoint(
    db: Session,
    settings: Settings,
    clinic_id: str,
    url: str,
    now: datetime,
    events: str = "*",
    *,
    url_checked: bool = False,
    actor: Actor | None = None,
) -> WebhookEndpoint:
    """Register an endpoint with a new secret; return it (the secret is shown once).
    `url_checked`: the caller has already run `check_endpoint_url` (off its event loop).

    Raises NotFound for an unknown clinic, InvalidInput naming `url` or `events`.
    """
    if db.get(Clinic, clinic_id) is None:
        raise NotFound("clinic", clinic_id)
    # urllib drops tabs and line breaks from a URL before parsing it, so the check
    # below would pass a URL that is stored and sent with them.
    checked("url", url, single_line)
    if not url_checked:
        check_endpoint_url(settings, url)
    wanted = [e.strip() for e in events.split(",") if e.strip()]
    unknown = [e for e in wanted if e != "*" and e not in EVENT_TYPES]
    if not wanted or unknown:
        raise InvalidInput(
            "events", f"expected * or some of {', '.join(EVENT_TYPES)}; got {', '.join(unknown)}"
        )
    endpoint = WebhookEndpoint(
        clinic_id=clinic_id,
        url=url,
        secret=new_webhook_secret(),
        events=",".join(wanted),
        created_at=now,
    )
    db.add(endpoint)
    db.flush()
    if "*" in wanted or "session.reminder" in wanted:
        # Patients cut off for want of such an endpoint can be reached again.
        reachability.refresh_webhook_patients(db, settings, clinic_id, now)
    record(
        db, actor, clinic_id, AuditAction.ENDPOINT_ADD, ("endpoint", endpoint.id),
        now, url=url, events=endpoint.events,
    )  # fmt: skip
    return endpoint


def get_endpoint(db: Session, clinic_id: str | None, endpoint_id: str) -> WebhookEndpoint:
    """Return the endpoint; raise NotFound if missing or another clinic's."""
    endpoint = db.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or (clinic_id is not None and endpoint.clinic_id != clinic_id):
        raise NotFound("webhook endpoint", endpoint_id)
    return endpoint


def rotate_secret(
    db: Session,
    clinic_id: str | None,
    endpoint_id: str,
    now: datetime,
    overlap: timedelta = ROTATION_OVERLAP,
    *,
    actor: Actor | None = None,
) -> WebhookEndpoint:
    """Give the endpoint a new secret; the old one keeps signing too until `now + overlap`,
    so receivers can switch without losing a message. Returns the endpoint (new secret
    shown once). Raises NotFound."""
    endpoint = get_endpoint(db, clinic_id, endpoint_id)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_until = now + overlap
    endpoint.secret = new_webhook_secret()
    db.add(endpoint)
    db.flush()
    subject = ("endpoint", endpoint.id)
    record(db, actor, endpoint.clinic_id, AuditAction.ENDPOINT_ROTATE, subject, now)
    return endpoint


def disable_endpoint(
    db: Session, settings: Settings, endpoint: WebhookEndpoint, reason: str, now: datetime
) -> None:
    """Disable the endpoint and tell the clinic, and work out again which of its patients
    can still be reached; a conditional UPDATE, so of several workers seeing the same
    failure exactly one does it."""
    disabled = db.execute(
        sa.update(WebhookEndpoint)
        .where(col(WebhookEndpoint.id) == endpoint.id, col(WebhookEndpoint.enabled))
        .values(enabled=False, disabled_reason=f"{reason} ({now.isoformat(timespec='minutes')})")
        .execution_options(synchronize_session=False)
    )
    db.expire(endpoint)
    if disabled.rowcount != 1:  # type: ignore[attr-defined]
        return  # another worker got there first
    reachability.refresh_webhook_patients(db, settings, endpoint.clinic_id, now)
    alert_clinic(
        db,
        endpoint.clinic_id,
        "A webhook endpoint was disabled",
        f"The endpoint {endpoint.url} was disabled: {reason}. No more webhooks go to it; "
        "messages it could not take are listed under /v1/deliveries. Register it again "
        "once it is working.",
        now,
    )


def _failing_too_long(settings: Settings, now: datetime) -> sa.ColumnElement[bool]:
    since = now - timedelta(hours=settings.endpoint_disable_after_h)
    return sa.and_(col(WebhookEndpoint.enabled), col(WebhookEndpoint.failing_since) <= since)


def long_failing(db: Session, rt: Runtime, now: datetime) -> list[str]:
    """Return the endpoints failing for `endpoint_disable_after_h`. A read: the sweep's
    `disable_long_failing` disables them."""
    found = db.execute(
        sa.select(col(WebhookEndpoint.id)).where(_failing_too_long(rt.settings, now))
    )
    return list(found.scalars())


def disable_long_failing(
    db: Session, rt: Runtime, now: datetime, endpoint_ids: Sequence[str]
) -> int:
    """Disable those of `endpoint_ids` still failing for `endpoint_disable_after_h`,
    whether or not a message has tried them since (a sweep step): the clinic hears of its
    cut-off patients then, not at the next message. Returns how many were disabled."""
    found = db.exec(
        select(WebhookEndpoint).where(
            col(WebhookEndpoint.id).in_(endpoint_ids), _failing_too_long(rt.settings, now)
        )
    ).all()
    for endpoint in found:
        assert endpoint.failing_since is not None  # the query's condition
        failing = endpoint.failing_since.isoformat(timespec="minutes")
        disable_endpoint(db, rt.settings, endpoint, f"failing since {failing}", now)
    return len(found)


def webhook_patients(db: Session, clinic_id: str) -> int:
    """Return how many of the clinic's patients are reminded by webhook in a course still
    under way: those a missing endpoint would leave without reminders."""
    found = db.execute(
        sa.select(sa.func.count(sa.distinct(col(Patient.id))))
        .join(Enrollment, col(Enrollment.patient_id) == col(Patient.id))
        .where(
            col(Patient.clinic_id) == clinic_id,
            col(Patient.channel) == "webhook",
            col(Patient.erased_at).is_(None),
            col(Enrollment.status).in_(ONGOING),
        )
    ).scalar_one()
    return int(found)


def delete_endpoint(
    db: Session,
    clinic_id: str,
    endpoint_id: str,
    now: datetime,
    *,
    actor: Actor | None = None,
) -> None:
    """Delete an endpoint and cancel what was still waiting to go to it (past deliveries
    keep its id as their target). Raises NotFound, or Conflict when it is the clinic's
    last endpoint taking reminders and patients are reminded by webhook: they would get
    nothing, silently."""
    endpoint = get_endpoint(db, clinic_id, endpoint_id)
    others = [e for e in clinic_endpoints(db, clinic_id) if e.id != endpoint.id]
    if not any(subscribed(e, "session.reminder") for e in others):
        depending = webhook_patients(db, clinic_id)
        if depending:
            raise Conflict(
                f"{depending} patient(s) are reminded by webhook and this is the clinic's "
                "last endpoint taking session.reminder: add another endpoint first, or "
                "move them to email"
            )
    outbox.cancel_to_endpoint(db, endpoint.id, "endpoint deleted")
    db.delete(endpoint)
    db.flush()
    subject = ("endpoint", endpoint_id)
    record(db, actor, clinic_id, AuditAction.ENDPOINT_DELETE, subject, now, url=endpoint.url)
