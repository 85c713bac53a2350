"""The re-plan diff: what to do to the stored sessions so they match a new plan. Pure.

    stored planned, from today on, not in the plan  -> cancel
    stored on a date the plan wants, but different  -> revise (a cancelled row comes back)
    a date the plan wants with no stored row        -> add

Past rows and rows already done (confirmed, skipped, missed, unrecorded) are history:
never touched. One row per enrollment and date, so a date the plan wants again reuses
its cancelled row instead of adding a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Generic, Protocol, TypeVar

from reminders.planner import PlannedSession
from reminders.states import SessionStatus


class StoredSession(Protocol):
    """What re-planning reads of a stored session (`stores.session_store.PlanRow`)."""

    @property
    def id(self) -> str: ...
    @property
    def local_date(self) -> date: ...
    @property
    def status(self) -> str: ...
    @property
    def phase(self) -> str: ...
    @property
    def minutes(self) -> int: ...
    @property
    def timezone(self) -> str: ...


Stored = TypeVar("Stored", bound=StoredSession)


@dataclass(frozen=True, slots=True)
class SessionDiff(Generic[Stored]):
    """The changes, and for each planned session (in plan order) the stored row it
    uses, or None where it is added."""

    cancel: tuple[Stored, ...]
    revise: tuple[tuple[str, PlannedSession], ...]
    add: tuple[PlannedSession, ...]
    rows: tuple[str | None, ...]


def diff_sessions(
    stored: Sequence[Stored],
    planned: Sequence[PlannedSession],
    today: date,
    timezone: str,
) -> SessionDiff[Stored]:
    """Return what brings `stored` in line with `planned` (sessions in `timezone`)."""
    wanted = {s.local_date for s in planned}
    cancel = tuple(
        r
        for r in stored
        if r.status == SessionStatus.PLANNED
        and r.local_date >= today
        and r.local_date not in wanted
    )
    by_date = {r.local_date: r for r in stored}
    revise: list[tuple[str, PlannedSession]] = []
    add: list[PlannedSession] = []
    rows: list[str | None] = []
    for session in planned:
        existing = by_date.get(session.local_date)
        if existing is None:
            add.append(session)
            rows.append(None)
            continue
        # The planner never plans on a day whose session is already done.
        assert existing.status in (SessionStatus.PLANNED, SessionStatus.CANCELLED), existing.status
        rows.append(existing.id)
        now_is = (existing.status, existing.phase, existing.minutes, existing.timezone)
        if now_is != (SessionStatus.PLANNED, session.phase, session.minutes, timezone):
            revise.append((existing.id, session))
    return SessionDiff(cancel, tuple(revise), tuple(add), tuple(rows))
