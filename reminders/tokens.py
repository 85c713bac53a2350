"""Patient link tokens: unguessable, scoped to one patient, expiring, stored hashed.

A token is derived from the server's secret key and the delivery id, so a retried
message carries the same links, and the database never holds the token itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from reminders.db.rows import insert_ignore
from reminders.ids import hash_secret
from reminders.models import PatientToken


def link_token(secret_key: bytes, delivery_id: str, purpose: str) -> str:
    """Return the 256-bit URL-safe token for one delivery and purpose."""
    digest = hmac.new(secret_key, f"{purpose}:{delivery_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def token_row(
    token: str,
    patient_id: str,
    session_id: str | None,
    purpose: str,
    expires_at: datetime,
    now: datetime,
) -> dict[str, Any]:
    """Return the row that records a token (its hash only), for `store_tokens`."""
    return {
        "token_hash": hash_secret(token),
        "patient_id": patient_id,
        "session_id": session_id,
        "purpose": purpose,
        "expires_at": expires_at,
        "created_at": now,
    }


def store_tokens(db: Session, rows: list[dict[str, Any]]) -> None:
    """Record tokens once; storing one again changes nothing (a retried message)."""
    insert_ignore(db, PatientToken, rows)


def find_token(db: Session, token: str, purpose: str, now: datetime) -> PatientToken | None:
    """Return the live token row for `token` and `purpose`, or None if unknown or expired."""
    row = db.get(PatientToken, hash_secret(token))
    if row is None or row.purpose != purpose or row.expires_at <= now:
        return None
    return row


def purge_expired_tokens(db: Session, now: datetime) -> int:
    """Delete tokens whose links no longer work; return how many."""
    result = db.execute(sa.delete(PatientToken).where(col(PatientToken.expires_at) < now))
    return int(result.rowcount)  # type: ignore[attr-defined]
