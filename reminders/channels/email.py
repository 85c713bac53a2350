"""Email: SMTP over a small pool of kept-alive connections, or a Maildir folder; and the
one way to address a message so that no name or address can alter its headers.

Over SMTP a batch is shared among up to `connections` connections sending side by side.
A connection goes back to the pool after its share and is reused by later batches; one
idle for `idle_s` is closed. What happens to one message stays with it:

    accepted (250)                     -> sent
    refused 5xx, or an address the     -> failed   } the connection carries on
      server cannot take (SMTPUTF8)                }  with the next message
    refused 4xx                        -> retry    }
    connection lost, or 421            -> sent again once over a new connection if the
                                          old one had worked; else retry, and the rest of
                                          that share retry too (a server that fails every
                                          new connection is not asked again and again)
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import mailbox
import math
import quopri
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email import policy
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import Policy
from email.utils import parseaddr
from pathlib import Path
from typing import NamedTuple

from reminders.decisions import Outcome
from reminders.fields import CONTROL_CHARACTERS, ascii_domain, email_address
from reminders.settings import Settings

log = logging.getLogger(__name__)

# Headers that Email sets are stored as written and never refolded: refolding re-parses
# a header and writes the decoded text of its encoded words back unencoded, so a display
# name that decodes to "x@evil.example, " would become an address.
POLICY = policy.default.clone(refold_source="none")

_CONTROLS = re.compile(f"[{CONTROL_CHARACTERS}]+")

# The longest line SMTP carries (RFC 5321), less CR LF.
MAX_LINE = 998

# Below this many messages per connection a batch is not worth sharing out.
MIN_SHARE = 16


def smtp_address(address: str) -> str:
    """Return the address as envelopes and headers carry it: the domain in its ASCII
    (IDNA) form, the local part as given (a non-ASCII one needs SMTPUTF8).

    Raises ValueError for text that is not one address (see fields.email_address).
    """
    local, _, domain = email_address(address).rpartition("@")
    # Address quotes a local part that needs it, and refuses CR and LF once more.
    return Address(username=local, domain=ascii_domain(domain)).addr_spec


class Email(EmailMessage):
    """An email as this channel writes it: every header set as written (`set_header`,
    `set_address`, `set_sender`), the bodies UTF-8 (`set_bodies`), the envelope
    recipients recorded as the address headers are set, and the bytes written out by
    `to_bytes`.

    Building a message through the email package's header registry parses every value
    as it is set and again as it is written out, which costs more than sending the
    message. Headers written here are never parsed or refolded, which
    also keeps a display name's encoded words from being decoded into addresses.
    """

    def __init__(self, policy: Policy = POLICY) -> None:
        # The email package makes the parts of a multipart message with type(self).
        super().__init__(policy=policy)
        self.sender = ""  # the envelope's
        self.recipients: list[str] = []
        # What `to_bytes` writes, kept as set: reading it back through the email
        # package would parse the headers again.
        self.boundary: str | None = None
        self.body = ""
        self.parts: list[Email] = []

    def set_header(self, name: str, value: str) -> None:
        """Add an unstructured header (Subject, Date, Message-ID...): ASCII text as it
        is, other text as encoded words; control characters shown as spaces."""
        shown = _CONTROLS.sub(" ", value)
        encoded = shown if shown.isascii() else Header(shown, "utf-8", header_name=name).encode()
        self.set_raw(name, encoded)

    def set_address(self, header: str, name: str | None, to: str) -> None:
        """Add an address header naming one mailbox; To, Cc and Bcc add it to the
        envelope recipients. Raises ValueError if `to` is not one address.

        The display name is always written as RFC 2047 encoded words (UTF-8), whatever
        it holds: a line break, quotes, commas, or text that is itself an encoded word
        all stay inside the name and cannot add an address or a header.
        """
        recipient = smtp_address(to)
        self.set_raw(header, _mailbox(header, name, recipient))
        if header.lower() in ("to", "cc", "bcc"):
            self.recipients.append(recipient)

    def set_sender(self, sender: str, name: str | None = None) -> None:
        """Add the From header: the operator's `email_from` as the email package writes
        it (names in it are the operator's own); or, given `name` (a clinic's, say), its
        address under that name, encoded as `set_address` encodes names."""
        header, self.sender = _from(sender)
        self.set_raw("From", _mailbox("From", name, self.sender) if name else header)

    def set_bodies(
        self, text: str, html: str | None = None, attachments: Sequence[Attachment] = ()
    ) -> None:
        """Set the plain text body, the HTML alternative if given, and attachments."""
        self.set_raw("MIME-Version", "1.0")
        if not attachments:
            _set_alternatives(self, text, html)
            return
        body = Email()
        _set_alternatives(body, text, html)
        _set_parts(self, "mixed", [body, *map(_attached, attachments)])

    def to_bytes(self, linesep: str = "\r\n") -> bytes:
        """The message as written out: what the email package's generator writes for
        it, without parsing each part's Content-Type back (most of its time)."""
        lines = [f"{name}: {value}" for name, value in self.raw_items()]
        if self.boundary is not None:
            parts = [f"--{self.boundary}\n{part.to_bytes(linesep).decode()}" for part in self.parts]
            body = "\n".join([*parts, f"--{self.boundary}--\n"])
        else:
            body = self.body
        text = "\n".join(lines) + "\n\n" + body
        return text.replace("\r\n", "\n").replace("\n", linesep).encode()


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with an email (a calendar of sessions, say)."""

    filename: str
    content_type: str
    data: bytes


def _set_alternatives(part: Email, text: str, html: str | None) -> None:
    if html is None:
        _set_text(part, "plain", text)
        return
    bodies = []
    for subtype, body in (("plain", text), ("html", html)):
        alternative = Email()
        _set_text(alternative, subtype, body)
        bodies.append(alternative)
    _set_parts(part, "alternative", bodies)


def _set_parts(part: Email, subtype: str, parts: list[Email]) -> None:
    # A digest of the parts cannot occur in them, so they need not be searched for it;
    # unlike random bits it costs no system call (which waits for the GIL).
    digest = hashlib.blake2b(digest_size=16)
    for each in parts:
        digest.update((each.body or each.boundary or "").encode())
        digest.update(b"\0")
    part.boundary = f"=_{digest.hexdigest()}"
    part.set_raw("Content-Type", f'multipart/{subtype}; boundary="{part.boundary}"')
    for each in parts:
        part.attach(each)
        part.parts.append(each)


def _attached(attachment: Attachment) -> Email:
    part = Email()
    part.set_raw("Content-Type", attachment.content_type)
    part.set_raw("Content-Disposition", f'attachment; filename="{attachment.filename}"')
    part.set_raw("Content-Transfer-Encoding", "base64")
    part.body = base64.encodebytes(attachment.data).decode("ascii")
    part.set_payload(part.body)
    return part


def _set_text(part: Email, subtype: str, text: str) -> None:
    part.set_raw("Content-Type", f'text/{subtype}; charset="utf-8"')
    if text.isascii() and max(map(len, text.splitlines()), default=0) <= MAX_LINE:
        # As it is, so links stay whole for whatever reads the raw text.
        part.set_raw("Content-Transfer-Encoding", "7bit")
        part.body = text
    else:
        part.set_raw("Content-Transfer-Encoding", "quoted-printable")
        part.body = quopri.encodestring(text.encode()).decode("ascii")
    part.set_payload(part.body)


# Encoding a name takes the email package longer than the rest of a message's headers;
# a burst names the same few clinics (From, Reply-To) again and again.
@functools.lru_cache(maxsize=1024)
def _mailbox(header: str, name: str | None, address: str) -> str:
    if not name:
        return f"<{address}>"
    # Inputs refuse control characters; a name stored before they did shows them
    # as spaces.
    shown = _CONTROLS.sub(" ", name)
    return f"{Header(shown, 'utf-8', header_name=header).encode()} <{address}>"


@functools.lru_cache(maxsize=16)
def _from(sender: str) -> tuple[str, str]:
    """The From header's value and the envelope sender for `email_from`; a process has
    one or two, and parsing them took as long as the rest of the headers."""
    folded: str = POLICY.header_factory("From", sender).fold(policy=POLICY)
    return folded.partition(":")[2].strip(), parseaddr(sender)[1]


def _recipients(message: EmailMessage) -> list[str]:
    """The envelope recipients: those `address` recorded, or for another message those
    of its parsed headers (never re-parsed from their decoded text)."""
    if isinstance(message, Email):
        return message.recipients
    found: list[str] = []
    for header in ("To", "Cc", "Bcc"):
        for value in message.get_all(header, []):
            found.extend(a.addr_spec for a in getattr(value, "addresses", ()))
    return found


def _smtp_outcome(code: int, message: bytes | str, *, about_the_address: bool = False) -> Outcome:
    """`about_the_address`: the reply was to the recipient (RCPT) or the message (DATA),
    not to the sender: a permanent one means this address cannot be reached."""
    text = message.decode(errors="replace") if isinstance(message, bytes) else message
    error = f"SMTP {code} {text}".strip()
    # 4xx is temporary (try again), 5xx permanent (do not).
    if 400 <= code < 500:
        return Outcome("retry", error)
    return Outcome("failed", error, address_refused=about_the_address)


class _Sent(NamedTuple):
    """One message's outcome, and whether its connection can carry the next one."""

    outcome: Outcome
    connection_ok: bool


