"""Nobody is silently unreachable: a patient no reminder can reach is found (by the
sweep for those from before the rule, at once when an address is refused or an endpoint
comes back), the clinic is told once per cause, and their sessions are never blamed on
them."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from reminders.models import (
    Delivery,
    Enrollment,
    Escalation,
    Patient,
    PatientUpdate,
    TreatmentSession,
)
from reminders.runtime import Runtime
from reminders.services import patients, reachability, reading, webhooks
from reminders.services.sweep import sweep
from reminders.states import EnrollmentStatus, SessionStatus
from tests.conftest import at, enroll_patient, make_clinic, make_patient

MONDAY = at("2026-12-07 08:00")


def _open_escalations(db: Session) -> list[Escalation]:
    db.expire_all()
    return list(db.exec(select(Escalation).where(Escalation.state == "open")).all())


def _statuses(db: Session) -> list[str]:
    db.expire_all()
    rows = db.exec(select(TreatmentSession).order_by(TreatmentSession.local_date)).all()  # type: ignore[arg-type]
    return [r.status for r in rows]


def _kinds(db: Session) -> list[str]:
    db.expire_all()
    return sorted(d.kind for d in db.exec(select(Delivery)).all())


@pytest.mark.both_databases
def test_a_patient_from_before_the_rule_with_a_night_time_is_found_and_never_blamed(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    patient_id = make_patient(db, clinic, timezone="UTC", external_id="EHR-7")
    enroll_patient(db, rt, clinic, patient_id, "2026-12-07", MONDAY, weekdays=["mon", "wed"])
    # As the migration leaves a patient stored before the rule: unchecked.
    patient = db.get(Patient, patient_id)
    assert patient is not None
    patient.reminder_time, patient.reachability_checked_at = "22:30", None
    db.add(patient)
    db.commit()
    sweep(rt, MONDAY)
    (escalation,) = _open_escalations(db)
    assert (escalation.reason, escalation.priority) == ("unreachable", 3)
    assert escalation.detail.startswith("quiet_hours:")
    (alert,) = [d for d in db.exec(select(Delivery)).all() if d.kind == "clinic_alert"]
    body = json.loads(alert.payload)
    assert body["subject"] == "Cannot reach 1 patient(s): quiet hours"
    assert f"/app/patients/{patient_id}" in body["text"] and "EHR-7" in body["text"]
    for day in range(1, 10):  # Monday's and Wednesday's sessions pass, and next Monday's
        sweep(rt, MONDAY.replace(hour=13) + timedelta(days=day))
    assert set(_statuses(db)[:3]) == {SessionStatus.NOT_REMINDED}
    assert "missed" not in _kinds(db)
    assert [e.reason for e in _open_escalations(db)] == ["unreachable"]
    figures = reading.patient_adherence(db, clinic, patient_id, MONDAY + timedelta(days=10))
    assert (figures.not_reminded, figures.missed, figures.rate) == (3, 0, None)


def test_a_refused_address_cuts_a_patient_off_until_it_is_corrected(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    patient_id = make_patient(db, clinic, timezone="UTC")
    enroll_patient(db, rt, clinic, patient_id, "2026-12-07", MONDAY)
    patient = db.get(Patient, patient_id)
    assert patient is not None
    patient.email_refused = patient.email
    assert reachability.refresh(db, rt.settings, [patient], MONDAY) == 1
    assert patient.unreachable == "email_refused"
    db.commit()
    fixed = PatientUpdate(email="ann.new@example.org")
    patients.update_patient(db, rt, clinic, patient_id, fixed, MONDAY, "Nurse Kim")
    db.commit()
    assert db.get(Patient, patient_id).unreachable is None  # type: ignore[union-attr]
    assert _open_escalations(db) == []


def test_an_endpoint_taking_reminders_brings_webhook_patients_back(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    endpoint = webhooks.add_endpoint(
        db, rt.settings, clinic, "https://hooks.example/r", MONDAY, url_checked=True
    )
    patient_id = make_patient(db, clinic, timezone="UTC", channel="webhook", email=None)
    enroll_patient(db, rt, clinic, patient_id, "2026-12-07", MONDAY)
    endpoint.enabled = False
    db.add(endpoint)
    reachability.refresh_webhook_patients(db, rt.settings, clinic, MONDAY)
    db.commit()
    assert [e.detail.split(":")[0] for e in _open_escalations(db)] == ["no_endpoint"]
    webhooks.add_endpoint(
        db, rt.settings, clinic, "https://hooks.example/new", MONDAY, url_checked=True
    )
    db.commit()
    assert _open_escalations(db) == []
    assert db.get(Patient, patient_id).unreachable is None  # type: ignore[union-attr]


def test_an_unsubscribed_patients_sessions_are_not_their_misses(db: Session, rt: Runtime) -> None:
    clinic = make_clinic(db)
    patient_id = make_patient(db, clinic, timezone="UTC")
    enrollment = enroll_patient(db, rt, clinic, patient_id, "2026-12-07", MONDAY)
    patient = db.get(Patient, patient_id)
    assert patient is not None
    patients.unsubscribe(db, patient, MONDAY)
    db.commit()
    for day in range(1, 8):
        sweep(rt, MONDAY.replace(hour=13) + timedelta(days=day))
    assert SessionStatus.MISSED not in _statuses(db)
    assert SessionStatus.NOT_REMINDED in _statuses(db)
    assert [e.reason for e in _open_escalations(db)] == ["unsubscribed"]
    assert "missed" not in _kinds(db)
    assert db.get(Enrollment, enrollment).status == EnrollmentStatus.ACTIVE  # type: ignore[union-attr]


def test_a_cause_found_before_the_course_reaches_the_clinic_once_the_patient_is_enrolled(
    db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    patient_id = make_patient(db, clinic, timezone="UTC")
    patient = db.get(Patient, patient_id)
    assert patient is not None
    patient.email_refused = patient.email
    reachability.refresh(db, rt.settings, [patient], MONDAY)
    db.commit()
    assert _open_escalations(db) == [], "no course: nobody to remind yet"
    enroll_patient(db, rt, clinic, patient_id, "2026-12-07", MONDAY)
    (escalation,) = _open_escalations(db)
    assert escalation.detail.startswith("email_refused:")
