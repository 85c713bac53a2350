"""The outbox: claiming due deliveries with a lease, the retry schedule, recording results.

Any number of dispatchers may run against one database. A claim is one conditional
UPDATE ... RETURNING (on PostgreSQL its subquery takes row locks with SKIP LOCKED), so
two workers never hold the same row; a worker that dies keeps its rows only until the
lease runs out. Results are written only while the worker still holds the claim.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import Session, col

from reminders.models import Delivery
from reminders.states import DeliveryState

# Standard Webhooks' suggested schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
RETRY_DELAYS_S: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
JITTER = 0.1
ERROR_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a channel made of one message.

    sent: accepted; retry: try again later (`retry_after` seconds if the receiver asked);
    failed: permanent, do not retry; gone: the endpoint said 410, disable it; deferred:
    not tried (its destination is busy with slow requests), try in `retry_after` seconds
    without counting an attempt.
    """

    status: Literal["sent", "retry", "failed", "gone", "deferred"]
    error: str | None = None
    retry_after: float | None = None


def retry_delay(attempts: int, rand: Callable[[], float] = random.random) -> timedelta | None:
    """Return the wait after the `attempts`-th failed attempt, jittered by +-10 %, or
    None when the schedule is used up."""
    if attempts < 1 or attempts > len(RETRY_DELAYS_S):
        return None
    base = RETRY_DELAYS_S[attempts - 1]
    return timedelta(seconds=base * (1 + JITTER * (2 * rand() - 1)))


def _due(now: datetime, channels: Collection[str] | None = None) -> sa.ColumnElement[bool]:
    due = sa.or_(
        sa.and_(Delivery.state == DeliveryState.PENDING, Delivery.next_attempt_at <= now),  # type: ignore[arg-type]
        sa.and_(Delivery.state == DeliveryState.SENDING, Delivery.lease_until < now),  # type: ignore[arg-type, operator]
    )
    if channels is None:
        return due
    return sa.and_(due, col(Delivery.channel).in_(sorted(channels)))


def any_due(db: Session, now: datetime, channels: Collection[str] | None = None) -> bool:
    """Return True if some delivery is due (or its claim's lease has run out), of
    `channels` if given."""
    found = db.execute(sa.select(sa.literal(1)).where(_due(now, channels)).limit(1)).first()
    return found is not None


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """What the dispatcher needs of a delivery it has claimed (read with the claim)."""

    id: str
    clinic_id: str
    patient_id: str | None
    session_id: str | None
    kind: str
    channel: str
    target: str
    due_at: datetime
    expires_at: datetime | None
    next_attempt_at: datetime
    attempts: int
    payload: str
    created_at: datetime


_CLAIMED_COLUMNS = tuple(
    Delivery.__table__.c[name]  # type: ignore[attr-defined]
    for name in ClaimedDelivery.__dataclass_fields__
)


def claim(
    db: Session,
    worker: str,
    now: datetime,
    limit: int,
    lease: timedelta,
    channels: Collection[str] | None = None,
) -> list[ClaimedDelivery]:
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
    table = Delivery.__table__  # type: ignore[attr-defined]
    # The due condition is repeated on the UPDATE: under READ COMMITTED a row another
    # worker claimed meanwhile no longer matches, and is not taken twice. Plain columns
    # are returned: ORM objects cost more to load than the claim took.
    statement = (
        sa.update(table)
        .where(table.c.id == due.c.id)
        .where(_due(now, channels))
        .values(
            state=DeliveryState.SENDING,
            lease_until=now + lease,
            claimed_by=worker,
            attempts=table.c.attempts + 1,
        )
        .returning(*_CLAIMED_COLUMNS)
    )
    claimed = [ClaimedDelivery(*row) for row in db.connection().execute(statement)]
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


def result_values(
    delivery: ClaimedDelivery,
    outcome: Outcome,
    now: datetime,
    rand: Callable[[], float] = random.random,
) -> dict[str, Any]:
    """Return the column values that record `outcome` for a claimed delivery.

    A retry that the schedule has no room for makes the delivery dead; one that would
    land after the delivery's useful window makes it expired.
    """
    error = outcome.error[:ERROR_LIMIT] if outcome.error else None
    done: dict[str, Any] = {"lease_until": None, "last_error": error}
    if outcome.status == "sent":
        return {**done, "state": DeliveryState.SENT, "sent_at": now}
    if outcome.status in ("failed", "gone"):
        return {**done, "state": DeliveryState.FAILED}
    if outcome.status == "deferred":
        wait = timedelta(seconds=outcome.retry_after or 0)
        return {
            **done,
            "state": DeliveryState.PENDING,
            "next_attempt_at": now + wait,
            "attempts": delivery.attempts - 1,
        }
    delay = retry_delay(delivery.attempts, rand)
    if delay is None:
        return {**done, "state": DeliveryState.DEAD}
    if outcome.retry_after is not None:
        delay = max(delay, timedelta(seconds=outcome.retry_after))
    next_attempt = now + delay
    if delivery.expires_at is not None and next_attempt >= delivery.expires_at:
        return {**done, "state": DeliveryState.EXPIRED}
    return {**done, "state": DeliveryState.PENDING, "next_attempt_at": next_attempt}


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
    table = Delivery.__table__  # type: ignore[attr-defined]
    statement = (
        sa.update(table)
        .where(
            table.c.id == sa.bindparam("row_id"),
            table.c.state == DeliveryState.SENDING,
            table.c.claimed_by == worker,
        )
        .values(
            state=DeliveryState.SENT, sent_at=sa.bindparam("at"), lease_until=None, last_error=None
        )
    )
    db.connection().execute(statement, [{"row_id": i, "at": at} for i, at in sent])


def extend_leases(db: Session, ids: list[str], worker: str, until: datetime) -> None:
    """Move the lease of deliveries the worker still holds (still out, or still waiting
    for a sending slot) to `until`."""
    for start in range(0, len(ids), 500):
        db.execute(
            sa.update(Delivery)
            .where(
                col(Delivery.id).in_(ids[start : start + 500]),
                col(Delivery.state) == DeliveryState.SENDING,
                col(Delivery.claimed_by) == worker,
            )
            .values(lease_until=until)
            .execution_options(synchronize_session=False)
        )
