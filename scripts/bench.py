"""Benchmarks. `scripts/bench plan` measures enrolling and planning through the services;
`scripts/bench api` confirmations over HTTP against a trivial authenticated GET.

Each measurement runs in a fresh subprocess (so peak RSS is its own), ours and the
baseline alternate run by run (so machine noise hits both), and medians are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TIMEZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC")
WEEKDAY_CHOICES: tuple[list[str] | None, ...] = (
    None,
    ["mon", "wed", "fri"],
    ["tue", "thu", "sat"],
    ["mon", "tue", "wed", "thu", "fri"],
)
CHUNK = 5000  # patients per transaction when a benchmark sets up its database


def _peak_rss_mb() -> float:
    """This process's peak plus its largest child's (the import's writer): an upper
    bound on what both held at once."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


def _write_import_file(path: Path, count: int, protocols: dict[str, Any]) -> None:
    """A clinic's import file of `count` patients across the shipped protocols."""
    import csv

    ids = sorted(protocols)
    first_day = date(2026, 12, 7)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["name", "email", "timezone", "external_id", "protocol", "start_date",
                         "weekdays", "screening"])  # fmt: skip
        for n in range(count):
            weekdays = WEEKDAY_CHOICES[n % len(WEEKDAY_CHOICES)]
            writer.writerow([
                f"Patient {n}", f"p{n}@example.org", TIMEZONES[n % len(TIMEZONES)], f"EHR-{n}",
                ids[n % len(ids)], (first_day + timedelta(days=n % 7)).isoformat(),
                ";".join(weekdays) if weekdays else "", "none",
            ])  # fmt: skip


IMPORTED_TABLES = ("patient", "enrollment", "treatment_session", "delivery")


def _bare_executemany(source: str, target_url: str) -> float:
    """Seconds that plain `executemany`s take to insert the rows an import wrote, table
    by table in batches of the import's size (`importing.BATCH`), each committed, into a fresh
    database of the same schema with the service's pragmas: the limit an import
    approaches (reading the rows back is not timed)."""
    import sqlite3

    from reminders.db.engine import create_db_engine
    from reminders.db.schema import migrate
    from reminders.services.importing import BATCH

    migrate(target_url)
    engine = create_db_engine(target_url)
    seconds = 0.0
    with engine.connect() as connection, sqlite3.connect(source) as read:
        target = connection.connection.dbapi_connection
        assert target is not None
        for table in ("clinic", *IMPORTED_TABLES):  # the clinic is there before an import
            rows = read.execute(f"SELECT * FROM {table}")
            marks = ", ".join("?" * len(rows.description))
            insert = f"INSERT INTO {table} VALUES ({marks})"
            while batch := rows.fetchmany(BATCH):
                started = time.perf_counter()
                target.executemany(insert, batch)
                target.commit()
                if table != "clinic":
                    seconds += time.perf_counter() - started
    engine.dispose()
    return seconds


def measure_plan(enrollments: int) -> dict[str, Any]:
    """Import `enrollments` patients from a CSV file through `reminders import`'s
    service, each enrolled and planned; then insert the same rows with bare
    `executemany`s; return the figures."""
    from sqlmodel import Session

    from reminders.db import backup, schema
    from reminders.runtime import Runtime
    from reminders.services import clinics
    from reminders.services.importing import import_patients, read_rows
    from reminders.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(var_dir=Path(tmp), email_backend="maildir")
        schema.migrate(settings.database_url)
        rt = Runtime.from_settings(settings)
        now = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
        with Session(rt.engine) as db:
            clinic_id = clinics.create_clinic(db, "Bench Clinic", rt.clock())[0].id
            db.commit()
        import_file = Path(tmp) / "patients.csv"
        _write_import_file(import_file, enrollments, dict(rt.protocols))
        started = time.perf_counter()
        with import_file.open(newline="") as stream:
            report = import_patients(rt, clinic_id, read_rows(stream), now)
        seconds = time.perf_counter() - started
        assert report.imported == enrollments and not report.refused, report.refused[:3]
        peak = _peak_rss_mb()
        rt.engine.dispose()
        limit_seconds = _bare_executemany(
            str(backup.sqlite_file(settings.database_url)),
            f"sqlite:///{Path(tmp) / 'bare.sqlite3'}",
        )
    return {
        "enrollments": enrollments,
        "sessions": report.sessions,
        "seconds": seconds,
        "sessions_per_s": report.sessions / seconds,
        "limit_seconds": limit_seconds,
        "limit_per_s": report.sessions / limit_seconds,
        "peak_rss_mb": peak,
    }


def _remind(session_id: int) -> None:
    """The job a job-per-reminder design would run."""


