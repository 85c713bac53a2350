"""Gauges of what the tables hold, read at each scrape of /metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from reminders.db.engine import session_scope
from reminders.db.rows import count_by, table_of
from reminders.models import Enrollment
from reminders.states import DeliveryState, EnrollmentStatus, SessionStatus
from reminders.stores import outbox, session_store

CHANNELS = ("email", "webhook")


class TableGauges(Collector):
    """Deliveries by state and channel, the due backlog and how late its oldest is,
    sessions and enrollments by state; every known state is listed, 0 when none."""

    def __init__(self, engine: sa.Engine, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        with session_scope(self.engine, write=False) as db:
            deliveries, due = outbox.counts(db, now)
            sessions = session_store.count_by_status(db)
            enrollments = count_by(db, table_of(Enrollment).c.status)
            earliest = outbox.next_due(db)
        by_state = GaugeMetricFamily(
            "reminders_deliveries_in_outbox",
            "Deliveries in the outbox by state and channel.",
            labels=["state", "channel"],
        )
        for state in DeliveryState:
            for channel in CHANNELS:
                by_state.add_metric([state, channel], deliveries.get((state, channel), 0))
        yield by_state
        yield GaugeMetricFamily(
            "reminders_deliveries_due", "Pending deliveries already due.", value=due
        )
        lag = (now - earliest).total_seconds() if earliest is not None and earliest <= now else 0
        yield GaugeMetricFamily(
            "reminders_dispatch_lag_seconds",
            "How overdue the oldest due delivery is (0 when none is waiting).",
            value=max(lag, 0.0),
        )
        yield _by_state(
            "reminders_sessions", "Treatment sessions by state.", tuple(SessionStatus), sessions
        )
        yield _by_state(
            "reminders_enrollments", "Enrollments by state.", tuple(EnrollmentStatus), enrollments
        )


def _by_state(
    name: str, help_text: str, states: tuple[str, ...], counts: dict[tuple[str, ...], int]
) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, help_text, labels=["state"])
    for state in states:
        gauge.add_metric([state], counts.get((state,), 0))
    return gauge
