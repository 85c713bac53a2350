"""Editing a patient's details from their page."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from reminders.models import Patient
from tests.conftest import make_clinic, make_patient
from tests.web.conftest import log_in, staff_member

FIELDS = {
    "name": "Ann Other",
    "email": "ann.other@example.org",
    "timezone": "America/New_York",
    "reminder_time": "08:15",
    "locale": "de",
    "external_id": "",
}


def test_details_are_changed_from_the_patient_page(client: TestClient, db: Session) -> None:
    clinic = make_clinic(db)
    patient_id = make_patient(db, clinic, external_id="EHR-9")
    staff_member(db, clinic, "a@north.example")
    csrf = log_in(client, "a@north.example")
    answer = client.post(
        f"/app/patients/{patient_id}", data={"csrf": csrf, **FIELDS}, follow_redirects=False
    )
    assert answer.status_code == 303
    db.expire_all()
    patient = db.get(Patient, patient_id)
    assert patient is not None
    assert (patient.name, patient.timezone, patient.reminder_time) == (
        "Ann Other",
        "America/New_York",
        "08:15",
    )
    assert patient.locale == "de" and patient.external_id is None


@pytest.mark.parametrize(
    ("field", "value"), [("timezone", "Mars/Olympus"), ("reminder_time", "25:00"), ("name", "")]
)
def test_a_bad_detail_is_named_and_nothing_changes(
    client: TestClient, db: Session, field: str, value: str
) -> None:
    clinic = make_clinic(db)
    patient_id = make_patient(db, clinic)
    staff_member(db, clinic, "a@north.example")
    csrf = log_in(client, "a@north.example")
    answer = client.post(f"/app/patients/{patient_id}", data={"csrf": csrf, **FIELDS, field: value})
    assert answer.status_code == 422
    assert f'id="{field}-error"' in answer.text
    db.expire_all()
    patient = db.get(Patient, patient_id)
    assert patient is not None and patient.name == "Ann Example"
