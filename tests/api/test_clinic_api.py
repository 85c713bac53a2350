"""The clinic API, through HTTP, on a real database."""

from __future__ import annotations

import socket
import threading
from datetime import time, timedelta
from typing import Any

import pytest
from sqlmodel import Session

from reminders.runtime import Runtime
from reminders.services.sweep import sweep
from reminders.states import DeliveryState
from reminders.stores import outbox
from tests.api.conftest import ENROLLMENT, NOW, PATIENT, Api
from tests.conftest import CLEAR_SCREENING


def test_patient_is_created_read_listed_and_changed(api: Api) -> None:
    ids = [api.patient(name=f"Patient {n}", email=f"p{n}@example.org") for n in range(3)]
    shown = api.get(f"/v1/patients/{ids[0]}").json()
    assert shown["timezone"] == "Europe/Berlin"
    assert shown["quiet_hours"] == {"start": "21:00", "end": "08:00"}
    first = api.get("/v1/patients", params={"limit": 2}).json()
    assert [p["id"] for p in first["items"]] == ids[:2]
    second = api.get("/v1/patients", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [p["id"] for p in second["items"]] == ids[2:]
    assert second["next_cursor"] is None
    changed = api.patch(f"/v1/patients/{ids[0]}", {"reminder_time": "08:45", "quiet_hours": None})
    assert changed.status_code == 200
    assert changed.json()["reminder_time"] == "08:45"
    assert changed.json()["quiet_hours"] is None


def test_changing_reminder_time_retimes_the_pending_reminder(api: Api, db: Session) -> None:
    patient = api.patient(timezone="UTC", reminder_time="18:00")
    api.enroll(patient)
    (before,) = outbox.matching(db, kind="reminder")
    assert before.due_at == NOW.replace(hour=18, minute=0)
    api.patch(f"/v1/patients/{patient}", {"reminder_time": "19:15"})
    db.expire_all()
    (after,) = outbox.matching(db, kind="reminder")
    assert after.due_at == NOW.replace(hour=19, minute=15)


def test_an_appointment_reminder_follows_the_patients_time_and_channel_once(
    api: Api, db: Session, rt: Runtime
) -> None:
    api.post("/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/hooks", "events": ["*"]})
    patient = api.patient(timezone="UTC", reminder_time="18:00")
    api.enroll(patient, protocol="dexamethasone-tendinopathy", body_area="elbow", weekdays=None)
    (before,) = outbox.matching(db, kind="appointment", state=DeliveryState.PENDING)
    assert before.due_at.time().isoformat() == "18:00:00"
    api.patch(f"/v1/patients/{patient}", {"reminder_time": "20:00"})
    sweep(rt, NOW + timedelta(days=1))  # makes what falls due within its look ahead
    db.expire_all()
    (moved,) = outbox.matching(db, kind="appointment", state=DeliveryState.PENDING)
    assert (moved.due_at.time().isoformat(), moved.channel) == ("20:00:00", "email")
    api.patch(f"/v1/patients/{patient}", {"channel": "webhook"})
    sweep(rt, NOW + timedelta(days=1))
    db.expire_all()
    (relayed,) = outbox.matching(db, kind="appointment", state=DeliveryState.PENDING)
    assert relayed.channel == "webhook"


def test_enrollment_answers_with_its_upcoming_sessions(api: Api) -> None:
    enrollment = api.enroll(api.patient())
    assert enrollment["phase"] == "induction"
    assert [s["date"] for s in enrollment["upcoming"]][:3] == [
        "2026-12-07", "2026-12-09", "2026-12-11",
    ]  # fmt: skip
    assert enrollment["adherence"]["rate"] is None
    again = api.get(f"/v1/enrollments/{enrollment['id']}").json()
    assert again["upcoming"] == enrollment["upcoming"]
    window = api.get(
        f"/v1/enrollments/{enrollment['id']}/sessions",
        params={"from": "2026-12-08", "to": "2026-12-11"},
    ).json()["items"]
    assert [s["date"] for s in window] == ["2026-12-09", "2026-12-11"]


def test_contraindication_is_refused_naming_it_unless_overridden(api: Api) -> None:
    patient = api.patient()
    flagged = {**ENROLLMENT, "screening": {**CLEAR_SCREENING, "pregnancy": True}}
    refused = api.post(f"/v1/patients/{patient}/enrollments", flagged)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "screening"]
    assert "pregnancy" in refused.json()["detail"][0]["msg"]
    assert api.get(f"/v1/patients/{patient}/adherence").json()["confirmed"] == 0
    accepted = api.post(
        f"/v1/patients/{patient}/enrollments",
        {**flagged, "override_reason": "Obstetrician agreed; palms only."},
    )
    assert accepted.status_code == 201
    assert accepted.json()["override_reason"] == "Obstetrician agreed; palms only."


