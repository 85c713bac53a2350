"""Protocol versions: an enrollment keeps the protocol it was enrolled on.

Protocol files can change (a clinic edits its own, an upgrade ships new figures). Each
distinct content of a protocol file is stored once as a numbered version; an enrollment
records its version and is planned by it, so editing a file re-plans nobody until the
clinic moves enrollments to the new version (`move_to_current`).

Versions are registered on first use in each process and kept in the runtime's cache:
a file's content cannot change while the process runs.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import sqlalchemy as sa
from pydantic import ValidationError
from sqlmodel import Session, col, select

from reminders.db.rows import insert_ignore
from reminders.errors import Conflict
from reminders.ids import new_id
from reminders.models import Enrollment, ProtocolVersion
from reminders.protocols import Protocol
from reminders.runtime import Runtime


def digest(protocol: Protocol) -> str:
    """Return the fingerprint of a protocol's content."""
    return hashlib.sha256(protocol.model_dump_json().encode()).hexdigest()


def current_version(db: Session, rt: Runtime, protocol_id: str, now: datetime) -> int:
    """Return the version number of the installed file of `protocol_id`, storing it as
    a new version the first time its content is seen. Writes: call in a write
    transaction. Raises KeyError for a protocol not installed."""
    cached = rt.protocol_versions.get(protocol_id)
    if cached is not None:
        return cached
    protocol = rt.protocols[protocol_id]
    fingerprint = digest(protocol)
    for attempt in range(3):  # another process may take the same number first
        found = _version_with(db, protocol_id, fingerprint)
        if found is not None:
            # Only a row that was there before is kept: one this transaction wrote is
            # gone again if it rolls back.
            if attempt == 0:
                rt.protocol_versions[protocol_id] = found
            return found
        latest = db.exec(
            select(sa.func.max(ProtocolVersion.version)).where(
                ProtocolVersion.protocol_id == protocol_id
            )
        ).one()
        row = {
            "id": new_id(),
            "protocol_id": protocol_id,
            "version": (latest or 0) + 1,
            "digest": fingerprint,
            "body": protocol.model_dump_json(),
            "created_at": now,
        }
        insert_ignore(db, ProtocolVersion, [row])
    raise Conflict(f"could not register a version of protocol {protocol_id!r}")


def _version_with(db: Session, protocol_id: str, fingerprint: str) -> int | None:
    return db.exec(
        select(ProtocolVersion.version).where(
            ProtocolVersion.protocol_id == protocol_id, ProtocolVersion.digest == fingerprint
        )
    ).first()


def protocol_of(db: Session, rt: Runtime, enrollment: Enrollment) -> Protocol | None:
    """Return the protocol an enrollment is planned by: the version it was enrolled on
    (or moved to); the installed file for enrollments older than versions (None when
    it is gone). Raises Conflict when a stored version cannot be used."""
    current = rt.protocols.get(enrollment.protocol_id)
    wanted = enrollment.protocol_version
    if wanted is None or (current is not None and rt.protocol_versions.get(current.id) == wanted):
        return current
    key = (enrollment.protocol_id, wanted)
    stored = rt.stored_protocols.get(key)
    if stored is None:
        body = db.exec(
            select(ProtocolVersion.body).where(
                ProtocolVersion.protocol_id == enrollment.protocol_id,
                ProtocolVersion.version == wanted,
            )
        ).first()
        if body is None:
            raise Conflict(f"protocol {enrollment.protocol_id!r} version {wanted} is not stored")
        try:
            stored = Protocol.model_validate_json(body)
        except ValidationError:
            raise Conflict(
                f"protocol {enrollment.protocol_id!r} version {wanted} no longer loads; move "
                "the enrollment to the installed version"
            ) from None
        rt.stored_protocols[key] = stored
    return stored


def move_to_current(
    db: Session, rt: Runtime, enrollment: Enrollment, now: datetime
) -> tuple[int | None, int]:
    """Move an enrollment to the installed version of its protocol; return the versions
    (before, after). The caller re-plans. Raises Conflict if the protocol is no longer
    installed."""
    if enrollment.protocol_id not in rt.protocols:
        raise Conflict(f"protocol {enrollment.protocol_id!r} is not installed")
    before = enrollment.protocol_version
    after = current_version(db, rt, enrollment.protocol_id, now)
    enrollment.protocol_version = after
    db.add(enrollment)
    db.flush()
    return before, after


def versions(db: Session, protocol_id: str) -> list[ProtocolVersion]:
    """Return every stored version of a protocol, oldest first."""
    query = select(ProtocolVersion).where(ProtocolVersion.protocol_id == protocol_id)
    return list(db.exec(query.order_by(col(ProtocolVersion.version))))
