"""Clinics and their API keys."""

from __future__ import annotations

from sqlmodel import Session, select

from reminders.errors import InvalidInput
from reminders.fields import checked, email_address, single_line
from reminders.ids import hash_secret, new_secret
from reminders.models import Clinic

API_KEY_PREFIX = "rk_"


def create_clinic(db: Session, name: str, alert_email: str | None = None) -> tuple[Clinic, str]:
    """Create a clinic; return it and its API key, which is shown once and stored hashed.

    Raises InvalidInput if the name is blank, too long or not one line, or the alert
    email malformed.
    """
    name = checked("name", name, single_line).strip()
    if not name or len(name) > 200:
        raise InvalidInput("name", "must be 1 to 200 characters")
    if alert_email is not None:
        checked("alert_email", alert_email, email_address)
    api_key = new_secret(API_KEY_PREFIX)
    clinic = Clinic(name=name, api_key_hash=hash_secret(api_key), alert_email=alert_email)
    db.add(clinic)
    db.flush()
    return clinic, api_key


def clinic_for_api_key(db: Session, api_key: str) -> Clinic | None:
    """Return the clinic whose key this is, or None."""
    if not api_key.startswith(API_KEY_PREFIX):
        return None
    return db.exec(select(Clinic).where(Clinic.api_key_hash == hash_secret(api_key))).first()