def test_pause_resume_withdraw(api: Api) -> None:
    enrollment = api.enroll(api.patient())
    url = f"/v1/enrollments/{enrollment['id']}"
    paused = api.post(f"{url}/pause").json()
    assert (paused["status"], paused["upcoming"]) == ("paused", [])
    resumed = api.post(f"{url}/resume").json()
    assert resumed["status"] == "active"
    assert resumed["upcoming"]
    assert api.post(f"{url}/withdraw").json()["status"] == "withdrawn"
    assert api.post(f"{url}/resume").status_code == 409


def swept_adherence(api: Api, rt: Runtime, **params: Any) -> Any:
    """The clinic's adherence list once the sweep has kept the standings (at the API's
    time), as it does every minute."""
    sweep(rt, api.clock[0])
    return api.get("/v1/adherence", params=params).json()


def test_clinic_confirms_a_session_with_measurements_and_adherence_follows(
    api: Api, rt: Runtime
) -> None:
    patient = api.patient()
    enrollment = api.enroll(patient)
    today = enrollment["upcoming"][0]["id"]
    confirmed = api.post(
        f"/v1/sessions/{today}/confirm", {"hdss": 2, "current_ma": 14.5, "minutes": 20}
    )
    assert confirmed.status_code == 200, confirmed.text
    assert (confirmed.json()["status"], confirmed.json()["hdss"]) == ("confirmed", 2)
    twice = api.post(f"/v1/sessions/{today}/confirm", {"hdss": 3})
    assert twice.json()["hdss"] == 2, "confirming twice changes nothing"
    api.clock[0] = NOW + timedelta(days=2)
    wednesday = enrollment["upcoming"][1]["id"]
    skipped = api.post(f"/v1/sessions/{wednesday}/skip", {"reason": "travelling"})
    assert skipped.json()["status"] == "skipped"
    figures = api.get(f"/v1/patients/{patient}/adherence").json()
    assert (figures["confirmed"], figures["skipped"], figures["rate"]) == (1, 1, 0.5)
    assert figures["weeks"][0]["week"] == "2026-W50"
    assert figures["phases"]["induction"]["confirmed"] == 1
    summary = swept_adherence(api, rt)["items"]
    assert summary[0]["patient_id"] == patient
    assert (summary[0]["adherence"]["confirmed"], summary[0]["adherence"]["skipped"]) == (1, 1)


def test_clinic_summary_puts_the_patient_at_risk_first(api: Api, rt: Runtime) -> None:
    steady = api.patient(name="Steady")
    lapsing = api.patient(name="Lapsing")
    for patient in (steady, lapsing):
        api.enroll(patient)
    steady_sessions = swept_adherence(api, rt)["items"]
    assert len(steady_sessions) == 2
    first = api.get(f"/v1/patients/{steady}").json()
    assert first["name"] == "Steady"
    sessions = api.enroll(api.patient(name="Third"), protocol="glycopyrrolate-hyperhidrosis")
    api.post(f"/v1/sessions/{sessions['upcoming'][0]['id']}/skip")
    ranked = [row["name"] for row in swept_adherence(api, rt)["items"]]
    assert ranked[0] == "Third"


def test_protocols_and_preview(api: Api) -> None:
    listed = {p["id"] for p in api.get("/v1/protocols").json()["items"]}
    assert "dexamethasone-plantar-heel" in listed
    full = api.get("/v1/protocols/tap-water-hyperhidrosis").json()
    assert full["max_per_week"] == 5
    assert "pacemaker" in full["contraindications"]
    preview = api.get(
        "/v1/protocols/tap-water-hyperhidrosis/preview",
        params={"start": "2026-12-07", "dry_after": 4, "days": 60},
    ).json()
    assert preview["sessions"][0] == {
        "date": "2026-12-07", "weekday": "mon", "phase": "induction", "minutes": 20
    }  # fmt: skip
    assert preview["changes"][0]["to_phase"] == "maintenance"
    assert api.get("/v1/protocols/snake-oil").status_code == 404


def test_webhook_endpoint_secret_is_shown_once_and_rotates(api: Api) -> None:
    created = api.post(
        "/v1/webhook-endpoints",
        {"url": "http://127.0.0.1:9/hooks", "events": ["session.confirmed"]},
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_")
    (listed,) = api.get("/v1/webhook-endpoints").json()["items"]
    assert listed["secret"] is None
    rotated = api.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret").json()
    assert rotated["secret"] != endpoint["secret"]
    assert api.delete(f"/v1/webhook-endpoints/{endpoint['id']}").status_code == 204
    assert api.get("/v1/webhook-endpoints").json()["items"] == []


def test_webhook_endpoint_to_a_private_address_is_refused(api: Api) -> None:
    refused = api.post("/v1/webhook-endpoints", {"url": "https://10.0.0.7/hooks"})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "url"]


