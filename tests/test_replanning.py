"""The re-plan diff as a table: what happens to stored sessions when the plan changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pytest

from reminders.planner import PlannedSession
from reminders.replanning import diff_sessions

TODAY = date(2027, 1, 11)
ZONE = "Europe/Berlin"


@dataclass(frozen=True)
class Stored:
    id: str
    local_date: date
    status: str
    phase: str
    minutes: int
    timezone: str


def stored(row_id: str, offset: int, status: str = "planned", phase: str = "induction",
           minutes: int = 20, zone: str = ZONE) -> Stored:  # fmt: skip
    return Stored(row_id, TODAY + timedelta(days=offset), status, phase, minutes, zone)


def planned(offset: int, phase: str = "induction", minutes: int = 20) -> PlannedSession:
    return PlannedSession(TODAY + timedelta(days=offset), phase, minutes)


CASES = [
    # (what, stored, planned, cancelled ids, revised ids, added offsets, rows)
    ("nothing changes", [stored("a", 0), stored("b", 2)], [planned(0), planned(2)],
     [], [], [], ["a", "b"]),
    ("a dropped future session is cancelled", [stored("a", 0), stored("b", 2)], [planned(0)],
     ["b"], [], [], ["a"]),
    ("past planned rows are left alone", [stored("old", -3), stored("a", 1)], [planned(1)],
     [], [], [], ["a"]),
    ("done sessions are history", [stored("c", -2, "confirmed"), stored("m", -1, "missed")],
     [planned(1)], [], [], [1], [None]),
    ("a cancelled date wanted again is revived, not duplicated",
     [stored("x", 3, "cancelled")], [planned(3)], [], ["x"], [], ["x"]),
    ("a phase change revises the row", [stored("a", 2)], [planned(2, "maintenance")],
     [], ["a"], [], ["a"]),
    ("new minutes or a new zone revise the row", [stored("a", 1, zone="UTC"), stored("b", 2)],
     [planned(1), planned(2, minutes=30)], [], ["a", "b"], [], ["a", "b"]),
    ("a move is a cancel and an add", [stored("a", 1)], [planned(2)], ["a"], [], [2], [None]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rows", "plan", "cancelled", "revised", "added", "uses"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_diff(
    rows: list[Stored],
    plan: list[PlannedSession],
    cancelled: list[str],
    revised: list[str],
    added: list[int],
    uses: list[str | None],
) -> None:
    diff = diff_sessions(rows, plan, TODAY, ZONE)
    assert [r.id for r in diff.cancel] == cancelled
    assert [row_id for row_id, _ in diff.revise] == revised
    assert [(s.local_date - TODAY).days for s in diff.add] == added
    assert list(diff.rows) == uses
