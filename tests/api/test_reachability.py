"""No patient is silently unreachable: a reminder time inside the quiet hours is refused
wherever it is set, naming the field, and nothing is written."""

from __future__ import annotations

from tests.api.conftest import PATIENT, Api


def test_a_reminder_time_inside_the_quiet_hours_is_refused_naming_it(api: Api) -> None:
    late = api.post("/v1/patients", {**PATIENT, "reminder_time": "22:30"})
    assert late.status_code == 422
    assert "reminder_time" in late.text and "quiet hours 21:00-08:00" in late.text
    early = api.post(
        "/v1/patients",
        {**PATIENT, "reminder_time": "12:15", "quiet_hours": {"start": "12:00", "end": "13:00"}},
    )
    assert early.status_code == 422 and "reminder_time" in early.text
    assert api.get("/v1/patients").json()["items"] == []
    kept = api.post("/v1/patients", {**PATIENT, "reminder_time": "20:30"})
    assert kept.status_code == 201


def test_changing_the_time_or_the_quiet_hours_so_they_overlap_is_refused(api: Api) -> None:
    patient = api.patient(reminder_time="20:30")
    moved = api.patch(f"/v1/patients/{patient}", {"reminder_time": "23:00"})
    assert moved.status_code == 422 and "reminder_time" in moved.text
    widened = api.patch(
        f"/v1/patients/{patient}", {"quiet_hours": {"start": "20:00", "end": "07:00"}}
    )
    assert widened.status_code == 422 and "quiet_hours" in widened.text
    kept = api.get(f"/v1/patients/{patient}").json()
    assert (kept["reminder_time"], kept["quiet_hours"]) == ("20:30", PATIENT["quiet_hours"])
    both = api.patch(
        f"/v1/patients/{patient}",
        {"reminder_time": "19:00", "quiet_hours": {"start": "20:00", "end": "07:00"}},
    )
    assert both.status_code == 200


def test_the_last_endpoint_taking_reminders_cannot_go_while_patients_need_it(api: Api) -> None:
    url = "/v1/webhook-endpoints"
    first = api.post(url, {"url": "http://127.0.0.1:9/hooks", "events": ["session.reminder"]})
    events_only = api.post(url, {"url": "http://127.0.0.1:9/events", "events": ["session.missed"]})
    assert first.status_code == events_only.status_code == 201
    patient = api.patient(channel="webhook", email=None)
    api.enroll(patient)
    refused = api.delete(f"{url}/{first.json()['id']}")
    assert refused.status_code == 409 and "1 patient(s) are reminded by webhook" in refused.text
    assert len(api.get(url).json()["items"]) == 2
    assert api.delete(f"{url}/{events_only.json()['id']}").status_code == 204
    second = api.post(url, {"url": "http://127.0.0.1:9/other", "events": ["*"]})
    assert api.delete(f"{url}/{first.json()['id']}").status_code == 204
    assert api.delete(f"{url}/{second.json()['id']}").status_code == 409
    assert (
        api.patch(
            f"/v1/patients/{patient}", {"channel": "email", "email": "a@example.org"}
        ).status_code
        == 200
    )
    assert api.delete(f"{url}/{second.json()['id']}").status_code == 204
