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


@contextmanager
def _served_process(var_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`reminders serve` on `var_dir` and a free port, ready; its base URL and process.
    Stopped with SIGINT at the end; one that does not stop leaves its log under
    var/bench/."""
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
        yield base, server
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


@contextmanager
def _served(var_dir: Path) -> Iterator[str]:
    """`_served_process`'s base URL."""
    with _served_process(var_dir) as (base, _server):
        yield base


def _prepare_api(var_dir: Path, enrollments: int, ranked: int) -> dict[str, Any]:
    """Two clinics: one whose `enrollments` patients each have a session planned today
    (reminders due late tonight, so the dispatcher stays out of the measurement), to be
    confirmed; one of `ranked` patients for the adherence list. Swept once, so the
    service starts with the standings stored and nothing to catch up on. Return the keys,
    the session ids and the patient ids."""
    from sqlmodel import Session, col, select

    from reminders.db import schema
    from reminders.models import Enrollment, EnrollmentCreate, PatientCreate, TreatmentSession
    from reminders.runtime import Runtime
    from reminders.services import clinics, patients
    from reminders.services import enrollments as enrolling
    from reminders.services.sweep import sweep
    from reminders.settings import load_settings
    from reminders.states import SessionStatus

    settings = load_settings(var_dir=var_dir)
    schema.migrate(settings.database_url)
    rt = Runtime.from_settings(settings)
    zone = _zone_near_noon()
    now = rt.clock()
    today = now.astimezone(ZoneInfo(zone)).date()
    protocol = rt.protocols["tap-water-hyperhidrosis"]
    course = EnrollmentCreate(
        protocol=protocol.id,
        start_date=today,
        screening={c: False for c in protocol.contraindications},
        welcome=False,  # only confirmations are measured
    )
    keys: list[str] = []
    patient_ids: list[list[str]] = []
    with Session(rt.engine) as db:
        for name, count in (("Bench Clinic", enrollments), ("Ranked Clinic", ranked)):
            clinic, key = clinics.create_clinic(db, name, now)
            db.commit()
            keys.append(key)
            patient_ids.append([])
            for first in range(0, count, CHUNK):
                people = [
                    PatientCreate(name=f"P{n}", email=f"p{n}@example.org", timezone=zone,
                                  reminder_time="23:30", external_id=f"EHR-{n}")
                    for n in range(first, min(first + CHUNK, count))
                ]  # fmt: skip
                ids = patients.add_patients(
                    db, clinic.id, people, now, defaults=patients.PatientDefaults.of(settings)
                )
                requests = [enrolling.EnrollRequest(pid, course) for pid in ids]
                enrolling.enroll_many(db, rt, clinic.id, requests, now)
                db.commit()
                patient_ids[-1] += ids
        confirming = select(Enrollment.id).where(col(Enrollment.patient_id).in_(patient_ids[0]))
        sessions = list(
            db.exec(
                select(TreatmentSession.id).where(
                    TreatmentSession.local_date == today,
                    TreatmentSession.status == SessionStatus.PLANNED,
                    col(TreatmentSession.enrollment_id).in_(confirming),
                )
            )
        )
    sweep(rt, now)
    rt.close()
    return {"key": keys[0], "ranked_key": keys[1], "sessions": sessions, "patients": patient_ids[0]}


# Appended to every wrk script: one line of JSON with what the benchmark reads.
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "seconds": %.3f, "non_2xx": %d, "socket_errors": %d, '
    .. '"p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f}\\n',
    summary.requests, summary.duration / 1e6, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000))
