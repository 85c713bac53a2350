"""The outbox: the only code that reads and writes `delivery` rows.

- New deliveries: `new_delivery` builds every row (patient messages, clinic emails,
  events) and `queue` writes them, one per session, kind, channel and target ever (a
  unique key, so a second writer's row is dropped, not sent twice).
- The dispatcher: `claim` due deliveries with a lease, `finish` with a result.
- The services: what they look up, cancel or delete.

What becomes of a delivery (send, wait, retry, end) is decided in `reminders.decisions`.
Two places elsewhere name the table, as `stores.session_store` tells: the sweep's search
for sessions without a reminder, and erasure's list of where a patient's data is held.

Any number of dispatchers may run against one database. A claim is one conditional
UPDATE ... RETURNING (on PostgreSQL its subquery takes row locks with SKIP LOCKED), so
two workers never hold the same row; a worker that dies keeps its rows only until the
lease runs out. Results are written only while the worker still holds the claim.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from reminders.db.rows import (
    PreparedInsert,
    connection_of,
    count_by,
    in_chunks,
    insert_ignore,
    prepare_row_insert,
    read_columns,
    table_of,
)
from reminders.ids import new_id
from reminders.models import Delivery
from reminders.states import ENDED, DeliveryAudience, DeliveryState

_TABLE = table_of(Delivery)


def new_delivery(
    *,
    clinic_id: str,
    kind: str,
    audience: DeliveryAudience,
    channel: str,
    target: str,
    now: datetime,
    due_at: datetime | None = None,
    expires_at: datetime | None = None,
    patient_id: str | None = None,
    session_id: str | None = None,
    payload: str = "{}",
    state: DeliveryState = DeliveryState.PENDING,
) -> dict[str, Any]:
    """Return a new delivery row (for `queue`): `kind` is what the message is, `audience`
    who it is for; it falls due at `due_at` (default `now`). `payload` is JSON."""
    due = due_at or now
    return {
        "id": new_id(), "clinic_id": clinic_id, "patient_id": patient_id,
        "session_id": session_id, "kind": kind, "audience": audience, "channel": channel,
        "target": target, "state": state, "due_at": due, "expires_at": expires_at,
        "next_attempt_at": due, "attempts": 0, "payload": payload, "created_at": now,
    }  # fmt: skip


def queue(db: Session, deliveries: list[dict[str, Any]]) -> None:
    """Write new deliveries (rows from `new_delivery`), in the caller's transaction; one
    whose session, kind, channel and target already have a delivery is dropped.

    This is how "one reminder per session and kind, ever" is kept: by the database's
    unique key, not by a check in code that two processes could both pass.
    """
    insert_ignore(db, Delivery, deliveries)


def prepare_queue(dialect: sa.Dialect, deliveries: list[dict[str, Any]]) -> PreparedInsert:
    """Return `queue`'s INSERT, to run later or in another process (the bulk import)."""
    return prepare_row_insert(dialect, Delivery, deliveries, ignore_conflicts=True)


def _due(now: datetime, channels: Collection[str] | None = None) -> sa.ColumnElement[bool]:
    c = _TABLE.c
    due = sa.or_(
        sa.and_(c.state == DeliveryState.PENDING, c.next_attempt_at <= now),
        sa.and_(c.state == DeliveryState.SENDING, c.lease_until < now),
    )
    if channels is None:
        return due
    return sa.and_(due, c.channel.in_(sorted(channels)))


def any_due(db: Session, now: datetime, channels: Collection[str] | None = None) -> bool:
    """Return True if some delivery is due (or its claim's lease has run out), of
    `channels` if given."""
    found = db.execute(sa.select(sa.literal(1)).where(_due(now, channels)).limit(1)).first()
    return found is not None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """A stored delivery, every column in the table's order."""

    id: str
    clinic_id: str
    patient_id: str | None
    session_id: str | None
    kind: str
    audience: DeliveryAudience
    channel: str
    target: str
    state: DeliveryState
    due_at: datetime
    expires_at: datetime | None
    next_attempt_at: datetime
    attempts: int
    lease_until: datetime | None
    claimed_by: str | None
    last_error: str | None
    sent_at: datetime | None
    payload: str
    created_at: datetime

    @classmethod
    def of(cls, row: Sequence[Any]) -> DeliveryRow:
        """The row of a `SELECT` of the whole table (columns in the table's order); built
        by position, as every claim reads a batch of them."""
        values = list(row)
        values[_AUDIENCE] = DeliveryAudience(values[_AUDIENCE])
        values[_STATE] = DeliveryState(values[_STATE])
        return cls(*values)