def test_deliveries_show_what_was_queued_and_filter_by_state(api: Api) -> None:
    api.enroll(api.patient(timezone="UTC", reminder_time="18:00"))
    listed = api.get("/v1/deliveries").json()["items"]
    assert {d["kind"] for d in listed} >= {"reminder"}
    pending = api.get("/v1/deliveries", params={"state": "pending"}).json()["items"]
    assert pending and all(d["state"] == "pending" for d in pending)
    one = api.get(f"/v1/deliveries/{pending[0]['id']}").json()
    assert one["id"] == pending[0]["id"]
    assert api.get("/v1/deliveries", params={"state": "lost"}).status_code == 422


def test_clinic_endpoint_tells_the_key_holder_who_they_are(api: Api, other: Api) -> None:
    assert api.get("/v1/clinic").json()["name"] == "North Clinic"
    assert other.get("/v1/clinic").json()["name"] == "South Clinic"


def test_patient_without_a_reminder_time_gets_the_operators_default(api: Api, rt: Runtime) -> None:
    rt.settings.default_reminder_time = time(19, 15)
    body = {k: v for k, v in PATIENT.items() if k != "reminder_time"}
    created = api.post("/v1/patients", body)
    assert created.status_code == 201, created.text
    assert created.json()["reminder_time"] == "19:15"


def test_endpoint_with_an_unknown_event_type_is_refused_naming_it(api: Api) -> None:
    refused = api.post(
        "/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/h", "events": ["session.confirmd"]}
    )
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "events"]
    assert "session.confirmd" in refused.json()["detail"][0]["msg"]


def test_a_slow_dns_answer_at_registration_holds_up_no_other_request(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A name server that takes its time, for one name: the registration check resolves
    # it; every other look-up is the system's.
    system = socket.getaddrinfo
    looking, answered = threading.Event(), threading.Event()
    held_up: list[bool] = []

    def slow_for_one_name(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "slow-dns.clinic.example":
            looking.set()
            # Out until the other request has its answer (or, if that request waits for
            # this look-up, until the bound runs out and the test fails).
            held_up.append(not answered.wait(30))
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443))]
        return system(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow_for_one_name)
    answers: list[Any] = []
    registering = threading.Thread(
        target=lambda: answers.append(
            api.post("/v1/webhook-endpoints", {"url": "https://slow-dns.clinic.example/h"})
        )
    )
    registering.start()
    assert looking.wait(10)
    assert api.get("/v1/clinic").status_code == 200
    answered.set()
    registering.join(timeout=60)
    assert held_up == [False], "answered while the look-up was out"
    assert answers[0].status_code == 201, answers[0].text


def test_a_patient_reminded_by_webhook_needs_an_endpoint_taking_reminders(api: Api) -> None:
    refused = api.post("/v1/patients", {**PATIENT, "channel": "webhook"})
    assert refused.status_code == 422
    assert "channel" in str(refused.json()["detail"])
    assert "session.reminder" in str(refused.json()["detail"])
    api.post(
        "/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/h", "events": ["session.confirmed"]}
    )
    patient = api.patient()
    moved = api.patch(f"/v1/patients/{patient}", {"channel": "webhook"})
    assert moved.status_code == 422, "an endpoint without reminders does not count"
    api.post("/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/r"})
    assert api.patch(f"/v1/patients/{patient}", {"channel": "webhook"}).status_code == 200
    assert api.post("/v1/patients", {**PATIENT, "channel": "webhook"}).status_code == 201


def test_pages_follow_their_cursor_even_when_the_item_it_names_is_gone(
    api: Api, rt: Runtime
) -> None:
    patients = [api.patient(external_id=f"EHR-{n}") for n in range(3)]
    enrollments = [api.enroll(p) for p in patients]
    first = swept_adherence(api, rt, limit=1)
    assert len(first["items"]) == 1 and first["next_cursor"]
    gone = first["items"][0]["patient_id"]
    (enrollment,) = [e for e in enrollments if e["patient_id"] == gone]
    assert api.post(f"/v1/enrollments/{enrollment['id']}/withdraw").status_code == 200
    rest = swept_adherence(api, rt, cursor=first["next_cursor"], limit=5)
    assert len(rest["items"]) == 2 and rest["next_cursor"] is None
    assert gone not in {r["patient_id"] for r in rest["items"]}


def test_a_cursor_the_adherence_list_did_not_give_out_is_refused_naming_it(api: Api) -> None:
    refused = api.get("/v1/adherence", params={"cursor": "EHR-1042"})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"][-1] == "cursor"
