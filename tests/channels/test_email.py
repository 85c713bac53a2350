"""The SMTP sender against a real aiosmtpd server: STARTTLS with auth, the pool of
kept-alive connections, the classification of refusals, and addresses and names that
must not alter a message's headers."""

from __future__ import annotations

import base64
import ssl
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from freezegun import freeze_time
from sqlmodel import Session, select

from reminders.channels.email import POLICY, Email, MaildirSender, SmtpSender
from reminders.dispatcher import Dispatcher, build_senders
from reminders.messages import Links, PatientMessage, patient_email
from reminders.models import Delivery
from reminders.runtime import Runtime
from reminders.services.sweep import sweep
from tests.conftest import at, enroll_patient, make_clinic, make_patient
from tests.servers import SmtpRecorder, free_port, smtp_server


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


@pytest.fixture
def tls_smtp(tls_files: tuple[Path, Path]) -> Iterator[tuple[SmtpRecorder, int]]:
    key, cert = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"clinic",
            b"s3cret",
        )
        return AuthResult(success=ok)

    recorder = SmtpRecorder()
    port = free_port()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticate,
    )
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()


def message(n: int) -> EmailMessage:
    email = EmailMessage()
    email["From"] = "reminders@clinic.example.org"
    email["To"] = f"patient{n}@example.org"
    email["Subject"] = "Your treatment session today"
    email["Message-ID"] = f"<delivery-{n}@clinic.example.org>"
    email.set_content("Today is a treatment day.")
    return email