def measure_apscheduler(reminders: int) -> dict[str, Any]:
    """Store one APScheduler 3 date job per reminder in SQLAlchemyJobStore on SQLite."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    with tempfile.TemporaryDirectory() as tmp:
        store = SQLAlchemyJobStore(url=f"sqlite:///{tmp}/jobs.sqlite3")
        scheduler = BackgroundScheduler(jobstores={"default": store}, timezone=UTC)
        scheduler.start(paused=True)
        due = datetime(2027, 1, 1, 17, 0, tzinfo=UTC)
        started = time.perf_counter()
        for n in range(reminders):
            scheduler.add_job(
                _remind, "date", run_date=due + timedelta(minutes=n), args=[n], id=f"r{n}"
            )
        seconds = time.perf_counter() - started
        scheduler.shutdown(wait=False)
    return {"reminders": reminders, "seconds": seconds, "per_s": reminders / seconds}


def _child(kind: str, count: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "_once", kind, str(count)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def bench_plan(args: argparse.Namespace) -> dict[str, Any]:
    ours: list[dict[str, Any]] = []
    baseline: list[dict[str, Any]] = []
    # Each run's ratio pairs figures measured a moment apart: the machine's speed drifts
    # by a quarter between runs, and the ratio of two medians would mix moments.
    ratios: list[float] = []
    to_limit: list[float] = []
    for run in range(args.runs):
        baseline.append(_child("apscheduler", args.baseline))
        ours.append(_child("plan", args.enrollments))
        ratios.append(ours[-1]["sessions_per_s"] / baseline[-1]["per_s"])
        to_limit.append(ours[-1]["sessions_per_s"] / ours[-1]["limit_per_s"])
        print(
            f"run {run + 1}/{args.runs}: imported and planned {args.enrollments:,} in "
            f"{ours[-1]['seconds']:.1f} s = {ours[-1]['sessions_per_s']:,.0f} sessions/s, "
            f"{to_limit[-1]:.2f}x bare executemany ({ours[-1]['limit_per_s']:,.0f}/s); "
            f"peak RSS {ours[-1]['peak_rss_mb']:.0f} MB; baseline "
            f"{baseline[-1]['per_s']:,.0f} jobs/s, ratio {ratios[-1]:.0f}x",
            flush=True,
        )
    per_s = statistics.median(r["sessions_per_s"] for r in ours)
    base_per_s = statistics.median(r["per_s"] for r in baseline)
    figures = {
        "enrollments": args.enrollments,
        "sessions": ours[0]["sessions"],
        "runs": args.runs,
        "seconds": statistics.median(r["seconds"] for r in ours),
        "sessions_per_s": per_s,
        "baseline": "one APScheduler 3 date job per reminder, SQLAlchemyJobStore on SQLite",
        "baseline_reminders": args.baseline,
        "baseline_per_s": base_per_s,
        "ratio": statistics.median(ratios),
        "run_ratios": ratios,
        "limit": "bare executemany of the same rows into the same schema, in the same run",
        "limit_per_s": statistics.median(r["limit_per_s"] for r in ours),
        "limit_ratio": statistics.median(to_limit),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in ours),
        "all_runs": {"ours": ours, "baseline": baseline},
    }
    print(
        f"median of {args.runs}: {args.enrollments:,} enrollments, {figures['sessions']:,} "
        f"sessions in {figures['seconds']:.1f} s = {per_s:,.0f} sessions/s; baseline "
        f"{base_per_s:,.0f} reminders/s; median ratio {figures['ratio']:.0f}x; "
        f"{figures['limit_ratio']:.2f}x bare executemany; "
        f"peak RSS {figures['peak_rss_mb']:.0f} MB"
    )
    return figures


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _zone_near_noon() -> str:
    offset = 12 - datetime.now(UTC).hour
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def _prepare_api(var_dir: Path, enrollments: int) -> tuple[str, list[str]]:
    """A clinic, and patients each with a session planned today (reminders due late
    tonight, so the dispatcher stays out of the measurement); return key and session ids."""
    from sqlmodel import Session, select

    from reminders.db import schema
    from reminders.models import EnrollmentCreate, PatientCreate, TreatmentSession
    from reminders.runtime import Runtime
    from reminders.services import clinics, patients
    from reminders.services import enrollments as enrolling
    from reminders.settings import load_settings

    settings = load_settings(var_dir=var_dir)
    schema.migrate(settings.database_url)
    rt = Runtime.from_settings(settings)
    zone = _zone_near_noon()
    now = datetime.now(UTC)
    with Session(rt.engine) as db:
        clinic, key = clinics.create_clinic(db, "Bench Clinic", rt.clock())
        db.commit()
        protocol = rt.protocols["tap-water-hyperhidrosis"]
        for start in range(0, enrollments, CHUNK):
            people = [
                PatientCreate(name=f"P{start + i}", email=f"p{start + i}@example.org",
                              timezone=zone, reminder_time="23:30")
                for i in range(min(CHUNK, enrollments - start))
            ]  # fmt: skip
            ids = patients.add_patients(
                db,
                clinic.id,
                people,
                rt.clock(),
                default_reminder_time=settings.default_reminder_time,
            )
            today = now.astimezone(ZoneInfo(zone)).date()
            requests = [
                enrolling.EnrollRequest(
                    pid,
                    EnrollmentCreate(
                        protocol=protocol.id,
                        start_date=today,
                        screening={c: False for c in protocol.contraindications},
                        welcome=False,  # only confirmations are measured
                    ),
                )
                for pid in ids
            ]
            enrolling.enroll_many(db, rt, clinic.id, requests, now)
            db.commit()
        sessions = list(
            db.exec(
                select(TreatmentSession.id).where(
                    TreatmentSession.local_date == today, TreatmentSession.status == "planned"
                )
            )
        )
    rt.close()
    return key, sessions


def _load(
    base: str, key: str, seconds: float, clients: int, confirm: list[str] | None
) -> dict[str, Any]:
    """Run `clients` concurrent clients for `seconds`: confirmations (each a re-plan) when
    sessions are given, else the trivial GET /v1/clinic. Return rate and latencies."""
    import threading

    import httpx

    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop_at = time.perf_counter() + seconds
    queues = [confirm[i::clients] for i in range(clients)] if confirm is not None else None

    def client(index: int) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as http:
            todo = queues[index] if queues is not None else None
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                if todo is not None:
                    if not todo:
                        break
                    response = http.post(f"/v1/sessions/{todo.pop()}/confirm", json={"hdss": 2})
                else:
                    response = http.get("/v1/clinic")
                latencies[index].append(time.perf_counter() - started)
                if response.status_code >= 400:
                    errors[index] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    every = sorted(x for per in latencies for x in per)
    return {
        "requests": len(every),
        "errors": sum(errors),
        "seconds": elapsed,
        "per_s": len(every) / elapsed,
        "p50_ms": every[len(every) // 2] * 1000 if every else None,
        "p99_ms": every[int(len(every) * 0.99)] * 1000 if every else None,
    }


@contextmanager
def _served(var_dir: Path) -> Iterator[str]:
    """`reminders serve` on `var_dir` and a free port, ready; its base URL. Stopped with
    SIGINT at the end; one that does not stop leaves its log under var/bench/."""
    import httpx

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDERS_")}
    env.update(REMINDERS_VAR_DIR=str(var_dir), REMINDERS_HTTP_PORT=str(port))
    log = (var_dir / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "reminders", "serve"], env=env, cwd=ROOT, stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # Keep the evidence: the temporary folder goes away with the server's log.
            server.kill()
            kept = ROOT / "var" / "bench" / "serve-did-not-stop.log"
            kept.parent.mkdir(parents=True, exist_ok=True)
            kept.write_bytes((var_dir / "serve.log").read_bytes())
            print(f"the server did not stop within 30 s of SIGINT; its log: {kept}")
            raise
        finally:
            log.close()


def bench_api(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        print("preparing patients with a session today ...", flush=True)
        key, sessions = _prepare_api(Path(tmp), args.enrollments)
        with _served(Path(tmp)) as base:
            _load(base, key, 2, args.clients, None)  # warm up
            confirms: list[dict[str, Any]] = []
            trivials: list[dict[str, Any]] = []
            for run in range(args.runs):
                trivials.append(_load(base, key, args.seconds, args.clients, None))
                share = sessions[run :: args.runs]
                confirms.append(_load(base, key, args.seconds, args.clients, share))
                if confirms[-1]["seconds"] < 0.95 * args.seconds:
                    print(
                        f"run {run + 1} ran out of sessions after {confirms[-1]['seconds']:.0f} s; "
                        "give more --enrollments",
                        flush=True,
                    )
                print(
                    f"run {run + 1}/{args.runs}: confirm {confirms[-1]['per_s']:.0f}/s "
                    f"p50 {confirms[-1]['p50_ms']:.1f} ms p99 {confirms[-1]['p99_ms']:.1f} ms "
                    f"({confirms[-1]['errors']} errors); trivial {trivials[-1]['per_s']:.0f}/s "
                    f"p50 {trivials[-1]['p50_ms']:.1f} ms p99 {trivials[-1]['p99_ms']:.1f} ms",
                    flush=True,
                )

    def median(rows: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median(r[key] for r in rows))

    figures = {
        "clients": args.clients,
        "seconds_per_run": args.seconds,
        "runs": args.runs,
        "confirm_per_s": median(confirms, "per_s"),
        "confirm_p50_ms": median(confirms, "p50_ms"),
        "confirm_p99_ms": median(confirms, "p99_ms"),
        "confirm_errors": sum(r["errors"] for r in confirms),
        "trivial_per_s": median(trivials, "per_s"),
        "trivial_p50_ms": median(trivials, "p50_ms"),
        "trivial_p99_ms": median(trivials, "p99_ms"),
        "all_runs": {"confirm": confirms, "trivial": trivials},
    }
    # As for `plan`: each run's ratio pairs figures measured a moment apart.
    run_ratios = [c["per_s"] / t["per_s"] for c, t in zip(confirms, trivials, strict=True)]
    figures["run_ratios"] = run_ratios
    figures["ratio"] = statistics.median(run_ratios)
    print(
        f"median of {args.runs}: confirmations {figures['confirm_per_s']:.0f}/s "
        f"(p50 {figures['confirm_p50_ms']:.1f} ms, p99 {figures['confirm_p99_ms']:.1f} ms); "
        f"trivial GET {figures['trivial_per_s']:.0f}/s; median ratio {figures['ratio']:.2f}"
    )
    return figures


def _wait_port(port: int, seconds: float = 20) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def _arrivals(log: Path) -> dict[str, float]:
    found: dict[str, float] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            ident, _, when = line.rpartition(" ")
            found.setdefault(ident, float(when))
    return found


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * share), len(ordered) - 1)]


def _sample_payloads() -> tuple[bytes, Any]:
    """One reminder's webhook body and email as the pipeline makes them: the baselines
    send the same bytes, text and SMS included."""
    from reminders.messages import (
        Links,
        PatientMessage,
        patient_email,
        relayed_message,
        webhook_body,
    )

    now = datetime.now(UTC)
    links = Links(
        "https://reminders.example.org/s/" + "t" * 22,
        "https://reminders.example.org/u/" + "u" * 43,
        "https://reminders.example.org/c/" + "c" * 43 + ".ics",
    )
    message = PatientMessage(
        "reminder", "Patient 1", now.date(), 20, "palms",
        ("Remove rings, watches and other jewellery.",), links, clinic="Bench Clinic",
    )  # fmt: skip
    data = relayed_message(
        replace(message, name=None), delivery_id="0" * 32, patient_id="1" * 32,
        external_id=None, session_id="2" * 32, enrollment_id="3" * 32, timezone="Etc/GMT-1",
    )  # fmt: skip
    body = webhook_body("session.reminder", now, data)
    email = patient_email(
        message, delivery_id="4" * 32, sender="Reminders <r@bench.example>",
        to="p1@example.org", now=now,
    )  # fmt: skip
    return body, email


def _httpx_loop(url: str, body: bytes, count: int) -> float:
    import httpx

    headers = {"content-type": "application/json", "webhook-id": "baseline"}
    with httpx.Client() as client:
        started = time.perf_counter()
        for _ in range(count):
            client.post(url, content=body, headers=headers)
        return count / (time.perf_counter() - started)


def _aiohttp_ceiling(url: str, body: bytes, count: int, concurrency: int = 64) -> float:
    import asyncio

    import aiohttp

    async def run() -> float:
        headers = {"content-type": "application/json", "webhook-id": "baseline"}
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            queue = iter(range(count))

            async def worker() -> None:
                for _ in queue:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return count / (time.perf_counter() - started)

    return asyncio.run(run())


def _smtplib_loop(port: int, email: Any, count: int) -> float:
    import smtplib

    with smtplib.SMTP("127.0.0.1", port) as smtp:
        started = time.perf_counter()
        for _ in range(count):
            smtp.send_message(email)
        return count / (time.perf_counter() - started)


def _next_minute(after_s: float) -> datetime:
    moment = datetime.now(UTC) + timedelta(seconds=after_s)
    return (moment + timedelta(minutes=1)).replace(second=0, microsecond=0)


def _enroll_for(
    rt: Any, clinic_id: str, count: int, zone: str, at: str, channel: str, now: datetime
) -> None:
    from sqlmodel import Session

    from reminders.models import EnrollmentCreate, PatientCreate
    from reminders.services import enrollments as enrolling
    from reminders.services import patients

    protocol = rt.protocols["glycopyrrolate-hyperhidrosis"]
    today = now.astimezone(ZoneInfo(zone)).date()
    screening = {c: False for c in protocol.contraindications}
    with Session(rt.engine) as db:
        for start in range(0, count, CHUNK):
            people = [
                PatientCreate(
                    name=f"P{start + i}", email=f"p{start + i}@example.org", timezone=zone,
                    reminder_time=at, quiet_hours={"start": "00:00", "end": "00:00"},
                    channel=channel,
                )
                for i in range(min(CHUNK, count - start))
            ]  # fmt: skip
            ids = patients.add_patients(
                db,
                clinic_id,
                people,
                rt.clock(),
                default_reminder_time=rt.settings.default_reminder_time,
            )
            requests = [
                enrolling.EnrollRequest(
                    pid,
                    EnrollmentCreate(
                        protocol=protocol.id, start_date=today, screening=screening, welcome=False
                    ),
                )
                for pid in ids
            ]
            enrolling.enroll_many(db, rt, clinic_id, requests, now)
            db.commit()


def _burst_phase(
    rt: Any, ours: list[str], others: list[str], logs: list[Path], timeout: float
) -> list[dict[str, float]]:
    """Make the reminders of clinics `ours` due in a few seconds (those of `others` not
    sendable), wait until they are sent, and return each log's arrivals as lateness
    (seconds after the due instant) by delivery id."""
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    offsets = [log.stat().st_size if log.exists() else 0 for log in logs]
    _reset_burst(rt, ours, others, due)
    total = _count_reminders_of(rt, ours)
    deadline = time.monotonic() + 5 + timeout
    while _count_sent_of(rt, ours) < total and time.monotonic() < deadline:
        time.sleep(0.25)
    time.sleep(0.5)  # the receivers' last lines
    sent = _count_sent_of(rt, ours)
    if sent < total:
        print(f"  only {sent:,} of {total:,} sent within {timeout:.0f} s", flush=True)
    arrived = []
    for log, offset in zip(logs, offsets, strict=True):
        found = _arrivals_after(log, offset) if log.exists() else {}
        found.pop("-", None)
        arrived.append({k: t - due.timestamp() for k, t in found.items()})
    return arrived


def _rate(lateness: dict[str, float]) -> float:
    """Messages per second from the due instant to the last arrival."""
    return len(lateness) / max(lateness.values()) if lateness else float("nan")


def bench_dispatch(args: argparse.Namespace) -> dict[str, Any]:
    """Each round: the bare loops, then one `reminders worker` (SQLite) sending
    `args.webhooks` webhooks alone, `args.emails` emails alone, and both due at one
    instant. Throughput is compared with the bare loop of the same channel measured in
    the same round, each with the machine to itself; lateness comes from the mixed
    burst. Then a single reminder's lateness, and a receiver taking 50 ms a request."""
    from sqlmodel import Session

    from reminders.db import schema
    from reminders.runtime import Runtime
    from reminders.services import clinics, webhooks
    from reminders.settings import load_settings

    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        var_dir = Path(tmp)
        fast, slow, smtp_port = _free_port(), _free_port(), _free_port()
        logs = {name: var_dir / f"{name}.log" for name in ("fast", "slow", "smtp")}
        helpers = [
            subprocess.Popen([sys.executable, str(ROOT / "scripts" / "bench_servers.py"),
                              "webhook", str(fast), str(logs["fast"]), "0"]),
            subprocess.Popen([sys.executable, str(ROOT / "scripts" / "bench_servers.py"),
                              "webhook", str(slow), str(logs["slow"]), "0.05"]),
            subprocess.Popen([sys.executable, str(ROOT / "scripts" / "bench_servers.py"),
                              "smtp", str(smtp_port), str(logs["smtp"])]),
        ]  # fmt: skip
        worker = None
        try:
            for port in (fast, slow, smtp_port):
                _wait_port(port)
            fast_url, slow_url = f"http://127.0.0.1:{fast}/hooks", f"http://127.0.0.1:{slow}/hooks"
            body, email = _sample_payloads()
            settings = load_settings(
                var_dir=var_dir, email_backend="smtp", smtp_port=smtp_port,
                smtp_security="none", webhook_allow_http=True,
                webhook_allowed_hosts=["127.0.0.1"], follow_up_after_min=0,
            )  # fmt: skip
            schema.migrate(settings.database_url)
            rt = Runtime.from_settings(settings)
            with Session(rt.engine) as db:
                hooked = clinics.create_clinic(db, "Webhook Clinic", rt.clock())[0].id
                webhooks.add_endpoint(db, settings, hooked, fast_url, rt.clock())
                mailed = clinics.create_clinic(db, "Email Clinic", rt.clock())[0].id
                slowed = clinics.create_clinic(db, "Slow Clinic", rt.clock())[0].id
                webhooks.add_endpoint(db, settings, slowed, slow_url, rt.clock())
                db.commit()
            everyone = [hooked, mailed, slowed]
            zone = _zone_near_noon()
            now = datetime.now(UTC)
            local = now.astimezone(ZoneInfo(zone)).strftime("%H:%M")
            print(
                f"enrolling {args.webhooks:,} + {args.emails:,} + {args.slow:,} patients",
                flush=True,
            )
            _enroll_for(rt, hooked, args.webhooks, zone, local, "webhook", now)
            _enroll_for(rt, mailed, args.emails, zone, local, "email", now)
            _enroll_for(rt, slowed, args.slow, zone, local, "webhook", now)
            _reset_burst(rt, [], everyone, now)  # nothing goes before the first phase
            env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDERS_")}
            env.update(
                REMINDERS_VAR_DIR=tmp, REMINDERS_EMAIL_BACKEND="smtp",
                REMINDERS_SMTP_PORT=str(smtp_port), REMINDERS_SMTP_SECURITY="none",
                REMINDERS_WEBHOOK_ALLOW_HTTP="true", REMINDERS_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
                REMINDERS_FOLLOW_UP_AFTER_MIN="0",
            )  # fmt: skip
            worker = subprocess.Popen(
                [sys.executable, "-m", "reminders", "worker", "--port", str(_free_port())],
                env=env, cwd=ROOT,
                stdout=(var_dir / "worker.log").open("wb"), stderr=subprocess.STDOUT,
            )  # fmt: skip
            for n in range(args.runs):
                figures: dict[str, float] = {
                    "httpx_loop_per_s": _httpx_loop(fast_url, body, args.baseline),
                    "aiohttp_ceiling_per_s": _aiohttp_ceiling(fast_url, body, args.webhooks),
                    "smtplib_loop_per_s": _smtplib_loop(smtp_port, email, args.emails),
                }
                (hooks,) = _burst_phase(
                    rt, [hooked], [mailed, slowed], [logs["fast"]], args.timeout
                )
                (mails,) = _burst_phase(
                    rt, [mailed], [hooked, slowed], [logs["smtp"]], args.timeout
                )
                mixed_hooks, mixed_mails = _burst_phase(
                    rt, [hooked, mailed], [slowed], [logs["fast"], logs["smtp"]], args.timeout
                )
                (slowest,) = _burst_phase(
                    rt, [slowed], [hooked, mailed], [logs["slow"]], args.timeout
                )
                slow_times = sorted(slowest.values()) or [0.0]
                figures.update(
                    webhook_per_s=_rate(hooks),
                    email_per_s=_rate(mails),
                    mixed_webhook_per_s=_rate(mixed_hooks),
                    mixed_email_per_s=_rate(mixed_mails),
                    lateness_p50_s=_percentile(list(mixed_hooks.values()), 0.5),
                    lateness_p99_s=_percentile(list(mixed_hooks.values()), 0.99),
                    email_lateness_p99_s=_percentile(list(mixed_mails.values()), 0.99),
                    # From the first arrival: the rate the receiver's latency allows.
                    slow_receiver_per_s=(len(slow_times) - 1)
                    / max(slow_times[-1] - slow_times[0], 1e-9),
                    delivered=len(hooks) + len(mails) + len(mixed_hooks) + len(mixed_mails),
                )
                figures["webhook_vs_httpx_loop"] = (
                    figures["webhook_per_s"] / figures["httpx_loop_per_s"]
                )
                figures["webhook_vs_aiohttp_ceiling"] = (
                    figures["webhook_per_s"] / figures["aiohttp_ceiling_per_s"]
                )
                figures["email_vs_smtplib_loop"] = (
                    figures["email_per_s"] / figures["smtplib_loop_per_s"]
                )
                rounds.append(figures)
                print(
                    f"  round {n + 1}: webhooks {figures['webhook_per_s']:,.0f}/s "
                    f"(httpx loop {figures['httpx_loop_per_s']:,.0f}/s, aiohttp x64 "
                    f"{figures['aiohttp_ceiling_per_s']:,.0f}/s); emails "
                    f"{figures['email_per_s']:,.0f}/s (smtplib loop "
                    f"{figures['smtplib_loop_per_s']:,.0f}/s); both at once: lateness p99 "
                    f"{figures['lateness_p99_s']:.2f} s webhooks, "
                    f"{figures['email_lateness_p99_s']:.2f} s emails; 50 ms receiver "
                    f"{figures['slow_receiver_per_s']:,.0f}/s",
                    flush=True,
                )
            _reset_burst(rt, [], everyone, datetime.now(UTC))
            single_due = _next_minute(after_s=10)
            single_local = single_due.astimezone(ZoneInfo(zone)).strftime("%H:%M")
            _enroll_for(rt, hooked, 1, zone, single_local, "webhook", datetime.now(UTC))
            before = set(_arrivals(logs["fast"]))
            new: dict[str, float] = {}
            while time.time() < single_due.timestamp() + 15:
                new = {k: v for k, v in _arrivals(logs["fast"]).items() if k not in before}
                if new:
                    break
                time.sleep(0.05)
            single_lateness = min(new.values()) - single_due.timestamp() if new else float("nan")
            print(
                f"  single reminder arrived {single_lateness:.2f} s after its due instant",
                flush=True,
            )
            rt.close()
        finally:
            if worker is not None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=60)
            for helper in helpers:
                helper.terminate()
                helper.wait(timeout=10)
    result: dict[str, Any] = {"webhooks": args.webhooks, "emails": args.emails, "runs": args.runs}
    for key in rounds[0]:
        result[key] = statistics.median(r[key] for r in rounds)
    result["delivered"] = min(r["delivered"] for r in rounds)
    result["single_lateness_s"] = single_lateness
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))
    return result


