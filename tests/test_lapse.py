"""The lapse decision: how far behind the plan a patient is, as a table of cases."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from reminders.lapse import LapseRule, Standing, standing
from reminders.planner import Absence, PastSession

RULE = LapseRule(overdue_after_days=3, lapsed_after_days=7)
DAY = date(2027, 1, 4)  # a Monday


def on(offset: int, status: str) -> PastSession:
    return PastSession(DAY + timedelta(days=offset), status)  # type: ignore[arg-type]


CASES = [
    # (what, sessions, today offset, counts_from offset, absences, expected standing)
    ("keeping to a four-week plan", [on(0, "confirmed"), on(28, "confirmed")], 50, None, (),
     Standing(None, 0, False, False)),
    ("nothing missed yet, long after the last session", [on(0, "confirmed")], 27, None, (),
     Standing(None, 0, False, False)),
    ("one day past the due session", [on(0, "confirmed"), on(7, "missed")], 8, None, (),
     Standing(DAY + timedelta(days=7), 1, False, False)),
    ("three days past: overdue", [on(0, "confirmed"), on(7, "missed")], 10, None, (),
     Standing(DAY + timedelta(days=7), 3, True, False)),
    ("re-planned misses do not move the due date",
     [on(0, "confirmed"), on(7, "missed"), on(9, "missed"), on(11, "missed")], 14, None, (),
     Standing(DAY + timedelta(days=7), 7, True, True)),
    ("a skipped session counts as behind, but a proper skip is not nudged",
     [on(0, "confirmed"), on(7, "skipped")], 10, None, (),
     Standing(DAY + timedelta(days=7), 3, False, False)),
    ("no nudge while the re-planned session is tomorrow",
     [on(0, "confirmed"), on(7, "missed"), on(11, "planned")], 10, None, (),
     Standing(DAY + timedelta(days=7), 3, False, False)),
    ("no nudge on the day the missed notice goes out",
     [on(0, "confirmed"), on(7, "missed"), on(9, "missed")], 10, None, (),
     Standing(DAY + timedelta(days=7), 3, False, False)),
    ("one missed weekly session is not a lapse, however long ago",
     [on(0, "confirmed"), on(7, "missed")], 15, None, (),
     Standing(DAY + timedelta(days=7), 8, True, False)),
    ("no lapse on the day of a planned session, before it ends",
     [on(0, "confirmed"), on(7, "missed"), on(9, "missed"), on(14, "planned")], 14, None, (),
     Standing(DAY + timedelta(days=7), 7, False, False)),
    ("confirming again puts the patient back on plan",
     [on(0, "confirmed"), on(7, "missed"), on(9, "confirmed")], 20, None, (),
     Standing(None, 0, False, False)),
    ("nothing before a resume counts", [on(0, "confirmed"), on(7, "missed")], 30, 29, (),
     Standing(None, 0, False, False)),
    ("a miss after the resume counts from that miss",
     [on(0, "confirmed"), on(7, "missed"), on(30, "missed")], 33, 29, (),
     Standing(DAY + timedelta(days=30), 3, True, False)),
    ("days away do not count", [on(0, "confirmed"), on(7, "missed")], 14,
     None, (Absence(DAY + timedelta(days=8), DAY + timedelta(days=12)),),
     Standing(DAY + timedelta(days=7), 2, False, False)),
    ("while away nothing is overdue", [on(0, "confirmed"), on(7, "missed")], 20,
     None, (Absence(DAY + timedelta(days=15), DAY + timedelta(days=25)),),
     Standing(DAY + timedelta(days=7), 0, False, False)),
    ("never confirmed: counted from the first session not done",
     [on(0, "missed"), on(2, "missed")], 7, None, (), Standing(DAY, 7, True, True)),
    ("an appointment nobody recorded counts as attended",
     [on(0, "confirmed"), on(7, "missed"), on(9, "unrecorded")], 20, None, (),
     Standing(None, 0, False, False)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("sessions", "today", "counts_from", "absences", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_standing(
    sessions: list[PastSession],
    today: int,
    counts_from: int | None,
    absences: tuple[Absence, ...],
    expected: Standing,
) -> None:
    resumed = DAY + timedelta(days=counts_from) if counts_from is not None else None
    result = standing(
        sessions, DAY + timedelta(days=today), RULE, counts_from=resumed, absences=absences
    )
    assert result == expected
