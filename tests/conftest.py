"""Shared fixtures: settings on a temporary folder, a migrated database, protocols."""

from __future__ import annotations

import os
import shutil
import sqlite3
import typing
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import freezegun
import psycopg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import Session

from reminders.api import create_app
from reminders.db.engine import create_db_engine
from reminders.db.schema import migrate
from reminders.models import PatientCreate
from reminders.protocols import Protocol, load_protocols
from reminders.runtime import Runtime
from reminders.services import clinics, patients
from reminders.services.patients import PatientDefaults
from reminders.settings import PROJECT_ROOT, Settings, load_settings
from reminders.stores import session_store
from reminders.timing import QuietHours
from tests.servers import SmtpRecorder, WebhookReceiver, smtp_server, webhook_receiver

PROTOCOLS_DIR = PROJECT_ROOT / "config" / "protocols"


@pytest.fixture(autouse=True)
def _no_operator_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests must not pick up an operator's REMINDERS_* variables.
    for name in list(os.environ):
        if name.startswith("REMINDERS_"):
            monkeypatch.delenv(name)


# Servers under test run in threads; they keep real time while a test freezes the clock.
freezegun.configure(
    extend_ignore_list=[
        "asyncio",
        "aiosmtpd",
        "aiohttp",
        "http.server",
        "socketserver",
        "httpcore",
        "h11",
    ]
)


POSTGRES_ADMIN_URL = os.environ.get(
    "REMINDERS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# CI sets this so that a machine without PostgreSQL fails instead of skipping.
REQUIRE_POSTGRES = os.environ.get("REMINDERS_REQUIRE_POSTGRES") == "1"
_postgres_problem: list[str | None] = []

# Databases made for tests carry the run and the xdist worker in their names, so that
# two runs (two clones, or CI's two passes) and the workers of one run never meet.
RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)[:8]
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")

# When test clinics, patients and endpoints are made: before any test's own instants.
SETUP = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "both_databases"
    ):
        metafunc.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


def _postgres_unavailable() -> str | None:
    if not _postgres_problem:
        try:
            with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
                _postgres_problem.append(None)
        except psycopg.Error as exc:
            _postgres_problem.append(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    return _postgres_problem[0]


def _require_postgres() -> None:
    problem = _postgres_unavailable()
    if problem is not None:
        if REQUIRE_POSTGRES:
            pytest.fail(problem)
        pytest.skip(problem)


def _postgres_url(name: str) -> str:
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def _postgres_database(name: str, template: str | None = None) -> Iterator[str]:
    """A PostgreSQL database made for the block (a copy of `template`, or empty), dropped
    after it whoever is still connected."""
    copy = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"{copy}')
    try:
        yield _postgres_url(name)
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per worker, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "reminders.sqlite3"
    migrate(f"sqlite:///{path}")
    # Everything into the main file, so that copying that one file copies it all.
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A PostgreSQL database migrated once per worker, the template of each test's
    database. Nothing stays connected to it (`migrate` disposes of its engine)."""
    _require_postgres()
    with _postgres_database(f"reminders_template_{RUN}_{WORKER}") as url:
        migrate(url)
        yield url.rsplit("/", 1)[1]


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh database with no schema, for tests of the migrations themselves."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'reminders.sqlite3'}"
        return
    _require_postgres()
    with _postgres_database(f"reminders_empty_{RUN}_{WORKER}_{uuid.uuid4().hex[:8]}") as url:
        yield url


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated database for one test: a copy of the worker's template (a SQLite file,
    or a PostgreSQL database made from it and dropped after the test)."""
    if backend == "sqlite":
        copy = tmp_path / "reminders.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), copy)
        yield f"sqlite:///{copy}"
        return
    template = request.getfixturevalue("postgres_template")
    name = f"reminders_test_{RUN}_{WORKER}_{uuid.uuid4().hex[:8]}"
    with _postgres_database(name, template) as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str, request: pytest.FixtureRequest) -> Settings:
    overrides = getattr(request, "param", {})
    return load_settings(
        var_dir=tmp_path,
        database_url=database_url,
        email_backend="smtp",
        smtp_security="none",
        smtp_timeout_s=5,
        webhook_allow_http=True,
        webhook_allowed_hosts=["127.0.0.1"],
        base_url="https://reminders.example.org",
        email_from="North Clinic <reminders@clinic.example.org>",
        **overrides,
    )


@pytest.fixture
def smtp(settings: Settings) -> Iterator[SmtpRecorder]:
    with smtp_server() as (recorder, port):
        settings.smtp_port = port
        yield recorder


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as running:
        yield running


@pytest.fixture
def engine(settings: Settings) -> Iterator[sa.Engine]:
    engine = create_db_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def rt(settings: Settings, engine: sa.Engine) -> Iterator[Runtime]:
    runtime = Runtime.from_settings(settings)
    yield runtime
    runtime.close()


Clock = Callable[[], datetime]


class OpenClient(typing.Protocol):
    def __call__(
        self,
        clock: Clock,
        base_url: str = "http://testserver",
        scheduler_problems: Callable[[], list[str]] = list,
        **options: Any,
    ) -> TestClient: ...