def trusting(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    return context


def test_starttls_with_auth_sends_a_batch_on_one_connection(
    tls_smtp: tuple[SmtpRecorder, int], tls_files: tuple[Path, Path]
) -> None:
    recorder, port = tls_smtp
    sender = SmtpSender(
        "127.0.0.1", port, "starttls", "clinic", "s3cret", tls_context=trusting(tls_files[1])
    )
    outcomes = sender.send([message(n) for n in range(5)])
    assert [o.status for o in outcomes] == ["sent"] * 5
    assert [m["Message-ID"] for m in recorder.messages] == [
        f"<delivery-{n}@clinic.example.org>" for n in range(5)
    ]
    assert len(set(recorder.peers)) == 1, "one connection for a small batch"


def test_wrong_password_retries_every_message(
    tls_smtp: tuple[SmtpRecorder, int], tls_files: tuple[Path, Path]
) -> None:
    _, port = tls_smtp
    sender = SmtpSender(
        "127.0.0.1",
        port,
        "starttls",
        "clinic",
        "wrong",
        timeout=2,  # after refusing, aiosmtpd leaves smtplib's next AUTH mechanism hanging
        tls_context=trusting(tls_files[1]),
    )
    outcomes = sender.send([message(1), message(2)])
    assert [o.status for o in outcomes] == ["retry", "retry"]


def test_refused_connection_retries_every_message() -> None:
    sender = SmtpSender("127.0.0.1", free_port(), "none", timeout=2)
    outcomes = sender.send([message(1)])
    assert outcomes[0].status == "retry"
    assert outcomes[0].error is not None and "connection" in outcomes[0].error


def test_one_refused_message_does_not_stop_the_batch(smtp_plain: tuple[SmtpRecorder, int]) -> None:
    recorder, port = smtp_plain
    recorder.replies.append("550 5.1.1 no such user")
    outcomes = SmtpSender("127.0.0.1", port, "none").send([message(1), message(2)])
    assert [o.status for o in outcomes] == ["failed", "sent"]
    assert [m["To"] for m in recorder.messages] == ["patient2@example.org"]


def test_maildir_is_readable_by_mail_clients(tmp_path: Path) -> None:
    import mailbox

    outcomes = MaildirSender(tmp_path / "mail").send([message(1)])
    assert outcomes[0].status == "sent"
    (stored,) = mailbox.Maildir(tmp_path / "mail").values()
    assert stored["Message-ID"] == "<delivery-1@clinic.example.org>"


@pytest.fixture
def smtp_plain() -> Iterator[tuple[SmtpRecorder, int]]:
    with smtp_server() as running:
        yield running


def test_batches_share_a_pool_of_connections_that_later_batches_reuse(
    smtp_plain: tuple[SmtpRecorder, int],
) -> None:
    recorder, port = smtp_plain
    sender = SmtpSender("127.0.0.1", port, "none", connections=2)
    first = sender.send([message(n) for n in range(40)])
    assert [o.status for o in first] == ["sent"] * 40
    assert len(set(recorder.peers)) == 2, "the batch went out over two connections"
    second = sender.send([message(n) for n in range(40, 80)])
    assert [o.status for o in second] == ["sent"] * 40
    assert len(set(recorder.peers)) == 2, "the second batch reused both"
    assert sorted(m["Message-ID"] for m in recorder.messages) == sorted(
        f"<delivery-{n}@clinic.example.org>" for n in range(80)
    )
    sender.close()
    assert sender.idle_connections() == 0


def test_a_connection_idle_too_long_is_closed_and_the_next_batch_opens_another(
    smtp_plain: tuple[SmtpRecorder, int],
) -> None:
    recorder, port = smtp_plain
    sender = SmtpSender("127.0.0.1", port, "none", idle_s=0.2)
    assert sender.send([message(1)])[0].status == "sent"
    assert sender.idle_connections() == 1
    deadline = time.monotonic() + 5
    while sender.idle_connections() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sender.idle_connections() == 0
    assert sender.send([message(2)])[0].status == "sent"
    assert len(set(recorder.peers)) == 2


def test_a_pooled_connection_the_server_dropped_is_replaced_without_losing_a_message() -> None:
    recorder = SmtpRecorder()
    port = free_port()
    sender = SmtpSender("127.0.0.1", port, "none", connections=1)
    first = Controller(recorder, hostname="127.0.0.1", port=port)
    first.start()
    assert sender.send([message(1)])[0].status == "sent"
    first.stop()  # the pooled connection is now dead
    again = Controller(recorder, hostname="127.0.0.1", port=port)
    again.start()
    try:
        outcomes = sender.send([message(n) for n in (2, 3, 4)])
    finally:
        sender.close()
        again.stop()
    assert [o.status for o in outcomes] == ["sent"] * 3
    assert [m["Message-ID"] for m in recorder.messages] == [
        f"<delivery-{n}@clinic.example.org>" for n in (1, 2, 3, 4)
    ]


def test_a_421_on_a_working_connection_sends_that_message_again_over_a_new_one(
    smtp_plain: tuple[SmtpRecorder, int],
) -> None:
    recorder, port = smtp_plain
    sender = SmtpSender("127.0.0.1", port, "none", connections=1)
    assert sender.send([message(1)])[0].status == "sent"
    recorder.replies.append("421 4.3.2 too many messages on this connection")
    outcomes = sender.send([message(n) for n in (2, 3, 4)])
    assert [o.status for o in outcomes] == ["sent"] * 3
    assert len(recorder.messages) == 4
    assert len(set(recorder.peers)) == 2


def test_a_421_on_a_new_connection_retries_the_rest_without_reconnecting(
    smtp_plain: tuple[SmtpRecorder, int],
) -> None:
    recorder, port = smtp_plain
    recorder.replies.append("421 4.3.2 service not available")
    outcomes = SmtpSender("127.0.0.1", port, "none").send([message(1), message(2)])
    assert [o.status for o in outcomes] == ["retry", "retry"]
    assert recorder.messages == []


ATTACK = "=?utf-8?b?" + base64.b64encode(b"attacker@evil.example, ").decode() + "?="


def rendered(to: str, name: str = "Ann Example", n: int = 0) -> Email:
    """A patient reminder as the dispatcher renders it."""
    links = Links("https://reminders.example.org/s/t", "https://reminders.example.org/u/u")
    content = PatientMessage("reminder", name, date(2026, 12, 7), 20, "palms", (), links)
    return patient_email(
        content, delivery_id=f"d{n}", sender="North Clinic <reminders@clinic.example.org>",
        to=to, now=datetime(2026, 12, 7, 17, 30, tzinfo=UTC),
    )  # fmt: skip


@pytest.mark.parametrize(
    "name",
    [ATTACK, "Eve\r\nBcc: attacker@evil.example", 'Eve" <attacker@evil.example>, "x', "Zoë"],
)
def test_no_display_name_can_rewrite_the_recipients(
    smtp_plain: tuple[SmtpRecorder, int], name: str
) -> None:
    recorder, port = smtp_plain
    outcomes = SmtpSender("127.0.0.1", port, "none").send([rendered("ann@example.org", name)])
    assert outcomes[0].status == "sent"
    (received,) = recorder.messages
    (to,) = received["To"].addresses
    assert to.addr_spec == "ann@example.org"
    assert to.display_name == name.replace("\r\n", " ")
    assert received["Bcc"] is None
    assert recorder.envelopes[0][1] == ["ann@example.org"]


@pytest.fixture
def smtp_ascii_only() -> Iterator[tuple[SmtpRecorder, int]]:
    """A server that does not offer SMTPUTF8 (aiosmtpd's Controller offers it unless told)."""
    recorder = SmtpRecorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, enable_SMTPUTF8=False)
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()