BURST_CLINICS = 10
DRIBBLING_PATIENTS = 1_000


def _arrivals_after(log: Path, offset: int) -> dict[str, float]:
    """Arrivals logged after byte `offset` of the receivers' log."""
    found: dict[str, float] = {}
    with log.open("rb") as lines:
        lines.seek(offset)
        for line in lines.read().decode().splitlines():
            ident, _, when = line.rpartition(" ")
            found.setdefault(ident, float(when))
    return found


def _reset_burst(rt: Any, clinics: list[str], cancelled: list[str], due: datetime) -> None:
    """Make the reminders of `clinics` due again at `due`, as if never sent, and those
    of `cancelled` not sendable."""
    import sqlalchemy as sa

    from reminders.models import Delivery

    table = Delivery.__table__  # type: ignore[attr-defined]
    with rt.engine.begin() as connection:
        connection.execute(
            sa.update(table)
            .where(table.c.clinic_id.in_(clinics), table.c.kind == "reminder")
            .values(
                state="pending", attempts=0, due_at=due, next_attempt_at=due, sent_at=None,
                last_error=None, lease_until=None, claimed_by=None,
            )
        )  # fmt: skip
        connection.execute(
            sa.update(table)
            .where(table.c.clinic_id.in_(cancelled), table.c.kind == "reminder")
            .values(state="cancelled", lease_until=None, claimed_by=None)
        )