_KEYS = tuple(DeliveryRow.__dataclass_fields__)
assert tuple(_TABLE.c.keys()) == _KEYS, "DeliveryRow must list the table's columns in order"
_AUDIENCE, _STATE = _KEYS.index("audience"), _KEYS.index("state")


def claim(
    db: Session,
    worker: str,
    now: datetime,
    limit: int,
    lease: timedelta,
    channels: Collection[str] | None = None,
) -> list[DeliveryRow]:
    """Claim up to `limit` due deliveries (oldest due first) for `worker`, of `channels`
    if given; return them.

    Also takes over rows whose previous claim's lease has run out (a crashed worker).
    Each claim counts as an attempt. The caller commits.
    """
    candidates = (
        sa.select(Delivery.id)  # type: ignore[call-overload]
        .where(_due(now, channels))
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
    )
    if db.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    # A materialized CTE picks the rows once. As `id IN (subquery)`, PostgreSQL may run
    # the subquery again per row, and SKIP LOCKED then hands out further rows each time,
    # so a claim could take more than its limit.
    due = candidates.cte("due").prefix_with("MATERIALIZED", dialect="postgresql")
    # The due condition is repeated on the UPDATE: under READ COMMITTED a row another
    # worker claimed meanwhile no longer matches, and is not taken twice. Plain columns
    # are returned: ORM objects cost more to load than the claim took.
    statement = (
        sa.update(_TABLE)
        .where(_TABLE.c.id == due.c.id)
        .where(_due(now, channels))
        .values(
            state=DeliveryState.SENDING,
            lease_until=now + lease,
            claimed_by=worker,
            attempts=_TABLE.c.attempts + 1,
        )
        .returning(*_TABLE.c)
    )
    claimed = [DeliveryRow.of(row) for row in connection_of(db).execute(statement)]
    claimed.sort(key=lambda d: d.next_attempt_at)
    return claimed


def next_due(db: Session) -> datetime | None:
    """Return when the earliest pending delivery falls due, or None."""
    earliest = db.execute(
        sa.select(sa.func.min(Delivery.next_attempt_at)).where(
            col(Delivery.state) == DeliveryState.PENDING
        )
    ).scalar_one()
    # min() keeps the column's type, so the value comes back as an aware UTC datetime.
    return earliest  # type: ignore[no-any-return]


