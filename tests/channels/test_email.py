"""The SMTP sender against a real aiosmtpd server: STARTTLS with auth, batching on one
connection, and the classification of refusals."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from reminders.channels.email import MaildirSender, SmtpSender
from tests.servers import SmtpRecorder, free_port


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
    assert len(set(recorder.peers)) == 1, "one connection for the batch"


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
    from tests.servers import smtp_server

    with smtp_server() as running:
        yield running