def _count_reminders_of(rt: Any, clinics: list[str]) -> int:
    import sqlalchemy as sa

    from reminders.models import Delivery

    table = Delivery.__table__  # type: ignore[attr-defined]
    with rt.engine.connect() as connection:
        query = sa.select(sa.func.count()).where(
            table.c.clinic_id.in_(clinics), table.c.kind == "reminder"
        )
        return int(connection.execute(query).scalar_one())


def _count_sent_of(rt: Any, clinics: list[str]) -> int:
    import sqlalchemy as sa

    from reminders.models import Delivery

    table = Delivery.__table__  # type: ignore[attr-defined]
    with rt.engine.connect() as connection:
        query = sa.select(sa.func.count()).where(
            table.c.clinic_id.in_(clinics), table.c.state == "sent", table.c.kind == "reminder"
        )
        return int(connection.execute(query).scalar_one())


def _peak_rss_of(pid: int) -> float:
    """A live process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _dispatch_all(args: argparse.Namespace) -> dict[str, Any]:
    """The dispatch figures: the mixed burst against bare loops, then the big burst."""
    figures = {} if args.no_baselines else bench_dispatch(args)
    if args.burst:
        figures.update(bench_burst(args))
    return figures


def bench_burst(args: argparse.Namespace) -> dict[str, Any]:
    """`args.burst` webhook reminders due at one instant, spread over the endpoints of 10
    clinics (each its own port), sent by one `reminders worker` on SQLite; runs alternate
    between the burst alone and the burst while an eleventh clinic's endpoint dribbles
    (200, then a byte every 5 s) with its own reminders due at the same instant."""
    from sqlmodel import Session

    from reminders.db import schema
    from reminders.runtime import Runtime
    from reminders.services import clinics, webhooks
    from reminders.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        var_dir = Path(tmp)
        ports = [_free_port() for _ in range(BURST_CLINICS + 1)]
        log = var_dir / "arrivals.log"
        log.touch()
        receivers = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "bench_servers.py"), "many",
             ",".join(map(str, ports)), str(log), str(ports[-1])],
        )  # fmt: skip
        worker = None
        try:
            for port in ports:
                _wait_port(port)
            settings = load_settings(
                var_dir=var_dir, webhook_allow_http=True, webhook_allowed_hosts=["127.0.0.1"],
                follow_up_after_min=0,
            )  # fmt: skip
            schema.migrate(settings.database_url)
            rt = Runtime.from_settings(settings)
            zone = _zone_near_noon()
            local = datetime.now(UTC).astimezone(ZoneInfo(zone)).strftime("%H:%M")
            ids: list[str] = []
            with Session(rt.engine) as db:
                for n, port in enumerate(ports):
                    clinic = clinics.create_clinic(db, f"Burst Clinic {n}", rt.clock())[0].id
                    url = f"http://127.0.0.1:{port}/hooks"
                    webhooks.add_endpoint(db, settings, clinic, url, rt.clock())
                    ids.append(clinic)
                db.commit()
            ten, dribbling = ids[:BURST_CLINICS], ids[BURST_CLINICS]
            print(
                f"burst: enrolling {args.burst:,} patients of {BURST_CLINICS} clinics", flush=True
            )
            now = datetime.now(UTC)
            share = args.burst // BURST_CLINICS
            for clinic in ten:
                _enroll_for(rt, clinic, share, zone, local, "webhook", now)
            _enroll_for(rt, dribbling, DRIBBLING_PATIENTS, zone, local, "webhook", now)
            _reset_burst(rt, [], ids, now)  # nothing goes before the first run
            env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDERS_")}
            env.update(
                REMINDERS_VAR_DIR=tmp, REMINDERS_WEBHOOK_ALLOW_HTTP="true",
                REMINDERS_WEBHOOK_ALLOWED_HOSTS="127.0.0.1", REMINDERS_FOLLOW_UP_AFTER_MIN="0",
            )  # fmt: skip
            worker = subprocess.Popen(
                [sys.executable, "-m", "reminders", "worker", "--port", str(_free_port())],
                env=env, cwd=ROOT,
                stdout=(var_dir / "worker.log").open("wb"), stderr=subprocess.STDOUT,
            )  # fmt: skip
            late: dict[bool, list[float]] = {False: [], True: []}
            delivered: list[int] = []
            for run in range(2 * args.burst_runs):
                with_dribbler = run % 2 == 1
                due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=8)
                offset = log.stat().st_size
                _reset_burst(rt, ten + ([dribbling] if with_dribbler else []),
                             [] if with_dribbler else [dribbling], due)  # fmt: skip
                deadline = time.monotonic() + 8 + args.timeout
                total = share * BURST_CLINICS
                while _count_sent_of(rt, ten) < total and time.monotonic() < deadline:
                    time.sleep(0.5)
                arrived = _arrivals_after(log, offset)
                arrived.pop("-", None)
                lateness = [t - due.timestamp() for t in arrived.values()]
                p99 = _percentile(lateness, 0.99) if lateness else float("nan")
                late[with_dribbler].append(p99)
                if not with_dribbler:
                    delivered.append(_count_sent_of(rt, ten))
                print(
                    f"  run {run + 1}{' with a dribbling endpoint' if with_dribbler else ''}: "
                    f"{len(arrived):,} of {total:,} arrived, lateness p99 {p99:.2f} s",
                    flush=True,
                )
                time.sleep(2)
            peak_rss = _peak_rss_of(worker.pid)
            rt.close()
        finally:
            if worker is not None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    print("  the worker did not stop within 60 s; killed", flush=True)
                    worker.kill()
            receivers.terminate()
            receivers.wait(timeout=10)
    alone, beside = statistics.median(late[False]), statistics.median(late[True])
    figures = {
        "burst100k_size": args.burst,
        "burst100k_delivered": min(delivered),
        "burst100k_lateness_p99_s": alone,
        "burst100k_peak_rss_mb": peak_rss,
        "burst100k_dribbling_lateness_p99_s": beside,
        "isolation_lateness_ratio": beside / alone,
    }
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}))
    return figures


def _enroll_clinic_weeks_ago(db: Any, rt: Any, clinic_id: str, count: int, then: datetime) -> None:
    """`count` patients enrolled at `then` and planned a horizon at a time since, as the
    sweep does."""
    from reminders.models import EnrollmentCreate, PatientCreate
    from reminders.services import enrollments as enrolling
    from reminders.services import patients
    from reminders.services.sweep import extend_horizons

    protocol = rt.protocols["tap-water-hyperhidrosis"]
    screening = {c: False for c in protocol.contraindications}
    for first in range(0, count, CHUNK):
        people = [
            PatientCreate(name=f"Patient {n:05d}", email=f"p{n}@example.org",
                          timezone=TIMEZONES[n % len(TIMEZONES)], external_id=f"EHR-{n:05d}")
            for n in range(first, min(first + CHUNK, count))
        ]  # fmt: skip
        ids = patients.add_patients(
            db,
            clinic_id,
            people,
            rt.clock(),
            default_reminder_time=rt.settings.default_reminder_time,
        )
        course = EnrollmentCreate(
            protocol=protocol.id, start_date=then.date(), welcome=False, screening=screening
        )
        requests = [enrolling.EnrollRequest(pid, course) for pid in ids]
        enrolled = enrolling.enroll_many(db, rt, clinic_id, requests, then)
        for days in range(14, (datetime.now(UTC) - then).days, 14):
            extend_horizons(db, rt, then + timedelta(days=days), enrolled)
        extend_horizons(db, rt, datetime.now(UTC), enrolled)
        db.commit()


def _live_the_weeks(db: Any, now: datetime) -> None:
    """Past sessions confirmed, but for a few skipped and missed; past messages sent."""
    import random

    import sqlalchemy as sa

    from reminders.db.rows import table_of
    from reminders.models import Delivery, TreatmentSession

    chance = random.Random(15)
    table = table_of(TreatmentSession)
    past = [
        sid for (sid,) in db.execute(sa.select(table.c.id).where(table.c.local_date < now.date()))
    ]
    for status, share in (("missed", 0.08), ("skipped", 0.07)):
        chosen = [sid for sid in past if chance.random() < share]
        for at in range(0, len(chosen), 900):
            batch = chosen[at : at + 900]
            db.execute(sa.update(table).where(table.c.id.in_(batch)).values(status=status))
    db.execute(
        sa.update(table)
        .where(table.c.local_date < now.date(), table.c.status == "planned")
        .values(status="confirmed", completed_at=now, hdss=2, outcome="2")
    )
    deliveries = table_of(Delivery)
    db.execute(
        sa.update(deliveries)
        .where(deliveries.c.due_at < now - timedelta(hours=1))
        .values(state="sent", sent_at=deliveries.c.due_at)
    )
    db.commit()


def _prepare_web(var_dir: Path, patients_wanted: int) -> dict[str, Any]:
    """A clinic of `patients_wanted` patients, each five weeks into a course: past
    sessions confirmed, skipped or missed, the coming two weeks planned, standings
    stored by the sweep's step; a staff admin; a few open escalations. Returns the ids
    the pages need."""
    import sqlalchemy as sa
    from sqlmodel import Session, select

    from reminders.db import schema
    from reminders.models import Patient, TreatmentSession
    from reminders.runtime import Runtime
    from reminders.services import clinics, events, staff, standings
    from reminders.settings import load_settings

    settings = load_settings(var_dir=var_dir)
    schema.migrate(settings.database_url)
    rt = Runtime.from_settings(settings)
    now = datetime.now(UTC)
    with Session(rt.engine) as db:
        clinic, _key = clinics.create_clinic(
            db, "Bench Clinic", rt.clock(), alert_email="a@example.org"
        )
        admin = staff.add_member(db, clinic.id, "admin@example.org", "admin", None, now)
        admin.password_hash = staff.hash_password(WEB_PASSWORD)
        db.add(admin)
        db.commit()
        _enroll_clinic_weeks_ago(db, rt, clinic.id, patients_wanted, now - timedelta(days=35))
        _live_the_weeks(db, now)
        ids = standings.changed_patients(db, rt, now)
        for at in range(0, len(ids), 2000):
            standings.refresh(db, rt, now, ids[at : at + 2000])
        sample = list(db.exec(select(Patient).limit(50)))
        for patient in sample[:20]:
            events.escalate(db, patient, "side_effect", "burn reported", now)
        db.commit()
        sessions = db.exec(select(sa.func.count()).select_from(TreatmentSession)).one()
        sample_ids = [p.id for p in sample]
    rt.close()
    return {"patients": patients_wanted, "sessions": int(sessions), "patient_ids": sample_ids}


WEB_PASSWORD = "bench password, long enough"


def _web_pages(http: Any, prepared: dict[str, Any]) -> dict[str, list[str]]:
    """Every page of the app, each with the URLs a nurse would open (several patients)."""
    patients_page = http.get("/app/patients").text
    after = patients_page.split("/app/patients?after=")[1].split('"')[0].replace("&amp;", "&")
    patient_ids = prepared["patient_ids"]
    return {
        "login": ["/app/login"],
        "today": ["/app/"],
        "patients": ["/app/patients"],
        "patients_next_page": [f"/app/patients?after={after}"],
        "patients_search": ["/app/patients?q=patient%2001", "/app/patients?q=EHR-0999"],
        "patient": [f"/app/patients/{p}" for p in patient_ids],
        "patient_new": ["/app/patients/new"],
        "enroll": [f"/app/enroll?patient={p}" for p in patient_ids[:5]],
        "enroll_preview": [
            f"/app/enroll/preview?protocol=tap-water-hyperhidrosis&start_date={date.today()}"
        ],
        "escalations": ["/app/escalations"],
        "endpoints": ["/app/endpoints"],
        "protocols": ["/app/protocols"],
        "protocol": ["/app/protocols/tap-water-hyperhidrosis"],
        "settings": ["/app/settings"],
    }


def _wait_until_sent(var_dir: Path, longest_s: float = 600) -> None:
    """Wait for the service to send what fell due when it started (every patient's
    reminders at once, as only a benchmark's day starts), so the pages are timed beside
    the day's usual work, not that burst."""
    import sqlite3

    deadline = time.monotonic() + longest_s
    quiet = 0
    while quiet < 2 and time.monotonic() < deadline:
        time.sleep(2)
        with sqlite3.connect(var_dir / "reminders.sqlite3") as db:
            due = db.execute(
                "SELECT count(*) FROM delivery WHERE state IN ('pending', 'sending')"
                " AND next_attempt_at <= ?",
                (datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),),
            ).fetchone()[0]
        quiet = quiet + 1 if due == 0 else 0
        print(f"waiting for the start's deliveries to go: {due} due", flush=True)


