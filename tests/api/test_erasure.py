"""A patient's data on request: everything held (export), or erased for good while the
clinic keeps its de-identified record of care; and resubscribing with consent."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from reminders.models import Patient, PatientToken
from reminders.runtime import Runtime
from reminders.states import DeliveryState
from reminders.stores import outbox
from tests.api.conftest import NOW, PATIENT, Api
from tests.api.test_patient_pages import remind
from tests.servers import SmtpRecorder

NAME = "Zelda Quimby-Erasure"
EMAIL = "zelda.quimby@example.org"
EXTERNAL = "EHR-ZQ-4711"


def _zelda(api: Api, rt: Runtime) -> tuple[str, dict[str, object]]:
    patient = api.patient(name=NAME, email=EMAIL, external_id=EXTERNAL, timezone="UTC",
                          reminder_time="09:00")  # fmt: skip
    enrollment = api.enroll(patient)
    remind(rt, NOW.replace(hour=9))
    session = enrollment["upcoming"][0]["id"]
    confirmed = api.post(
        f"/v1/sessions/{session}/confirm",
        {"hdss": 2, "side_effect": "dryness", "side_effect_note": f"{NAME} says it tingled"},
    )
    assert confirmed.status_code == 200, confirmed.text
    return patient, enrollment


def _stored_text(rt: Runtime, db: Session) -> bytes:
    """Everything the database holds: the files on SQLite, every text column on
    PostgreSQL."""
    if rt.engine.dialect.name == "sqlite":
        path = Path(str(rt.engine.url.database))
        files = [path, path.with_name(path.name + "-wal")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    tables = db.execute(
        sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema='public'")
    ).scalars()
    dumps = [
        db.execute(sa.text(f'SELECT CAST(t AS text) FROM "{table}" t')).scalars().all()
        for table in tables
    ]
    return "\n".join(str(row) for rows in dumps for row in rows).encode()


@pytest.mark.both_databases
def test_erasing_a_patient_leaves_nothing_that_names_them_and_keeps_their_adherence(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    patient, enrollment = _zelda(api, rt)
    before = _stored_text(rt, db)
    assert NAME.encode() in before and EMAIL.encode() in before

    assert api.delete(f"/v1/patients/{patient}").status_code == 204

    stored = _stored_text(rt, db)
    for found in (NAME, EMAIL, EXTERNAL, "Zelda"):
        assert found.encode() not in stored, found
    gone = api.get(f"/v1/patients/{patient}")
    assert gone.status_code == 410
    assert api.get(f"/v1/patients/{patient}/export").status_code == 410
    assert patient not in {p["id"] for p in api.get("/v1/patients").json()["items"]}
    kept = api.get(f"/v1/enrollments/{enrollment['id']}").json()
    assert kept["status"] == "withdrawn"
    assert kept["adherence"]["confirmed"] == 1
    db.expire_all()
    row = db.get(Patient, patient)
    assert row is not None and row.erased_by == "api key first" and row.erased_at is not None
    assert db.exec(select(PatientToken).where(PatientToken.patient_id == patient)).all() == []
    pending = outbox.matching(db, state=DeliveryState.PENDING)
    assert [d for d in pending if d.patient_id == patient] == []
    assert api.delete(f"/v1/patients/{patient}").status_code == 204  # erasing again: no change


def test_another_clinic_cannot_erase_or_export_a_patient(api: Api, other: Api) -> None:
    patient = api.patient()
    assert other.delete(f"/v1/patients/{patient}").status_code == 404
    assert other.get(f"/v1/patients/{patient}/export").status_code == 404
    assert api.get(f"/v1/patients/{patient}").status_code == 200


def test_the_export_holds_everything_about_the_patient(
    api: Api, rt: Runtime, smtp: SmtpRecorder
) -> None:
    patient, enrollment = _zelda(api, rt)
    export = api.get(f"/v1/patients/{patient}/export")
    assert export.status_code == 200
    document = export.json()
    assert document["patient"]["name"] == NAME and document["patient"]["email"] == EMAIL
    assert [e["id"] for e in document["enrollments"]] == [enrollment["id"]]
    assert any(s["side_effect_note"] for s in document["sessions"])
    sent = [d for d in document["deliveries"] if d["state"] == "sent"]
    assert sent and isinstance(sent[0]["payload"], dict)
    assert {t["purpose"] for t in document["link_tokens"]} >= {"session", "unsubscribe"}
    assert all("token_hash" not in t for t in document["link_tokens"])


@pytest.mark.both_databases
def test_a_patient_who_unsubscribed_is_resubscribed_only_with_their_consent(
    api: Api, rt: Runtime, smtp: SmtpRecorder, db: Session
) -> None:
    patient = api.patient(timezone="UTC", reminder_time="09:00")
    api.enroll(patient)
    stopped = api.patch(f"/v1/patients/{patient}", {"subscribed": False}).json()
    assert stopped["unsubscribed_at"] is not None
    remind(rt, NOW.replace(hour=9))
    assert _to_patient(smtp) == []

    refused = api.patch(f"/v1/patients/{patient}", {"subscribed": True})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "consent"]
    consent = "Asked at the 7 December visit to get reminders again"
    back = api.patch(f"/v1/patients/{patient}", {"subscribed": True, "consent": consent})
    assert back.status_code == 200, back.text
    shown = back.json()
    assert shown["unsubscribed_at"] is None
    assert shown["resubscribe_consent"] == consent
    assert shown["resubscribed_by"] == "api key first"

    remind(rt, NOW.replace(hour=9, minute=30))
    assert len(_to_patient(smtp)) == 1


def _to_patient(smtp: SmtpRecorder) -> list[object]:
    return [m for m in smtp.messages if str(PATIENT["email"]) in str(m["To"])]
