"""An app per test on its own database, with a frozen 'now' and two clinics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from reminders.services import clinics
from tests.conftest import CLEAR_SCREENING, SETUP, OpenClient, at

NOW = at("2026-12-07 07:00")  # Monday, 08:00 in Berlin
PATIENT = {
    "name": "Ann Example",
    "email": "ann@example.org",
    "timezone": "Europe/Berlin",
    "reminder_time": "18:30",
    "quiet_hours": {"start": "21:00", "end": "08:00"},
    "channel": "email",
    "locale": "en",
    "external_id": "EHR-1",
}
ENROLLMENT = {
    "protocol": "tap-water-hyperhidrosis",
    "start_date": "2026-12-07",
    "body_area": "palms",
    "weekdays": ["mon", "wed", "fri"],
    "screening": CLEAR_SCREENING,
    "override_reason": None,
}


@dataclass
class Api:
    """A test client acting as one clinic, with a settable clock."""

    client: TestClient
    key: str
    clock: list[datetime]
    made: int = 0

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, headers=self.headers(), **kw)

    def post(self, url: str, json: Any = None, **kw: Any) -> Any:
        return self.client.post(url, json=json, headers=self.headers(), **kw)

    def patch(self, url: str, json: Any = None) -> Any:
        return self.client.patch(url, json=json, headers=self.headers())

    def delete(self, url: str) -> Any:
        return self.client.delete(url, headers=self.headers())

    def patient(self, **fields: Any) -> str:
        """Create a patient; each gets an external id of its own unless one is given."""
        self.made += 1
        unique = {"external_id": f"{PATIENT['external_id']}-{self.made}"}
        answer = self.post("/v1/patients", {**PATIENT, **unique, **fields})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def enroll(self, patient_id: str, **fields: Any) -> dict[str, Any]:
        answer = self.post(f"/v1/patients/{patient_id}/enrollments", {**ENROLLMENT, **fields})
        assert answer.status_code == 201, answer.text
        result: dict[str, Any] = answer.json()
        return result


@pytest.fixture
def app_clock() -> list[datetime]:
    return [NOW]


@pytest.fixture
def client(open_client: OpenClient, app_clock: list[datetime]) -> TestClient:
    return open_client(lambda: app_clock[0])


def _clinic(db: Session, name: str) -> str:
    _clinic_row, key = clinics.create_clinic(
        db, name, SETUP, alert_email="nurse@clinic.example.org"
    )
    db.commit()
    return key


@pytest.fixture
def api(client: TestClient, db: Session, app_clock: list[datetime]) -> Api:
    return Api(client, _clinic(db, "North Clinic"), app_clock)


@pytest.fixture
def other(client: TestClient, db: Session, app_clock: list[datetime]) -> Api:
    return Api(client, _clinic(db, "South Clinic"), app_clock)
