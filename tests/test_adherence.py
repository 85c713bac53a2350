from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from reminders.adherence import NO_RISK, SessionFact, adherence, risk_rank

MON = date(2026, 12, 7)


def fact(offset: int, status: str, phase: str = "induction", late: bool = False) -> SessionFact:
    day = MON + timedelta(days=offset)
    completed = None
    if status == "confirmed":
        completed = datetime.combine(day + timedelta(days=late), datetime.min.time(), UTC)
        completed += timedelta(hours=18)
    return SessionFact(day, status, phase, completed, "UTC")


def test_rate_counts_only_sessions_already_due() -> None:
    figures = adherence(
        [fact(0, "confirmed"), fact(2, "missed"), fact(4, "skipped"), fact(7, "planned"),
         fact(9, "cancelled")],
        MON + timedelta(days=6),
    )  # fmt: skip
    assert (figures.overall.confirmed, figures.overall.skipped, figures.overall.missed) == (1, 1, 1)
    assert figures.overall.rate == 1 / 3


def test_streak_and_misses_in_a_row_count_from_the_most_recent() -> None:
    figures = adherence(
        [fact(0, "missed"), fact(2, "confirmed"), fact(4, "confirmed"), fact(7, "confirmed")],
        MON + timedelta(days=8),
    )
    assert figures.streak == 3
    assert figures.missed_in_a_row == 0
    lapsed = adherence([fact(0, "confirmed"), fact(2, "missed"), fact(4, "missed")], MON)
    assert lapsed.streak == 0
    assert lapsed.missed_in_a_row == 2


def test_days_since_last_session_and_on_time_share() -> None:
    figures = adherence(
        [fact(0, "confirmed"), fact(2, "confirmed", late=True), fact(4, "missed")],
        MON + timedelta(days=12),
    )
    assert figures.days_since_last == 10
    assert figures.last_session == MON + timedelta(days=2)
    assert figures.on_time_share == 0.5


def test_weekly_and_phase_series() -> None:
    figures = adherence(
        [fact(0, "confirmed"), fact(2, "missed"), fact(7, "confirmed", "maintenance")],
        MON + timedelta(days=8),
    )
    assert figures.weeks["2026-W50"].rate == 0.5
    assert figures.weeks["2026-W51"].rate == 1.0
    assert figures.phases["induction"].missed == 1
    assert figures.phases["maintenance"].confirmed == 1


def test_nothing_due_has_no_rate_and_sorts_as_low_risk() -> None:
    empty = adherence([fact(3, "planned")], MON)
    assert empty.overall.rate is None
    lapsed = adherence([fact(0, "missed"), fact(2, "missed")], MON + timedelta(days=5))
    assert sorted([empty, lapsed], key=risk_rank)[0] is lapsed
    assert risk_rank(empty) == NO_RISK
