"""Tenant isolation on every route that takes an id, and bad input on every kind of
field: a clear 4xx naming the problem, and nothing written."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from reminders.api import create_app
from reminders.models import Enrollment, Patient, TreatmentSession
from reminders.runtime import Runtime
from tests.api.conftest import ENROLLMENT, PATIENT, Api
from tests.conftest import CLEAR_SCREENING


def a_clinics_things(api: Api) -> dict[str, str]:
    patient = api.patient(timezone="UTC", reminder_time="18:00")
    enrollment = api.enroll(patient)
    endpoint = api.post("/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/h"}).json()
    delivery = api.get("/v1/deliveries").json()["items"][0]
    return {
        "patient": patient,
        "enrollment": enrollment["id"],
        "session": enrollment["upcoming"][0]["id"],
        "endpoint": endpoint["id"],
        "delivery": delivery["id"],
    }


ROUTES = [
    ("get", "/v1/patients/{patient}", None),
    ("patch", "/v1/patients/{patient}", {"name": "Mallory"}),
    ("post", "/v1/patients/{patient}/enrollments", ENROLLMENT),
    ("get", "/v1/patients/{patient}/adherence", None),
    ("get", "/v1/enrollments/{enrollment}", None),
    ("post", "/v1/enrollments/{enrollment}/pause", None),
    ("post", "/v1/enrollments/{enrollment}/resume", None),
    ("post", "/v1/enrollments/{enrollment}/withdraw", None),
    ("get", "/v1/enrollments/{enrollment}/sessions", None),
    ("post", "/v1/sessions/{session}/confirm", {"hdss": 1}),
    ("post", "/v1/sessions/{session}/skip", {"reason": "x"}),
    ("get", "/v1/deliveries/{delivery}", None),
    ("delete", "/v1/webhook-endpoints/{endpoint}", None),
    ("post", "/v1/webhook-endpoints/{endpoint}/rotate-secret", None),
]


@pytest.mark.parametrize(("method", "template", "body"), ROUTES)
def test_another_clinics_ids_answer_404_and_change_nothing(
    api: Api, other: Api, db: Session, method: str, template: str, body: Any
) -> None:
    ids = a_clinics_things(api)
    url = template.format(**ids)
    before = api.get(f"/v1/enrollments/{ids['enrollment']}").json()
    call = getattr(other, method)
    answer = call(url, body) if method in ("post", "patch") else call(url)
    assert answer.status_code == 404, (url, answer.status_code, answer.text)
    assert "Mallory" not in answer.text
    assert api.get(f"/v1/enrollments/{ids['enrollment']}").json() == before
    assert api.get(f"/v1/patients/{ids['patient']}").json()["name"] == "Ann Example"


def test_lists_show_only_the_clinics_own(api: Api, other: Api) -> None:
    a_clinics_things(api)
    assert other.get("/v1/patients").json()["items"] == []
    assert other.get("/v1/deliveries").json()["items"] == []
    assert other.get("/v1/webhook-endpoints").json()["items"] == []
    assert other.get("/v1/adherence").json()["items"] == []


def test_no_key_or_a_wrong_key_is_401(api: Api) -> None:
    assert api.client.get("/v1/patients").status_code == 401
    wrong = api.client.get("/v1/patients", headers={"Authorization": "Bearer rk_nope"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"


def rows(db: Session) -> tuple[int, int, int]:
    db.expire_all()
    return (
        db.exec(select(func.count()).select_from(Patient)).one(),
        db.exec(select(func.count()).select_from(Enrollment)).one(),
        db.exec(select(func.count()).select_from(TreatmentSession)).one(),
    )


BAD_PATIENTS = [
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": "Europe/Berlin "}, "timezone"),
    ({"reminder_time": "25:00"}, "reminder_time"),
    ({"reminder_time": "6pm"}, "reminder_time"),
    ({"quiet_hours": {"start": "21:00", "end": "8"}}, "end"),
    ({"channel": "sms"}, "channel"),
    ({"email": "not-an-address"}, "email"),
    ({"email": None}, "email"),
    ({"name": ""}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"locale": "english"}, "locale"),
    ({"favourite_colour": "blue"}, "favourite_colour"),
]


@pytest.mark.parametrize(("fields", "field"), BAD_PATIENTS)
def test_bad_patient_names_the_field_and_writes_nothing(
    api: Api, db: Session, fields: dict[str, Any], field: str
) -> None:
    before = rows(db)
    answer = api.post("/v1/patients", {**PATIENT, **fields})
    assert answer.status_code == 422, answer.text
    assert field in str(answer.json()["detail"])
    assert rows(db) == before


BAD_ENROLLMENTS = [
    ({"protocol": "snake-oil"}, "protocol"),
    ({"start_date": "2020-01-01"}, "start_date"),
    ({"start_date": "2031-01-01"}, "start_date"),
    ({"start_date": "07/12/2026"}, "start_date"),
    ({"weekdays": []}, "weekdays"),
    ({"weekdays": ["mon", "someday"]}, "weekdays"),
    ({"screening": {"pacemaker": False}}, "screening"),
    ({"screening": {**CLEAR_SCREENING, "pacemaker": "maybe"}}, "pacemaker"),
    ({"body_area": "'; DROP TABLE patient; --"}, "body_area"),
    ({"override_reason": "x" * 1001}, "override_reason"),
]


@pytest.mark.parametrize(("fields", "field"), BAD_ENROLLMENTS)
def test_bad_enrollment_names_the_field_and_writes_nothing(
    api: Api, db: Session, fields: dict[str, Any], field: str
) -> None:
    patient = api.patient()
    before = rows(db)
    answer = api.post(f"/v1/patients/{patient}/enrollments", {**ENROLLMENT, **fields})
    assert answer.status_code == 422, answer.text
    assert field in str(answer.json()["detail"])
    assert rows(db) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [({"hdss": 7}, "hdss"), ({"hdss": 0}, "hdss"), ({"current_ma": -1}, "current_ma"),
     ({"minutes": 0}, "minutes"), ({"completed_at": "2030-01-01T00:00:00Z"}, "completed_at"),
     ({"completed_at": "2026-12-07T08:00:00"}, "completed_at")],
)  # fmt: skip
def test_bad_confirmation_names_the_field_and_leaves_the_session_planned(
    api: Api, body: dict[str, Any], field: str
) -> None:
    enrollment = api.enroll(api.patient())
    session = enrollment["upcoming"][0]["id"]
    answer = api.post(f"/v1/sessions/{session}/confirm", body)
    assert answer.status_code == 422, answer.text
    assert field in str(answer.json()["detail"])
    window = api.get(f"/v1/enrollments/{enrollment['id']}/sessions").json()["items"]
    assert window[0]["status"] == "planned"


def test_sql_and_unicode_strings_are_stored_as_text(api: Api) -> None:
    name = "Zoë O'Brien-Ångström 李 ' OR 1=1; -- 💧"
    patient = api.patient(name=name, external_id="x'); DELETE FROM patient; --")
    assert api.get(f"/v1/patients/{patient}").json()["name"] == name
    assert len(api.get("/v1/patients").json()["items"]) == 1


def test_oversized_body_is_413_and_wrong_content_type_415(api: Api, db: Session) -> None:
    before = rows(db)
    huge = api.client.post(
        "/v1/patients",
        content=b'{"name": "' + b"x" * 100_000 + b'"}',
        headers={**api.headers(), "content-type": "application/json"},
    )
    assert huge.status_code == 413
    form = api.client.post(
        "/v1/patients",
        content=b"name=Ann",
        headers={**api.headers(), "content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 415
    assert "application/json" in form.json()["detail"]
    broken = api.client.post(
        "/v1/patients",
        content=b'{"name": ',
        headers={**api.headers(), "content-type": "application/json"},
    )
    assert broken.status_code == 422
    assert rows(db) == before


def test_bad_query_parameters_name_themselves(api: Api) -> None:
    enrollment = api.enroll(api.patient())
    sessions = f"/v1/enrollments/{enrollment['id']}/sessions"
    preview = "/v1/protocols/tap-water-hyperhidrosis/preview"
    bad = [
        ("/v1/patients", {"limit": 0}, "limit"),
        ("/v1/patients", {"cursor": "zzz"}, "cursor"),
        (sessions, {"from": "2026-12-10", "to": "2026-12-01"}, "to"),
        (preview, {"start": "soon"}, "start"),
        (preview, {"start": "2026-12-07", "weekdays": "funday"}, "weekdays"),
    ]
    for url, params, field in bad:
        answer = api.get(url, params=params)
        assert answer.status_code == 422, (url, answer.text)
        assert field in str(answer.json()["detail"]), (url, answer.text)
        assert answer.json()["detail"][0]["loc"][0] == "query", (url, answer.text)


def test_dates_at_the_ends_of_the_calendar_are_422_naming_the_field(api: Api, db: Session) -> None:
    patient = api.patient()
    enrollment = api.enroll(patient)
    session = enrollment["upcoming"][0]["id"]
    before = rows(db)
    bad_bodies = [
        (f"/v1/patients/{patient}/enrollments",
         {**ENROLLMENT, "start_date": "9999-12-31", "body_area": "soles"}, "start_date"),
        (f"/v1/sessions/{session}/confirm", {"completed_at": "0001-01-01T00:00:00+14:00"},
         "completed_at"),
        (f"/v1/sessions/{session}/confirm", {"completed_at": "9999-12-31T23:59:59-12:00"},
         "completed_at"),
        (f"/v1/enrollments/{enrollment['id']}/pause", {"until": "9999-12-31"}, "until"),
        (f"/v1/patients/{patient}/absences", {"from": "0001-01-01", "to": "2026-12-09"}, "from"),
        ("/v1/clinic/closed-dates", {"date": "9999-12-31"}, "date"),
    ]  # fmt: skip
    for url, body, field in bad_bodies:
        answer = api.post(url, body)
        assert answer.status_code == 422, (url, answer.text)
        assert field in str(answer.json()["detail"]), (url, answer.text)
    sessions = f"/v1/enrollments/{enrollment['id']}/sessions"
    preview = "/v1/protocols/tap-water-hyperhidrosis/preview"
    for url, params, field in [
        (sessions, {"from": "0001-01-01"}, "from"),
        (preview, {"start": "9999-12-31"}, "start"),
    ]:
        answer = api.get(url, params=params)
        assert answer.status_code == 422, (url, answer.text)
        assert field in str(answer.json()["detail"]), (url, answer.text)
    reopened = api.delete("/v1/clinic/closed-dates/0001-01-01")
    assert reopened.status_code == 422, reopened.text
    assert rows(db) == before


def test_an_unexpected_error_answers_json_500_without_its_details(rt: Runtime) -> None:
    app = create_app(rt, scheduler_problems=lambda: [])

    @app.get("/broken")
    def broken() -> None:
        raise RuntimeError("ann@example.org")

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/broken")
    assert answer.status_code == 500
    assert answer.json() == {"detail": "internal error"}


def test_patients_are_found_by_external_id_and_list_their_enrollments(api: Api, other: Api) -> None:
    first = api.patient(external_id="EHR-1042")
    api.patient(external_id="EHR-7")
    found = api.get("/v1/patients", params={"external_id": "EHR-1042"}).json()
    assert [p["id"] for p in found["items"]] == [first]
    assert other.get("/v1/patients", params={"external_id": "EHR-1042"}).json()["items"] == []
    enrollment = api.enroll(first)
    listed = api.get(f"/v1/patients/{first}/enrollments").json()
    assert ([e["id"] for e in listed["items"]], listed["next_cursor"]) == (
        [enrollment["id"]], None,
    )  # fmt: skip
    assert other.get(f"/v1/patients/{first}/enrollments").status_code == 404


def test_an_external_id_names_one_patient_of_a_clinic(api: Api, other: Api) -> None:
    first = api.patient(external_id="EHR-77")
    again = api.post("/v1/patients", {**PATIENT, "external_id": "EHR-77"})
    assert again.status_code == 409
    assert "external_id" in again.json()["detail"]
    second = api.patient(external_id="EHR-78")
    assert api.patch(f"/v1/patients/{second}", {"external_id": "EHR-77"}).status_code == 409
    assert other.patient(external_id="EHR-77")  # another clinic's id space
    found = api.get("/v1/patients", params={"external_id": "EHR-77"}).json()["items"]
    assert [p["id"] for p in found] == [first]
