"""Property-based requests generated from the app's own OpenAPI document: whatever a
client sends, the answer is never a server error."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from reminders.api import create_app
from reminders.db.engine import session_scope
from reminders.db.schema import migrate
from reminders.models import EnrollmentCreate, PatientCreate
from reminders.runtime import Runtime
from reminders.services import clinics, enrollments, patients, webhooks
from reminders.services.patients import PatientDefaults
from reminders.settings import load_settings
from reminders.stores import session_store
from tests.conftest import SETUP

# Schemathesis reads the schema when the module is collected, so the app (on its own
# throwaway database, with one clinic's patient, enrollment and endpoint) is built here.
_folder = tempfile.TemporaryDirectory(prefix="reminders-fuzz-")
_settings = load_settings(
    var_dir=Path(_folder.name), webhook_allow_http=True, webhook_allowed_hosts=["127.0.0.1"]
)
migrate(_settings.database_url)
_runtime = Runtime.from_settings(_settings)
with session_scope(_runtime.engine) as _db:
    _clinic, _KEY = clinics.create_clinic(_db, "Fuzz Clinic", SETUP)
    _patient = patients.add_patient(
        _db,
        _clinic.id,
        PatientCreate(name="Fuzz", email="f@example.org", timezone="UTC"),
        SETUP,
        defaults=PatientDefaults.of(_settings),
    )
    _screening = {c: False for c in _runtime.protocols["tap-water-hyperhidrosis"].contraindications}
    _enrollment = enrollments.enroll(
        _db,
        _runtime,
        _clinic.id,
        _patient.id,
        EnrollmentCreate.model_validate(
            {"protocol": "tap-water-hyperhidrosis", "start_date": datetime.now(UTC).date(),
             "screening": _screening, "body_area": "palms"}
        ),
        datetime.now(UTC),
    )  # fmt: skip
    _session = session_store.of_enrollment(_db, _enrollment.id)[0]
    _endpoint = webhooks.add_endpoint(_db, _settings, _clinic.id, "http://127.0.0.1:9/h", SETUP)
KNOWN = {
    "patient_id": _patient.id,
    "enrollment_id": _enrollment.id,
    "session_id": _session.id,
    "endpoint_id": _endpoint.id,
    "protocol_id": "tap-water-hyperhidrosis",
}
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(_runtime, scheduler_problems=lambda: [])
)


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    _runtime.close()
    _folder.cleanup()


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_input_makes_a_server_error(case: Any) -> None:
    # Every other case aims at rows that exist, so requests reach the handlers' logic.
    params = case.path_parameters or {}
    if sum(map(ord, repr(sorted(params.items())))) % 2 == 0:
        params.update({k: v for k, v in KNOWN.items() if k in params})
    response = case.call(headers={"Authorization": f"Bearer {_KEY}"})
    assert response.status_code < 500, (case.method, case.path, response.text)
