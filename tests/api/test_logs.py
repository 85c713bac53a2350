"""Names, email addresses and link tokens stay out of the logs, through a whole enroll ->
remind -> confirm flow on a real uvicorn server."""

from __future__ import annotations

import logging
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from freezegun import freeze_time
from sqlmodel import Session

from reminders.api import create_app
from reminders.dispatcher import Dispatcher, build_senders
from reminders.runtime import Runtime
from reminders.services import clinics
from tests.api.conftest import ENROLLMENT
from tests.conftest import SETUP
from tests.servers import SmtpRecorder, free_port

EVERY_DAY = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NAME = "Zelda Quintessa Marchbanks"
EMAIL = "zelda.marchbanks@example.org"


@pytest.fixture
def server(rt: Runtime) -> Iterator[str]:
    port = free_port()
    app = create_app(rt, scheduler_problems=lambda: [])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, log_level="debug")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(timeout=10)


def test_a_full_flow_logs_no_names_emails_or_tokens(
    rt: Runtime, db: Session, smtp: SmtpRecorder, server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _clinic, key = clinics.create_clinic(db, "North Clinic", SETUP)
    db.commit()
    api = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {key}"})
    patient = api.post(
        "/v1/patients",
        json={"name": NAME, "email": EMAIL, "timezone": "UTC", "reminder_time": "00:00",
              "quiet_hours": {"start": "00:00", "end": "00:00"}},
    ).json()  # fmt: skip
    today = time.strftime("%Y-%m-%d", time.gmtime())
    enrolled = api.post(
        f"/v1/patients/{patient['id']}/enrollments",
        # Every weekday, so that today (the wall clock's: the server runs on it) has a
        # session whatever day the suite runs on.
        json={**ENROLLMENT, "start_date": today, "weekdays": list(EVERY_DAY)},
    )
    assert enrolled.status_code == 201, enrolled.text
    Dispatcher(rt, build_senders(rt), worker="test").dispatch()
    text = smtp.messages[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    session_link = re.search(r"/s/([\w-]+)", text)
    unsubscribe_link = re.search(r"/u/([\w-]+)", text)
    assert session_link and unsubscribe_link
    token = session_link.group(1)
    # The patient's phone: urllib, which logs nothing of its own.
    with urllib.request.urlopen(f"{server}/s/{token}") as page:
        assert page.status == 200
    form = urllib.parse.urlencode({"hdss": "2"}).encode()
    with urllib.request.urlopen(f"{server}/s/{token}/confirm", data=form) as done:
        assert done.status == 200
    # aiosmtpd ("mail.log") is the test's mail server, standing in for the patient's
    # provider: it logs what it receives. Everything else in this process is ours or a
    # library we run (uvicorn, httpx, SQLAlchemy, APScheduler).
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name != "mail.log")
    assert "/s/…" in logged, "the access log saw the page, with the token redacted"
    for secret in (NAME, "Marchbanks", EMAIL, token, unsubscribe_link.group(1), key):
        assert secret not in logged, f"{secret!r} leaked into the logs"


@freeze_time("2026-12-07 10:00:00")
def test_access_log_filter_redacts_both_kinds_of_link() -> None:
    from reminders.api.app import RedactLinkTokens

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/u/AbCdEfGhIjKlMnOpQrStUv_-12?x=1", "1.1", 200), None,
    )  # fmt: skip
    RedactLinkTokens().filter(record)
    assert "AbCdEfGhIj" not in record.getMessage()
    assert "/u/…?…" in record.getMessage()


def test_access_log_filter_redacts_calendar_feed_links() -> None:
    from reminders.api.app import RedactLinkTokens

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/c/AbCdEfGhIjKlMnOpQrStUv_-12.ics", "1.1", 200), None,
    )  # fmt: skip
    RedactLinkTokens().filter(record)
    assert "AbCdEfGhIj" not in record.getMessage()
    assert '"GET /c/….ics HTTP/1.1"' in record.getMessage()


def test_access_log_filter_drops_query_strings() -> None:
    from reminders.api.app import RedactLinkTokens

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/v1/patients?api_key=rk_secret&name=Zelda", "1.1", 401),
        None,
    )  # fmt: skip
    RedactLinkTokens().filter(record)
    assert "rk_secret" not in record.getMessage() and "Zelda" not in record.getMessage()
    assert '"GET /v1/patients?… HTTP/1.1" 401' in record.getMessage()
