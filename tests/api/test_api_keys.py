"""Named API keys: one per integration, revocable, never taken from a URL."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from reminders.services import api_keys
from tests.api.conftest import Api
from tests.conftest import OpenClient


@pytest.fixture
def second_process(open_client: OpenClient, app_clock: list[datetime]) -> TestClient:
    """Another app on the same database: what another `serve` process would be."""
    return open_client(lambda: app_clock[0])


def _with(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.both_databases
def test_a_clinic_names_its_keys_and_a_revoked_key_stops_working_in_every_process(
    api: Api, second_process: TestClient
) -> None:
    created = api.post("/v1/api-keys", {"name": "ehr-sync"})
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert key.startswith("rk_")
    assert second_process.get("/v1/clinic", headers=_with(key)).status_code == 200

    listed = api.get("/v1/api-keys").json()
    assert [k["name"] for k in listed["items"]] == ["first", "ehr-sync"]
    assert all("key" not in k and "key_hash" not in k for k in listed["items"])
    assert listed["items"][1]["last_used_at"] is not None

    assert api.delete(f"/v1/api-keys/{created.json()['id']}").status_code == 204
    time.sleep(api_keys.CHECK_EVERY_S + 0.1)
    refused = second_process.get("/v1/clinic", headers=_with(key))
    assert refused.status_code == 401
    (revoked,) = [k for k in api.get("/v1/api-keys").json()["items"] if k["name"] == "ehr-sync"]
    assert revoked["revoked_at"] is not None


def test_the_last_key_in_use_cannot_be_revoked(api: Api) -> None:
    (first,) = api.get("/v1/api-keys").json()["items"]
    answer = api.delete(f"/v1/api-keys/{first['id']}")
    assert answer.status_code == 409
    assert "last key" in answer.json()["detail"]


def test_key_names_are_checked_and_unique_within_a_clinic(api: Api, other: Api) -> None:
    assert api.post("/v1/api-keys", {"name": "ehr-sync"}).status_code == 201
    assert api.post("/v1/api-keys", {"name": "ehr-sync"}).status_code == 409
    assert other.post("/v1/api-keys", {"name": "ehr-sync"}).status_code == 201
    bad = api.post("/v1/api-keys", {"name": "<script>"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "name"]


def test_another_clinics_key_answers_404(api: Api, other: Api) -> None:
    (theirs,) = other.get("/v1/api-keys").json()["items"]
    assert api.delete(f"/v1/api-keys/{theirs['id']}").status_code == 404


def test_a_key_in_the_query_string_is_refused_even_with_a_good_header(api: Api) -> None:
    answer = api.get("/v1/clinic", params={"api_key": api.key})
    assert answer.status_code == 400
    assert "Authorization header" in answer.json()["detail"]
    assert api.key not in answer.text


def test_what_a_key_does_is_recorded_under_its_name(api: Api) -> None:
    desk = api.post("/v1/api-keys", {"name": "nurse-desk"}).json()["key"]
    patient = api.patient()
    unsubscribed = api.client.patch(
        f"/v1/patients/{patient}", json={"subscribed": False}, headers=_with(desk)
    )
    assert unsubscribed.status_code == 200, unsubscribed.text
    back = api.client.patch(
        f"/v1/patients/{patient}",
        json={"subscribed": True, "consent": "asked by phone to get reminders again"},
        headers=_with(desk),
    ).json()
    assert back["resubscribed_by"] == "api key nurse-desk"
    (settled,) = api.get("/v1/escalations").json()["items"]
    assert (settled["state"], settled["acknowledged_by"]) == ("acknowledged", "api key nurse-desk")

    other = api.patient(external_id="EHR-2")
    api.client.patch(f"/v1/patients/{other}", json={"subscribed": False}, headers=_with(desk))
    (opened,) = api.get("/v1/escalations", params={"state": "open"}).json()["items"]
    acknowledged = api.client.post(
        f"/v1/escalations/{opened['id']}/acknowledge",
        json={"by": "Nurse Kim"},
        headers=_with(desk),
    ).json()
    assert acknowledged["acknowledged_by"] == "Nurse Kim (api key nurse-desk)"
