"""Real servers for tests, on 127.0.0.1 and ports chosen here: SMTP (aiosmtpd) and an
HTTP webhook receiver. Both answer from a script so a test can make them fail."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class SmtpRecorder:
    """An aiosmtpd handler: answers DATA from `replies` first, then accepts; each answer
    takes `delay_s`. `accepted_at` holds when each message was accepted (time.time())."""

    messages: list[EmailMessage] = field(default_factory=list)
    accepted_at: list[float] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    peers: list[Any] = field(default_factory=list)
    delay_s: float = 0.0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.replies:
            return self.replies.pop(0)
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.peers.append(session.peer)
        self.accepted_at.append(time.time())
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[tuple[SmtpRecorder, int]]:
    recorder = SmtpRecorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


CLOSE_MID_RESPONSE = 0


@dataclass
class WebhookReceiver:
    """Records every POST and answers with the next scripted (status, headers), else 200;
    status CLOSE_MID_RESPONSE hangs up halfway through the answer.

    `delay_s` makes every answer slow (a real endpoint's latency, or a hang)."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def unique_ids(self) -> set[str]:
        with self.lock:
            return {r.headers["webhook-id"] for r in self.received}


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5; dispatchers open up to 64 connections
    # each, and refused ones would be retried minutes later.
    request_queue_size = 1024


@contextmanager
def webhook_receiver(tls: ssl.SSLContext | None = None) -> Iterator[WebhookReceiver]:
    """A receiver on 127.0.0.1; with `tls`, over https with that server context."""
    receiver = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            if receiver.delay_s:
                time.sleep(receiver.delay_s)
            with receiver.lock:
                receiver.received.append(
                    Received({k.lower(): v for k, v in self.headers.items()}, body, time.time())
                )
                status, headers = receiver.script.pop(0) if receiver.script else (200, {})
            if status == CLOSE_MID_RESPONSE:
                # Promise a body, send part of it, hang up.
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
                self.wfile.flush()
                self.close_connection = True
                return
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender gave up waiting

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = _Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    scheme = "http"
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    receiver.url = f"{scheme}://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class RawConnection:
    opened_at: float
    closed_at: float | None = None
    bytes_sent: int = 0


@dataclass
class RawServer:
    """A TCP server on loopback whose every connection is handled by `behaviour`, for
    receivers no HTTP library would write: black holes, dribblers, floods."""

    url: str = ""
    connections: list[RawConnection] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


def read_request(conn: socket.socket) -> bytes:
    """Read one HTTP request (headers and a Content-Length body); return its body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return body


def black_hole(conn: socket.socket, server: RawServer, record: RawConnection) -> None:
    """Accept and never read nor answer."""
    server.stop.wait()


def dribble(conn: socket.socket, server: RawServer, record: RawConnection) -> None:
    """Answer 200 with a 1,000-byte body promised, then send it a byte every 5 s."""
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    while not server.stop.wait(5):
        conn.sendall(b".")
        record.bytes_sent += 1


def flood(conn: socket.socket, server: RawServer, record: RawConnection) -> None:
    """Answer 200 with a 300 MiB body, sent as fast as the reader takes it."""
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (300 << 20))
    chunk = b"x" * 65536
    while not server.stop.is_set() and record.bytes_sent < 300 << 20:
        conn.sendall(chunk)
        record.bytes_sent += len(chunk)


@contextmanager
def raw_server(
    behaviour: Callable[[socket.socket, RawServer, RawConnection], None],
) -> Iterator[RawServer]:
    server = RawServer()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    server.url = f"http://127.0.0.1:{listener.getsockname()[1]}/hooks"

    def handle(conn: socket.socket) -> None:
        record = RawConnection(time.time())
        server.connections.append(record)
        try:
            behaviour(conn, server, record)
        except OSError:
            pass  # the sender hung up
        finally:
            record.closed_at = time.time()
            conn.close()

    def accept() -> None:
        while not server.stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        thread.join(timeout=5)
        listener.close()


@dataclass
class Certificates:
    """A certificate authority and a server certificate it signed, as files."""

    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only this authority."""
        return ssl.create_default_context(cafile=str(self.ca))


def certificates(folder: Path, host: str) -> Certificates:
    """Make a CA and a certificate for `host` signed by it, with the openssl command."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=Test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign")  # fmt: skip
    openssl("req", *curve, "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={host}")
    (folder / "san.ext").write_text(f"subjectAltName=DNS:{host}\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2",
            "-extfile", "san.ext")  # fmt: skip
    return Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")
