"""Adherence: what a patient did against what was planned. Pure: no database, no clock.

Only sessions already due count: confirmed, skipped or missed. Planned and cancelled
sessions are the future (or were never due) and are left out of every rate.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from reminders.states import SessionStatus
from reminders.timing import zone

Outcome = Literal["confirmed", "skipped", "missed"]
DUE_STATES = (SessionStatus.CONFIRMED, SessionStatus.SKIPPED, SessionStatus.MISSED)


@dataclass(frozen=True, slots=True)
class SessionFact:
    """One session as adherence needs it."""

    local_date: date
    status: str
    phase: str
    completed_at: datetime | None = None
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class Tally:
    """Counts over some due sessions and the rate they give (None when nothing was due)."""

    confirmed: int = 0
    skipped: int = 0
    missed: int = 0

    @property
    def due(self) -> int:
        """Sessions that were due: confirmed + skipped + missed."""
        return self.confirmed + self.skipped + self.missed

    @property
    def rate(self) -> float | None:
        """confirmed / (confirmed + skipped + missed), or None if none were due."""
        return self.confirmed / self.due if self.due else None

    def add(self, status: str) -> Tally:
        """Return the tally with one more session of `status` (confirmed/skipped/missed)."""
        return Tally(
            self.confirmed + (status == "confirmed"),
            self.skipped + (status == "skipped"),
            self.missed + (status == "missed"),
        )


@dataclass(frozen=True, slots=True)
class Adherence:
    """A patient's adherence figures on a given day.

    `on_time_share`: confirmed sessions done on their planned local day, over all
    confirmed; `streak`: confirmed sessions in a row, most recent first;
    `missed_in_a_row`: missed sessions in a row, most recent first;
    `days_since_last`: days since the last confirmed session (None if none);
    `not_reminded`: sessions not done that no reminder could reach the patient about
    (`SessionStatus.NOT_REMINDED`): left out of every rate;
    `weeks`: by ISO week ('2026-W50'); `phases`: by phase name.
    """

    overall: Tally
    on_time_share: float | None
    streak: int
    missed_in_a_row: int
    days_since_last: int | None
    last_session: date | None
    weeks: dict[str, Tally]
    phases: dict[str, Tally]
    not_reminded: int = 0


def _on_time(fact: SessionFact) -> bool:
    if fact.completed_at is None:
        return True
    return fact.completed_at.astimezone(zone(fact.timezone)).date() == fact.local_date


def adherence(facts: list[SessionFact], today: date) -> Adherence:
    """Return the adherence figures of these sessions as seen on `today`."""
    due = sorted((f for f in facts if f.status in DUE_STATES), key=lambda f: f.local_date)
    overall = Tally()
    weeks: dict[str, Tally] = defaultdict(Tally)
    phases: dict[str, Tally] = defaultdict(Tally)
    for fact in due:
        overall = overall.add(fact.status)
        year, week, _ = fact.local_date.isocalendar()
        key = f"{year}-W{week:02d}"
        weeks[key] = weeks[key].add(fact.status)
        phases[fact.phase] = phases[fact.phase].add(fact.status)
    confirmed = [f for f in due if f.status == "confirmed"]
    on_time = sum(1 for f in confirmed if _on_time(f)) / len(confirmed) if confirmed else None
    streak = 0
    for fact in reversed(due):
        if fact.status != "confirmed":
            break
        streak += 1
    missed_in_a_row = 0
    for fact in reversed(due):
        if fact.status != "missed":
            break
        missed_in_a_row += 1
    last = confirmed[-1].local_date if confirmed else None
    return Adherence(
        overall=overall,
        on_time_share=on_time,
        streak=streak,
        missed_in_a_row=missed_in_a_row,
        days_since_last=(today - last).days if last else None,
        last_session=last,
        weeks=dict(weeks),
        phases=dict(phases),
        not_reminded=sum(1 for f in facts if f.status == SessionStatus.NOT_REMINDED),
    )


# The rank of a patient with nothing due: after everyone who has missed anything.
NO_RISK = "9999.1.000000.9999999"


def ranked(missed_in_a_row: int, rate: float | None, last_session: date | None) -> str:
    """A string that sorts most at risk first: more misses in a row, then a lower rate,
    then an older last session (none yet: last). It holds the date of the last session,
    not the days since it, so it keeps from one day to the next and can be stored and a
    list sorted by it."""
    misses = min(missed_in_a_row, 9999)
    last = last_session.toordinal() if last_session else 9999999
    return f"{9999 - misses:04d}.{rate if rate is not None else 1.0:.6f}.{last:07d}"


def risk_rank(figures: Adherence) -> str:
    """`ranked` of a patient's figures."""
    return ranked(figures.missed_in_a_row, figures.overall.rate, figures.last_session)
