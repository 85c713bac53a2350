"""Control characters in free text: refused with 422 naming the field, on SQLite and on
PostgreSQL alike (PostgreSQL cannot store NUL at all), and nothing written; notes keep
their line breaks and tabs."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session, func, select

from reminders.models import Patient, TreatmentSession, WebhookEndpoint
from tests.api.conftest import ENROLLMENT, PATIENT, Api

pytestmark = pytest.mark.both_databases

CRLF_NAME = "Eve\r\nBcc: attacker@evil.example"

BAD_PATIENTS = [
    ({"name": CRLF_NAME}, "name"),
    ({"name": "Ann\x00"}, "name"),
    ({"name": "Ann\x7f"}, "name"),
    ({"name": "Ann\u2028Example"}, "name"),
    ({"external_id": "EHR\x1b[31m"}, "external_id"),
    ({"timezone": "Europe/Berlin\n"}, "timezone"),
    ({"email": "ann\x00@example.org"}, "email"),
    ({"email": "ann@-bad-ä.example"}, "email"),
]


def patients(db: Session) -> int:
    db.expire_all()
    return db.exec(select(func.count()).select_from(Patient)).one()


def refused_field(answer: Any) -> list[str]:
    assert answer.status_code == 422, answer.text
    return [error["loc"][-1] for error in answer.json()["detail"]]


@pytest.mark.parametrize(("fields", "field"), BAD_PATIENTS)
def test_a_control_character_in_a_patient_field_is_422_naming_it(
    api: Api, db: Session, fields: dict[str, Any], field: str
) -> None:
    answer = api.post("/v1/patients", {**PATIENT, **fields})
    assert refused_field(answer) == [field]
    assert patients(db) == 0


def test_a_crlf_name_is_refused_on_update_too_and_the_name_stays(api: Api) -> None:
    patient = api.patient()
    answer = api.patch(f"/v1/patients/{patient}", {"name": CRLF_NAME})
    assert refused_field(answer) == ["name"]
    assert api.get(f"/v1/patients/{patient}").json()["name"] == "Ann Example"


def test_an_international_address_is_kept_as_given(api: Api) -> None:
    patient = api.patient(email="zoë@bücher.example")
    assert api.get(f"/v1/patients/{patient}").json()["email"] == "zoë@bücher.example"


def test_notes_keep_line_breaks_and_tabs_but_refuse_other_controls(api: Api, db: Session) -> None:
    patient = api.patient(timezone="UTC", reminder_time="18:00")
    refused = api.post(
        f"/v1/patients/{patient}/enrollments", {**ENROLLMENT, "override_reason": "ok\x00"}
    )
    assert refused_field(refused) == ["override_reason"]
    reason = "Seen by Dr. Lee.\r\nPacemaker removed in 2019:\tcleared."
    enrollment = api.enroll(patient, override_reason=reason)
    assert enrollment["override_reason"] == reason
    session = enrollment["upcoming"][0]["id"]
    bell = api.post(f"/v1/sessions/{session}/skip", {"reason": "away\x07"})
    assert refused_field(bell) == ["reason"]
    skipped = api.post(f"/v1/sessions/{session}/skip", {"reason": "away\nback Friday"})
    assert skipped.status_code == 200, skipped.text
    db.expire_all()
    stored = db.get(TreatmentSession, session)
    assert stored is not None and stored.skip_reason == "away\nback Friday"


def test_a_webhook_url_with_a_line_break_is_refused(api: Api, db: Session) -> None:
    answer = api.post("/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/h\r\nX: y"})
    assert refused_field(answer) == ["url"]
    assert db.exec(select(func.count()).select_from(WebhookEndpoint)).one() == 0