def test_an_international_address_fails_or_succeeds_alone_and_the_batch_goes_on(
    smtp_ascii_only: tuple[SmtpRecorder, int],
) -> None:
    recorder, port = smtp_ascii_only
    batch = [
        rendered("ann@example.org", n=1),
        rendered("a@bä.co", n=2),  # the domain goes IDNA-encoded: any server takes it
        rendered("zoë@example.org", n=3),  # needs SMTPUTF8, which this server lacks
        rendered("bob@example.org", n=4),
    ]
    outcomes = SmtpSender("127.0.0.1", port, "none").send(batch)
    assert [o.status for o in outcomes] == ["sent", "sent", "failed", "sent"]
    assert outcomes[2].error is not None and "SMTPUTF8" in outcomes[2].error
    assert [rcpts for _, rcpts in recorder.envelopes] == [
        ["ann@example.org"],
        ["a@xn--b-0fa.co"],
        ["bob@example.org"],
    ]
    assert recorder.messages[1]["To"].addresses[0].addr_spec == "a@xn--b-0fa.co"
    assert len(set(recorder.peers)) == 1, "the connection carried on"


def test_a_server_with_smtputf8_takes_a_non_ascii_local_part() -> None:
    recorder = SmtpRecorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        outcomes = SmtpSender("127.0.0.1", port, "none").send([rendered("zoë@bä.co", "Zoë")])
    finally:
        controller.stop()
    assert outcomes[0].status == "sent"
    assert recorder.envelopes == [("reminders@clinic.example.org", ["zoë@xn--b-0fa.co"])]
    assert recorder.messages[0]["To"].addresses[0].display_name == "Zoë"


def test_maildir_takes_a_non_ascii_local_part(tmp_path: Path) -> None:
    import mailbox

    outcomes = MaildirSender(tmp_path / "mail").send([rendered("zoë@bä.co")])
    assert outcomes[0].status == "sent"
    (stored,) = mailbox.Maildir(tmp_path / "mail").values()
    assert "zoë@xn--b-0fa.co" in stored.as_bytes().decode()


@pytest.mark.both_databases
def test_through_the_dispatcher_one_bad_address_fails_alone_and_names_stay_names(
    db: Session, rt: Runtime, smtp_ascii_only: tuple[SmtpRecorder, int]
) -> None:
    recorder, port = smtp_ascii_only
    rt.settings.smtp_port = port
    clinic = make_clinic(db)
    emails = {"attack": "ann@example.org", "smtputf8": "zoë@bä.co", "idn": "bob@bä.co"}
    names = {"attack": ATTACK, "smtputf8": "Zoë", "idn": "Bob"}
    patients = {
        key: make_patient(
            db, clinic, timezone="UTC", reminder_time="09:00", name=names[key], email=address
        )
        for key, address in emails.items()
    }
    with freeze_time("2026-12-07 09:00:00"):
        for patient in patients.values():
            enroll_patient(db, rt, clinic, patient, "2026-12-07", at("2026-12-07 09:00"))
        sweep(rt, at("2026-12-07 09:00"))
        Dispatcher(rt, build_senders(rt), worker="test").dispatch()
    db.expire_all()
    states = {
        key: db.exec(
            select(Delivery.state, Delivery.last_error).where(
                Delivery.patient_id == patient, Delivery.kind == "reminder"
            )
        ).one()
        for key, patient in patients.items()
    }
    assert states["attack"] == ("sent", None)
    assert states["idn"] == ("sent", None)
    state, error = states["smtputf8"]
    assert state == "failed" and error is not None and "SMTPUTF8" in error
    by_rcpt = {
        rcpts[0]: m for (_, rcpts), m in zip(recorder.envelopes, recorder.messages, strict=True)
    }
    assert sorted(by_rcpt) == ["ann@example.org", "bob@xn--b-0fa.co"]
    (to,) = by_rcpt["ann@example.org"]["To"].addresses
    assert (to.display_name, to.addr_spec) == (ATTACK, "ann@example.org")
    assert len(set(recorder.peers)) == 1


@pytest.mark.parametrize("to", ["ann@example.org", "zoë@bä.co"])
def test_the_bytes_sent_are_those_the_email_package_writes(to: str) -> None:
    email = rendered(to, "Zoë « Ünal »")
    written = email.as_bytes(policy=POLICY.clone(linesep="\r\n", utf8=True))
    assert email.to_bytes() == written
    reread = message_from_bytes(email.to_bytes(), policy=policy.default)
    assert isinstance(reread, EmailMessage)
    body = reread.get_body(("plain",))
    assert body is not None and "Hello Zoë « Ünal »" in body.get_content()
