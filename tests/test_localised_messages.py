"""Patients hear from their clinic in their own language: a real SMTP server and a real
webhook receiver (verified with standardwebhooks), as a clinic in Brazil would check."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import date

import pytest
from freezegun import freeze_time
from sqlmodel import Session
from standardwebhooks import Webhook

from reminders import sms
from reminders.ids import hash_secret
from reminders.kinds import KINDS
from reminders.locales import SHIPPED
from reminders.messages import Links, PatientMessage, patient_email, render, sms_text
from reminders.models import ClinicIdentity, PatientToken
from reminders.runtime import Runtime
from reminders.services import clinics, webhooks
from tests.conftest import SETUP, at, enroll_patient, make_clinic, make_patient
from tests.servers import SmtpRecorder, WebhookReceiver
from tests.test_delivery import run

SAO_PAULO_IDENTITY = ClinicIdentity(
    display_name="Clínica Sol", reply_to="contato@clinicasol.example", phone="+55 11 5555-0000"
)


def brazilian_clinic(db: Session) -> str:
    clinic = make_clinic(db)
    clinics.set_identity(db, clinic, SAO_PAULO_IDENTITY, SETUP)
    db.commit()
    return clinic


def test_a_brazilian_patient_gets_a_portuguese_reminder_from_their_clinic(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    clinic = brazilian_clinic(db)
    patient = make_patient(
        db, clinic, timezone="America/Sao_Paulo", reminder_time="18:30", locale="pt-BR"
    )
    with freeze_time("2026-12-07 12:00:00"):
        enroll_patient(db, rt, clinic, patient, "2026-12-07", at("2026-12-07 12:00"))
    # 18:30 in São Paulo (UTC-3, no daylight saving time) is 21:30 UTC.
    with freeze_time("2026-12-07 21:30:00"):
        run(rt)
    (message,) = smtp.messages
    assert message["Subject"] == "Sua sessão de tratamento de hoje"
    (sender,) = message["From"].addresses
    assert sender.display_name == "Clínica Sol via Reminders"
    assert sender.addr_spec == "reminders@clinic.example.org"
    assert message["Reply-To"].addresses[0].addr_spec == "contato@clinicasol.example"
    assert message["Content-Language"] == "pt-BR"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "segunda-feira, 7 de dezembro de 2026" in text
    assert "A sessão dura 20 minutos (palmas das mãos)." in text
    assert "Clínica Sol" in text and "+55 11 5555-0000" in text
    assert re.search(r"https://reminders\.example\.org/c/[\w-]{43}\.ics", text)
    assert '<html lang="pt-BR">' in html
    # The protocol's tips in Portuguese too.
    assert "vaselina" in text
    assert "hyperhidrosis" not in text.lower() and "hiperidrose" not in text.lower()


def test_a_relayed_reminder_carries_portuguese_text_and_one_sms_with_a_short_link(
    db: Session, rt: Runtime, receiver: WebhookReceiver
) -> None:
    clinic = brazilian_clinic(db)
    endpoint = webhooks.add_endpoint(db, rt.settings, clinic, receiver.url, SETUP)
    db.commit()
    patient = make_patient(
        db, clinic, timezone="America/Sao_Paulo", reminder_time="09:00", channel="webhook",
        locale="pt-BR",
    )  # fmt: skip
    with freeze_time("2026-12-07 12:00:00"):
        enroll_patient(db, rt, clinic, patient, "2026-12-07", at("2026-12-07 12:00"))
        run(rt)
        (request,) = receiver.received
        event = Webhook(endpoint.secret).verify(request.body, request.headers)
    message = event["data"]["message"]
    assert message["locale"] == "pt-BR"
    assert message["subject"] == "Sua sessão de tratamento de hoje"
    assert "segunda-feira, 7 de dezembro de 2026" in message["text"]
    text = message["sms"]
    assert text.startswith("Clinica Sol: ")
    assert sms.septets(text) <= 160 and set(text) <= set(sms.BASIC + sms.EXTENDED)
    short = text.rsplit("/s/", 1)[1]
    assert len(short) == 22  # 128 bits
    assert event["data"]["links"]["session"].endswith(f"/s/{short}")
    stored = db.get(PatientToken, hash_secret(short))
    assert stored is not None and stored.purpose == "session"


def test_a_relayed_text_names_the_patient_only_where_the_clinic_asked_for_names(
    db: Session, rt: Runtime, receiver: WebhookReceiver
) -> None:
    clinic = make_clinic(db)
    endpoint = webhooks.add_endpoint(db, rt.settings, clinic, receiver.url, SETUP)
    db.commit()
    patient = make_patient(db, clinic, timezone="UTC", reminder_time="09:00", channel="webhook")
    with freeze_time("2026-12-07 09:00:00"):
        enroll_patient(db, rt, clinic, patient, "2026-12-07", at("2026-12-07 09:00"))
        run(rt)
        (request,) = receiver.received
        event = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert event["data"]["message"]["text"].startswith("Hello,")
    assert "Ann" not in request.body.decode()


# As long a base URL as an operator is likely to choose (60 characters).
LONG_BASE = "https://reminders.northside-dermatology-and-physio.example.org"
LONG_CLINIC = "Clínica de Dermatologia e Fisioterapia Integrada São João da Boa Vista — Centro"


@pytest.mark.parametrize("locale", SHIPPED)
def test_every_sms_fits_one_gsm7_message_with_a_long_link_and_clinic_name(locale: str) -> None:
    short_link = f"{LONG_BASE}/s/{'A' * 22}"
    links = Links(short_link, f"{LONG_BASE}/u/u")
    for kind, spec in KINDS.items():
        if spec.sms is None:
            continue
        message = PatientMessage(
            kind, "Maria", date(2027, 2, 23), 30, "soles", (), links, sessions_done=12,
            locale=locale, clinic=LONG_CLINIC, first_day=date(2027, 2, 24),
        )  # fmt: skip
        text = sms_text(message)
        assert sms.septets(text) <= sms.LIMIT, (kind, text)
        assert set(text) <= set(sms.BASIC + sms.EXTENDED), (kind, text)
        if "%(link)s" in spec.sms:
            assert text.endswith(short_link), (kind, text)


def test_gsm7_keeps_the_letters_it_has_and_writes_others_without_accents() -> None:
    assert sms.to_gsm7("Müller, Ñandú, é") == "Müller, Ñandu, é"
    assert sms.to_gsm7("sessão às 19h, ação") == "sessao às 19h, acao"
    assert sms.to_gsm7("\u201cOlá\u201d \u2013 ok\u2026") == '"Ola" - ok...'


def test_a_clinic_name_cannot_add_an_address_or_a_header_to_the_email() -> None:
    links = Links("https://r.example/s/t", "https://r.example/u/u")
    hostile = 'Evil, "Clinic" <x@evil.example>, =?utf-8?q?Bcc=3A_y=40evil=2Eexample?='
    message = PatientMessage(
        "reminder", "Ann", date(2026, 12, 7), 20, None, (), links, clinic=hostile
    )
    built = patient_email(
        message,
        delivery_id="d1",
        sender="Reminders <reminders@clinic.example.org>",
        to="ann@example.org",
        now=at("2026-12-07 07:00"),
        reply_to="desk@clinic.example.org",
    )
    parsed = email.message_from_bytes(built.to_bytes(), policy=email.policy.default)
    (sender,) = parsed["From"].addresses
    assert sender.addr_spec == "reminders@clinic.example.org"
    # Long names are folded into several encoded words; none of them became an address.
    assert sender.display_name.startswith('Evil, "Clinic" <x@evil.example>, ')
    (reply,) = parsed["Reply-To"].addresses
    assert reply.addr_spec == "desk@clinic.example.org"
    assert parsed["Bcc"] is None and parsed.get_all("To") == ["Ann <ann@example.org>"]


def test_messages_alike_but_for_the_patient_each_carry_their_own_name_and_links() -> None:
    def message(name: str, token: str) -> PatientMessage:
        links = Links(f"https://r.example/s/{token}", f"https://r.example/u/{token}")
        return PatientMessage("reminder", name, date(2026, 12, 7), 20, None, (), links)

    first, second = render(message("Ann", "aaa")), render(message("Bob <b>", "bbb"))
    assert "Hello Ann," in first.text and "/s/aaa?action=confirm" in first.text
    assert "Hello Bob <b>," in second.text and "/s/bbb?action=confirm" in second.text
    assert "aaa" not in second.text and "Ann" not in second.html
    assert "Hello Bob &lt;b&gt;," in second.html and 'href="https://r.example/u/bbb"' in second.html


@pytest.mark.parametrize(
    ("adherence", "improved", "follows_up", "thanked", "contact"),
    [
        (0.9, True, False, True, False),  # kept to it, and it worked
        (0.6, True, False, False, False),  # it worked, but half the plan was missed
        (1.0, False, True, False, True),  # every session, no better: the clinic calls
        (1.0, None, False, True, False),  # queued before outcomes were read
    ],
)
def test_a_completion_thanks_only_a_course_that_worked_and_says_when_the_clinic_calls(
    adherence: float, improved: bool | None, follows_up: bool, thanked: bool, contact: bool
) -> None:
    links = Links(None, "https://r.example/u/u")
    message = PatientMessage(
        "completed", "Ann", date(2027, 1, 15), None, None, (), links, sessions_done=5,
        adherence=adherence, improved=improved, clinic_follows_up=follows_up,
    )  # fmt: skip
    for text in (render(message).text, render(message).html):
        assert ("Thank you for keeping to it." in text) is thanked
        assert ("Your clinic will contact you about what comes next." in text) is contact
        assert ("Your clinic will tell you if anything further is needed." in text) is not contact


@pytest.mark.parametrize("locale", SHIPPED)
def test_the_last_message_of_a_wound_down_course_names_the_clinic(locale: str) -> None:
    links = Links(None, "https://r.example/u/u")
    message = PatientMessage(
        "reminders_stopped", "Ann", date(2027, 1, 15), None, None, (), links, locale=locale,
        clinic="North Clinic",
    )  # fmt: skip
    rendered = render(message)
    assert "North Clinic" in rendered.text and "North Clinic" in rendered.html
    assert rendered.subject
