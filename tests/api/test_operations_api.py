"""What the operator watches: readiness that proves the database takes writes, and
Prometheus metrics."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
import sqlalchemy as sa

from reminders.dispatcher import Dispatcher, build_senders
from reminders.runtime import Runtime
from reminders.scheduler import Heartbeats, build_scheduler
from tests.api.conftest import NOW, Api
from tests.api.test_patient_pages import remind
from tests.conftest import OpenClient
from tests.servers import SmtpRecorder


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (labels in any order)."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match is None:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if found == labels:
            return float(match.group(2))
    raise AssertionError(f"no sample {name}{labels}")


def test_metrics_count_deliveries_and_time_them_and_requests(
    api: Api, rt: Runtime, smtp: SmtpRecorder
) -> None:
    patient = api.patient(timezone="UTC", reminder_time="09:00")
    before = api.client.get("/metrics").text
    sent_before = _sample_or_zero(before, "reminders_deliveries_total", "reminder")
    api.enroll(patient)
    remind(rt, NOW.replace(hour=9))
    api.get(f"/v1/patients/{patient}")

    text = api.client.get("/metrics").text
    labels = {"channel": "email", "kind": "reminder", "result": "sent"}
    assert _sample(text, "reminders_deliveries_total", **labels) == sent_before + 1
    assert _sample(text, "reminders_delivery_lateness_seconds_count", channel="email") >= 1
    assert _sample(text, "reminders_send_duration_seconds_count", channel="email") >= 1
    route = {"route": "/v1/patients/{patient_id}", "method": "GET", "status": "200"}
    assert _sample(text, "reminders_http_request_duration_seconds_count", **route) >= 1
    assert patient not in text
    # Gauges list every state, none left out for having no rows.
    assert _sample(text, "reminders_sessions", state="planned") == 6
    assert _sample(text, "reminders_sessions", state="confirmed") == 0
    assert _sample(text, "reminders_enrollments", state="withdrawn") == 0
    assert _sample(text, "reminders_deliveries_in_outbox", state="dead", channel="webhook") == 0
    assert _sample(text, "reminders_deliveries_due") >= 0
    assert _sample(text, "process_resident_memory_bytes") > 0


def _sample_or_zero(text: str, name: str, kind: str) -> float:
    labels = {"channel": "email", "kind": kind, "result": "sent"}
    try:
        return _sample(text, name, **labels)
    except AssertionError:
        return 0.0


@pytest.mark.parametrize("settings", [{"metrics_token": "m" * 24}], indirect=True)
def test_metrics_ask_for_the_token_when_one_is_set(api: Api) -> None:
    assert api.client.get("/metrics").status_code == 401
    wrong = api.client.get("/metrics", headers={"Authorization": f"Bearer {'x' * 24}"})
    assert wrong.status_code == 401
    right = api.client.get("/metrics", headers={"Authorization": f"Bearer {'m' * 24}"})
    assert right.status_code == 200


def test_ready_when_the_database_takes_writes_and_the_scheduler_runs(api: Api) -> None:
    answer = api.client.get("/readyz")
    assert answer.status_code == 200
    assert answer.json() == {
        "ready": True, "database": True, "database_writable": True, "scheduler": True,
        "problems": [],
    }  # fmt: skip


@pytest.fixture
def read_only(rt: Runtime, backend: str) -> Iterator[None]:
    """The database refuses writes, as on a read-only disk: SQLite's query_only, or a
    PostgreSQL database whose transactions are read-only."""
    if backend == "sqlite":
        sa.event.listen(rt.engine, "connect", _query_only)
    else:
        with rt.engine.connect() as connection:
            name = connection.exec_driver_sql("SELECT current_database()").scalar_one()
            connection.exec_driver_sql(
                f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'
            )
            connection.commit()
    rt.engine.dispose()
    yield
    if backend == "sqlite":
        sa.event.remove(rt.engine, "connect", _query_only)
    rt.engine.dispose()


def _query_only(dbapi_connection: object, _record: object) -> None:
    dbapi_connection.execute("PRAGMA query_only=ON")  # type: ignore[attr-defined]


@pytest.mark.both_databases
def test_a_database_that_cannot_be_written_makes_the_service_unready_and_writes_answer_503(
    api: Api, read_only: None
) -> None:
    answer = api.client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["database"] is True
    assert answer.json()["database_writable"] is False
    created = api.post("/v1/patients", {"name": "Ann", "timezone": "UTC", "channel": "email",
                                        "email": "ann@example.org"})  # fmt: skip
    assert created.status_code == 503
    assert created.headers["content-type"] == "application/json"
    assert "nothing was recorded" in created.json()["detail"]
    with_key = api.client.post(
        "/v1/patients", json={"name": "Ann", "timezone": "UTC", "email": "ann@example.org"},
        headers={**api.headers(), "Idempotency-Key": "while-read-only"},
    )  # fmt: skip
    assert with_key.status_code == 503
    assert "nothing was recorded" in with_key.json()["detail"]


def test_a_stuck_scheduler_makes_the_service_unready(
    open_client: OpenClient, app_clock: list[datetime]
) -> None:
    seconds = [0.0]
    beats = Heartbeats({"dispatch": 60.0}, monotonic=lambda: seconds[0])
    client = open_client(
        lambda: app_clock[0], scheduler_problems=lambda: [f"{job} silent" for job in beats.stuck()]
    )
    assert client.get("/readyz").status_code == 200
    seconds[0] = 61.0
    stuck = client.get("/readyz")
    assert stuck.status_code == 503
    assert stuck.json()["scheduler"] is False
    assert stuck.json()["problems"] == ["dispatch silent"]
    beats.beat("dispatch")
    assert client.get("/readyz").status_code == 200


def test_the_dispatchers_progress_is_the_schedulers_sign_of_life(rt: Runtime) -> None:
    dispatcher = Dispatcher(rt, build_senders(rt))
    _scheduler, _dispatch, beats = build_scheduler(rt, dispatcher)
    beats.limits["dispatch"] = 0.05
    time.sleep(0.1)
    assert beats.stuck() == ["dispatch"]
    dispatcher.dispatch()  # nothing due: the run ends at once, and says so
    assert beats.stuck() == []
