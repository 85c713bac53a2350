"""Prometheus text for /metrics, computed from the tables on each scrape."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col

from reminders import outbox
from reminders.models import Delivery, Enrollment, TreatmentSession


def _lines(name: str, help_text: str, kind: str, samples: list[tuple[str, float]]) -> list[str]:
    out = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    out += [f"{name}{labels} {value:g}" for labels, value in samples]
    return out


def metrics_text(db: Session, now: datetime) -> str:
    """Return deliveries by state and channel, dispatch lag, sessions and enrollments by
    state, in the Prometheus text format."""
    deliveries = db.execute(
        sa.select(Delivery.state, Delivery.channel, sa.func.count()).group_by(  # type: ignore[call-overload]
            Delivery.state, Delivery.channel
        )
    ).all()
    sessions = db.execute(
        sa.select(TreatmentSession.status, sa.func.count()).group_by(TreatmentSession.status)  # type: ignore[call-overload]
    ).all()
    enrollments = db.execute(
        sa.select(Enrollment.status, sa.func.count()).group_by(Enrollment.status)  # type: ignore[call-overload]
    ).all()
    due = db.execute(
        sa.select(sa.func.count()).where(
            col(Delivery.state) == "pending", col(Delivery.next_attempt_at) <= now
        )
    ).scalar_one()
    earliest = outbox.next_due(db)
    lag = max((now - earliest).total_seconds(), 0.0) if earliest and earliest <= now else 0.0
    lines = _lines(
        "reminders_deliveries",
        "Deliveries in the outbox by state and channel.",
        "gauge",
        [(f'{{state="{s}",channel="{c}"}}', n) for s, c, n in deliveries],
    )
    lines += _lines(
        "reminders_dispatch_lag_seconds",
        "How overdue the oldest due pending delivery is (0 when none is waiting).",
        "gauge",
        [("", lag)],
    )
    lines += _lines(
        "reminders_deliveries_due",
        "Pending deliveries already due.",
        "gauge",
        [("", due)],
    )
    lines += _lines(
        "reminders_sessions",
        "Treatment sessions by state.",
        "gauge",
        [(f'{{state="{s}"}}', n) for s, n in sessions],
    )
    lines += _lines(
        "reminders_enrollments",
        "Enrollments by state.",
        "gauge",
        [(f'{{state="{s}"}}', n) for s, n in enrollments],
    )
    return "\n".join(lines) + "\n"
