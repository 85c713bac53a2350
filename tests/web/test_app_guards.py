"""The app's guards, without a browser: forms need this browser's token and this site's
origin, staff see only their clinic, bad input gets a page naming the field."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from reminders.api.app import RedactLinkTokens
from reminders.models import AuditEvent, Escalation, Patient, WebhookEndpoint
from reminders.runtime import Runtime
from reminders.services import clinic_days, events, staff, webhooks
from reminders.services.audit import Actor
from tests.conftest import SETUP, enroll_patient, make_clinic, make_patient
from tests.web.conftest import NOW, PASSWORD, csrf_of, log_in, staff_member


def test_a_form_without_its_token_is_refused_and_writes_nothing(
    client: TestClient, db: Session
) -> None:
    staff_member(db, make_clinic(db), "a@north.example")
    log_in(client, "a@north.example")
    answer = client.post("/app/endpoints", data={"url": "https://hooks.example.org/x"})
    assert answer.status_code == 403
    assert "not sent from this app" in answer.text
    assert db.exec(select(WebhookEndpoint)).all() == []


def test_a_form_from_another_origin_is_refused_even_with_a_token(
    client: TestClient, db: Session
) -> None:
    staff_member(db, make_clinic(db), "a@north.example")
    csrf = log_in(client, "a@north.example")
    answer = client.post(
        "/app/endpoints", data={"csrf": csrf, "url": "https://hooks.example.org/x"},
        headers={"Origin": "https://evil.example"},
    )  # fmt: skip
    assert answer.status_code == 403


def test_htmx_requests_carry_the_token_in_a_header(client: TestClient, db: Session) -> None:
    clinic = make_clinic(db)
    staff_member(db, clinic, "a@north.example")
    csrf = log_in(client, "a@north.example")
    answer = client.post(
        "/app/settings/closed", data={"day": "2026-12-24"},
        headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
    )  # fmt: skip
    assert answer.status_code == 204
    assert answer.headers["HX-Redirect"] == "/app/settings"
    db.expire_all()
    (entry,) = db.exec(select(AuditEvent)).all()
    assert (entry.action, entry.actor) == ("clinic.close", "a@north.example")


def test_logging_out_ends_the_login_on_the_server(client: TestClient, db: Session) -> None:
    staff_member(db, make_clinic(db), "a@north.example")
    csrf = log_in(client, "a@north.example")
    cookie = client.cookies.get("reminders_staff")
    client.post("/app/logout", data={"csrf": csrf}, follow_redirects=False)
    client.cookies.set("reminders_staff", cookie or "", domain="reminders.example.org")
    answer = client.get("/app/", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/app/login"


def test_the_login_cookie_is_httponly_samesite_lax_and_secure_behind_https(
    client: TestClient, db: Session
) -> None:
    staff_member(db, make_clinic(db), "a@north.example")
    csrf = csrf_of(client)
    answer = client.post(
        "/app/login", data={"csrf": csrf, "email": "a@north.example", "password": PASSWORD},
        follow_redirects=False,
    )  # fmt: skip
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" in cookie


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/app/patients/{patient}"),
        ("post", "/app/patients/{patient}"),
        ("get", "/app/enroll?patient={patient}"),
        ("post", "/app/enrollments/{enrollment}/pause"),
        ("post", "/app/enrollments/{enrollment}/withdraw"),
        ("post", "/app/escalations/{escalation}/acknowledge"),
        ("post", "/app/patients/{patient}/absences"),
        ("post", "/app/endpoints/{endpoint}/rotate"),
        ("post", "/app/endpoints/{endpoint}/delete"),
        ("post", "/app/settings/staff/{member}"),
    ],
)
def test_another_clinics_staff_get_404(
    client: TestClient, db: Session, rt: Runtime, method: str, path: str
) -> None:
    north, south = make_clinic(db), make_clinic(db, "South")
    patient = make_patient(db, north)
    enrollment = enroll_patient(db, rt, north, patient, "2026-12-07", NOW)
    found = db.get(Patient, patient)
    assert found is not None
    events.escalate(db, found, "side_effect", "burn", NOW)
    endpoint = webhooks.add_endpoint(db, rt.settings, north, "http://127.0.0.1:9/hook", SETUP)
    nurse = staff.add_member(db, north, "n@north.example", "clinician", None, NOW)
    db.commit()
    escalation = db.exec(select(Escalation)).one()
    staff_member(db, south, "s@south.example", role="admin")
    csrf = log_in(client, "s@south.example")
    url = path.format(
        patient=patient, enrollment=enrollment, escalation=escalation.id, endpoint=endpoint.id,
        member=nurse.id,
    )  # fmt: skip
    data = {
        "csrf": csrf, "first": "2026-12-20", "last": "2026-12-21", "note": "called",
        "role": "admin", "name": "Eve", "timezone": "UTC", "reminder_time": "18:00",
        "locale": "en",
    }  # fmt: skip
    answer = client.get(url) if method == "get" else client.post(url, data=data)
    assert answer.status_code == 404
    assert "<h1>Not found</h1>" in answer.text
    db.expire_all()
    assert db.exec(select(AuditEvent)).all() == []


def test_a_clinician_has_no_settings_page(client: TestClient, db: Session) -> None:
    staff_member(db, make_clinic(db), "n@north.example", role="clinician")
    log_in(client, "n@north.example")
    assert client.get("/app/settings").status_code == 404


def test_a_bad_pause_date_answers_a_page_naming_it_not_an_error(
    client: TestClient, db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    enrollment = enroll_patient(db, rt, clinic, make_patient(db, clinic), "2026-12-07", NOW)
    staff_member(db, clinic, "a@north.example")
    csrf = log_in(client, "a@north.example")
    answer = client.post(
        f"/app/enrollments/{enrollment}/pause", data={"csrf": csrf, "until": "someday"}
    )
    assert answer.status_code == 422
    assert "until" in answer.text


def test_an_invite_to_an_address_of_another_clinic_is_refused_by_name(
    client: TestClient, db: Session
) -> None:
    north, south = make_clinic(db), make_clinic(db, "South")
    staff.add_member(db, south, "taken@south.example", "clinician", Actor("cli"), NOW)
    db.commit()
    staff_member(db, north, "a@north.example")
    csrf = log_in(client, "a@north.example")
    answer = client.post(
        "/app/settings/staff", data={"csrf": csrf, "email": "taken@south.example", "role": "admin"}
    )
    assert answer.status_code == 409
    assert "already has a staff account" in answer.text


def test_setup_and_reset_tokens_stay_out_of_access_logs() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1", "GET", "/app/setup/" + "A" * 43, "1.1", 200), None,
    )  # fmt: skip
    RedactLinkTokens().filter(record)
    assert "AAAA" not in record.getMessage()
    assert "/app/setup/…" in record.getMessage()


def test_pages_show_times_in_the_clinics_zone(client: TestClient, db: Session, rt: Runtime) -> None:
    clinic = make_clinic(db)
    clinic_days.set_hours(db, rt, clinic, NOW, timezone="Europe/Berlin")
    patient = db.get(Patient, make_patient(db, clinic))
    assert patient is not None
    events.escalate(db, patient, "side_effect", "burn", NOW)  # 09:00 UTC
    db.commit()
    staff_member(db, clinic, "a@north.example")
    log_in(client, "a@north.example")
    assert "2026-12-07 10:00 CET" in client.get("/app/escalations").text
