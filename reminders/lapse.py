"""Has a patient fallen behind their plan? A pure decision, with the day passed in.

Counted from the date the patient was *due*: the first session after the last confirmed
one that was not done. Re-planning a missed session to a later day does not move that
date, and a dry patient whose plan spaces sessions four weeks apart is never behind
while they keep to it (a count of days since the last session would nag them).

Nothing before `counts_from` (the day a paused enrollment resumed) counts, and days the
patient is away do not add to how far behind they are.

A nudge must add something: none after a proper skip (the patient did what they were
asked), none while the re-planned session is today or tomorrow (its reminder says it),
none on the day a missed notice goes out. A lapse needs two sessions missed in a row, and
is never raised on the day of a planned session before that day ends: the patient may
still do it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from reminders.planner import Absence, PastSession
from reminders.states import SessionStatus

NOT_DONE = frozenset({"missed", "skipped"})
# An appointment at the clinic that staff did not record counts as attended, as it does
# for the plan's pace: the clinic has been told to record it, not that the patient lapsed.
DONE = frozenset({"confirmed", "unrecorded"})


@dataclass(frozen=True, slots=True)
class LapseRule:
    """How many days past the due date the patient is nudged, and the clinic told."""

    overdue_after_days: int
    lapsed_after_days: int


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a patient stands against their plan on one day.

    `due_since` is the date of the first session not done since the last confirmed one
    (None when the patient is keeping to the plan); `days_past` the days since it,
    less the days away.
    """

    due_since: date | None
    days_past: int
    overdue: bool
    lapsed: bool


ON_PLAN = Standing(None, 0, False, False)


def standing(
    sessions: Iterable[PastSession],
    today: date,
    rule: LapseRule,
    *,
    counts_from: date | None = None,
    absences: Iterable[Absence] = (),
) -> Standing:
    """Return how far behind the plan the patient is on `today`."""
    history = sorted(sessions, key=lambda s: s.local_date)
    confirmed = [s.local_date for s in history if s.status in DONE]
    after = max(confirmed) if confirmed else date.min
    if counts_from is not None and counts_from - timedelta(days=1) > after:
        after = counts_from - timedelta(days=1)
    behind = [s for s in history if s.status in NOT_DONE and s.local_date > after]
    if not behind:
        return ON_PLAN
    due = behind[0].local_date
    away = [a for a in absences if a.last >= due and a.first <= today]
    if any(a.covers(today) for a in away):
        return Standing(due, 0, False, False)
    days = sum(
        1
        for offset in range(1, (today - due).days + 1)
        if not any(a.covers(due + timedelta(days=offset)) for a in away)
    )
    latest = behind[-1]
    planned = {s.local_date for s in history if s.status == SessionStatus.PLANNED}
    coming = bool(planned & {today, today + timedelta(days=1)})
    nudge = latest.status == SessionStatus.MISSED and latest.local_date < today - timedelta(days=1)
    missed = sum(1 for s in behind if s.status == SessionStatus.MISSED)
    return Standing(
        due,
        days,
        overdue=days >= rule.overdue_after_days and nudge and not coming,
        lapsed=days >= rule.lapsed_after_days and missed >= 2 and today not in planned,
    )
