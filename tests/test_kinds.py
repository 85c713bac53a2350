"""One table of delivery kinds: every kind is in it and complete for what it is."""

from __future__ import annotations

from reminders.kinds import (
    EVENT_TYPES,
    KINDS,
    LINKED,
    SESSION_BOUND,
    TIMED_BY_PATIENT,
    DeliveryKind,
    event_of,
)
from reminders.messages import ALERT_SUBJECTS
from reminders.states import DeliveryAudience, EscalationReason


def test_every_kind_is_in_the_table() -> None:
    assert set(KINDS) == set(DeliveryKind)


def test_a_message_to_a_patient_has_its_subject_sms_and_webhook_event() -> None:
    for kind, spec in KINDS.items():
        if spec.audience == DeliveryAudience.PATIENT:
            assert spec.subject and spec.sms and spec.event, kind
            assert event_of(kind) in EVENT_TYPES


def test_staff_emails_have_a_subject_and_events_carry_their_own_type() -> None:
    for kind, spec in KINDS.items():
        if spec.audience == DeliveryAudience.STAFF:
            assert spec.subject and spec.event is None, kind
        if spec.audience == DeliveryAudience.INTEGRATION:
            assert spec.event == kind, kind


def test_what_the_patients_timing_makes_is_about_a_planned_session() -> None:
    assert TIMED_BY_PATIENT <= SESSION_BOUND
    assert DeliveryKind.APPOINTMENT in TIMED_BY_PATIENT, "appointments move with the time too"
    assert DeliveryKind.APPOINTMENT not in LINKED, "staff record appointments, not the patient"


def test_every_reason_the_clinic_is_told_of_has_an_alert_subject_of_its_own() -> None:
    assert set(ALERT_SUBJECTS) == set(EscalationReason)
