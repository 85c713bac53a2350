"""The course through the API: pauses with an end, absences, review decisions and the
escalation inbox; another clinic's ids answer 404."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session

from reminders.runtime import Runtime
from tests.api.conftest import ENROLLMENT, NOW, Api

pytestmark = pytest.mark.both_databases


def test_a_pause_with_an_end_plans_nothing_and_resumes_by_itself(api: Api, rt: Runtime) -> None:
    from reminders.services.sweep import sweep

    enrollment = api.enroll(api.patient())["id"]
    paused = api.post(
        f"/v1/enrollments/{enrollment}/pause", {"until": "2026-12-21", "reason": "surgery"}
    )
    assert paused.status_code == 200, paused.text
    body = paused.json()
    assert (body["status"], body["paused_until"], body["pause_reason"]) == (
        "paused", "2026-12-21", "surgery",
    )  # fmt: skip
    assert body["upcoming"] == []
    sweep(rt, NOW + timedelta(days=14))  # Monday the 21st, 08:00 in Berlin
    resumed = api.get(f"/v1/enrollments/{enrollment}").json()
    assert resumed["status"] == "active" and resumed["paused_until"] is None
    assert resumed["upcoming"][0]["date"] == "2026-12-21"


def test_pause_refuses_an_end_that_is_not_later(api: Api) -> None:
    enrollment = api.enroll(api.patient())["id"]
    answer = api.post(f"/v1/enrollments/{enrollment}/pause", {"until": "2026-12-07"})
    assert answer.status_code == 422
    assert "until" in str(answer.json()["detail"])
    assert api.get(f"/v1/enrollments/{enrollment}").json()["status"] == "active"


def test_an_absence_cancels_the_sessions_inside_it_and_can_be_removed(api: Api) -> None:
    patient = api.patient()
    enrollment = api.enroll(patient)["id"]
    away = api.post(
        f"/v1/patients/{patient}/absences",
        {"from": "2026-12-09", "to": "2026-12-13", "reason": "travelling"},
    )
    assert away.status_code == 201, away.text
    upcoming = [s["date"] for s in api.get(f"/v1/enrollments/{enrollment}").json()["upcoming"]]
    assert upcoming[:3] == ["2026-12-07", "2026-12-14", "2026-12-16"]
    listed = api.get(f"/v1/patients/{patient}/absences").json()["items"]
    assert [(a["from"], a["to"]) for a in listed] == [("2026-12-09", "2026-12-13")]
    assert api.delete(f"/v1/absences/{away.json()['id']}").status_code == 204
    upcoming = [s["date"] for s in api.get(f"/v1/enrollments/{enrollment}").json()["upcoming"]]
    assert upcoming[:3] == ["2026-12-07", "2026-12-09", "2026-12-11"]


def test_bad_absences_name_the_field_and_write_nothing(api: Api) -> None:
    patient = api.patient()
    cases = [
        ({"from": "2026-12-10", "to": "2026-12-09"}, "to"),
        ({"from": "2026-12-01", "to": "2026-12-03"}, "to"),
        ({"from": "2026-12-10", "to": "2027-06-01"}, "to"),
        ({"from": "2026-12-10"}, "to"),
    ]
    for body, field in cases:
        answer = api.post(f"/v1/patients/{patient}/absences", body)
        assert answer.status_code == 422, body
        assert field in str(answer.json()["detail"])
    assert api.get(f"/v1/patients/{patient}/absences").json()["items"] == []


def test_a_review_opens_one_escalation_and_a_decision_answers_it(
    api: Api, rt: Runtime, db: Session
) -> None:
    enrollment = api.enroll(api.patient())["id"]
    for _ in range(12):
        session = api.get(f"/v1/enrollments/{enrollment}").json()["upcoming"][0]
        api.clock[0] = datetime.fromisoformat(f"{session['date']}T17:00:00+00:00")
        answer = api.post(f"/v1/sessions/{session['id']}/confirm", {"hdss": 4})
        assert answer.status_code == 200, answer.text
    view = api.get(f"/v1/enrollments/{enrollment}").json()
    assert view["phase"] == "induction"
    assert "no response after 12 induction sessions" in view["review_reason"]
    assert view["upcoming"], "reminders continue while the clinic decides"
    inbox = api.get("/v1/escalations?state=open").json()
    (escalation,) = inbox["items"]
    assert escalation["reason"] == "no_response"
    assert escalation["external_id"].startswith("EHR-1")
    assert escalation["enrollment_id"] == enrollment
    decided = api.post(
        f"/v1/enrollments/{enrollment}/review", {"decision": "move_on", "by": "Dr Weiss"}
    )
    assert decided.status_code == 200, decided.text
    assert (decided.json()["phase"], decided.json()["review_reason"]) == ("maintenance", None)
    assert api.get("/v1/escalations?state=open").json()["items"] == [], "the review answered it"
    (settled,) = api.get("/v1/escalations?state=acknowledged").json()["items"]
    assert (settled["acknowledged_by"], settled["note"]) == (
        "Dr Weiss (api key first)",
        "review decided: move_on",
    )
    again = api.post(f"/v1/enrollments/{enrollment}/review", {"decision": "end"})
    assert again.status_code == 409
    bad = api.post(f"/v1/enrollments/{enrollment}/review", {"decision": "maybe"})
    assert bad.status_code == 422 and "decision" in str(bad.json()["detail"])


def test_acknowledging_an_escalation_closes_it_once(api: Api, rt: Runtime, db: Session) -> None:
    from reminders.models import Patient
    from reminders.services.events import escalate

    patient_id = api.patient()
    patient = db.get(Patient, patient_id)
    assert patient is not None
    assert escalate(db, patient, "lapsed", "enrollment x: behind", NOW)
    assert not escalate(db, patient, "lapsed", "enrollment x: still behind", NOW), "one open"
    db.commit()
    (open_one,) = api.get("/v1/escalations?state=open").json()["items"]
    done = api.post(
        f"/v1/escalations/{open_one['id']}/acknowledge", {"by": "Nurse Kim", "note": "called"}
    )
    assert done.status_code == 200
    assert (done.json()["state"], done.json()["acknowledged_by"]) == (
        "acknowledged",
        "Nurse Kim (api key first)",
    )
    assert api.get("/v1/escalations?state=open").json()["items"] == []
    twice = api.post(f"/v1/escalations/{open_one['id']}/acknowledge", {"by": "Nurse Kim"})
    assert twice.status_code == 409
    nameless = api.post(f"/v1/escalations/{open_one['id']}/acknowledge", {"by": ""})
    assert nameless.status_code == 422
    assert escalate(db, patient, "lapsed", "enrollment x: behind again", NOW), "a new cause"


def test_another_clinics_inbox_and_ids_answer_404(api: Api, other: Api, db: Session) -> None:
    from reminders.models import Patient
    from reminders.services.events import escalate

    patient_id = api.patient()
    enrollment = api.enroll(patient_id)["id"]
    patient = db.get(Patient, patient_id)
    assert patient is not None
    escalate(db, patient, "side_effect", "blistering", NOW)
    db.commit()
    (mine,) = api.get("/v1/escalations").json()["items"]
    assert other.get("/v1/escalations").json()["items"] == []
    assert other.post(f"/v1/escalations/{mine['id']}/acknowledge", {"by": "x"}).status_code == 404
    assert other.post(f"/v1/enrollments/{enrollment}/pause").status_code == 404
    assert (
        other.post(f"/v1/enrollments/{enrollment}/review", {"decision": "end"}).status_code == 404
    )
    absence = {"from": "2026-12-09", "to": "2026-12-10"}
    assert other.post(f"/v1/patients/{patient_id}/absences", absence).status_code == 404
    assert other.get(f"/v1/patients/{patient_id}/absences").status_code == 404


def test_body_areas_take_common_words_and_refuse_others_listing_the_valid_ones(
    api: Api,
) -> None:
    patient = api.patient()
    feet = api.enroll(patient, body_area="feet")
    assert feet["body_area"] == "soles"
    assert feet["upcoming"][0]["minutes"] == 30
    answer = api.post(
        f"/v1/patients/{api.patient()}/enrollments",
        {**ENROLLMENT, "body_area": "elbow"},
    )
    assert answer.status_code == 422
    assert "palms, soles, underarms" in str(answer.json()["detail"])


def test_one_active_enrollment_per_body_area_whatever_the_protocol(api: Api) -> None:
    patient = api.patient()
    first = api.enroll(patient, body_area="hands")
    second = api.post(
        f"/v1/patients/{patient}/enrollments",
        {**ENROLLMENT, "protocol": "glycopyrrolate-hyperhidrosis", "body_area": "palms"},
    )
    assert second.status_code == 409
    assert first["id"] in second.json()["detail"]
    assert api.enroll(patient, body_area="underarms")["body_area"] == "underarms"


def _confirm_next(api: Api, enrollment: str, body: dict[str, object]) -> Any:
    session = api.get(f"/v1/enrollments/{enrollment}").json()["upcoming"][0]
    api.clock[0] = datetime.fromisoformat(f"{session['date']}T17:00:00+00:00")
    return api.post(f"/v1/sessions/{session['id']}/confirm", body)


def test_each_protocol_takes_the_codes_of_its_own_outcome_scale(api: Api) -> None:
    spasticity = api.enroll(
        api.patient(), protocol="magnesium-sulphate-spasticity", body_area="arm", weekdays=None
    )["id"]
    wrong = _confirm_next(api, spasticity, {"outcome": "5"})
    assert wrong.status_code == 422
    assert "Modified Ashworth Scale: one of 0, 1, 1+, 2, 3, 4" in str(wrong.json()["detail"])
    assert _confirm_next(api, spasticity, {"outcome": "1+"}).json()["outcome"] == "1+"
    pain = api.enroll(
        api.patient(), protocol="dexamethasone-tendinopathy", body_area="elbow", weekdays=None
    )["id"]
    as_hdss = _confirm_next(api, pain, {"hdss": 2})
    assert as_hdss.status_code == 422 and "send it as outcome" in str(as_hdss.json()["detail"])
    _confirm_next(api, pain, {"outcome": "7"})
    _confirm_next(api, pain, {"outcome": "3"})
    trend = api.get(f"/v1/enrollments/{pain}").json()["outcome_trend"]
    assert (trend["scale"], trend["first"], trend["latest"], trend["reports"]) == (
        "pain-nrs", "7", "3", 2,
    )  # fmt: skip
    sweating = api.enroll(api.patient())["id"]
    assert _confirm_next(api, sweating, {"hdss": 2}).json()["outcome"] == "2"


def test_a_burn_reported_with_a_confirmation_reaches_the_clinic_at_once_and_holds_the_plan(
    api: Api,
) -> None:
    enrollment = api.enroll(api.patient())["id"]
    done = _confirm_next(api, enrollment, {"side_effect": "burn", "side_effect_note": "left palm"})
    assert done.status_code == 200
    assert (done.json()["side_effect"], done.json()["side_effect_note"]) == ("burn", "left palm")
    (escalation,) = api.get("/v1/escalations?state=open").json()["items"]
    assert escalation["reason"] == "side_effect" and "burn" in escalation["detail"]
    held = api.get(f"/v1/enrollments/{enrollment}").json()
    assert (held["status"], held["upcoming"]) == ("held", [])
    going_on = api.post(
        f"/v1/enrollments/{enrollment}/hold-decision", {"decision": "continue", "by": "Dr Weiss"}
    )
    assert going_on.status_code == 200 and going_on.json()["status"] == "active"
    assert api.get("/v1/escalations?state=open").json()["items"] == []
    dryness = _confirm_next(api, enrollment, {"side_effect": "dryness"})
    assert dryness.status_code == 200
    assert len(api.get("/v1/escalations").json()["items"]) == 1
    unknown = _confirm_next(api, enrollment, {"side_effect": "glowing"})
    assert unknown.status_code == 422 and "side_effect" in str(unknown.json()["detail"])


def test_an_enrollment_shows_its_protocol_version_and_can_be_moved_only_by_its_clinic(
    api: Api, other: Api
) -> None:
    enrollment = api.enroll(api.patient())
    assert enrollment["protocol_version"] == 1
    moved = api.post(f"/v1/enrollments/{enrollment['id']}/protocol-version")
    assert moved.status_code == 200 and moved.json()["protocol_version"] == 1
    assert other.post(f"/v1/enrollments/{enrollment['id']}/protocol-version").status_code == 404


def test_a_burn_noticed_after_confirming_still_reaches_the_clinic(api: Api) -> None:
    enrollment = api.enroll(api.patient())["id"]
    done = _confirm_next(api, enrollment, {"outcome": "2"})
    later = api.post(f"/v1/sessions/{done.json()['id']}/confirm", {"side_effect": "burn"})
    assert later.status_code == 200 and later.json()["side_effect"] == "burn"
    assert later.json()["outcome"] == "2"
    (escalation,) = api.get("/v1/escalations?state=open").json()["items"]
    assert escalation["reason"] == "side_effect"


def test_a_preview_understands_body_area_words_and_refuses_others(api: Api) -> None:
    url = "/v1/protocols/tap-water-hyperhidrosis/preview?start=2026-12-07&days=7"
    assert api.get(f"{url}&body_area=feet").json()["sessions"][0]["minutes"] == 30
    refused = api.get(f"{url}&body_area=elbow")
    assert refused.status_code == 422 and "palms, soles, underarms" in str(refused.json())