def _server_ms(answer: Any) -> float:
    """The server's own time for an answer, from its `Server-Timing: app;dur=<ms>`."""
    return float(answer.headers["server-timing"].split("dur=")[1])


def _time_pages(
    http: Any, pages: dict[str, list[str]], requests: int, first: int = 0
) -> dict[str, float]:
    """The p95, in ms of server time, of `requests` GETs of each page (cycling through
    its URLs), each checked to answer 200; and of /healthz, the baseline."""
    p95: dict[str, float] = {}
    every = list({**pages, "baseline_healthz": ["/healthz"]}.items())
    # Each run starts at another page, so no page is always timed first.
    start = first % len(every)
    for name, urls in every[start:] + every[:start]:
        took = []
        for n in range(requests):
            answer = http.get(urls[n % len(urls)])
            assert answer.status_code == 200, (name, answer.status_code, answer.text[:200])
            took.append(_server_ms(answer))
        p95[name] = _percentile(took, 0.95)
    return p95


def bench_web(args: argparse.Namespace) -> dict[str, Any]:
    """Each page of the staff app against a clinic of 10,000 patients and 200,000
    sessions: the p95 of the server's time for it (its Server-Timing header: over
    loopback, a keep-alive client adds a delayed-ACK wait of its own to each request),
    the median over runs, beside a trivial GET's."""
    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        print(f"preparing {args.patients} patients five weeks into a course ...", flush=True)
        prepared = _prepare_web(Path(tmp), args.patients)
        print(f"{prepared['patients']} patients, {prepared['sessions']} sessions", flush=True)
        runs: list[dict[str, float]] = []
        with _served(Path(tmp)) as base, httpx.Client(base_url=base, timeout=30) as http:
            login = http.get("/app/login").text
            csrf = login.split('name="csrf" value="')[1].split('"')[0]
            answer = http.post(
                "/app/login",
                data={"csrf": csrf, "email": "admin@example.org", "password": WEB_PASSWORD},
            )
            assert answer.status_code == 303, answer.text[:300]
            pages = _web_pages(http, prepared)
            _wait_until_sent(Path(tmp))
            _time_pages(http, pages, 5)  # warm up
            for run in range(args.runs):
                runs.append(_time_pages(http, pages, args.requests, first=run * 5))
                slowest = max((v, k) for k, v in runs[-1].items())
                print(f"run {run + 1}/{args.runs}: slowest {slowest[1]} "
                      f"p95 {slowest[0]:.1f} ms", flush=True)  # fmt: skip
    page_p95 = {
        name: round(statistics.median(run[name] for run in runs), 1)
        for name in runs[0]
        if name != "baseline_healthz"
    }
    baseline = statistics.median(run["baseline_healthz"] for run in runs)
    for name, value in sorted(page_p95.items(), key=lambda item: -item[1]):
        print(f"{name:20} p95 {value:7.1f} ms  ({value / baseline:5.1f}x /healthz)")
    target = 150.0
    over = [name for name, value in page_p95.items() if value > target]
    print(f"baseline /healthz p95 {baseline:.1f} ms; target p95 <= {target:.0f} ms: "
          f"{'met' if not over else 'missed by ' + ', '.join(over)}")  # fmt: skip
    return {
        "patients": prepared["patients"],
        "sessions": prepared["sessions"],
        "page_p95_ms": page_p95,
        "baseline_healthz_p95_ms": round(baseline, 2),
        "target_p95_ms": target,
        "met": not over,
        "runs": args.runs,
        "requests_per_page_per_run": args.requests,
        "all_runs": runs,
    }