@pytest.fixture
def open_client(rt: Runtime) -> Iterator[OpenClient]:
    """Opens the app on this test's database as a TestClient whose "now" is `clock`, at
    `base_url`, with `scheduler_problems` standing for the scheduler (none by default);
    every client opened is closed after the test."""
    with ExitStack() as opened:

        def open_one(
            clock: Clock,
            base_url: str = "http://testserver",
            scheduler_problems: Callable[[], list[str]] = list,
            **options: Any,
        ) -> TestClient:
            app = create_app(rt.with_clock(clock), scheduler_problems=scheduler_problems)
            return opened.enter_context(TestClient(app, base_url=base_url, **options))

        yield open_one


@pytest.fixture
def db(engine: sa.Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture(scope="session")
def protocols() -> dict[str, Protocol]:
    return load_protocols(PROTOCOLS_DIR)


def make_clinic(db: Session, name: str = "North Clinic") -> str:
    """A clinic made at SETUP; return its id."""
    clinic, _key = clinics.create_clinic(db, name, SETUP)
    db.commit()
    return clinic.id


def make_patient(
    db: Session,
    clinic_id: str,
    timezone: str = "Europe/Berlin",
    *,
    stored_reminder_time: str | None = None,
    **fields: object,
) -> str:
    """A patient made at SETUP; return its id. `stored_reminder_time` is written to the
    row as it is, as a patient stored before a time inside the quiet hours was refused
    (the service still has to handle those)."""
    data: dict[str, object] = {
        "name": "Ann Example",
        "email": "ann@example.org",
        "timezone": timezone,
        **fields,
    }
    request = PatientCreate.model_validate(data)
    defaults = PatientDefaults(time(18, 0), QuietHours(time(21, 0), time(8, 0)))
    patient = patients.add_patient(db, clinic_id, request, SETUP, defaults=defaults)
    if stored_reminder_time is not None:
        patient.reminder_time = stored_reminder_time
        db.add(patient)
    db.commit()
    return patient.id


def at(text: str) -> datetime:
    """An aware UTC instant from 'YYYY-MM-DD HH:MM'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def no_contraindications(protocol: Protocol) -> dict[str, bool]:
    return {c: False for c in protocol.contraindications}


def first_area(protocol_id: str) -> str | None:
    """The first body area a shipped protocol lists (enrolling needs one), or None."""
    protocol = load_protocols(PROTOCOLS_DIR).get(protocol_id)
    return protocol.body_areas[0] if protocol and protocol.body_areas else None


# The tap-water protocol's screening with every contraindication answered "no".
CLEAR_SCREENING = no_contraindications(load_protocols(PROTOCOLS_DIR)["tap-water-hyperhidrosis"])


def enroll_patient(
    db: Session,
    rt: Runtime,
    clinic_id: str,
    patient_id: str,
    start: str,
    now: datetime,
    protocol: str = "tap-water-hyperhidrosis",
    **fields: object,
) -> str:
    from reminders.models import EnrollmentCreate
    from reminders.services import enrollments

    areas = rt.protocols[protocol].body_areas
    request = EnrollmentCreate.model_validate(
        {
            "protocol": protocol,
            "start_date": start,
            "screening": no_contraindications(rt.protocols[protocol]),
            # Tests of the welcome ask for it; the others count only reminders.
            "welcome": False,
            # A protocol that names areas needs one: its first, unless the test says.
            "body_area": areas[0] if areas else None,
            **fields,
        }
    )
    enrollment = enrollments.enroll(db, rt, clinic_id, patient_id, request, now)
    db.commit()
    return enrollment.id


def weekly_patients(
    db: Session,
    rt: Runtime,
    clinic_id: str,
    count: int,
    reminder_time: str = "09:00",
    channel: str = "email",
    enrolled_at: str = "2026-12-07 08:00",
) -> list[str]:
    """`count` patients of the clinic, in UTC, enrolled at `enrolled_at` in the weekly
    glycopyrrolate protocol from Monday 2026-12-07, so each has one reminder due that day
    at `reminder_time` on `channel`; return their ids."""
    ids = []
    for n in range(count):
        patient = make_patient(
            db, clinic_id, timezone="UTC", reminder_time=reminder_time, channel=channel,
            name=f"Patient {n}", email=f"p{n}@example.org",
        )  # fmt: skip
        enroll_patient(
            db, rt, clinic_id, patient, "2026-12-07", at(enrolled_at),
            protocol="glycopyrrolate-hyperhidrosis",
        )  # fmt: skip
        ids.append(patient)
    return ids


def enroll_in_ongoing_phase_with_first_session_done(
    db: Session, rt: Runtime, clinic_id: str, patient_id: str
) -> str:
    """Enroll on Monday 2026-12-07 in the weekly glycopyrrolate protocol, whose one phase
    never ends (the phases lapse checks watch), and confirm that day's session; return the
    enrollment id."""
    from reminders.models import SessionReport
    from reminders.services import sessions

    enrollment_id = enroll_patient(
        db, rt, clinic_id, patient_id, "2026-12-07", at("2026-12-07 08:00"),
        protocol="glycopyrrolate-hyperhidrosis",
    )  # fmt: skip
    first = session_store.of_enrollment(db, enrollment_id)[0]
    sessions.confirm_session(db, rt, clinic_id, first.id, SessionReport(), at("2026-12-07 10:00"))
    db.commit()
    return enrollment_id
