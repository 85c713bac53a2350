"""A clinic's named API keys: created (shown once), listed, revoked.

The API remembers a key's answer for at most `CHECK_EVERY_S`, so a revoked key stops
working within that time in every process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from reminders.errors import Conflict, InvalidInput, NotFound
from reminders.fields import checked, single_line
from reminders.ids import hash_secret, new_secret
from reminders.models import ApiKey, Clinic, IdempotentRequest
from reminders.services.audit import Actor

PREFIX = "rk_"
CHECK_EVERY_S = 1.0
# Last use is a day-to-day fact ("is this key still used?"), not an access log.
LAST_USED_EVERY = timedelta(minutes=1)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._\-]{0,59}$"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sends an API request: a clinic, through one of its keys."""

    clinic: Clinic
    key_id: str
    key_name: str
    last_used_at: datetime | None

    @property
    def who(self) -> str:
        """How the caller is named in what it records."""
        return f"api key {self.key_name}"

    def on_behalf_of(self, person: str | None) -> str:
        """The person the request names (if any) and the key they used."""
        return f"{person} ({self.who})" if person else self.who

    def actor(self, person: str | None = None) -> Actor:
        """How the audit log names what this request changes."""
        return Actor(self.on_behalf_of(person))


def create_key(db: Session, clinic_id: str, name: str, now: datetime) -> tuple[ApiKey, str]:
    """Create a key named `name`; return it and the key itself, shown only now.

    Raises InvalidInput for a bad name and Conflict when the clinic has a key so named.
    """
    name = checked("name", name, single_line).strip()
    if not re.fullmatch(NAME_PATTERN, name):
        raise InvalidInput("name", "1 to 60 letters, digits, spaces, dots, dashes or underscores")
    secret = new_secret(PREFIX)
    key = ApiKey(clinic_id=clinic_id, name=name, key_hash=hash_secret(secret), created_at=now)
    try:
        with db.begin_nested():  # the unique name decides, also between two requests
            db.add(key)
    except sa.exc.IntegrityError:
        raise Conflict(f"the clinic already has a key named {name!r}") from None
    return key, secret


def list_keys(db: Session, clinic_id: str) -> list[ApiKey]:
    """Return the clinic's keys, revoked ones included, oldest first."""
    query = select(ApiKey).where(ApiKey.clinic_id == clinic_id)
    return list(db.exec(query.order_by(col(ApiKey.id))))


def revoke_key(db: Session, clinic_id: str, key_ref: str, now: datetime) -> ApiKey:
    """Revoke the clinic's key with this id or name; revoking twice changes nothing.

    Raises NotFound, and Conflict for the clinic's last key in use (create another
    first, so the clinic is never locked out).
    """
    # Revocations of one clinic's keys take turns, so two at once cannot revoke its
    # last two keys.
    db.exec(select(Clinic.id).where(Clinic.id == clinic_id).with_for_update()).first()
    key = db.exec(
        select(ApiKey).where(
            ApiKey.clinic_id == clinic_id,
            sa.or_(col(ApiKey.id) == key_ref, col(ApiKey.name) == key_ref),
        )
    ).first()
    if key is None:
        raise NotFound("api key", key_ref)
    if key.revoked_at is not None:
        return key
    in_use = db.exec(
        select(sa.func.count()).where(
            col(ApiKey.clinic_id) == clinic_id, col(ApiKey.revoked_at).is_(None)
        )
    ).one()
    if in_use <= 1:
        raise Conflict("this is the clinic's last key in use: create another before revoking it")
    key.revoked_at = now
    db.add(key)
    # Answers kept for the key's Idempotency-Keys would otherwise outlive it.
    db.execute(sa.delete(IdempotentRequest).where(col(IdempotentRequest.scope) == key.id))
    db.flush()
    return key


def caller_for_key(db: Session, secret: str) -> Caller | None:
    """Return who holds this key, or None when it is unknown or revoked."""
    if not secret.startswith(PREFIX):
        return None
    found = db.exec(
        select(ApiKey, Clinic)
        .join(Clinic, col(Clinic.id) == ApiKey.clinic_id)
        .where(ApiKey.key_hash == hash_secret(secret), col(ApiKey.revoked_at).is_(None))
    ).first()
    if found is None:
        return None
    key, clinic = found
    return Caller(clinic, key.id, key.name, key.last_used_at)


def note_use_due(caller: Caller, now: datetime) -> bool:
    """Whether the key's last use is worth writing down again (once a minute)."""
    return caller.last_used_at is None or now - caller.last_used_at >= LAST_USED_EVERY


def note_use(db: Session, caller: Caller, now: datetime) -> None:
    """Record that the key was used now."""
    db.execute(sa.update(ApiKey).where(col(ApiKey.id) == caller.key_id).values(last_used_at=now))
