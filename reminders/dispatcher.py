"""The dispatcher: claims due deliveries, decides whether each is still worth sending,
renders it, sends it through its channel and records the result.

Three short transactions per batch: claim; prepare (relevance, quiet hours, tokens);
record. Sending happens outside any transaction, so a slow receiver holds no lock.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from email.message import EmailMessage
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from reminders import outbox
from reminders.channels import Sender
from reminders.channels.email import email_sender
from reminders.channels.webhook import WebhookMessage, WebhookSender
from reminders.db import session_scope
from reminders.decisions import SESSION_BOUND, Defer, End, PatientMessageFacts, decide
from reminders.messages import Links, PatientMessage, clinic_email, patient_email, webhook_body
from reminders.models import (
    Clinic,
    Delivery,
    Enrollment,
    Patient,
    TreatmentSession,
    WebhookEndpoint,
    utcnow,
)
from reminders.runtime import Runtime
from reminders.services.events import escalate
from reminders.services.reminding import EVENT_FOR_KIND, alert_clinic, recipient
from reminders.timing import QuietHours, end_of_local_day, zone
from reminders.tokens import link_token, store_tokens, token_row

log = logging.getLogger(__name__)

# Messages whose links let the patient act on the session.
LINKED = SESSION_BOUND | {"missed"}
CLINIC_EMAILS = frozenset({"clinic_alert", "escalation"})


@dataclass(frozen=True)
class Senders:
    """One sender per channel."""

    email: Sender[EmailMessage]
    webhook: Sender[WebhookMessage]


def build_senders(rt: Runtime) -> Senders:
    """Return the senders the settings configure."""
    settings = rt.settings
    return Senders(
        email=email_sender(settings),
        webhook=WebhookSender(
            timeout_s=settings.webhook_timeout_s,
            concurrency=settings.webhook_concurrency,
            allow_http=settings.webhook_allow_http,
            allowed_hosts=settings.webhook_allowed_hosts,
        ),
    )


@dataclass
class _Prepared:
    """A claimed delivery and either a message to send or the values that end it now."""

    delivery: Delivery
    message: EmailMessage | WebhookMessage | None = None
    values: dict[str, Any] | None = None
    endpoint_id: str | None = None


class _Loaded:
    """The rows a batch of deliveries refers to, read with one query per table rather
    than several per delivery; and the link tokens the batch makes, written at once."""

    def __init__(self, db: Any, claimed: list[Delivery]) -> None:
        self.rows: dict[type[Any], dict[str, Any]] = {}
        self.tokens: list[dict[str, Any]] = []
        self._read(db, Clinic, {d.clinic_id for d in claimed})
        self._read(db, Patient, {d.patient_id for d in claimed if d.patient_id})
        sessions = self._read(db, TreatmentSession, {d.session_id for d in claimed if d.session_id})
        self._read(db, Enrollment, {s.enrollment_id for s in sessions})
        hooks = {d.target for d in claimed if d.channel == "webhook"}
        self._read(db, WebhookEndpoint, hooks)

    def _read(self, db: Any, model: type[Any], ids: set[str]) -> list[Any]:
        found: dict[str, Any] = self.rows.setdefault(model, {})
        wanted = sorted(ids)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for row in db.exec(select(model).where(col(model.id).in_(chunk))):
                found[row.id] = row
        return list(found.values())

    def get(self, model: type[Any], ident: str | None) -> Any:
        """Return the row of `model` with id `ident`, or None."""
        return self.rows.get(model, {}).get(ident) if ident else None


def _ended(state: str, reason: str) -> dict[str, Any]:
    return {"state": state, "last_error": reason, "lease_until": None}


@dataclass
class Dispatcher:
    """Sends what is due. Safe to run in any number of processes at once."""

    rt: Runtime
    senders: Senders
    worker: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    clock: Callable[[], datetime] = utcnow
    rand: Callable[[], float] = random.random

    def dispatch(self) -> int:
        """Send batches until nothing is due; return how many deliveries were handled."""
        total = 0
        while True:
            handled = self.run_batch()
            total += handled
            if handled < self.rt.settings.dispatch_batch_size:
                return total

    def next_due(self) -> datetime | None:
        """Return when the next pending delivery falls due, or None."""
        with session_scope(self.rt.engine, write=False) as db:
            return outbox.next_due(db)

    def run_batch(self) -> int:
        """Claim, send and record one batch; return how many deliveries it held."""
        settings = self.rt.settings
        now = self.clock()
        # Most wake-ups (an API write) find nothing due; looking first spares the API a
        # wait for the write lock the claim would take.
        with session_scope(self.rt.engine, write=False) as db:
            if not outbox.any_due(db, now):
                return 0
        with session_scope(self.rt.engine) as db:
            claimed = outbox.claim(
                db,
                self.worker,
                now,
                settings.dispatch_batch_size,
                timedelta(seconds=settings.lease_s),
            )
        if not claimed:
            return 0
        with session_scope(self.rt.engine) as db:
            loaded = _Loaded(db, claimed)
            prepared = [self._prepare_safely(loaded, delivery, now) for delivery in claimed]
            store_tokens(db, loaded.tokens)
        outcomes = self._send(prepared)
        done = self.clock()
        with session_scope(self.rt.engine) as db:
            sent = [
                p for p in prepared if (o := outcomes.get(p.delivery.id)) and o.status == "sent"
            ]
            # Successes, the bulk of any batch, are recorded in one statement.
            outbox.finish_many(
                db,
                [p.delivery.id for p in sent],
                self.worker,
                {"state": "sent", "sent_at": done, "lease_until": None, "last_error": None},
            )
            for item in prepared:
                if item not in sent:
                    self._record(db, item, outcomes.get(item.delivery.id), done)
            self._endpoint_health(db, prepared, outcomes, done)
        return len(claimed)

    def _endpoint_health(
        self,
        db: Any,
        prepared: list[_Prepared],
        outcomes: dict[str, outbox.Outcome],
        now: datetime,
    ) -> None:
        """An endpoint that answered anything well this batch is healthy again; one that
        only failed is failing since its first failure, and after
        `endpoint_disable_after_h` of that it is disabled and the clinic told, once."""
        healthy: dict[str, bool] = {}
        for item in prepared:
            outcome = outcomes.get(item.delivery.id)
            if item.endpoint_id is None or outcome is None or outcome.status == "gone":
                continue
            ok = outcome.status == "sent"
            healthy[item.endpoint_id] = healthy.get(item.endpoint_id, False) or ok
        limit = timedelta(hours=self.rt.settings.endpoint_disable_after_h)
        for endpoint_id, ok in healthy.items():
            endpoint = db.get(WebhookEndpoint, endpoint_id)
            if endpoint is None or not endpoint.enabled:
                continue
            if ok:
                endpoint.failing_since = None
            elif endpoint.failing_since is None:
                endpoint.failing_since = now
            elif now - endpoint.failing_since >= limit:
                since = endpoint.failing_since.isoformat(timespec="minutes")
                self._disable_endpoint(db, endpoint, f"failing since {since}", now)
                continue
            db.add(endpoint)

    def _send(self, prepared: list[_Prepared]) -> dict[str, outbox.Outcome]:
        emails = [p for p in prepared if isinstance(p.message, EmailMessage)]
        hooks = [p for p in prepared if isinstance(p.message, WebhookMessage)]
        outcomes: dict[str, outbox.Outcome] = {}

        def send_emails() -> None:
            results = self.senders.email.send([p.message for p in emails])  # type: ignore[misc]
            outcomes.update((p.delivery.id, o) for p, o in zip(emails, results, strict=True))

        # The two channels go out side by side: a slow mail server need not hold up
        # the webhooks of the same batch.
        email_thread = threading.Thread(target=send_emails) if emails else None
        if email_thread is not None:
            email_thread.start()
        if hooks:
            results = self.senders.webhook.send([p.message for p in hooks])  # type: ignore[misc]
            outcomes.update((p.delivery.id, o) for p, o in zip(hooks, results, strict=True))
        if email_thread is not None:
            email_thread.join()
        return outcomes

    def _record(
        self, db: Any, item: _Prepared, outcome: outbox.Outcome | None, now: datetime
    ) -> None:
        delivery = item.delivery
        if outcome is None:
            assert item.values is not None
            outbox.finish(db, delivery.id, self.worker, item.values)
            return
        values = outbox.result_values(delivery, outcome, now, self.rand)
        if not outbox.finish(db, delivery.id, self.worker, values):
            return  # another worker took the row over after our lease ran out
        endpoint = db.get(WebhookEndpoint, item.endpoint_id) if item.endpoint_id else None
        if outcome.status == "gone" and endpoint is not None:
            self._disable_endpoint(db, endpoint, "answered 410 Gone", now)
        # An endpoint failing as a whole is reported once, when it is disabled; one
        # alert per message it could not take would flood the clinic.
        endpoint_down = endpoint is not None and (
            endpoint.failing_since is not None or not endpoint.enabled
        )
        if values["state"] == "dead" and delivery.kind not in CLINIC_EMAILS and not endpoint_down:
            detail = (
                f"delivery {delivery.id} ({delivery.kind} by {delivery.channel}) was given up "
                f"after {delivery.attempts} attempts; last error: {outcome.error}"
            )
            patient = db.get(Patient, delivery.patient_id) if delivery.patient_id else None
            if patient is not None and delivery.kind != "patient.escalation":
                escalate(db, patient, "delivery_dead", detail, now, session_id=None)
            else:
                alert_clinic(
                    db, delivery.clinic_id, "A message could not be delivered", detail, now
                )

    def _disable_endpoint(
        self, db: Any, endpoint: WebhookEndpoint, reason: str, now: datetime
    ) -> None:
        """Disable the endpoint and tell the clinic; a conditional UPDATE, so of several
        workers seeing the same failure exactly one does it."""
        disabled = db.execute(
            sa.update(WebhookEndpoint)
            .where(col(WebhookEndpoint.id) == endpoint.id, col(WebhookEndpoint.enabled))
            .values(
                enabled=False, disabled_reason=f"{reason} ({now.isoformat(timespec='minutes')})"
            )
            .execution_options(synchronize_session=False)
        )
        db.expire(endpoint)
        if disabled.rowcount != 1:
            return  # another worker got there first
        alert_clinic(
            db,
            endpoint.clinic_id,
            "A webhook endpoint was disabled",
            f"The endpoint {endpoint.url} was disabled: {reason}. No more webhooks go to it; "
            "messages it could not take are listed under /v1/deliveries. Register it again "
            "once it is working.",
            now,
        )

    def _prepare_safely(self, loaded: _Loaded, delivery: Delivery, now: datetime) -> _Prepared:
        """Prepare one delivery; a bug in one message must not stall the whole batch
        (it would be claimed, crash and be claimed again for ever), so it fails alone."""
        tokens = len(loaded.tokens)
        try:
            return self._prepare(loaded, delivery, now)
        except Exception as exc:
            del loaded.tokens[tokens:]
            log.exception("could not prepare delivery %s", delivery.id)
            return _Prepared(delivery, values=_ended("failed", f"internal error: {exc!r}"))

    def _prepare(self, db: _Loaded, delivery: Delivery, now: datetime) -> _Prepared:
        settings = self.rt.settings
        if "." in delivery.kind:
            return self._prepare_event(db, delivery)
        if delivery.kind in CLINIC_EMAILS:
            clinic = db.get(Clinic, delivery.clinic_id)
            if clinic is None or not clinic.alert_email:
                return _Prepared(delivery, values=_ended("failed", "clinic has no alert email"))
            payload = json.loads(delivery.payload)
            alert = clinic_email(
                payload["subject"],
                payload["text"],
                delivery_id=delivery.id,
                sender=settings.email_from,
                to=clinic.alert_email,
                now=now,
            )
            return _Prepared(delivery, message=alert)
        patient = db.get(Patient, delivery.patient_id)
        session = db.get(TreatmentSession, delivery.session_id) if delivery.session_id else None
        enrollment = db.get(Enrollment, session.enrollment_id) if session else None
        who = recipient(patient, settings) if patient is not None else None
        zone_name = session.timezone if session else patient.timezone if patient else "UTC"
        facts = PatientMessageFacts(
            kind=delivery.kind,
            expires_at=delivery.expires_at,
            patient_reachable=patient is not None and patient.unsubscribed_at is None,
            session_status=session.status if session else None,
            enrollment_status=enrollment.status if enrollment else None,
            zone=zone_name,
            quiet=who.quiet if who else QuietHours(time(0), time(0)),
        )
        decision = decide(facts, now)
        if isinstance(decision, End):
            return _Prepared(delivery, values=_ended(decision.state, decision.reason))
        if isinstance(decision, Defer):
            # Not an attempt: give back the attempt the claim counted.
            wait = {"state": "pending", "next_attempt_at": decision.until, "lease_until": None}
            return _Prepared(delivery, values={**wait, "attempts": delivery.attempts - 1})
        assert patient is not None
        links = self._links(
            db, delivery, patient, session if delivery.kind in LINKED else None, now
        )
        local_date = session.local_date if session else now.astimezone(zone(zone_name)).date()
        protocol = self.rt.protocols.get(enrollment.protocol_id) if enrollment else None
        message = PatientMessage(
            kind=delivery.kind,
            name=patient.name,
            local_date=local_date,
            minutes=session.minutes if session else None,
            body_area=enrollment.body_area if enrollment else None,
            tips=protocol.tips if protocol else (),
            links=links,
            days_since=json.loads(delivery.payload).get("days"),
        )
        if delivery.channel == "email":
            if not patient.email:
                return _Prepared(delivery, values=_ended("failed", "patient has no email address"))
            email = patient_email(
                message,
                delivery_id=delivery.id,
                sender=settings.email_from,
                to=patient.email,
                now=now,
            )
            return _Prepared(delivery, message=email)
        endpoint = self._endpoint(db, delivery.target, now)
        if endpoint is None:
            return _Prepared(delivery, values=_ended("failed", "webhook endpoint disabled"))
        data = {
            "delivery_id": delivery.id,
            "kind": delivery.kind,
            "patient_id": patient.id,
            "external_id": patient.external_id,
            "session_id": session.id if session else None,
            "enrollment_id": enrollment.id if enrollment else None,
            "local_date": local_date.isoformat(),
            "timezone": zone_name,
            "minutes": message.minutes,
            "links": {"session": links.session, "unsubscribe": links.unsubscribe},
        }
        body = webhook_body(EVENT_FOR_KIND[delivery.kind], delivery.due_at, data)
        hook = WebhookMessage(delivery.id, endpoint[0], endpoint[1], body, int(now.timestamp()))
        return _Prepared(delivery, message=hook, endpoint_id=delivery.target)

    def _prepare_event(self, db: _Loaded, delivery: Delivery) -> _Prepared:
        """A clinic event: its data was fixed when it happened; only the signing is new."""
        endpoint = self._endpoint(db, delivery.target, self.clock())
        if endpoint is None:
            return _Prepared(delivery, values=_ended("failed", "webhook endpoint disabled"))
        data = json.loads(delivery.payload)
        body = webhook_body(delivery.kind, delivery.created_at, data)
        stamp = int(self.clock().timestamp())
        hook = WebhookMessage(delivery.id, endpoint[0], endpoint[1], body, stamp)
        return _Prepared(delivery, message=hook, endpoint_id=delivery.target)

    @staticmethod
    def _endpoint(
        db: _Loaded, endpoint_id: str, now: datetime
    ) -> tuple[str, tuple[str, ...]] | None:
        """Return an enabled endpoint's URL and the secrets that sign for it now."""
        endpoint = db.get(WebhookEndpoint, endpoint_id)
        if endpoint is None or not endpoint.enabled:
            return None
        active = [endpoint.secret]
        if (
            endpoint.previous_secret
            and endpoint.previous_secret_until
            and (endpoint.previous_secret_until > now)
        ):
            active.append(endpoint.previous_secret)
        return endpoint.url, tuple(active)

    def _links(
        self,
        loaded: _Loaded,
        delivery: Delivery,
        patient: Patient,
        session: TreatmentSession | None,
        now: datetime,
    ) -> Links:
        settings = self.rt.settings
        base = settings.base_url.rstrip("/")
        session_link = None
        if session is not None:
            token = link_token(self.rt.secret_key, delivery.id, "session")
            expires = max(
                end_of_local_day(session.local_date, session.timezone)
                + timedelta(hours=settings.missed_grace_h),
                now + timedelta(days=settings.token_ttl_days),
            )
            loaded.tokens.append(token_row(token, patient.id, session.id, "session", expires, now))
            session_link = f"{base}/s/{token}"
        unsubscribe = link_token(self.rt.secret_key, delivery.id, "unsubscribe")
        expires = now + timedelta(days=settings.unsubscribe_ttl_days)
        loaded.tokens.append(token_row(unsubscribe, patient.id, None, "unsubscribe", expires, now))
        return Links(session_link, f"{base}/u/{unsubscribe}")
