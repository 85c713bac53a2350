"""Staff accounts of the web app: who they are, how they get and keep a password, how
they log in and out.

A member starts with no password and a one-time setup link (printed by the command
line for a clinic's first admin, emailed for everyone an admin invites). "Forgot
password" emails a reset link of the same kind. Links and logins are random secrets
of which only the hash is stored.

Failed logins count up: after `SLOW_AFTER` failures for an address, each answer waits
longer (`LoginThrottle`, for every address typed, with an account or not), and an
account's `LOCK_AFTER`th failure in a row locks it for `LOCK_FOR` and emails its owner.
A success, or a new password, starts the count again. The form's answer is the same for
an unknown address, a wrong password and a locked account, in the same time: it does
not tell who has an account; the owner of a locked one hears it by email.

Argon2 hashing takes about a tenth of a second of CPU on purpose: callers run
`hash_password` and `password_matches` away from the event loop, then hand the result
to the functions here that write.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pwdlib import PasswordHash
from sqlmodel import Session, col, func, select

from reminders.errors import Conflict, InvalidInput, NotFound
from reminders.fields import checked, email_address
from reminders.ids import hash_secret
from reminders.models import Clinic, StaffLink, StaffLogin, StaffMember
from reminders.runtime import Runtime
from reminders.services.audit import Actor, AuditAction, record
from reminders.states import DeliveryAudience
from reminders.stores import outbox
from reminders.tokens import link_token

SLOW_AFTER = 2
LOCK_AFTER = 5
LOCK_FOR = timedelta(minutes=15)
LOGIN_LASTS = timedelta(hours=12)
SETUP_LINK_LASTS = timedelta(days=3)
RESET_LINK_LASTS = timedelta(hours=1)
MIN_PASSWORD = 10
MAX_PASSWORD = 200
_HASHER = PasswordHash.recommended()
# Verified when the address is unknown, so that answer takes as long as a wrong password.
_NOBODY = _HASHER.hash(secrets.token_urlsafe(16))


class Role(StrEnum):
    ADMIN = "admin"
    CLINICIAN = "clinician"


class LinkPurpose(StrEnum):
    SETUP = "setup"
    RESET = "reset"


LINK_LASTS = {LinkPurpose.SETUP: SETUP_LINK_LASTS, LinkPurpose.RESET: RESET_LINK_LASTS}


def hash_password(password: str) -> str:
    """Return the Argon2 hash of a new password; raise InvalidInput naming `password`
    if it is too short or too long. CPU-bound: keep it off the event loop."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput("password", f"must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput("password", f"must be at most {MAX_PASSWORD} characters")
    return _HASHER.hash(password)


def password_matches(member_hash: str | None, password: str) -> bool:
    """Whether `password` is the one hashed as `member_hash` (None: no account, or no
    password yet; checked against a stand-in all the same). CPU-bound, as above."""
    matches = _HASHER.verify(password[:MAX_PASSWORD], member_hash or _NOBODY)
    return matches and member_hash is not None


def _role(role: str) -> Role:
    if role not in tuple(Role):
        raise InvalidInput("role", f"must be one of {', '.join(Role)}")
    return Role(role)


def _email(email: str) -> str:
    return checked("email", email.strip(), email_address).lower()


def add_member(
    db: Session, clinic_id: str, email: str, role: str, actor: Actor | None, now: datetime
) -> StaffMember:
    """Add a staff member with no password yet; return them. Raises NotFound for an
    unknown clinic, InvalidInput naming `email` or `role`, Conflict when the address
    already has an account (in any clinic: one address, one clinic)."""
    if db.get(Clinic, clinic_id) is None:
        raise NotFound("clinic", clinic_id)
    address, wanted = _email(email), _role(role)
    if db.exec(select(StaffMember.id).where(StaffMember.email == address)).first():
        raise Conflict("this email address already has a staff account")
    member = StaffMember(clinic_id=clinic_id, email=address, role=wanted, created_at=now)
    db.add(member)
    db.flush()
    record(db, actor, clinic_id, AuditAction.STAFF_ADD, ("staff", member.id), now, role=wanted)
    return member


def get_member(db: Session, clinic_id: str | None, staff_id: str) -> StaffMember:
    """Return the member; raise NotFound if missing or another clinic's."""
    member = db.get(StaffMember, staff_id)
    if member is None or (clinic_id is not None and member.clinic_id != clinic_id):
        raise NotFound("staff member", staff_id)
    return member


def members_of(db: Session, clinic_id: str) -> list[StaffMember]:
    """Return the clinic's staff, by email."""
    query = select(StaffMember).where(StaffMember.clinic_id == clinic_id)
    return list(db.exec(query.order_by(col(StaffMember.email))))


def find_by_email(db: Session, email: str) -> StaffMember | None:
    """Return the member with this address, or None."""
    address = email.strip().lower()
    return db.exec(select(StaffMember).where(StaffMember.email == address)).first()


