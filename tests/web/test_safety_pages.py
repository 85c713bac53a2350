"""The staff app's side of safety: a held plan is shown as urgent with the decision form
on the patient's page; the decision is checked field by field; the last endpoint taking
reminders is not deleted while patients need it; a time inside the quiet hours is
refused naming it."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session

from reminders.models import Enrollment, SessionReport
from reminders.runtime import Runtime
from reminders.services import sessions, webhooks
from reminders.stores import session_store
from tests.conftest import enroll_patient, make_clinic, make_patient
from tests.web.conftest import NOW, log_in, staff_member


def _held(db: Session, rt: Runtime) -> tuple[str, str, str]:
    """A clinic, a patient whose plan a burn held today, and the enrollment."""
    clinic = make_clinic(db)
    patient = make_patient(db, clinic, timezone="UTC")
    enrollment = enroll_patient(db, rt, clinic, patient, "2026-12-07", NOW)
    (first, *_) = session_store.of_enrollment(db, enrollment)
    sessions.confirm_session(db, rt, clinic, first.id, SessionReport(side_effect="burn"), NOW)
    db.commit()
    return clinic, patient, enrollment


def test_a_held_plan_is_decided_on_from_the_patients_page(
    client: TestClient, db: Session, rt: Runtime
) -> None:
    clinic, patient, enrollment = _held(db, rt)
    staff_member(db, clinic, "a@north.example")
    csrf = log_in(client, "a@north.example")
    today = client.get("/app/").text
    assert '<span class="tag urgent">Urgent</span>' in today
    page = client.get(f"/app/patients/{patient}").text
    assert "Held after a side effect." in page and "Record the decision" in page
    url = f"/app/enrollments/{enrollment}/hold-decision"
    nameless = client.post(url, data={"csrf": csrf, "decision": "continue"})
    assert nameless.status_code == 422
    error = nameless.text.split('<p class="error" role="alert">')[1].split("</p>")[0]
    assert error.startswith("by"), error
    decided = client.post(
        url, data={"csrf": csrf, "decision": "continue", "by": "Dr Weiss", "note": "new pads"},
        follow_redirects=False,
    )  # fmt: skip
    assert decided.status_code == 303
    db.expire_all()
    assert db.get(Enrollment, enrollment).status == "active"  # type: ignore[union-attr]
    assert "Urgent" not in client.get("/app/escalations").text


def test_the_last_endpoint_taking_reminders_is_kept_with_the_reason(
    client: TestClient, db: Session, rt: Runtime
) -> None:
    clinic = make_clinic(db)
    endpoint = webhooks.add_endpoint(
        db, rt.settings, clinic, "https://hooks.example/r", NOW, url_checked=True
    )
    patient = make_patient(db, clinic, timezone="UTC", channel="webhook", email=None)
    enroll_patient(db, rt, clinic, patient, "2026-12-07", NOW)
    staff_member(db, clinic, "a@north.example")
    csrf = log_in(client, "a@north.example")
    refused = client.post(f"/app/endpoints/{endpoint.id}/delete", data={"csrf": csrf})
    assert refused.status_code == 409
    assert "Not deleted: 1 patient(s) are reminded by webhook" in refused.text
    assert "https://hooks.example/r" in client.get("/app/endpoints").text


def test_a_reminder_time_inside_the_quiet_hours_is_refused_on_the_patients_page(
    client: TestClient, db: Session
) -> None:
    clinic = make_clinic(db)
    patient = make_patient(db, clinic, external_id="EHR-9")
    staff_member(db, clinic, "a@north.example")
    csrf = log_in(client, "a@north.example")
    fields = {"name": "Ann", "email": "ann@example.org", "timezone": "UTC", "locale": "en"}
    answer = client.post(
        f"/app/patients/{patient}", data={"csrf": csrf, **fields, "reminder_time": "22:30"}
    )
    assert answer.status_code == 422
    assert 'id="reminder_time-error"' in answer.text and "quiet hours" in answer.text
