"""`reminders serve` end to end: a patient enrolled from the command line whose reminder
time is a minute ahead gets the reminder in the Maildir at that minute."""

from __future__ import annotations

import json
import mailbox
import signal
import socket
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import httpx

from reminders.settings import load_settings
from tests.processes import env_for, run, start, wait_for
from tests.servers import free_port


def test_serve_puts_the_reminder_in_the_maildir_at_its_minute(tmp_path: Path) -> None:
    port = free_port()
    env = env_for(tmp_path, http_port=str(port))
    run(env, "migrate")
    log = tmp_path / "serve.log"
    server = start(env, "serve", log=log)
    try:
        wait_for(lambda: _ready(port), 30, "the API to answer /readyz")
        # CI runs the suite again with the wall clock 200 days ahead (tests/shifted_clock/),
        # which proves nothing unless the processes tests start keep the tests' clock:
        # /readyz stamped its heartbeat with the served process's Runtime.clock.
        assert abs(_readyz_stamp(tmp_path) - datetime.now(UTC)) < timedelta(minutes=10)
        clinic = run(env, "clinic", "create", "North Clinic").split()[1]
        now = datetime.now(UTC)
        due = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
        if (due - now).total_seconds() < 15:
            due += timedelta(minutes=1)
        patient = run(
            env, "patient", "add", "--clinic", clinic, "--name", "Ann",
            "--email", "ann@example.org", "--timezone", "UTC",
            "--reminder-time", f"{due:%H:%M}", "--quiet-hours", "00:00-00:00",
        ).split()[1]  # fmt: skip
        run(
            env, "enroll", patient, "--protocol", "glycopyrrolate-hyperhidrosis",
            "--start", f"{due:%Y-%m-%d}", "--screened", "--no-welcome", "--body-area", "palms",
        )  # fmt: skip
        box = tmp_path / "maildir"
        wait_for(lambda: _count(box) == 1, 120, "the reminder in the Maildir")
        arrived = time.time()
        (key,) = mailbox.Maildir(box).keys()
        raw = mailbox.Maildir(box).get_bytes(key)
        message = message_from_bytes(raw, policy=policy.default)
        assert message["Subject"] == "Your treatment session today"
        # At its minute, not before; how late at most is the benchmark's to say
        # (`scripts/bench dispatch`), not a test's on a machine that may be busy.
        lateness = arrived - due.timestamp()
        assert -0.5 <= lateness < 60, f"arrived {lateness:.2f} s after its due instant"
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    assert server.returncode == 0, log.read_text()


def _readyz_stamp(var_dir: Path) -> datetime:
    with sqlite3.connect(var_dir / "reminders.sqlite3") as db:
        (stamp,) = db.execute("SELECT at FROM heartbeat WHERE name = 'readyz'").fetchone()
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC)


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _count(box: Path) -> int:
    return len(list((box / "new").glob("*"))) if (box / "new").exists() else 0


def test_serve_on_a_taken_port_stops_before_its_scheduler_starts(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    run(env, "migrate")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log = tmp_path / "serve.log"
        server = start(env, "serve", "--port", str(port), log=log)
        assert server.wait(timeout=60) == 2
    output = log.read_text()
    assert f"cannot listen on 127.0.0.1:{port}" in output
    assert "scheduler" not in output.lower() and "Traceback" not in output


def test_serve_port_option_sets_where_patient_links_point(tmp_path: Path) -> None:
    port = free_port()
    env = env_for(tmp_path)
    run(env, "migrate")
    server = start(env, "serve", "--port", str(port), log=tmp_path / "serve.log")
    try:
        wait_for(lambda: _ready(port), 30, "the API to answer /readyz on --port")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    assert load_settings(var_dir=tmp_path, http_port=port).base_url == (f"http://127.0.0.1:{port}")


def test_with_json_logs_every_line_of_serve_is_one_json_object(tmp_path: Path) -> None:
    port = free_port()
    env = env_for(tmp_path, http_port=str(port), log_format="json")
    run(env, "migrate")
    log = tmp_path / "serve.log"
    server = start(env, "serve", log=log)
    try:
        wait_for(lambda: _ready(port), 30, "the API to answer /readyz")
        httpx.get(f"http://127.0.0.1:{port}/v1/clinic?api_key=rk_in_the_query")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    loggers = {line["logger"] for line in lines}
    assert {"reminders", "uvicorn.error", "uvicorn.access"} <= loggers
    (access,) = [
        line["message"] for line in lines
        if line["logger"] == "uvicorn.access" and "/v1/clinic" in line["message"]
    ]  # fmt: skip
    assert "/v1/clinic?… " in access and "rk_in_the_query" not in log.read_text()


def test_a_worker_serves_health_and_metrics_on_its_own_port_and_no_api(tmp_path: Path) -> None:
    port = free_port()
    env = env_for(tmp_path)
    run(env, "migrate")
    log = tmp_path / "worker.log"
    worker = start(env, "worker", "--port", str(port), log=log)
    try:
        wait_for(lambda: _ready(port), 30, "the worker to answer /readyz")
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert metrics.status_code == 200
        assert "process_resident_memory_bytes" in metrics.text
        assert 'reminders_sessions{state="planned"} 0.0' in metrics.text
        assert httpx.get(f"http://127.0.0.1:{port}/v1/clinic", timeout=5).status_code == 404
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert worker.returncode == 0, log.read_text()


def test_serve_reload_serves_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = env_for(tmp_path)
    run(env, "migrate")
    log = tmp_path / "serve.log"
    server = start(env, "serve", "--reload", "--port", str(port), log=log)
    try:
        wait_for(lambda: _ready(port), 60, "the reloading API to answer /readyz")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    output = log.read_text()
    assert "Started reloader process" in output and "Traceback" not in output