def _admins_left(db: Session, clinic_id: str, without: str) -> int:
    query = select(func.count()).where(
        StaffMember.clinic_id == clinic_id,
        StaffMember.role == Role.ADMIN,
        col(StaffMember.disabled_at).is_(None),
        StaffMember.id != without,
    )
    return int(db.exec(query).one())


def set_role(
    db: Session, clinic_id: str, staff_id: str, role: str, actor: Actor, now: datetime
) -> StaffMember:
    """Change a member's role. Raises NotFound, InvalidInput naming `role`, or Conflict
    when it would leave the clinic with no admin."""
    member, wanted = get_member(db, clinic_id, staff_id), _role(role)
    if member.role == wanted:
        return member
    if member.role == Role.ADMIN and not _admins_left(db, clinic_id, member.id):
        raise Conflict("the clinic needs at least one admin")
    member.role = wanted
    db.add(member)
    record(db, actor, clinic_id, AuditAction.STAFF_ROLE, ("staff", member.id), now, role=wanted)
    return member


def set_enabled(
    db: Session, clinic_id: str, staff_id: str, enabled: bool, actor: Actor, now: datetime
) -> StaffMember:
    """Disable a member (their logins end at once) or enable them again. Raises
    NotFound, or Conflict for the clinic's last admin or oneself."""
    member = get_member(db, clinic_id, staff_id)
    if not enabled and member.id == actor.staff_id:
        raise Conflict("you cannot disable your own account")
    if not enabled and member.role == Role.ADMIN and not _admins_left(db, clinic_id, member.id):
        raise Conflict("the clinic needs at least one admin")
    member.disabled_at = None if enabled else now
    db.add(member)
    if not enabled:
        end_logins_of(db, member.id, now)
    action = AuditAction.STAFF_ENABLE if enabled else AuditAction.STAFF_DISABLE
    record(db, actor, clinic_id, action, ("staff", member.id), now)
    return member


# Links


LOGIN_PATH = "/app/login"


def link_path(purpose: LinkPurpose, token: str) -> str:
    """The app's path that a link of `purpose` opens."""
    return f"/app/{purpose}/{token}"


def _store_link(
    db: Session, member: StaffMember, purpose: LinkPurpose, token: str, now: datetime
) -> None:
    db.add(
        StaffLink(
            token_hash=hash_secret(token),
            staff_id=member.id,
            purpose=purpose,
            expires_at=now + LINK_LASTS[purpose],
            created_at=now,
        )
    )


def setup_link(db: Session, rt: Runtime, member: StaffMember, now: datetime) -> str:
    """Make a setup link for `member` to show there and then (the command line); return
    its URL."""
    token = secrets.token_urlsafe(32)
    _store_link(db, member, LinkPurpose.SETUP, token, now)
    return rt.settings.base_url + link_path(LinkPurpose.SETUP, token)


def email_link(
    db: Session, rt: Runtime, member: StaffMember, purpose: LinkPurpose, now: datetime
) -> None:
    """Queue an email to `member` with a link of `purpose`. Its token is derived from
    the delivery's id (as patients' links are), so the database holds only its hash and
    the email is made with it when it is sent."""
    facts = {"purpose": purpose, "until": now + LINK_LASTS[purpose]}
    delivery = _staff_email(member, f"staff_{purpose}", now, facts)
    token = link_token(rt.secret_key, delivery["id"], purpose)
    _store_link(db, member, purpose, token, now)
    outbox.queue(db, [delivery])


def _staff_email(
    member: StaffMember, kind: str, now: datetime, facts: dict[str, Any]
) -> dict[str, Any]:
    return outbox.new_delivery(
        clinic_id=member.clinic_id, kind=kind, audience=DeliveryAudience.STAFF,
        channel="email", target=member.id, now=now,
        payload=json.dumps(facts, default=str),
    )  # fmt: skip


def request_reset(db: Session, rt: Runtime, email: str, now: datetime) -> None:
    """Email a reset link to the member with this address, if there is one who may log
    in and no reset link of theirs is still fresh; say nothing either way."""
    member = find_by_email(db, email)
    if member is None or member.disabled_at is not None:
        return
    fresh = select(StaffLink.token_hash).where(
        StaffLink.staff_id == member.id,
        StaffLink.purpose == LinkPurpose.RESET,
        col(StaffLink.used_at).is_(None),
        col(StaffLink.created_at) > now - timedelta(minutes=5),
    )
    if db.exec(fresh).first() is None:
        email_link(db, rt, member, LinkPurpose.RESET, now)


