"""Escalations: acknowledging is "seen"; a review nobody decided is sent again."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlmodel import Session, select

from reminders.models import Delivery, Escalation, Patient
from reminders.runtime import Runtime
from reminders.services import clinics
from reminders.services.escalations import (
    REALERT_AFTER,
    acknowledge,
    realert_undecided,
    undecided_reviews,
)
from reminders.services.events import escalate
from reminders.states import EscalationReason
from tests.conftest import SETUP, at, make_clinic, make_patient


def alert_emails(db: Session) -> list[dict[str, str]]:
    rows = db.exec(select(Delivery.payload).where(Delivery.kind == "escalation")).all()
    return [json.loads(row) for row in rows]


def test_a_review_nobody_decided_is_sent_again_every_two_weeks_until_decided(
    db: Session, rt: Runtime
) -> None:
    clinic_id = make_clinic(db)
    clinics.set_contact(db, clinic_id, "North Clinic", "desk@north.example.org", SETUP)
    patient = db.get(Patient, make_patient(db, clinic_id, external_id="HYP-9"))
    assert patient is not None
    opened = at("2026-12-07 12:05")
    # A course's end without improvement: it waits until someone acknowledges it.
    escalate(db, patient, EscalationReason.NO_IMPROVEMENT, "enrollment e1: no improvement",
             opened, enrollment_id="e1")  # fmt: skip
    escalate(db, patient, EscalationReason.LAPSED, "enrollment e1: lapsed", opened,
             enrollment_id="e1")  # fmt: skip
    db.commit()
    assert undecided_reviews(db, rt, opened + REALERT_AFTER - timedelta(minutes=1)) == []
    for n in (1, 2):
        now = opened + n * REALERT_AFTER
        found = undecided_reviews(db, rt, now)
        assert len(found) == 1, "only reviews are sent again, not other escalations"
        assert realert_undecided(db, rt, now, found) == 1
        db.commit()
        (review,) = db.exec(select(Escalation).where(Escalation.reason == "no_improvement")).all()
        assert (review.realerts, review.alerted_at) == (n, now)
    emails = alert_emails(db)
    assert len(emails) == 4  # two opened, the review twice again
    assert "reminder 2: still waiting for a decision" in emails[-1]["text"]
    (review,) = db.exec(select(Escalation).where(Escalation.reason == "no_improvement")).all()
    acknowledge(db, rt, clinic_id, review.id, "nurse", None, opened + 30 * timedelta(days=1))
    db.commit()
    assert undecided_reviews(db, rt, opened + 60 * timedelta(days=1)) == []
