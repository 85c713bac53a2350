"""A clinic names itself to its patients; a patient's language is one the service ships
(or falls back to one), and their pages speak it."""

from __future__ import annotations

from reminders.runtime import Runtime
from tests.api.conftest import NOW, Api
from tests.api.test_patient_pages import links, remind
from tests.servers import SmtpRecorder


def test_a_clinic_sets_and_clears_how_patients_see_and_reach_it(api: Api) -> None:
    changed = api.patch(
        "/v1/clinic",
        {"display_name": "Northside Dermatology", "reply_to": "desk@north.example",
         "phone": "+49 30 1234567"},
    )  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert changed.json() | {"id": None} == changed.json() | {
        "id": None, "display_name": "Northside Dermatology", "reply_to": "desk@north.example",
        "phone": "+49 30 1234567",
    }  # fmt: skip
    cleared = api.patch("/v1/clinic", {"display_name": None}).json()
    assert cleared["display_name"] is None and cleared["phone"] == "+49 30 1234567"
    assert api.get("/v1/clinic").json()["reply_to"] == "desk@north.example"


def test_a_bad_phone_or_reply_to_is_refused_naming_the_field_and_changes_nothing(
    api: Api,
) -> None:
    for body, field in [
        ({"phone": "call me", "display_name": "X"}, "phone"),
        ({"reply_to": "not an address"}, "reply_to"),
        ({"display_name": "Two\nlines"}, "display_name"),
    ]:
        refused = api.patch("/v1/clinic", body)
        assert refused.status_code == 422
        assert field in refused.text
    assert api.get("/v1/clinic").json()["display_name"] is None


def test_a_language_not_shipped_is_refused_with_the_supported_ones(api: Api) -> None:
    refused = api.post("/v1/patients", {"name": "Ann", "timezone": "UTC", "locale": "it",
                                        "email": "ann@example.org"})  # fmt: skip
    assert refused.status_code == 422
    assert "locale" in refused.text and "en, de, es, fr, pt-BR" in refused.text


def test_a_regional_locale_is_kept_as_the_shipped_one_it_reads(api: Api) -> None:
    for asked, kept in [("pt-PT", "pt-BR"), ("de-AT", "de"), ("en-US", "en")]:
        patient = api.patient(locale=asked)
        assert api.get(f"/v1/patients/{patient}").json()["locale"] == kept
        changed = api.patch(f"/v1/patients/{patient}", {"locale": "es-MX"})
        assert changed.json()["locale"] == "es"


def test_the_session_page_speaks_the_patients_language_and_names_the_clinic(
    api: Api, rt: Runtime, smtp: SmtpRecorder
) -> None:
    api.patch("/v1/clinic", {"display_name": "Clínica Sol", "phone": "+55 11 5555-0000"})
    patient = api.patient(timezone="UTC", reminder_time="09:00", locale="pt-BR")
    api.enroll(patient, weekdays=["mon", "wed", "fri"])
    remind(rt, NOW.replace(hour=9))
    api.clock[0] = NOW.replace(hour=10)
    session_link, unsubscribe_link = links(smtp)
    page = api.client.get(session_link)
    assert page.status_code == 200
    assert '<html lang="pt-BR">' in page.text and page.headers["content-language"] == "pt-BR"
    assert "Sua sessão de segunda-feira, 7 de dezembro de 2026" in page.text
    assert "Clínica Sol" in page.text and 'href="tel:+551155550000"' in page.text
    assert "/c/" in page.text  # the calendar feed
    done = api.client.post(f"{session_link}/confirm", data={"day": "2026-12-07"})
    assert done.status_code == 200
    assert "Sua sessão de segunda-feira, 7 de dezembro de 2026 foi registrada" in done.text
    unsubscribe = api.client.get(unsubscribe_link)
    assert '<html lang="pt-BR">' in unsubscribe.text


def test_an_expired_link_answers_in_the_browsers_language(api: Api) -> None:
    page = api.client.get("/s/no-such-token", headers={"Accept-Language": "de-AT,de;q=0.9"})
    assert page.status_code == 404
    assert '<html lang="de">' in page.text
    assert "This link has expired" not in page.text