@dataclass(eq=False)
class _Pooled:
    smtp: smtplib.SMTP
    idle_since: float
    proven: bool = False  # has delivered a message: losing it is worth a reconnect


class SmtpSender:
    """Sends batches over a pool of at most `connections` kept-alive SMTP connections."""

    def __init__(
        self,
        host: str,
        port: int,
        security: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
        connections: int = 4,
        idle_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.timeout = timeout
        self.tls_context = tls_context or ssl.create_default_context()
        self.connections = connections
        self.idle_s = idle_s
        self.clock = clock
        self._slots = threading.BoundedSemaphore(connections)
        self._lock = threading.Lock()
        self._idle: list[_Pooled] = []
        self._reaper: threading.Thread | None = None
        self._closed = threading.Event()

    def send(self, messages: Sequence[EmailMessage]) -> list[Outcome]:
        """Send every message; return one outcome each, in order."""
        shares = min(self.connections, math.ceil(len(messages) / MIN_SHARE))
        if shares <= 1:
            return self._send_share(messages)
        size = math.ceil(len(messages) / shares)
        parts = [messages[i : i + size] for i in range(0, len(messages), size)]
        results: list[list[Outcome]] = [[] for _ in parts]

        def run(index: int) -> None:
            try:
                results[index] = self._send_share(parts[index])
            except Exception as exc:  # a bug: the share is still accounted for
                log.exception("sending a share of emails failed")
                failed = Outcome("retry", f"internal error: {type(exc).__name__}")
                results[index] = [failed] * len(parts[index])

        helpers = [threading.Thread(target=run, args=(i,)) for i in range(1, len(parts))]
        for helper in helpers:
            helper.start()
        run(0)
        for helper in helpers:
            helper.join()
        return [outcome for part in results for outcome in part]

    def close(self) -> None:
        """Close the idle connections and keep none from now on."""
        self._closed.set()
        with self._lock:
            idle, self._idle = self._idle, []
        for pooled in idle:
            _quit(pooled.smtp)

    def idle_connections(self) -> int:
        """How many connections wait in the pool."""
        with self._lock:
            return len(self._idle)

    def _send_share(self, messages: Sequence[EmailMessage]) -> list[Outcome]:
        """Send messages in order over one connection at a time (see the module's table)."""
        outcomes: list[Outcome] = []
        with self._slots:
            pooled: _Pooled | None = None
            resent = False
            while len(outcomes) < len(messages):
                if pooled is None:
                    try:
                        pooled = self._checkout()
                    except smtplib.SMTPResponseException as exc:
                        # Refused at the greeting or login: the server, not a message,
                        # is the problem.
                        refused = Outcome("retry", f"SMTP {exc.smtp_code} at connect")
                        return _padded(outcomes, len(messages), refused)
                    except (OSError, smtplib.SMTPException) as exc:
                        failed = Outcome("retry", f"SMTP connection failed: {exc}")
                        return _padded(outcomes, len(messages), failed)
                sent = _send_one(pooled.smtp, messages[len(outcomes)])
                if sent.connection_ok:
                    pooled.proven = pooled.proven or sent.outcome.status == "sent"
                    outcomes.append(sent.outcome)
                    resent = False
                    continue
                _quit(pooled.smtp)
                if pooled.proven and not resent and sent.outcome.status == "retry":
                    pooled, resent = None, True  # the same message over a new connection
                    continue
                outcomes.append(sent.outcome)
                lost = Outcome("retry", "SMTP connection lost before sending")
                return _padded(outcomes, len(messages), lost)
            self._checkin(pooled)
        return outcomes

    def _checkout(self) -> _Pooled:
        with self._lock:
            if self._idle:
                return self._idle.pop()  # the most recently used: least likely timed out
        return _Pooled(self._connect(), self.clock())

    def _checkin(self, pooled: _Pooled | None) -> None:
        if pooled is None:
            return
        if self._closed.is_set():
            _quit(pooled.smtp)
            return
        pooled.idle_since = self.clock()
        with self._lock:
            self._idle.append(pooled)
            if self._reaper is None:
                self._reaper = threading.Thread(
                    target=self._reap, name="smtp-pool-reaper", daemon=True
                )
                self._reaper.start()

    def _reap(self) -> None:
        """Close connections idle for `idle_s`; end when none is left."""
        wait = self.idle_s
        while not self._closed.wait(wait):
            now = self.clock()
            with self._lock:
                stale = [p for p in self._idle if now - p.idle_since >= self.idle_s]
                self._idle = [p for p in self._idle if p not in stale]
                done = not self._idle
                if done:
                    self._reaper = None  # the next check-in starts another
                else:
                    wait = max(0.01, min(p.idle_since for p in self._idle) + self.idle_s - now)
            for pooled in stale:
                _quit(pooled.smtp)
            if done:
                return

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


def _padded(outcomes: list[Outcome], count: int, rest: Outcome) -> list[Outcome]:
    """The outcomes so far, and `rest` for each message of `count` not yet sent."""
    return outcomes + [rest] * (count - len(outcomes))


def _transmit(smtp: smtplib.SMTP, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
    """Send one message; return the recipients the server refused (none if all were)."""
    if not isinstance(message, Email):
        return smtp.send_message(message, to_addrs=_recipients(message))
    options: list[str] = []
    if not "".join([message.sender, *message.recipients]).isascii():
        if not smtp.has_extn("smtputf8"):
            raise smtplib.SMTPNotSupportedError("an address needs SMTPUTF8")
        options = ["SMTPUTF8", "BODY=8BITMIME"]
    return smtp.sendmail(message.sender, message.recipients, message.to_bytes(), options)


def _send_one(smtp: smtplib.SMTP, message: EmailMessage) -> _Sent:
    if not _recipients(message):
        return _Sent(Outcome("failed", "the message has no recipient"), True)
    try:
        refused = _transmit(smtp, message)
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        return _Sent(_smtp_outcome(code, text, about_the_address=True), smtp.sock is not None)
    except smtplib.SMTPServerDisconnected as exc:
        return _Sent(Outcome("retry", f"SMTP disconnected: {exc}"), False)
    except smtplib.SMTPResponseException as exc:
        # smtplib has already closed the connection after a 421, reset it after others.
        at_data = isinstance(exc, smtplib.SMTPDataError)
        outcome = _smtp_outcome(exc.smtp_code, exc.smtp_error, about_the_address=at_data)
        return _Sent(outcome, smtp.sock is not None)
    except smtplib.SMTPNotSupportedError as exc:
        # Raised before any command is sent: an address with a non-ASCII local part
        # and a server without SMTPUTF8.
        cannot = Outcome(
            "failed", f"the SMTP server cannot take this address: {exc}", address_refused=True
        )
        return _Sent(cannot, True)
    except OSError as exc:
        return _Sent(Outcome("retry", f"SMTP connection failed: {exc}"), False)
    except (ValueError, LookupError) as exc:
        # The message could not be written out (an encoding problem); nothing was sent.
        # Only the kind of error: its text would quote the name or address.
        return _Sent(
            Outcome("failed", f"message could not be encoded ({type(exc).__name__})"), True
        )
    if refused:
        code, text = next(iter(refused.values()))
        return _Sent(_smtp_outcome(code, text, about_the_address=True), True)
    return _Sent(Outcome("sent"), True)


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


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
                box.add(
                    message.to_bytes("\n") if isinstance(message, Email) else _as_bytes(message)
                )
                outcomes.append(Outcome("sent"))
            except OSError as exc:
                outcomes.append(Outcome("retry", f"Maildir write failed: {exc}"))
        return outcomes

    def close(self) -> None:
        """Nothing to close; here so both senders can be closed alike."""


def _as_bytes(message: EmailMessage) -> bytes:
    try:
        return message.as_bytes()
    except UnicodeEncodeError:
        # An address with a non-ASCII local part: mail clients read UTF-8 headers
        # (RFC 6532), which is how an SMTPUTF8 server would have stored it.
        return message.as_bytes(policy=POLICY.clone(utf8=True))


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
        connections=settings.smtp_connections,
        idle_s=settings.smtp_idle_s,
    )
