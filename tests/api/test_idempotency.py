"""`Idempotency-Key`: a client retrying a POST gets the first answer, not a second row."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import timedelta

import pytest
from httpx import Response
from sqlmodel import Session, select

from reminders.models import IdempotentRequest, Patient
from reminders.services import api_keys
from reminders.services.retention import purge_old
from tests.api.conftest import PATIENT, Api


def _post(api: Api, body: Mapping[str, object], key: str, bearer: str | None = None) -> Response:
    headers = {"Authorization": f"Bearer {bearer or api.key}", "Idempotency-Key": key}
    answer: Response = api.client.post("/v1/patients", json=body, headers=headers)
    return answer


def _patients(db: Session) -> int:
    db.expire_all()
    return len(db.exec(select(Patient)).all())


@pytest.mark.both_databases
def test_the_same_post_sent_twice_with_a_key_creates_one_patient_and_replays_the_answer(
    api: Api, db: Session
) -> None:
    first = _post(api, PATIENT, "retry-7f3a")
    again = _post(api, PATIENT, "retry-7f3a")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert _patients(db) == 1
    assert _post(api, {**PATIENT, "external_id": "EHR-2"}, "another-key").status_code == 201
    assert _patients(db) == 2


def test_the_same_key_with_another_body_is_refused_naming_the_header(api: Api, db: Session) -> None:
    assert _post(api, PATIENT, "k-1").status_code == 201
    changed = _post(api, {**PATIENT, "name": "Bea Other"}, "k-1")
    assert changed.status_code == 422
    assert changed.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert _patients(db) == 1


def test_keys_belong_to_the_caller_and_bad_keys_are_refused(api: Api, other: Api) -> None:
    assert _post(api, PATIENT, "shared").status_code == 201
    theirs = _post(other, PATIENT, "shared")
    assert theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    too_long = _post(api, PATIENT, "k" * 201)
    assert too_long.status_code == 422
    assert too_long.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


def test_a_refusal_is_replayed_too_and_answers_past_a_day_are_purged(api: Api, db: Session) -> None:
    bad = {**PATIENT, "timezone": "Mars/Olympus"}
    assert _post(api, bad, "k-bad").status_code == 422
    replayed = _post(api, bad, "k-bad")
    assert replayed.headers["idempotent-replayed"] == "true"
    purged = purge_old(db, api.clock[0] + timedelta(hours=25), timedelta(days=90))
    db.commit()
    assert purged["idempotent answers"] == 1
    assert db.exec(select(IdempotentRequest)).all() == []


def test_a_revoked_key_replays_nothing_and_unknown_keys_keep_nothing(api: Api, db: Session) -> None:
    spare = api.post("/v1/api-keys", {"name": "spare"}).json()
    assert _post(api, PATIENT, "k-9", bearer=spare["key"]).status_code == 201
    assert api.delete(f"/v1/api-keys/{spare['id']}").status_code == 204
    time.sleep(api_keys.CHECK_EVERY_S + 0.1)
    replayed = _post(api, PATIENT, "k-9", bearer=spare["key"])
    assert replayed.status_code == 401
    assert "Ann Example" not in replayed.text
    assert _post(api, PATIENT, "k-10", bearer="rk_not_a_key").status_code == 401
    db.expire_all()
    assert db.exec(select(IdempotentRequest)).all() == []


def test_an_answer_holding_a_secret_is_not_kept(api: Api, db: Session) -> None:
    headers = {**api.headers(), "Idempotency-Key": "new-key-1"}
    first = api.client.post("/v1/api-keys", json={"name": "ehr"}, headers=headers)
    assert first.status_code == 201
    again = api.client.post("/v1/api-keys", json={"name": "ehr"}, headers=headers)
    assert again.status_code == 409
    assert first.json()["key"] not in again.text
    db.expire_all()
    assert all(r.body is None for r in db.exec(select(IdempotentRequest)).all())
