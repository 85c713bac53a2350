"""Keeping data no longer than needed: what a finished delivery, an expired link or an
old idempotent answer was for is over after the retention period.

Sessions are never purged here: adherence is counted from them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col

from reminders.models import IdempotentRequest
from reminders.stores import outbox
from reminders.tokens import purge_expired_tokens

# How long a client may retry a POST with the same Idempotency-Key.
IDEMPOTENCY_WINDOW = timedelta(hours=24)


def purge_old(db: Session, now: datetime, keep: timedelta) -> dict[str, int]:
    """Delete ended deliveries due more than `keep` ago, expired link tokens and kept
    answers past the idempotency window; return how many of each."""
    answers = db.execute(
        sa.delete(IdempotentRequest).where(
            col(IdempotentRequest.created_at) < now - IDEMPOTENCY_WINDOW
        )
    )
    return {
        "deliveries": outbox.purge_ended(db, now - keep),
        "link tokens": purge_expired_tokens(db, now),
        "idempotent answers": _count(answers),
    }


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
