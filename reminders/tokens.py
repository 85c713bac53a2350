"""Patient link tokens: unguessable, scoped to one patient, expiring, stored hashed.

A token is derived from the server's secret key and the delivery id, so a retried
message carries the same links, and the database never holds the token itself. A
patient's calendar feed has one token for all their messages, derived from the patient
id and how many times the feed was revoked (`Patient.calendar_generation`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from reminders.db.rows import in_chunks, insert_ignore
from reminders.ids import hash_secret
from reminders.models import PatientToken

CALENDAR = "calendar"
# A calendar feed has no natural end: a phone keeps polling it for as long as the
# patient keeps it. It stops when the clinic revokes it or the patient is erased, and
# the row needs an expiry only because every token has one (and the hourly purge must
# never take it).
CALENDAR_TOKEN_LIFETIME = timedelta(days=100 * 365)


# Links relayed by SMS, where every character counts, take 128 bits (22 characters):
# still out of reach of guessing. Others take 256.
SHORT_BYTES = 16


def link_token(secret_key: bytes, delivery_id: str, purpose: str, size: int = 32) -> str:
    """Return the URL-safe token of `size` bytes for one delivery and purpose."""
    digest = hmac.new(secret_key, f"{purpose}:{delivery_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:size]).decode().rstrip("=")


def calendar_token(secret_key: bytes, patient_id: str, generation: int) -> str:
    """Return the 256-bit URL-safe token of a patient's calendar feed: the same in every
    message until the feed is revoked, which counts `generation` up."""
    return link_token(secret_key, f"{patient_id}.{generation}", CALENDAR)


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


def calendar_token_row(token: str, patient_id: str, now: datetime) -> dict[str, Any]:
    """Return the row that records a calendar feed's token, for `store_tokens`."""
    return token_row(token, patient_id, None, CALENDAR, now + CALENDAR_TOKEN_LIFETIME, now)


def calendar_link(
    secret_key: bytes, base_url: str, patient_id: str, generation: int, now: datetime
) -> tuple[str, dict[str, Any]]:
    """Return the patient's calendar feed link and the row that makes it work, for
    `store_tokens` (which stores a row once however often it is given)."""
    token = calendar_token(secret_key, patient_id, generation)
    return f"{base_url.rstrip('/')}/c/{token}.ics", calendar_token_row(token, patient_id, now)


def store_tokens(db: Session, rows: list[dict[str, Any]]) -> None:
    """Record tokens once; storing one again changes nothing (a retried message)."""
    insert_ignore(db, PatientToken, rows)


def find_token(db: Session, token: str, purpose: str, now: datetime) -> PatientToken | None:
    """Return the live token row for `token` and `purpose`, or None if unknown or expired."""
    row = db.get(PatientToken, hash_secret(token))
    if row is None or row.purpose != purpose or row.expires_at <= now:
        return None
    return row


def stored_hashes(db: Session, patient_ids: Iterable[str], purpose: str) -> set[str]:
    """Return the hashes of the patients' stored tokens for `purpose` (a batch of
    messages stores a calendar token only where none is stored yet)."""
    wanted = sorted(set(patient_ids))
    found: set[str] = set()
    for chunk in in_chunks(wanted):
        query = sa.select(col(PatientToken.token_hash)).where(
            col(PatientToken.patient_id).in_(chunk), col(PatientToken.purpose) == purpose
        )
        found.update(db.execute(query).scalars())
    return found


def delete_tokens(db: Session, patient_id: str, purpose: str) -> None:
    """Delete every token of the patient for `purpose`: their links stop working."""
    db.execute(
        sa.delete(PatientToken).where(
            col(PatientToken.patient_id) == patient_id, col(PatientToken.purpose) == purpose
        )
    )


def purge_expired_tokens(db: Session, now: datetime) -> int:
    """Delete tokens whose links no longer work; return how many."""
    result = db.execute(sa.delete(PatientToken).where(col(PatientToken.expires_at) < now))
    return int(result.rowcount)  # type: ignore[attr-defined]