def finish(db: Session, delivery_id: str, worker: str, values: dict[str, Any]) -> bool:
    """Write a claimed delivery's result; return False if the worker no longer holds it.

    False means the lease ran out and another worker took the row over: that worker's
    result stands (the receiver sees the same id twice at most, and de-duplicates).
    """
    result = db.execute(
        sa.update(Delivery)
        .where(
            Delivery.id == delivery_id,  # type: ignore[arg-type]
            Delivery.state == DeliveryState.SENDING,  # type: ignore[arg-type]
            Delivery.claimed_by == worker,  # type: ignore[arg-type]
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def finish_sent(db: Session, worker: str, sent: list[tuple[str, datetime]]) -> None:
    """Record deliveries the worker still holds as sent, each at its own time, in one
    executemany (the bulk of every round of results)."""
    if not sent:
        return
    statement = (
        sa.update(_TABLE)
        .where(
            _TABLE.c.id == sa.bindparam("row_id"),
            _TABLE.c.state == DeliveryState.SENDING,
            _TABLE.c.claimed_by == worker,
        )
        .values(
            state=DeliveryState.SENT, sent_at=sa.bindparam("at"), lease_until=None, last_error=None
        )
    )
    connection_of(db).execute(statement, [{"row_id": i, "at": at} for i, at in sent])


def extend_leases(db: Session, ids: list[str], worker: str, until: datetime) -> None:
    """Move the lease of deliveries the worker still holds (still out, or still waiting
    for a sending slot) to `until`."""
    for chunk in in_chunks(ids):
        db.execute(
            sa.update(Delivery)
            .where(
                col(Delivery.id).in_(chunk),
                col(Delivery.state) == DeliveryState.SENDING,
                col(Delivery.claimed_by) == worker,
            )
            .values(lease_until=until)
            .execution_options(synchronize_session=False)
        )


def _cancel(db: Session, where: sa.ColumnElement[bool], reason: str) -> None:
    db.execute(
        sa.update(Delivery)
        .where(where)
        .values(state=DeliveryState.CANCELLED, last_error=reason)
        .execution_options(synchronize_session=False)
    )


def cancel_to_patient(db: Session, patient_id: str, reason: str) -> None:
    """Cancel what still waits to go to the patient (not the clinic's messages about
    them), saying why."""
    _cancel(
        db,
        sa.and_(
            col(Delivery.patient_id) == patient_id,
            col(Delivery.state) == DeliveryState.PENDING,
            col(Delivery.audience) == DeliveryAudience.PATIENT,
        ),
        reason,
    )


def cancel_about_patient(
    db: Session, patient_id: str, session_ids: sa.Select[Any], reason: str
) -> None:
    """Cancel everything still waiting that concerns the patient or one of
    `session_ids`, to whomever it was going."""
    _cancel(
        db,
        sa.and_(
            sa.or_(
                col(Delivery.patient_id) == patient_id, col(Delivery.session_id).in_(session_ids)
            ),
            col(Delivery.state) == DeliveryState.PENDING,
        ),
        reason,
    )


def cancel_to_patient_about(
    db: Session, patient_id: str, session_ids: sa.Select[Any], reason: str
) -> None:
    """Cancel the messages to the patient still waiting that are about `session_ids`."""
    _cancel(
        db,
        sa.and_(
            col(Delivery.patient_id) == patient_id,
            col(Delivery.audience) == DeliveryAudience.PATIENT,
            col(Delivery.session_id).in_(session_ids),
            col(Delivery.state) == DeliveryState.PENDING,
        ),
        reason,
    )


def cancel_to_endpoint(db: Session, endpoint_id: str, reason: str) -> None:
    """Cancel what still waits to go to a webhook endpoint, or is being sent to it."""
    _cancel(
        db,
        sa.and_(
            col(Delivery.target) == endpoint_id,
            col(Delivery.channel) == "webhook",
            col(Delivery.state).in_((DeliveryState.PENDING, DeliveryState.SENDING)),
        ),
        reason,
    )


def forget_unsent(
    db: Session,
    patient_id: str,
    kinds: Collection[str] | None = None,
    *,
    state: DeliveryState = DeliveryState.PENDING,
    reason: str | None = None,
    session_ids: sa.Select[Any] | None = None,
) -> None:
    """Delete the patient's deliveries in `state` (of `kinds`, with `reason`, of
    `session_ids`, where given), never sent: the unique key keeps one delivery per
    session and kind for good, so one made under old settings must go before its
    successor can be queued."""
    where = [col(Delivery.patient_id) == patient_id, col(Delivery.state) == state]
    if kinds is not None:
        where.append(col(Delivery.kind).in_(sorted(kinds)))
    if reason is not None:
        where.append(col(Delivery.last_error) == reason)
    if session_ids is not None:
        where.append(col(Delivery.session_id).in_(session_ids))
    db.execute(sa.delete(Delivery).where(*where).execution_options(synchronize_session=False))


def of_session(db: Session, session_id: str, kind: str) -> tuple[datetime, DeliveryState] | None:
    """Return when a session's delivery of `kind` is (or was) due and its state, or None."""
    found = db.execute(
        sa.select(col(Delivery.due_at), col(Delivery.state))
        .where(col(Delivery.session_id) == session_id, col(Delivery.kind) == kind)
        .limit(1)
    ).first()
    return None if found is None else (found[0], DeliveryState(found[1]))


def sent_about(db: Session, session_ids: Collection[str], kinds: Collection[str]) -> set[str]:
    """Return those of `session_ids` that a delivery of one of `kinds` reached (sent)."""
    sent: set[str] = set()
    for chunk in in_chunks(sorted(session_ids)):
        found = db.execute(
            sa.select(col(Delivery.session_id)).where(
                col(Delivery.session_id).in_(chunk),
                col(Delivery.kind).in_(sorted(kinds)),
                col(Delivery.state) == DeliveryState.SENT,
            )
        )
        sent.update(str(session_id) for session_id in found.scalars())
    return sent


def purge_ended(db: Session, before: datetime) -> int:
    """Delete deliveries that ended and were due before `before`; return how many."""
    result = db.execute(
        sa.delete(Delivery).where(col(Delivery.state).in_(ENDED), col(Delivery.due_at) < before)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _rows(db: Session, query: sa.Select[Any]) -> list[DeliveryRow]:
    return [DeliveryRow.of(row) for row in read_columns(db, query)]


def get(db: Session, delivery_id: str) -> DeliveryRow | None:
    """Return the delivery `delivery_id`, or None."""
    found = _rows(db, sa.select(_TABLE).where(_TABLE.c.id == delivery_id))
    return found[0] if found else None


def by_ids(db: Session, delivery_ids: Collection[str]) -> list[DeliveryRow]:
    """Return the deliveries with these ids (those that exist)."""
    return [
        row
        for chunk in in_chunks(sorted(delivery_ids))
        for row in _rows(db, sa.select(_TABLE).where(_TABLE.c.id.in_(chunk)))
    ]


def newest_of_clinic(
    db: Session,
    clinic_id: str,
    state: DeliveryState | None,
    before: str | None,
    limit: int,
    channel: str | None = None,
) -> list[DeliveryRow]:
    """Return up to `limit` of the clinic's deliveries (in `state`, through `channel`,
    with ids before `before`, where given), newest first: ids sort by time."""
    query = sa.select(_TABLE).where(_TABLE.c.clinic_id == clinic_id)
    if channel is not None:
        query = query.where(_TABLE.c.channel == channel)
    if state is not None:
        query = query.where(_TABLE.c.state == state)
    if before is not None:
        query = query.where(_TABLE.c.id < before)
    return _rows(db, query.order_by(_TABLE.c.id.desc()).limit(limit))


def matching(
    db: Session,
    *,
    kind: str | None = None,
    state: DeliveryState | None = None,
    patient_id: str | None = None,
) -> list[DeliveryRow]:
    """Return the deliveries of `kind`, in `state`, to or about `patient_id` (each where
    given), oldest first: a look at the whole outbox, as an operator or a test takes."""
    query = sa.select(_TABLE)
    for column, wanted in (("kind", kind), ("state", state), ("patient_id", patient_id)):
        if wanted is not None:
            query = query.where(_TABLE.c[column] == wanted)
    return _rows(db, query.order_by(_TABLE.c.id))


def newest_to_patient(db: Session, patient_id: str, limit: int) -> list[DeliveryRow]:
    """Return up to `limit` of the messages to a patient (not the clinic's alerts or
    events about them), newest first."""
    query = sa.select(_TABLE).where(
        _TABLE.c.patient_id == patient_id, _TABLE.c.audience == DeliveryAudience.PATIENT
    )
    return _rows(db, query.order_by(_TABLE.c.id.desc()).limit(limit))


def counts(db: Session, now: datetime) -> tuple[dict[tuple[Any, ...], int], int]:
    """Return how many deliveries there are by (state, channel), and how many are due
    at `now` and still waiting."""
    due = db.execute(
        sa.select(sa.func.count()).where(_due(now)).where(_TABLE.c.state == DeliveryState.PENDING)
    ).scalar_one()
    return count_by(db, _TABLE.c.state, _TABLE.c.channel), int(due)
