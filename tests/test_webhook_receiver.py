"""`reminders webhook listen`: one line per delivery, the body never shown, and with
--show-sms the SMS a relay would send."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from reminders.webhook_receiver import receiver
from tests.servers import free_port

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def post(port: int, document: dict[str, object], secret: str = SECRET) -> int:
    body = json.dumps(document)
    now = datetime.now(UTC)
    signed = Webhook(secret).sign("msg_1", now, body)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signed,
        "content-type": "application/json",
    }
    return httpx.post(f"http://127.0.0.1:{port}/", content=body, headers=headers).status_code


def test_a_relayed_reminders_sms_is_shown_only_when_asked_and_only_if_signed() -> None:
    said: list[str] = []
    port = free_port()
    server = receiver("127.0.0.1", port, SECRET, said.append, show_sms=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        data = {"message": {"sms": "North: today"}, "patient_name": "Ann Example"}
        document: dict[str, object] = {"type": "session.reminder", "data": data}
        assert post(port, document) == 204
        forged = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
        assert post(port, document, secret=forged) == 401
    finally:
        server.shutdown()
        server.server_close()
    assert said == [
        "session.reminder msg_1 signature ok",
        "  sms: North: today",
        "session.reminder msg_1 signature INVALID",
    ]
    assert not any("Ann" in line for line in said)
