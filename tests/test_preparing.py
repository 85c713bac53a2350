"""`Preparer.prepare` on a batch built from plain values: what it makes of one claimed
delivery (a message to send, a wait, or the values that end it) and that a delivery it
cannot prepare fails alone."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from email.message import EmailMessage
from types import SimpleNamespace
from typing import Any

import pytest

from reminders.channels.webhook import WebhookMessage
from reminders.models import Clinic, Enrollment, Patient, WebhookEndpoint
from reminders.preparing import BatchRows, PreparedDelivery, Preparer
from reminders.runtime import Runtime
from reminders.states import DeliveryAudience, DeliveryState
from reminders.stores.outbox import DeliveryRow
from reminders.stores.session_store import MessageSession
from tests.conftest import at

CLINIC = SimpleNamespace(
    id="c1", alert_email=None, name="North Clinic", display_name=None, reply_to=None,
    phone=None, webhook_include_names=False,
)  # fmt: skip
PATIENT = SimpleNamespace(
    id="p1", clinic_id="c1", name="Ann Example", email="ann@example.org",
    timezone="Europe/Berlin", reminder_time="18:00", quiet_start="21:00", quiet_end="08:00",
    channel="email", locale="en", external_id="EHR-1", unsubscribed_at=None,
    calendar_generation=0,
)  # fmt: skip
ENROLLMENT = SimpleNamespace(
    id="e1", status="active", protocol_id="tap-water-hyperhidrosis", protocol_version=None,
    body_area="palms", slowed_since=None,
)  # fmt: skip
ENDPOINT = SimpleNamespace(
    id="w1", url="https://hooks.clinic.example/h", enabled=True,
    secret="whsec_" + "A" * 43 + "=", previous_secret=None, previous_secret_until=None,
)  # fmt: skip
SESSION = MessageSession("s1", "e1", date(2026, 12, 7), "Europe/Berlin", "planned", 20)
REMINDER = DeliveryRow(
    id="d1", clinic_id="c1", patient_id="p1", session_id="s1", kind="reminder",
    audience=DeliveryAudience.PATIENT, channel="email", target="ann@example.org",
    state=DeliveryState.SENDING, due_at=at("2026-12-07 17:00"),
    expires_at=at("2026-12-07 23:00"), next_attempt_at=at("2026-12-07 17:00"), attempts=1,
    lease_until=at("2026-12-07 17:05"), claimed_by="test", last_error=None, sent_at=None,
    payload="{}", created_at=at("2026-12-07 06:00"),
)  # fmt: skip
EVENING = at("2026-12-07 17:00")  # 18:00 in Berlin


def batch(
    patient: Any = PATIENT, session: MessageSession = SESSION, endpoint: Any = None
) -> BatchRows:
    rows: dict[type[Any], list[Any]] = {
        Clinic: [CLINIC], Patient: [patient], Enrollment: [ENROLLMENT],
        WebhookEndpoint: [endpoint] if endpoint else [],
    }  # fmt: skip
    by_id = {model: {row.id: row for row in found} for model, found in rows.items()}
    return BatchRows(None, by_id, {session.id: session}, set())


def ended(state: DeliveryState, reason: str) -> dict[str, Any]:
    return {"state": state, "last_error": reason, "lease_until": None}


CASES = [
    pytest.param(batch(), REMINDER, EVENING, "email", id="a reminder in its hour is sent"),
    pytest.param(
        batch(patient=SimpleNamespace(**{**vars(PATIENT), "unsubscribed_at": EVENING})),
        REMINDER, EVENING, ended(DeliveryState.CANCELLED, "patient unsubscribed"),
        id="an unsubscribed patient gets nothing",
    ),
    pytest.param(
        batch(session=SESSION._replace(status="confirmed")), REMINDER, EVENING,
        ended(DeliveryState.CANCELLED, "session confirmed"),
        id="a session already done needs no reminder",
    ),
    pytest.param(
        batch(), REMINDER, at("2026-12-07 05:00"),
        {"state": DeliveryState.PENDING, "next_attempt_at": at("2026-12-07 07:00"),
         "lease_until": None, "attempts": 0},
        id="quiet hours defer it without counting an attempt",
    ),
    pytest.param(
        batch(), REMINDER, at("2026-12-07 23:00"),
        ended(DeliveryState.EXPIRED, "useful window passed"),
        id="past its useful window it expires",
    ),
    pytest.param(
        batch(patient=SimpleNamespace(**{**vars(PATIENT), "email": None})), REMINDER, EVENING,
        ended(DeliveryState.FAILED, "patient has no email address"),
        id="an email needs an address",
    ),
    pytest.param(
        batch(endpoint=ENDPOINT),
        replace(REMINDER, channel="webhook", target="w1"), EVENING, "webhook",
        id="a relayed reminder is signed for its endpoint",
    ),
    pytest.param(
        batch(endpoint=SimpleNamespace(**{**vars(ENDPOINT), "enabled": False})),
        replace(REMINDER, channel="webhook", target="w1"), EVENING,
        ended(DeliveryState.FAILED, "webhook endpoint disabled"),
        id="a disabled endpoint ends it",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("loaded", "delivery", "now", "expected"), CASES)
def test_prepare(
    rt: Runtime, loaded: BatchRows, delivery: DeliveryRow, now: datetime, expected: Any
) -> None:
    prepared = Preparer(rt).prepare(loaded, delivery, now)
    assert prepared.delivery == delivery
    if expected == "email":
        assert isinstance(prepared.message, EmailMessage)
        assert (prepared.message["To"], prepared.values) == ("Ann Example <ann@example.org>", None)
        assert {t["purpose"] for t in loaded.tokens} >= {"session", "unsubscribe"}
    elif expected == "webhook":
        assert isinstance(prepared.message, WebhookMessage)
        assert (prepared.message.url, prepared.message.secrets) == (
            ENDPOINT.url,
            (ENDPOINT.secret,),
        )
        assert prepared.values is None
    else:
        assert prepared == PreparedDelivery(delivery, values=expected)
        assert not loaded.tokens


def test_a_delivery_that_cannot_be_prepared_fails_alone_and_keeps_no_tokens(
    rt: Runtime,
) -> None:
    # A clinic row missing from the batch: rendering breaks after the links were made.
    loaded = batch()
    del loaded.rows[Clinic]["c1"]
    prepared = Preparer(rt).prepare(loaded, REMINDER, EVENING)
    assert prepared.values is not None
    assert prepared.values["state"] == DeliveryState.FAILED
    assert prepared.values["last_error"].startswith("internal error")
    assert loaded.tokens == []
