"""Shared fixtures: settings on a temporary folder, a migrated database, protocols."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time
from pathlib import Path

import freezegun
import psycopg
import pytest
import sqlalchemy as sa
from sqlmodel import Session

from reminders.db.engine import create_db_engine
from reminders.db.schema import migrate
from reminders.models import PatientCreate
from reminders.protocols import Protocol, load_protocols
from reminders.runtime import Runtime
from reminders.services import clinics, patients
from reminders.settings import PROJECT_ROOT, Settings, load_settings
from reminders.stores import session_store
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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_databases: run each test on SQLite and on PostgreSQL")


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


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for one test: a SQLite file, or a PostgreSQL database
    created for the test and dropped after it."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'reminders.sqlite3'}"
        return
    problem = _postgres_unavailable()
    if problem is not None:
        if REQUIRE_POSTGRES:
            pytest.fail(problem)
        pytest.skip(problem)
    name = f"reminders_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
    migrate(settings.database_url)
    engine = create_db_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def rt(settings: Settings, engine: sa.Engine) -> Iterator[Runtime]:
    runtime = Runtime.from_settings(settings)
    yield runtime
    runtime.close()


@pytest.fixture
def db(engine: sa.Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture(scope="session")
def protocols() -> dict[str, Protocol]:
    return load_protocols(PROTOCOLS_DIR)


def make_clinic(db: Session, name: str = "North Clinic") -> str:
    clinic, _key = clinics.create_clinic(db, name)
    db.commit()
    return clinic.id


def make_patient(
    db: Session, clinic_id: str, timezone: str = "Europe/Berlin", **fields: object
) -> str:
    data: dict[str, object] = {
        "name": "Ann Example",
        "email": "ann@example.org",
        "timezone": timezone,
        **fields,
    }
    request = PatientCreate.model_validate(data)
    patient = patients.add_patient(db, clinic_id, request, default_reminder_time=time(18, 0))
    db.commit()
    return patient.id


def at(text: str) -> datetime:
    """An aware UTC instant from 'YYYY-MM-DD HH:MM'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def no_contraindications(protocol: Protocol) -> dict[str, bool]:
    return {c: False for c in protocol.contraindications}


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

    request = EnrollmentCreate.model_validate(
        {
            "protocol": protocol,
            "start_date": start,
            "screening": no_contraindications(rt.protocols[protocol]),
            # Tests of the welcome ask for it; the others count only reminders.
            "welcome": False,
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