def main() -> None:
    if len(sys.argv) >= 2 and sys.argv[1] == "_once":
        kind, count = sys.argv[2], int(sys.argv[3])
        measured = measure_plan(count) if kind == "plan" else measure_apscheduler(count)
        print(json.dumps(measured))
        return
    parser = argparse.ArgumentParser(prog="scripts/bench")
    sub = parser.add_subparsers(dest="which", required=True)
    plan = sub.add_parser("plan", help="import and plan N patients vs bare inserts and jobs")
    plan.add_argument("--enrollments", type=int, default=1_000_000)
    plan.add_argument("--baseline", type=int, default=2_000)
    plan.add_argument("--runs", type=int, default=3)
    api = sub.add_parser("api", help="confirmations per second vs a trivial GET, 16 clients")
    api.add_argument("--clients", type=int, default=16)
    api.add_argument("--seconds", type=float, default=30.0)
    api.add_argument("--runs", type=int, default=3)
    # Enough sessions today for every run to last its full time at well above the
    # rates this machine reaches.
    api.add_argument("--enrollments", type=int, default=120_000)
    dispatch = sub.add_parser("dispatch", help="a burst of due reminders vs bare send loops")
    dispatch.add_argument("--webhooks", type=int, default=20_000)
    dispatch.add_argument("--emails", type=int, default=5_000)
    dispatch.add_argument("--slow", type=int, default=5_000)
    dispatch.add_argument("--baseline", type=int, default=5_000)
    dispatch.add_argument("--timeout", type=float, default=300)
    dispatch.add_argument("--runs", type=int, default=3, help="rounds of every measurement")
    dispatch.add_argument("--burst", type=int, default=100_000, help="0: skip the burst runs")
    dispatch.add_argument("--burst-runs", type=int, default=3, help="runs with and without")
    dispatch.add_argument("--no-baselines", action="store_true", help="only the burst runs")
    web = sub.add_parser("web", help="the staff app's pages on a clinic of 10,000 patients")
    web.add_argument("--patients", type=int, default=10_000)
    web.add_argument("--requests", type=int, default=40, help="GETs of each page per run")
    web.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runners = {"plan": bench_plan, "api": bench_api, "dispatch": _dispatch_all, "web": bench_web}
    figures = runners[args.which](args)
    out = ROOT / "var" / "bench" / f"{args.which}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