end
"""

# Confirmations of the sessions listed in $BENCH_SESSIONS, each once; running out asks
# for a path that answers 404, which the benchmark reports as an error, not a figure.
WRK_CONFIRM = """
local ids, next_id = {}, 1
for line in io.lines(os.getenv("BENCH_SESSIONS")) do ids[#ids + 1] = line end
wrk.method = "POST"
wrk.body = '{"hdss": 2}'
wrk.headers["Content-Type"] = "application/json"
request = function()
  local id = ids[next_id]
  next_id = next_id + 1
  if id == nil then return wrk.format("GET", "/ran-out-of-sessions") end
  return wrk.format(nil, "/v1/sessions/" .. id .. "/confirm")
end
"""

# A clinic's mixed day: its details, the patients and adherence lists (first pages and
# a patient's own figures), and confirmations, in turn.
WRK_MIXED = """
local ids, patients, next_id, turn = {}, {}, 1, 0
for line in io.lines(os.getenv("BENCH_SESSIONS")) do ids[#ids + 1] = line end
for line in io.lines(os.getenv("BENCH_PATIENTS")) do patients[#patients + 1] = line end
wrk.headers["Content-Type"] = "application/json"
request = function()
  turn = turn + 1
  local kind = turn % 5
  if kind == 0 then
    local id = ids[next_id]
    next_id = next_id + 1
    if id == nil then return wrk.format("GET", "/ran-out-of-sessions") end
    return wrk.format("POST", "/v1/sessions/" .. id .. "/confirm", nil, '{"hdss": 2}')
  elseif kind == 1 then return wrk.format("GET", "/v1/clinic")
  elseif kind == 2 then return wrk.format("GET", "/v1/adherence?limit=50")
  elseif kind == 3 then return wrk.format("GET", "/v1/patients?limit=50")
  end
  return wrk.format("GET", "/v1/patients/" .. patients[turn % #patients + 1] .. "/adherence")
end
"""


def _wrk(
    url: str,
    key: str,
    seconds: float,
    connections: int,
    script: str = "",
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start wrk on `url` (one thread, `connections` kept-alive connections, the bearer
    header), with `script`'s requests if given; `_wrk_result` reads what it measured."""
    lua = Path(tempfile.mkstemp(suffix=".lua")[1])
    lua.write_text(script + WRK_REPORT)
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s",
        "-H", f"Authorization: Bearer {key}", "-s", str(lua), url,
    ]  # fmt: skip
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )


def _wrk_result(running: subprocess.Popen[str], what: str) -> dict[str, Any]:
    out, _ = running.communicate()
    line = next((x for x in out.splitlines() if x.startswith("BENCH ")), None)
    if running.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed on {what}: {out}")
    figures: dict[str, Any] = json.loads(line.removeprefix("BENCH "))
    figures["per_s"] = figures["requests"] / figures["seconds"]
    if figures["non_2xx"] or figures["socket_errors"]:
        raise SystemExit(
            f"{what}: {figures['non_2xx']} answers not 2xx and {figures['socket_errors']} socket"
            " errors (a run that ran out of sessions needs more --enrollments)"
        )
    return figures


def _measure(
    url: str, key: str, seconds: float, connections: int, what: str, **wrk: Any
) -> dict[str, Any]:
    return _wrk_result(_wrk(url, key, seconds, connections, **wrk), what)


def _ids_file(folder: Path, name: str, ids: list[str]) -> dict[str, str]:
    path = folder / f"{name}.txt"
    path.write_text("\n".join(ids) + "\n")
    return {f"BENCH_{name.upper()}": str(path)}


@contextmanager
def _bare_api(key: str) -> Iterator[str]:
    """The bare app of `bench_servers.bare_api` in its own process; its base URL."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "bench_servers.py"), "bare-api", str(port), key],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def bench_api(args: argparse.Namespace) -> dict[str, Any]:
    """`reminders serve` at the client, driven by wrk over kept-alive connections, against
    a bare FastAPI + uvicorn app with a bearer check measured in the same run: the
    trivial GET and confirmations at 16 connections, the trivial GET at 1; the adherence
    list of a 10,000-patient clinic at 8; then a mixed soak."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"preparing {args.enrollments} patients with a session today ...", flush=True)
        prepared = _prepare_api(folder, args.enrollments, args.ranked)
        key, sessions = prepared["key"], prepared["sessions"]
        # Confirmation runs take from the front, the soak from the back: each session once.
        confirm_share, soak_share = sessions[: len(sessions) // 2], sessions[len(sessions) // 2 :]
        per_run = [confirm_share[run :: args.runs] for run in range(args.runs)]
        rows: list[dict[str, Any]] = []
        with _bare_api(key) as bare, _served_process(folder) as (base, server):
            _measure(f"{base}/v1/clinic", key, 2, 16, "warm-up")
            _measure(f"{bare}/v1/clinic", key, 2, 16, "warm-up")
            for run in range(args.runs):
                seconds = args.seconds
                row = {
                    "bare": _measure(f"{bare}/v1/clinic", key, seconds, 16, "bare"),
                    "trivial": _measure(f"{base}/v1/clinic", key, seconds, 16, "trivial GET"),
                    "bare_single": _measure(f"{bare}/v1/clinic", key, seconds, 1, "bare, 1"),
                    "single": _measure(f"{base}/v1/clinic", key, seconds, 1, "trivial GET, 1"),
                    "confirm": _measure(
                        base,
                        key,
                        seconds,
                        16,
                        "confirmations",
                        script=WRK_CONFIRM,
                        env=_ids_file(folder, "sessions", per_run[run]),
                    ),
                    "adherence": _measure(
                        f"{base}/v1/adherence?limit=50",
                        prepared["ranked_key"],
                        seconds,
                        8,
                        "adherence list",
                    ),
                }
                rows.append(row)
                print(
                    f"run {run + 1}/{args.runs}: bare {row['bare']['per_s']:.0f}/s, trivial "
                    f"{row['trivial']['per_s']:.0f}/s, confirm {row['confirm']['per_s']:.0f}/s "
                    f"p99 {row['confirm']['p99_ms']:.1f} ms; one connection: bare "
                    f"{row['bare_single']['per_s']:.0f}/s, ours {row['single']['per_s']:.0f}/s; "
                    f"adherence p95 {row['adherence']['p95_ms']:.1f} ms",
                    flush=True,
                )
            soak = _soak(base, key, server.pid, args.soak, folder, soak_share, prepared["patients"])

    def median(side: str, figure: str) -> float:
        return float(statistics.median(row[side][figure] for row in rows))

    def ratio(ours: str, ceiling: str) -> float:
        return float(statistics.median(r[ours]["per_s"] / r[ceiling]["per_s"] for r in rows))

    figures: dict[str, Any] = {
        "runs": args.runs,
        "seconds_per_measurement": args.seconds,
        "bare_per_s": median("bare", "per_s"),
        "bare_single_connection_per_s": median("bare_single", "per_s"),
        "trivial_per_s": median("trivial", "per_s"),
        "trivial_ratio": ratio("trivial", "bare"),
        "confirm_per_s": median("confirm", "per_s"),
        "confirm_ratio": ratio("confirm", "bare"),
        "confirm_p99_ms": median("confirm", "p99_ms"),
        "single_connection_per_s": median("single", "per_s"),
        "single_connection_ratio": ratio("single", "bare_single"),
        "adherence_patients": args.ranked,
        "adherence_p95_ms": median("adherence", "p95_ms"),
        **soak,
        "all_runs": rows,
    }
    targets = {
        "trivial_ratio": (">=", 0.5), "confirm_ratio": (">=", 0.2),
        "confirm_p99_ms": ("<=", 50), "single_connection_per_s": (">=", 500),
        "single_connection_ratio": (">=", 0.2), "adherence_p95_ms": ("<=", 100),
        "soak_p99_ms": ("<=", 250), "soak_rss_growth_mb": ("<=", 50),
    }  # fmt: skip
    # A run without the soak (`--soak 0`) has no soak figures to hold to a target.
    targets = {name: target for name, target in targets.items() if name in figures}
    missed = [
        name for name, (way, limit) in targets.items()
        if (figures[name] < limit if way == ">=" else figures[name] > limit)
    ]  # fmt: skip
    figures["targets"] = {name: f"{way} {limit}" for name, (way, limit) in targets.items()}
    figures["missed"] = missed
    for name in targets:
        print(f"{name:28} {figures[name]:10.2f}  (target {figures['targets'][name]})")
    print("every target met" if not missed else f"missed: {', '.join(missed)}")
    return figures


def _soak(
    base: str,
    key: str,
    pid: int,
    seconds: float,
    folder: Path,
    sessions: list[str],
    patients: list[str],
) -> dict[str, Any]:
    """`seconds` of the mixed day from 8 connections: the p99 across routes, and how much
    the server's RSS grew from the end of the first minute to the end."""
    if seconds <= 0:
        return {}
    env = {
        **_ids_file(folder, "sessions", sessions),
        **_ids_file(folder, "patients", patients[:5000]),
    }
    print(f"soak: {seconds:.0f} s of mixed traffic from 8 connections ...", flush=True)
    running = _wrk(base, key, seconds, 8, script=WRK_MIXED, env=env)
    time.sleep(min(60.0, seconds / 2))
    settled = _rss_mb(pid)
    result = _wrk_result(running, "soak")
    grown = _rss_mb(pid) - settled
    print(f"soak: {result['per_s']:.0f}/s, p99 {result['p99_ms']:.1f} ms, RSS grew {grown:.1f} MB "
          f"after the first minute ({settled:.0f} MB then)", flush=True)  # fmt: skip
    return {
        "soak_seconds": seconds,
        "soak_per_s": result["per_s"],
        "soak_p99_ms": result["p99_ms"],
        "soak_rss_after_first_minute_mb": round(settled, 1),
        "soak_rss_growth_mb": round(grown, 1),
    }


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
                defaults=patients.PatientDefaults.of(rt.settings),
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
            defaults=patients.PatientDefaults.of(rt.settings),
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
) -> dict[str, dict[str, float]]:
    """The p95 in ms of `requests` sequential GETs of each page (cycling through its
    URLs) on one kept-alive connection, each checked to answer 200: at the client, from
    the request's start to the answer's last byte, and the server's own time beside it;
    and of /healthz, the baseline."""
    p95: dict[str, dict[str, float]] = {"client": {}, "server": {}}
    every = list({**pages, "baseline_healthz": ["/healthz"]}.items())
    # Each run starts at another page, so no page is always timed first.
    start = first % len(every)
    for name, urls in every[start:] + every[:start]:
        client, server = [], []
        for n in range(requests):
            began = time.perf_counter()
            answer = http.get(urls[n % len(urls)])  # reads the whole body
            client.append((time.perf_counter() - began) * 1000)
            assert answer.status_code == 200, (name, answer.status_code, answer.text[:200])
            server.append(_server_ms(answer))
        p95["client"][name] = _percentile(client, 0.95)
        p95["server"][name] = _percentile(server, 0.95)
    return p95


def bench_web(args: argparse.Namespace) -> dict[str, Any]:
    """Each page of the staff app against a clinic of 10,000 patients and 200,000
    sessions: the p95 of its time at the client (one kept-alive connection), with the
    server's own (its Server-Timing header) beside it, the median over runs, beside a
    trivial GET's."""
    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        print(f"preparing {args.patients} patients five weeks into a course ...", flush=True)
        prepared = _prepare_web(Path(tmp), args.patients)
        print(f"{prepared['patients']} patients, {prepared['sessions']} sessions", flush=True)
        runs: list[dict[str, dict[str, float]]] = []
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
                slowest = max((v, k) for k, v in runs[-1]["client"].items())
                print(f"run {run + 1}/{args.runs}: slowest {slowest[1]} "
                      f"p95 {slowest[0]:.1f} ms", flush=True)  # fmt: skip

    def medians(side: str) -> dict[str, float]:
        return {
            name: round(statistics.median(run[side][name] for run in runs), 1)
            for name in runs[0][side]
        }

    page_p95, server_p95 = medians("client"), medians("server")
    baseline = page_p95.pop("baseline_healthz")
    server_p95.pop("baseline_healthz")
    for name, value in sorted(page_p95.items(), key=lambda item: -item[1]):
        print(f"{name:20} p95 {value:7.1f} ms at the client, {server_p95[name]:7.1f} ms "
              f"in the server  ({value / baseline:5.1f}x /healthz)")  # fmt: skip
    target, gap = 150.0, 10.0
    over = [name for name, value in page_p95.items() if value > target]
    gaps = {name: round(page_p95[name] - server_p95[name], 1) for name in page_p95}
    wide = [name for name, value in gaps.items() if value > gap]
    print(f"baseline /healthz p95 {baseline:.1f} ms; target p95 <= {target:.0f} ms: "
          f"{'met' if not over else 'missed by ' + ', '.join(over)}; client minus server "
          f"<= {gap:.0f} ms: {'met' if not wide else 'missed by ' + ', '.join(wide)}")  # fmt: skip
    return {
        "patients": prepared["patients"],
        "sessions": prepared["sessions"],
        "page_p95_ms": page_p95,
        "server_p95_ms": server_p95,
        "client_minus_server_p95_ms": gaps,
        "baseline_healthz_p95_ms": round(baseline, 2),
        "target_p95_ms": target,
        "met": not over and not wide,
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
    api = sub.add_parser("api", help="the API at the client (wrk) vs a bare FastAPI app")
    api.add_argument("--seconds", type=float, default=10.0, help="of each measurement")
    api.add_argument("--runs", type=int, default=3)
    # Enough sessions today for every run and the soak at well above the rates this
    # machine reaches (running out is an error).
    api.add_argument("--enrollments", type=int, default=80_000)
    api.add_argument("--ranked", type=int, default=10_000, help="patients in the adherence list")
    api.add_argument("--soak", type=float, default=150.0, help="seconds of mixed traffic; 0: none")
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
