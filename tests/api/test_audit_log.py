"""The audit log through the API: what a key changed, and who it named."""

from __future__ import annotations

from tests.api.conftest import Api
from tests.conftest import CLEAR_SCREENING


def test_an_override_enrollment_is_logged_with_the_key_and_no_patient_name(
    api: Api, other: Api
) -> None:
    patient = api.patient()
    enrollment = api.enroll(
        patient,
        screening={**CLEAR_SCREENING, "pregnancy": True},
        override_reason="Obstetrician agreed",
    )
    paused = api.post(f"/v1/enrollments/{enrollment['id']}/pause", {"reason": "surgery"})
    assert paused.status_code == 200

    entries = api.get("/v1/audit-log").json()["items"]

    assert entries[0]["action"] == "enrollment.pause"
    # Enrolling and its override are one change, recorded at the same instant.
    assert {e["action"] for e in entries[1:]} == {"screening.override", "enroll"}
    assert {e["actor"] for e in entries} == {"api key first"}
    (override,) = [e for e in entries if e["action"] == "screening.override"]
    assert override["detail"]["flagged"] == ["pregnancy"]
    assert override["detail"]["reason"] == "Obstetrician agreed"
    assert "Ann" not in str(entries)
    assert other.get("/v1/audit-log").json()["items"] == []


def test_the_audit_log_pages_newest_first(api: Api) -> None:
    for n in range(3):
        answer = api.post("/v1/webhook-endpoints", {"url": f"http://127.0.0.1:9/{n}"})
        assert answer.status_code == 201
    first = api.get("/v1/audit-log", params={"limit": 2}).json()
    rest = api.get("/v1/audit-log", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    urls = [e["detail"]["url"] for e in first["items"] + rest["items"]]
    assert urls == [f"http://127.0.0.1:9/{n}" for n in (2, 1, 0)]
    assert rest["next_cursor"] is None
