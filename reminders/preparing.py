"""Preparing claimed deliveries: read the rows they refer to, decide with `decide`
whether each is still worth sending, and render the message (with its link tokens) or
the values that end it now. Runs inside one transaction per batch; the tokens it makes
are written in that transaction too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from email.message import EmailMessage
from typing import Any, NamedTuple

import sqlalchemy as sa

from reminders import calendar
from reminders.channels.email import Attachment
from reminders.channels.webhook import WebhookMessage
from reminders.db.rows import in_chunks, read_columns, table_of
from reminders.decisions import Defer, End, PatientMessageFacts, decide
from reminders.errors import Conflict
from reminders.kinds import LINKED, event_of
from reminders.locales import DEFAULT, resolve
from reminders.messages import (
    Links,
    PatientMessage,
    clinic_email,
    patient_email,
    relayed_message,
    staff_text,
    webhook_body,
)
from reminders.models import (
    Clinic,
    Enrollment,
    Patient,
    StaffMember,
    WebhookEndpoint,
)
from reminders.protocols import Protocol
from reminders.runtime import Runtime
from reminders.services import calendar_feed, staff
from reminders.services.protocol_versions import protocol_of
from reminders.services.reminding import recipient
from reminders.services.staff import LinkPurpose
from reminders.states import DeliveryAudience, DeliveryState
from reminders.stores import session_store
from reminders.stores.outbox import DeliveryRow
from reminders.stores.session_store import MessageSession
from reminders.timing import QuietHours, end_of_local_day, zone
from reminders.tokens import (
    CALENDAR,
    SHORT_BYTES,
    calendar_link,
    link_token,
    stored_hashes,
    token_row,
)

log = logging.getLogger(__name__)


class SigningTarget(NamedTuple):
    """Where a webhook goes and the secrets that sign it now."""

    url: str
    secrets: tuple[str, ...]


@dataclass
class PreparedDelivery:
    """A claimed delivery and either a message to send or the values that end it now."""

    delivery: DeliveryRow
    message: EmailMessage | WebhookMessage | None = None
    values: dict[str, Any] | None = None
    endpoint_id: str | None = None


# What preparing reads of each table: whole rows (an enrollment's screening answers,
# a session's outcomes) cost more to load than the rest of preparing.
COLUMNS: dict[type[Any], tuple[str, ...]] = {
    Clinic: (
        "id", "alert_email", "name", "display_name", "reply_to", "phone",
        "webhook_include_names",
    ),
    Patient: (
        "id", "clinic_id", "name", "email", "timezone", "reminder_time", "quiet_start",
        "quiet_end", "channel", "locale", "external_id", "unsubscribed_at",
        "calendar_generation",
    ),
    Enrollment: (
        "id", "status", "protocol_id", "protocol_version", "body_area", "slowed_since",
    ),
    WebhookEndpoint: (
        "id", "url", "enabled", "secret", "previous_secret", "previous_secret_until",
    ),
}  # fmt: skip


class BatchRows:
    """The rows a batch of deliveries refers to (the `COLUMNS` of each, keyed by model
    and id), and the link tokens the batch makes, written at once. `read` reads them with
    one query per table rather than several per delivery; a test builds them from plain
    values."""

    def __init__(
        self,
        db: Any,
        rows: dict[type[Any], dict[str, Any]],
        sessions: dict[str, MessageSession],
        calendar_tokens: set[str],
    ) -> None:
        self.db = db
        self.rows = rows
        self.sessions = sessions
        # A patient's calendar link is the same in every message: its token is stored
        # once, not with each message.
        self.calendar_tokens = calendar_tokens
        self.tokens: list[dict[str, Any]] = []

    @classmethod
    def read(cls, db: Any, claimed: list[DeliveryRow]) -> BatchRows:
        """Read what the `claimed` deliveries refer to."""
        patient_ids = {d.patient_id for d in claimed if d.patient_id}
        found = session_store.for_messages(db, {d.session_id for d in claimed if d.session_id})
        rows: dict[type[Any], dict[str, Any]] = {
            Clinic: _read(db, Clinic, {d.clinic_id for d in claimed}),
            Patient: _read(db, Patient, patient_ids),
            Enrollment: _read(db, Enrollment, {s.enrollment_id for s in found}),
            WebhookEndpoint: _read(
                db, WebhookEndpoint, {d.target for d in claimed if d.channel == "webhook"}
            ),
        }
        sessions = {s.id: s for s in found}
        return cls(db, rows, sessions, stored_hashes(db, patient_ids, CALENDAR))

    def get(self, model: type[Any], ident: str | None) -> Any:
        """Return the row of `model` with id `ident`, or None."""
        return self.rows.get(model, {}).get(ident) if ident else None


def _read(db: Any, model: type[Any], ids: set[str]) -> dict[str, Any]:
    """The `COLUMNS` of the rows of `model` with these ids, by id. Core rows answer
    attribute access by column name like the models do, and cost a fraction of ORM
    objects, which preparing would otherwise spend its time loading."""
    table = table_of(model)
    columns = [table.c[name] for name in COLUMNS[model]]
    return {
        row.id: row
        for chunk in in_chunks(sorted(ids))
        for row in read_columns(db, sa.select(*columns).where(table.c.id.in_(chunk)))
    }


def _ending(delivery: DeliveryRow, state: DeliveryState, reason: str) -> PreparedDelivery:
    return PreparedDelivery(delivery, values=_ended(state, reason))


def _ended(state: DeliveryState, reason: str) -> dict[str, Any]:
    return {"state": state, "last_error": reason, "lease_until": None}


@dataclass
class Preparer:
    """Turns claimed deliveries into messages to send, or into the values that end them."""

    rt: Runtime

    def prepare(self, loaded: BatchRows, delivery: DeliveryRow, now: datetime) -> PreparedDelivery:
        """Prepare one delivery; a bug in one message must not stall the whole batch
        (it would be claimed, crash and be claimed again for ever), so it fails alone."""
        tokens = len(loaded.tokens)
        try:
            prepared = self._prepare(loaded, delivery, now)
        except Exception as exc:
            prepared = _ending(delivery, DeliveryState.FAILED, f"internal error: {exc!r}")
            log.exception("could not prepare delivery %s", delivery.id)
        if prepared.message is None:
            # Links are stored only for a message that goes out.
            del loaded.tokens[tokens:]
        return prepared

    def _prepare(self, loaded: BatchRows, delivery: DeliveryRow, now: datetime) -> PreparedDelivery:
        if delivery.audience == DeliveryAudience.INTEGRATION:
            return self._prepare_event(loaded, delivery, now)
        if delivery.audience == DeliveryAudience.CLINIC:
            return self._prepare_clinic_email(loaded, delivery, now)
        if delivery.audience == DeliveryAudience.STAFF:
            return self._prepare_staff_email(loaded, delivery, now)
        return self._prepare_patient_message(loaded, delivery, now)

    def _prepare_clinic_email(
        self, loaded: BatchRows, delivery: DeliveryRow, now: datetime
    ) -> PreparedDelivery:
        """An alert to the clinic: its text was fixed when it was raised."""
        clinic = loaded.get(Clinic, delivery.clinic_id)
        if clinic is None or not clinic.alert_email:
            return _ending(delivery, DeliveryState.FAILED, "clinic has no alert email")
        payload = json.loads(delivery.payload)
        text = payload["text"]
        if payload.get("patient_page"):
            page = f"{self.rt.settings.base_url.rstrip('/')}{payload['patient_page']}"
            text = f"{text}\n\nThe patient's page in the staff app: {page}"
        alert = clinic_email(
            payload["subject"],
            text,
            delivery_id=delivery.id,
            sender=self.rt.settings.email_from,
            to=clinic.alert_email,
            now=now,
        )
        return PreparedDelivery(delivery, message=alert)

    def _prepare_staff_email(
        self, loaded: BatchRows, delivery: DeliveryRow, now: datetime
    ) -> PreparedDelivery:
        """An email to a staff member; a link it carries is derived from the delivery's
        id, as a patient's are (only its hash was stored)."""
        member = loaded.db.get(StaffMember, delivery.target)
        if member is None or member.disabled_at is not None:
            return _ending(delivery, DeliveryState.CANCELLED, "staff member disabled")
        clinic = loaded.get(Clinic, delivery.clinic_id)
        facts = json.loads(delivery.payload)
        base = self.rt.settings.base_url
        purpose = facts.get("purpose")
        token = link_token(self.rt.secret_key, delivery.id, purpose) if purpose else None
        subject, text = staff_text(
            delivery.kind,
            email=member.email,
            clinic=clinic.display_name or clinic.name,
            until=datetime.fromisoformat(facts["until"]),
            link=base + staff.link_path(LinkPurpose(purpose), token) if token else None,
            login=base + staff.LOGIN_PATH,
        )
        email = clinic_email(
            subject, text, delivery_id=delivery.id, sender=self.rt.settings.email_from,
            to=member.email, now=now,
        )  # fmt: skip
        return PreparedDelivery(delivery, message=email)

    def _prepare_patient_message(
        self, loaded: BatchRows, delivery: DeliveryRow, now: datetime
    ) -> PreparedDelivery:
        """A message to a patient: decided now (is it still worth sending?), rendered
        for its channel if so."""
        patient = loaded.get(Patient, delivery.patient_id)
        session = loaded.sessions.get(delivery.session_id) if delivery.session_id else None
        enrollment = loaded.get(Enrollment, session.enrollment_id) if session else None
        who = recipient(patient, self.rt.settings) if patient is not None else None
        zone_name = session.timezone if session else patient.timezone if patient else "UTC"
        facts = PatientMessageFacts(
            kind=delivery.kind,
            expires_at=delivery.expires_at,
            patient_reachable=patient is not None and patient.unsubscribed_at is None,
            session_status=session.status if session else None,
            enrollment_status=enrollment.status if enrollment else None,
            winding_down=enrollment is not None and enrollment.slowed_since is not None,
            zone=zone_name,
            quiet=who.quiet if who else QuietHours(time(0), time(0)),
        )
        decision = decide(facts, now)
        if isinstance(decision, End):
            return _ending(delivery, decision.state, decision.reason)
        if isinstance(decision, Defer):
            # Not an attempt: give back the attempt the claim counted.
            wait = {
                "state": DeliveryState.PENDING,
                "next_attempt_at": decision.until,
                "lease_until": None,
            }
            return PreparedDelivery(delivery, values={**wait, "attempts": delivery.attempts - 1})
        assert patient is not None
        local_date = session.local_date if session else now.astimezone(zone(zone_name)).date()
        message = self._patient_message(
            loaded, delivery, patient, session, enrollment, local_date, now
        )
        if delivery.channel == "email":
            if not patient.email:
                return _ending(delivery, DeliveryState.FAILED, "patient has no email address")
            clinic = loaded.get(Clinic, delivery.clinic_id)
            email = patient_email(
                message,
                delivery_id=delivery.id,
                sender=self.rt.settings.email_from,
                to=patient.email,
                now=now,
                reply_to=clinic.reply_to,
                attachments=self._attachments(loaded.db, delivery, patient, clinic, local_date),
            )
            return PreparedDelivery(delivery, message=email)
        data = relayed_message(
            message,
            delivery_id=delivery.id,
            patient_id=patient.id,
            external_id=patient.external_id,
            session_id=session.id if session else None,
            enrollment_id=enrollment.id if enrollment else None,
            timezone=zone_name,
        )
        kind = event_of(delivery.kind)
        return self._signed(loaded, delivery, kind, delivery.due_at, data, now)

    def _patient_message(
        self,
        loaded: BatchRows,
        delivery: DeliveryRow,
        patient: Patient,
        session: MessageSession | None,
        enrollment: Any,
        local_date: date,
        now: datetime,
    ) -> PatientMessage:
        """What the patient is told, in any channel, with the links it carries."""
        linked = session if delivery.kind in LINKED else None
        protocol = self._protocol(loaded, enrollment)
        clinic = loaded.get(Clinic, delivery.clinic_id)
        locale = resolve(patient.locale) or DEFAULT
        # A relayed message names the patient only where the clinic asked for names.
        named = delivery.channel == "email" or clinic.webhook_include_names
        return PatientMessage(
            kind=delivery.kind,
            name=patient.name if named else None,
            local_date=local_date,
            minutes=session.minutes if session else None,
            body_area=enrollment.body_area if enrollment else None,
            tips=protocol.tips_in(locale) if protocol else (),
            preparation=protocol.preparation_in(locale) if protocol else (),
            links=self._links(loaded, delivery, patient, linked, now),
            locale=locale,
            clinic=clinic.display_name or clinic.name,
            clinic_phone=clinic.phone,
            **PatientMessage.facts_from(json.loads(delivery.payload)),
        )

    def _attachments(
        self, db: Any, delivery: DeliveryRow, patient: Any, clinic: Any, first_day: date
    ) -> tuple[Attachment, ...]:
        """A welcome carries the new plan's sessions for the patient's calendar (the feed
        it links keeps them up to date from then on)."""
        if delivery.kind != "welcome":
            return ()
        sessions = calendar_feed.sessions_calendar(db, self.rt, patient, clinic, first_day)
        return (Attachment("sessions.ics", calendar.MEDIA_TYPE, sessions),)

    def _prepare_event(
        self, loaded: BatchRows, delivery: DeliveryRow, now: datetime
    ) -> PreparedDelivery:
        """A clinic event: its data was fixed when it happened; only the signing is new."""
        data = json.loads(delivery.payload)
        return self._signed(loaded, delivery, delivery.kind, delivery.created_at, data, now)

    def _signed(
        self,
        loaded: BatchRows,
        delivery: DeliveryRow,
        event: str,
        happened_at: datetime,
        data: dict[str, Any],
        now: datetime,
    ) -> PreparedDelivery:
        """A webhook with `data`, signed with the endpoint's secrets of the moment."""
        endpoint = self._endpoint(loaded, delivery.target, now)
        if endpoint is None:
            return _ending(delivery, DeliveryState.FAILED, "webhook endpoint disabled")
        body = webhook_body(event, happened_at, data)
        hook = WebhookMessage(
            delivery.id, endpoint.url, endpoint.secrets, body, int(now.timestamp())
        )
        return PreparedDelivery(delivery, message=hook, endpoint_id=delivery.target)

    def _protocol(self, loaded: BatchRows, enrollment: Any) -> Protocol | None:
        """The protocol the enrollment is planned by (its tips and preparation go into
        the message); the installed one if that version no longer loads, rather than
        no reminder at all."""
        if enrollment is None:
            return None
        try:
            return protocol_of(loaded.db, self.rt, enrollment)
        except Conflict:
            return self.rt.protocols.get(enrollment.protocol_id)

    @staticmethod
    def _endpoint(loaded: BatchRows, endpoint_id: str, now: datetime) -> SigningTarget | None:
        """Return an enabled endpoint's URL and the secrets that sign for it now."""
        endpoint = loaded.get(WebhookEndpoint, endpoint_id)
        if endpoint is None or not endpoint.enabled:
            return None
        active = [endpoint.secret]
        if (
            endpoint.previous_secret
            and endpoint.previous_secret_until
            and (endpoint.previous_secret_until > now)
        ):
            active.append(endpoint.previous_secret)
        return SigningTarget(endpoint.url, tuple(active))

    def _links(
        self,
        loaded: BatchRows,
        delivery: DeliveryRow,
        patient: Patient,
        session: MessageSession | None,
        now: datetime,
    ) -> Links:
        settings = self.rt.settings
        base = settings.base_url.rstrip("/")
        session_link = None
        if session is not None:
            # A relay may send the link by SMS.
            size = SHORT_BYTES if delivery.channel == "webhook" else 32
            token = link_token(self.rt.secret_key, delivery.id, "session", size)
            # A late confirmation is welcome for a while; a link should not reach
            # sessions weeks later.
            expires = end_of_local_day(
                session.local_date + timedelta(days=settings.session_link_days), session.timezone
            )
            loaded.tokens.append(token_row(token, patient.id, session.id, "session", expires, now))
            session_link = f"{base}/s/{token}"
        unsubscribe = link_token(self.rt.secret_key, delivery.id, "unsubscribe")
        expires = now + timedelta(days=settings.unsubscribe_ttl_days)
        loaded.tokens.append(token_row(unsubscribe, patient.id, None, "unsubscribe", expires, now))
        feed, feed_row = calendar_link(
            self.rt.secret_key, base, patient.id, patient.calendar_generation, now
        )
        if feed_row["token_hash"] not in loaded.calendar_tokens:
            loaded.calendar_tokens.add(feed_row["token_hash"])
            loaded.tokens.append(feed_row)
        return Links(session_link, f"{base}/u/{unsubscribe}", feed)
