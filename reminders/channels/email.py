"""Email: SMTP (STARTTLS, TLS, auth; one connection per batch) or a Maildir folder."""

from __future__ import annotations

import mailbox
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path

from reminders.outbox import Outcome
from reminders.settings import Settings


def _smtp_outcome(code: int, message: bytes | str) -> Outcome:
    text = message.decode(errors="replace") if isinstance(message, bytes) else message
    error = f"SMTP {code} {text}".strip()
    # 4xx is temporary (try again), 5xx permanent (do not).
    return Outcome("retry" if 400 <= code < 500 else "failed", error)


class SmtpSender:
    """Sends a batch over one SMTP connection."""

    def __init__(
        self,
        host: str,
        port: int,
        security: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.timeout = timeout
        self.tls_context = tls_context or ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self.tls_context
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            smtp.ehlo()
            if self.security == "starttls":
                smtp.starttls(context=self.tls_context)
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, messages: Sequence[EmailMessage]) -> list[Outcome]:
        """Send every message on one connection; return one outcome each."""
        if not messages:
            return []
        try:
            smtp = self._connect()
        except smtplib.SMTPResponseException as exc:
            # Refused at the greeting or login: the server, not the message, is the
            # problem, so every message is retried.
            return [Outcome("retry", f"SMTP {exc.smtp_code} at connect")] * len(messages)
        except (OSError, smtplib.SMTPException) as exc:
            return [Outcome("retry", f"SMTP connection failed: {exc}")] * len(messages)
        outcomes: list[Outcome] = []
        try:
            for message in messages:
                outcome, connected = self._send_one(smtp, message)
                outcomes.append(outcome)
                if not connected:
                    break
        finally:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()
        lost = Outcome("retry", "SMTP connection lost before sending")
        return outcomes + [lost] * (len(messages) - len(outcomes))

    @staticmethod
    def _send_one(smtp: smtplib.SMTP, message: EmailMessage) -> tuple[Outcome, bool]:
        """Return the message's outcome and whether the connection can still be used."""
        try:
            refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return _smtp_outcome(code, text), True
        except smtplib.SMTPServerDisconnected as exc:
            return Outcome("retry", f"SMTP disconnected: {exc}"), False
        except smtplib.SMTPResponseException as exc:
            outcome = _smtp_outcome(exc.smtp_code, exc.smtp_error)
            if exc.smtp_code == 421:  # the server is closing the connection
                return outcome, False
            try:
                smtp.rset()  # leave the connection ready for the next message
            except (OSError, smtplib.SMTPException):
                return outcome, False
            return outcome, True
        except OSError as exc:
            return Outcome("retry", f"SMTP connection failed: {exc}"), False
        if refused:
            code, text = next(iter(refused.values()))
            return _smtp_outcome(code, text), True
        return Outcome("sent"), True


class MaildirSender:
    """Delivers into a Maildir folder that mail clients can read: the embedded default."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, messages: Sequence[EmailMessage]) -> list[Outcome]:
        """Add every message to the Maildir; return one outcome each."""
        try:
            box = mailbox.Maildir(self.path, create=True)
        except OSError as exc:
            return [Outcome("retry", f"Maildir unavailable: {exc}")] * len(messages)
        outcomes = []
        for message in messages:
            try:
                box.add(message)
                outcomes.append(Outcome("sent"))
            except OSError as exc:
                outcomes.append(Outcome("retry", f"Maildir write failed: {exc}"))
        return outcomes


def email_sender(settings: Settings) -> SmtpSender | MaildirSender:
    """Return the email sender the settings choose."""
    if settings.email_backend == "maildir":
        return MaildirSender(settings.maildir)
    return SmtpSender(
        settings.smtp_host,
        settings.smtp_port,
        settings.smtp_security,
        settings.smtp_username,
        settings.smtp_password,
        settings.smtp_timeout_s,
    )
