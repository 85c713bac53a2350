"""`reminders webhook listen`: a small receiver for trying webhooks out, which checks
each request's signature and prints one line per delivery (never its body: it may name
a patient); with `show_sms`, also the SMS text a patient message asks a relay to send
(which names no one)."""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from reminders.channels.webhook import signature, verify

MAX_BODY = 1 << 20


def receiver(
    host: str, port: int, secret: str, say: Callable[[str], None], *, show_sms: bool = False
) -> ThreadingHTTPServer:
    """Return a server (not yet serving) that answers 204 to a well-signed POST and 401
    to any other, saying `<type> <webhook-id> signature ok|INVALID` for each (and the
    SMS text below it, with `show_sms`). Raises ValueError for a secret that is not a
    `whsec_` secret."""
    try:
        signature(secret, "check", 0, b"")
    except ValueError:
        raise ValueError(
            "not a signing secret (whsec_ and base64, as the endpoint gave it)"
        ) from None
    if not secret.startswith("whsec_"):
        raise ValueError("not a signing secret (whsec_ and base64, as the endpoint gave it)")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = min(int(self.headers.get("content-length") or 0), MAX_BODY)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            ok = verify(secret, headers, body)
            try:
                document = json.loads(body)
                kind = str(document.get("type", "?"))
            except (ValueError, AttributeError):
                document, kind = {}, "?"
            say(f"{kind} {headers.get('webhook-id', '?')} signature {'ok' if ok else 'INVALID'}")
            sms = (document.get("data") or {}).get("message", {}).get("sms") if ok else None
            if show_sms and isinstance(sms, str):
                say(f"  sms: {sms}")
            self.send_response(204 if ok else 401)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass  # one line per delivery, said above

    return ThreadingHTTPServer((host, port), Handler)
