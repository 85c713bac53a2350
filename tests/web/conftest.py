"""The app over a TestClient (https, as behind a proxy), and staff to log in as."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from reminders.models import StaffMember
from reminders.services import staff
from tests.conftest import OpenClient, at

PASSWORD = "a password long enough"
NOW = at("2026-12-07 09:00")


@pytest.fixture
def client(open_client: OpenClient) -> TestClient:
    return open_client(lambda: NOW, "https://reminders.example.org")


def staff_member(db: Session, clinic: str, email: str, role: str = "admin") -> StaffMember:
    """A member of `clinic` who has set the password `PASSWORD`."""
    added = staff.add_member(db, clinic, email, role, None, NOW)
    added.password_hash = staff.hash_password(PASSWORD)
    db.add(added)
    db.commit()
    return added


def csrf_of(client: TestClient, url: str = "/app/login") -> str:
    """The form token on the page at `url`, as this client's cookies make it."""
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get(url).text)
    assert found
    return found.group(1)


def log_in(client: TestClient, email: str) -> str:
    """Log in through the form; return the token forms carry from now on."""
    csrf = csrf_of(client)
    answer = client.post(
        "/app/login", data={"csrf": csrf, "email": email, "password": PASSWORD},
        follow_redirects=False,
    )  # fmt: skip
    assert answer.status_code == 303, answer.text
    return csrf_of(client, "/app/")