def member_of_link(
    db: Session, purpose: LinkPurpose, token: str, now: datetime
) -> StaffMember | None:
    """Return whom an unused, unexpired link of `purpose` is for, or None."""
    link = db.get(StaffLink, hash_secret(token))
    if link is None or link.purpose != purpose or link.used_at or link.expires_at <= now:
        return None
    member = db.get(StaffMember, link.staff_id)
    return member if member is not None and member.disabled_at is None else None


def set_password(
    db: Session, purpose: LinkPurpose, token: str, password_hash: str, now: datetime
) -> StaffMember:
    """Use a link to set the member's password (hashed by `hash_password`): the link is
    spent, their other logins end, and their failed logins are forgiven. Returns them;
    raises NotFound for a link that is unknown, used or expired."""
    member = member_of_link(db, purpose, token, now)
    link = db.get(StaffLink, hash_secret(token))
    if member is None or link is None:
        raise NotFound("link", "…")
    link.used_at = now
    member.password_hash = password_hash
    member.failed_logins = 0
    member.locked_until = None
    db.add_all([link, member])
    end_logins_of(db, member.id, now)
    return member


# Logins


@dataclass(frozen=True, slots=True)
class LoginRefused:
    """A login that failed; `locked_until` is for the owner's email, not the form."""

    locked_until: datetime | None


def wait_after(failures: int) -> float:
    """Seconds to wait before answering the `failures`th failure in a row for an address:
    none at first, then doubling, at most four."""
    return min(0.5 * 2 ** (failures - SLOW_AFTER - 1), 4.0) if failures > SLOW_AFTER else 0.0


class LoginThrottle:
    """Failed logins by address, kept in memory for `LOCK_FOR`: how long the next answer
    for that address waits. Addresses are kept hashed; at most `size` of them."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._failures: dict[str, tuple[int, datetime]] = {}

    def failed(self, email: str, now: datetime) -> float:
        """Count a failure for `email`; return how long to wait before answering."""
        key = hash_secret(email.strip().lower())
        failures, last = self._failures.pop(key, (0, now))
        failures = failures + 1 if now - last < LOCK_FOR else 1
        if len(self._failures) >= self.size:
            del self._failures[next(iter(self._failures))]  # the oldest
        self._failures[key] = (failures, now)
        return wait_after(failures)

    def forget(self, email: str) -> None:
        self._failures.pop(hash_secret(email.strip().lower()), None)


def locked(member: StaffMember | None, now: datetime) -> bool:
    return member is not None and member.locked_until is not None and member.locked_until > now


def log_in(
    db: Session, email: str, password_ok: bool, now: datetime
) -> tuple[StaffMember, str] | LoginRefused:
    """Record a login attempt whose password was checked (`password_matches`): return
    the member and their new login's secret (for the cookie), or why it was refused.
    A locked or disabled account is refused whatever the password."""
    member = find_by_email(db, email)
    if member is None:
        return LoginRefused(None)
    if member.disabled_at is not None or locked(member, now):
        return LoginRefused(member.locked_until)
    if password_ok:
        member.failed_logins = 0
        member.locked_until = None
        db.add(member)
        return member, start_login(db, member, now)
    member.failed_logins += 1
    if member.failed_logins >= LOCK_AFTER:
        member.locked_until = now + LOCK_FOR
        member.failed_logins = 0
        notice = _staff_email(member, "staff_locked", now, {"until": member.locked_until})
        outbox.queue(db, [notice])
    db.add(member)
    return LoginRefused(member.locked_until)


def start_login(db: Session, member: StaffMember, now: datetime) -> str:
    """Start a login for `member`; return its secret (for the cookie only)."""
    secret = secrets.token_urlsafe(32)
    db.add(
        StaffLogin(
            token_hash=hash_secret(secret),
            staff_id=member.id,
            expires_at=now + LOGIN_LASTS,
            created_at=now,
        )
    )
    return secret


def member_of_login(db: Session, secret: str, now: datetime) -> StaffMember | None:
    """Return who holds this login, if it has not ended, expired or been disabled."""
    query = (
        select(StaffMember)
        .join(StaffLogin, col(StaffLogin.staff_id) == col(StaffMember.id))
        .where(
            StaffLogin.token_hash == hash_secret(secret),
            col(StaffLogin.ended_at).is_(None),
            col(StaffLogin.expires_at) > now,
            col(StaffMember.disabled_at).is_(None),
        )
    )
    return db.exec(query).first()


def log_out(db: Session, secret: str, now: datetime) -> None:
    """End this login (nothing if it is unknown or over)."""
    login = db.get(StaffLogin, hash_secret(secret))
    if login is not None and login.ended_at is None:
        login.ended_at = now
        db.add(login)


def end_logins_of(db: Session, staff_id: str, now: datetime) -> None:
    """End every login of the member."""
    query = select(StaffLogin).where(
        StaffLogin.staff_id == staff_id, col(StaffLogin.ended_at).is_(None)
    )
    for login in db.exec(query):
        login.ended_at = now
        db.add(login)
