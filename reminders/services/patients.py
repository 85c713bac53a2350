"""Patients of a clinic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session

from reminders.db import insert_rows
from reminders.errors import InvalidInput, NotFound
from reminders.ids import new_id
from reminders.models import Clinic, Patient, PatientCreate, utcnow
from reminders.settings import validate_timezone


def add_patients(db: Session, clinic_id: str, patients: Sequence[PatientCreate]) -> list[str]:
    """Add patients to a clinic in one statement; return their ids in order.

    Raises NotFound for an unknown clinic, InvalidInput naming the field (with the
    position when there are several) for a bad time zone or a missing email address.
    """
    if db.get(Clinic, clinic_id) is None:
        raise NotFound("clinic", clinic_id)
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for i, patient in enumerate(patients):
        where = f"[{i}]." if len(patients) > 1 else ""
        try:
            validate_timezone(patient.timezone)
        except ValueError as exc:
            raise InvalidInput(f"{where}timezone", str(exc)) from None
        if patient.channel == "email" and not patient.email:
            raise InvalidInput(f"{where}email", "required when the channel is email")
        quiet = patient.quiet_hours
        rows.append(
            {
                "id": new_id(),
                "clinic_id": clinic_id,
                "name": patient.name,
                "email": patient.email,
                "timezone": patient.timezone,
                "reminder_time": patient.reminder_time,
                "quiet_start": quiet.start if quiet else None,
                "quiet_end": quiet.end if quiet else None,
                "channel": patient.channel,
                "locale": patient.locale,
                "external_id": patient.external_id,
                "created_at": now,
            }
        )
    insert_rows(db, Patient, rows)
    return [row["id"] for row in rows]


def add_patient(db: Session, clinic_id: str, patient: PatientCreate) -> Patient:
    """Add one patient; return it. Raises as `add_patients`."""
    (patient_id,) = add_patients(db, clinic_id, [patient])
    added = db.get(Patient, patient_id)
    assert added is not None
    return added


def get_patient(db: Session, clinic_id: str | None, patient_id: str) -> Patient:
    """Return the patient; raise NotFound if missing or another clinic's."""
    patient = db.get(Patient, patient_id)
    if patient is None or (clinic_id is not None and patient.clinic_id != clinic_id):
        raise NotFound("patient", patient_id)
    return patient
