from __future__ import annotations

import itertools
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from reminders.planner import (
    Absence,
    AssumedResponse,
    EnrollmentSettings,
    PastSession,
    ReviewDecision,
    allowed_weekdays,
    plan,
    preview,
)
from reminders.protocols import Protocol
from reminders.states import SessionStatus

MON = date(2026, 12, 7)  # a Monday


def dates(result: object) -> list[str]:
    return [s.local_date.isoformat() for s in result.sessions]  # type: ignore[attr-defined]


def confirmed(*days: date, hdss: int | None = None) -> list[PastSession]:
    return [PastSession(d, SessionStatus.CONFIRMED, hdss) for d in days]


def test_tap_water_preview_is_three_a_week_then_weekly_then_longer_while_dry(
    protocols: dict[str, Protocol],
) -> None:
    result = preview(
        protocols["tap-water-hyperhidrosis"],
        EnrollmentSettings(MON),
        days=90,
        response=AssumedResponse(dry_after=3),
    )
    assert dates(result) == [
        "2026-12-07", "2026-12-09", "2026-12-11", "2026-12-14", "2026-12-16", "2026-12-18",
        "2026-12-25", "2027-01-01", "2027-01-08", "2027-01-22", "2027-02-05", "2027-02-19",
    ]  # fmt: skip
    assert [c.reason for c in result.changes] == ["dry"]
    assert {s.phase for s in result.sessions[:6]} == {"induction"}
    assert {s.phase for s in result.sessions[6:]} == {"maintenance"}


def test_a_non_responder_stays_in_induction_with_a_review_point_after_twelve(
    protocols: dict[str, Protocol],
) -> None:
    result = preview(
        protocols["tap-water-hyperhidrosis"],
        EnrollmentSettings(MON),
        days=40,
        response=AssumedResponse(never_dry=True),
    )
    assert {s.phase for s in result.sessions} == {"induction"}
    assert len(result.sessions) == 18  # reminders go on at three a week
    (review,) = result.changes
    assert (review.reason, review.from_phase, review.to_phase) == (
        "no_response",
        "induction",
        "induction",
    )
    assert review.on == result.sessions[11].local_date


def _non_responder(days: int) -> list[PastSession]:
    return confirmed(*(MON + timedelta(days=d) for d in range(0, days, 2)), hdss=4)


def test_an_open_review_is_reported_until_a_clinician_decides(
    protocols: dict[str, Protocol],
) -> None:
    protocol = protocols["tap-water-hyperhidrosis"]
    history = _non_responder(24)  # twelve sessions, HDSS 4 each
    today = MON + timedelta(days=25)
    waiting = plan(protocol, EnrollmentSettings(MON), history, today)
    assert waiting.phase == "induction"
    assert waiting.review == ("no response after 12 induction sessions (2026-12-29)",)
    assert waiting.sessions  # reminders continue


def test_review_decisions_continue_move_on_or_end_the_course(
    protocols: dict[str, Protocol],
) -> None:
    protocol = protocols["tap-water-hyperhidrosis"]
    history = _non_responder(24)
    today = MON + timedelta(days=25)

    def decided(action: str) -> object:
        decision = ReviewDecision(today, action)  # type: ignore[arg-type]
        return plan(protocol, EnrollmentSettings(MON, decisions=(decision,)), history, today)

    going_on = decided("continue")
    assert (going_on.phase, going_on.review) == ("induction", ())  # type: ignore[attr-defined]
    moved = decided("move_on")
    assert (moved.phase, moved.review) == ("maintenance", ())  # type: ignore[attr-defined]
    ended = decided("end")
    assert ended.completed and ended.sessions == ()  # type: ignore[attr-defined]


def test_continuing_asks_again_after_another_block(protocols: dict[str, Protocol]) -> None:
    protocol = protocols["tap-water-hyperhidrosis"]
    decision = ReviewDecision(MON + timedelta(days=23), "continue")
    history = _non_responder(48)  # 24 sessions
    result = plan(
        protocol, EnrollmentSettings(MON, decisions=(decision,)), history, MON + timedelta(days=49)
    )
    assert [c.on for c in result.changes if c.is_review] == [
        MON + timedelta(days=22),
        MON + timedelta(days=46),
    ]
    assert result.review


def test_without_weekdays_an_enrollment_uses_its_protocols_default_weekdays(
    protocols: dict[str, Protocol],
) -> None:
    sunday = date(2026, 12, 13)
    result = preview(protocols["dexamethasone-tendinopathy"], EnrollmentSettings(sunday), 30)
    assert result.sessions[0].local_date == sunday + timedelta(days=1)
    assert all(s.local_date.weekday() < 5 for s in result.sessions)


def test_nothing_is_planned_while_the_patient_is_away(protocols: dict[str, Protocol]) -> None:
    away = Absence(MON + timedelta(days=2), MON + timedelta(days=11))
    result = preview(
        protocols["tap-water-hyperhidrosis"], EnrollmentSettings(MON, absences=(away,)), 21
    )
    assert dates(result)[:3] == ["2026-12-07", "2026-12-21", "2026-12-23"]


def test_a_slowed_patient_is_planned_on_the_first_allowed_weekday_after_the_last_not_done(
    protocols: dict[str, Protocol],
) -> None:
    protocol = protocols["tap-water-hyperhidrosis"]
    history = [*confirmed(MON), PastSession(MON + timedelta(days=2), SessionStatus.MISSED)]
    today = MON + timedelta(days=3)
    slowed = EnrollmentSettings(MON, frozenset(range(7)), slowed_since=today)
    first = plan(protocol, slowed, history, today).sessions[0]
    assert first.local_date == MON + timedelta(days=7)  # the Monday after the missed Wednesday
    mon_wed = EnrollmentSettings(MON, frozenset({2, 4}), slowed_since=today)
    assert plan(protocol, mon_wed, history, today).sessions[0].local_date == MON + timedelta(days=9)
    history.append(PastSession(today, SessionStatus.CONFIRMED))
    again = plan(protocol, slowed, history, today + timedelta(days=1))
    # Confirmed: back to the plan's pace (three a week, the missed one counted).
    assert again.sessions[0].local_date == MON + timedelta(days=7)
    assert again.sessions[1].local_date == MON + timedelta(days=9)


def test_each_shipped_course_plan_is_pinned(protocols: dict[str, Protocol]) -> None:
    expected = {
        "tap-water-fixed-schedule": [
            "2026-12-07", "2026-12-08", "2026-12-10", "2026-12-13", "2026-12-16",
            "2026-12-21", "2026-12-28", "2027-01-04", "2027-01-11",
        ],
        "glycopyrrolate-hyperhidrosis": ["2026-12-07", "2026-12-14", "2026-12-21", "2026-12-28"],
        "dexamethasone-tendinopathy": [  # weekdays only: the protocol's default
            "2026-12-07", "2026-12-09", "2026-12-11", "2026-12-14", "2026-12-16", "2026-12-18",
        ],
        "dexamethasone-plantar-heel": [
            "2026-12-07", "2026-12-10", "2026-12-14", "2026-12-17", "2026-12-24", "2026-12-31",
        ],
        "magnesium-sulphate-spasticity": [
            "2026-12-07", "2026-12-10", "2026-12-14", "2026-12-17",
            "2026-12-21", "2026-12-24", "2026-12-28", "2026-12-31",
        ],
        "sports-injury-short-course": [
            "2026-12-07", "2026-12-09", "2026-12-11", "2026-12-13", "2026-12-15",
        ],
    }  # fmt: skip
    days = {"tap-water-fixed-schedule": 42, "glycopyrrolate-hyperhidrosis": 28}
    for protocol_id, wanted in expected.items():
        result = preview(protocols[protocol_id], EnrollmentSettings(MON), days.get(protocol_id, 90))
        assert dates(result) == wanted, protocol_id


def test_plantar_heel_taper_moves_from_twice_weekly_to_weekly(
    protocols: dict[str, Protocol],
) -> None:
    result = preview(protocols["dexamethasone-plantar-heel"], EnrollmentSettings(MON), 90)
    assert [s.phase for s in result.sessions] == ["twice-weekly"] * 4 + ["weekly"] * 2
    assert result.changes[-1].to_phase is None  # the course ends after six visits


def test_first_session_falls_on_start_date(protocols: dict[str, Protocol]) -> None:
    wednesday = date(2026, 12, 9)
    result = preview(protocols["tap-water-hyperhidrosis"], EnrollmentSettings(wednesday), 7)
    assert result.sessions[0].local_date == wednesday


def test_a_start_on_a_day_the_protocol_does_not_use_moves_to_its_next_day(
    protocols: dict[str, Protocol],
) -> None:
    tuesday = date(2026, 12, 8)  # tap water's default weekdays are Mon/Wed/Fri
    result = preview(protocols["tap-water-hyperhidrosis"], EnrollmentSettings(tuesday), 7)
    assert result.sessions[0].local_date == date(2026, 12, 9)


def test_first_session_moves_off_an_excluded_start_weekday(
    protocols: dict[str, Protocol],
) -> None:
    sunday = date(2026, 12, 6)
    weekdays = frozenset({0, 2, 4})
    result = preview(protocols["tap-water-hyperhidrosis"], EnrollmentSettings(sunday, weekdays), 7)
    assert result.sessions[0].local_date == MON
    assert all(s.local_date.weekday() in weekdays for s in result.sessions)


def test_three_a_week_on_any_day_is_spread_not_bunched(protocols: dict[str, Protocol]) -> None:
    result = preview(protocols["tap-water-hyperhidrosis"], EnrollmentSettings(MON), 14)
    assert dates(result)[:3] == ["2026-12-07", "2026-12-09", "2026-12-11"]


def test_three_allowed_adjacent_days_still_give_three_a_week(
    protocols: dict[str, Protocol],
) -> None:
    result = preview(
        protocols["tap-water-hyperhidrosis"], EnrollmentSettings(MON, frozenset({0, 1, 2})), 7
    )
    assert dates(result) == ["2026-12-07", "2026-12-08", "2026-12-09"]


def test_missed_session_does_not_count_toward_induction(protocols: dict[str, Protocol]) -> None:
    protocol = protocols["dexamethasone-tendinopathy"]  # ends after 6 confirmed sessions
    history = [
        *confirmed(MON, MON + timedelta(days=2)),
        PastSession(MON + timedelta(days=4), SessionStatus.MISSED),
    ]
    today = MON + timedelta(days=5)
    result = plan(protocol, EnrollmentSettings(MON), history, today, horizon_days=30)
    assert len(result.sessions) == 4  # six in all still needed


def test_missed_session_is_replaced_at_the_earliest_allowed_day(
    protocols: dict[str, Protocol],
) -> None:
    weekdays = frozenset({0, 2, 4})
    history = [*confirmed(MON), PastSession(MON + timedelta(days=2), SessionStatus.MISSED)]
    thursday = MON + timedelta(days=3)
    result = plan(
        protocols["tap-water-hyperhidrosis"], EnrollmentSettings(MON, weekdays), history, thursday
    )
    assert result.sessions[0].local_date == MON + timedelta(days=4)  # Friday


def test_skipped_today_keeps_today_free(protocols: dict[str, Protocol]) -> None:
    history = [PastSession(MON, SessionStatus.SKIPPED)]
    result = plan(protocols["glycopyrrolate-hyperhidrosis"], EnrollmentSettings(MON), history, MON)
    assert result.sessions[0].local_date == MON + timedelta(days=1)


def test_maintenance_relapse_resets_interval_and_repeated_relapse_returns_to_induction(
    protocols: dict[str, Protocol],
) -> None:
    protocol = protocols["tap-water-hyperhidrosis"]
    induction_days = [MON + timedelta(days=d) for d in (0, 2, 4, 7, 9, 11)]
    history = confirmed(*induction_days, hdss=1)
    maintenance = [MON + timedelta(days=d) for d in (18, 25, 32)]
    history += confirmed(*maintenance, hdss=1)
    lengthened = plan(protocol, EnrollmentSettings(MON), history, MON + timedelta(days=33))
    assert lengthened.phase == "maintenance"
    assert lengthened.interval_days == 14

    history += confirmed(MON + timedelta(days=46), hdss=3)
    reset = plan(protocol, EnrollmentSettings(MON), history, MON + timedelta(days=47))
    assert reset.interval_days == 7
    assert reset.phase == "maintenance"

    history += confirmed(MON + timedelta(days=53), hdss=4)
    back = plan(protocol, EnrollmentSettings(MON), history, MON + timedelta(days=54))
    assert back.phase == "induction"
    assert back.changes[-1].reason == "relapse"


def test_finished_course_is_completed_with_no_sessions(protocols: dict[str, Protocol]) -> None:
    protocol = protocols["sports-injury-short-course"]
    history = confirmed(*(MON + timedelta(days=2 * i) for i in range(5)))
    result = plan(protocol, EnrollmentSettings(MON), history, MON + timedelta(days=10))
    assert result.completed
    assert result.sessions == ()


protocol_ids = st.sampled_from(
    [
        "tap-water-hyperhidrosis",
        "tap-water-fixed-schedule",
        "glycopyrrolate-hyperhidrosis",
        "dexamethasone-tendinopathy",
        "dexamethasone-plantar-heel",
        "magnesium-sulphate-spasticity",
        "sports-injury-short-course",
    ]
)
histories = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=120),
        st.sampled_from(["confirmed", "skipped", "missed", "planned", "cancelled"]),
        st.one_of(st.none(), st.integers(min_value=1, max_value=4)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    protocol_id=protocol_ids,
    raw_history=histories,
    weekdays=st.one_of(st.none(), st.frozensets(st.integers(0, 6), min_size=1)),
    start_offset=st.integers(min_value=0, max_value=40),
    today_offset=st.integers(min_value=0, max_value=140),
    horizon=st.integers(min_value=1, max_value=60),
    dry_after=st.one_of(st.none(), st.integers(min_value=1, max_value=20)),
)
def test_hard_caps_hold_for_any_history(
    protocols: dict[str, Protocol],
    protocol_id: str,
    raw_history: list[tuple[int, str, int | None]],
    weekdays: frozenset[int] | None,
    start_offset: int,
    today_offset: int,
    horizon: int,
    dry_after: int | None,
) -> None:
    protocol = protocols[protocol_id]
    start = MON + timedelta(days=start_offset)
    today = MON + timedelta(days=today_offset)
    by_day: dict[date, PastSession] = {}
    for offset, status, hdss in raw_history:
        day = MON + timedelta(days=offset)
        if day < today or status in ("planned", "cancelled", "skipped"):
            by_day[day] = PastSession(day, status, hdss)  # type: ignore[arg-type]
    history = list(by_day.values())
    response = AssumedResponse(dry_after) if dry_after else None
    result = plan(protocol, EnrollmentSettings(start, weekdays), history, today, horizon, response)
    planned = [s.local_date for s in result.sessions]
    done = [s.local_date for s in history if s.status == "confirmed"]
    blocked = {s.local_date for s in history if s.status in ("skipped", "missed")}
    assert planned == sorted(set(planned)), "at most one session a day, in order"
    assert not set(planned) & set(done), "never on a day that already has a session"
    assert not set(planned) & blocked, "never on a skipped or missed day"
    assert all(d >= today for d in planned), "never in the past"
    assert all(d < today + timedelta(days=horizon) for d in planned), "within the horizon"
    assert all(d >= start for d in planned), "never before the start date"
    allowed = (
        weekdays if weekdays is not None else allowed_weekdays(protocol, EnrollmentSettings(start))
    )
    assert all(d.weekday() in allowed for d in planned), "never on an excluded weekday"
    everything = sorted(done + planned)
    for d in planned:
        in_window = sum(1 for other in everything if d - timedelta(days=6) <= other <= d)
        assert in_window <= protocol.max_per_week, f"more than max_per_week around {d}"


@settings(max_examples=100, deadline=None)
@given(protocol_id=protocol_ids, today_offset=st.integers(0, 60))
def test_replanning_is_deterministic(
    protocols: dict[str, Protocol], protocol_id: str, today_offset: int
) -> None:
    protocol = protocols[protocol_id]
    today = MON + timedelta(days=today_offset)
    history = confirmed(*(MON + timedelta(days=d) for d in range(0, today_offset, 3)), hdss=2)
    first = plan(protocol, EnrollmentSettings(MON), history, today)
    again = plan(protocol, EnrollmentSettings(MON), list(reversed(history)), today)
    assert first == again


def test_a_missed_session_counts_toward_the_weekly_cap_so_retries_keep_the_pace(
    protocols: dict[str, Protocol],
) -> None:
    protocol = protocols["glycopyrrolate-hyperhidrosis"]  # at most one a week
    history = [*confirmed(MON), PastSession(MON + timedelta(days=7), SessionStatus.MISSED)]
    result = plan(protocol, EnrollmentSettings(MON), history, MON + timedelta(days=8))
    assert result.sessions[0].local_date == MON + timedelta(days=14)


def test_an_unrecorded_appointment_keeps_the_pace_but_does_not_count(
    protocols: dict[str, Protocol],
) -> None:
    protocol = protocols["dexamethasone-tendinopathy"]  # six sessions, two days apart
    history = [*confirmed(MON), PastSession(MON + timedelta(days=2), SessionStatus.UNRECORDED)]
    result = plan(protocol, EnrollmentSettings(MON), history, MON + timedelta(days=3), 30)
    assert result.sessions[0].local_date == MON + timedelta(days=4)  # not pulled to today
    assert len(result.sessions) == 5  # the unrecorded one is still owed


def test_the_fixed_schedule_moves_on_only_after_two_dry_reports_and_reviews_a_non_responder(
    protocols: dict[str, Protocol],
) -> None:
    protocol = protocols["tap-water-fixed-schedule"]
    never = preview(protocol, EnrollmentSettings(MON), 200, AssumedResponse(never_dry=True))
    assert {s.phase for s in never.sessions} == {"induction"}  # no induction-maintenance loop
    reviews = [c for c in never.changes if c.is_review]
    assert [c.on for c in reviews] == [MON + timedelta(days=21)]  # after the 7th, day 22
    after = [s.local_date for s in never.sessions if s.local_date > MON + timedelta(days=21)]
    assert after[0] == MON + timedelta(days=28)  # weekly until a clinician decides
    assert all((b - a).days == 7 for a, b in itertools.pairwise(after))
    dry = preview(protocol, EnrollmentSettings(MON), 60, AssumedResponse(dry_after=6))
    assert next((c.on, c.reason) for c in dry.changes) == (MON + timedelta(days=21), "dry")


def test_glycopyrrolate_opens_a_review_after_six_sessions_without_a_dry_report(
    protocols: dict[str, Protocol],
) -> None:
    protocol = protocols["glycopyrrolate-hyperhidrosis"]
    never = preview(protocol, EnrollmentSettings(MON), 120, AssumedResponse(never_dry=True))
    assert [c.on for c in never.changes if c.is_review] == [MON + timedelta(days=35)]
    dry = preview(protocol, EnrollmentSettings(MON), 120, AssumedResponse(dry_after=5))
    assert not [c for c in dry.changes if c.is_review]
    history = confirmed(*(MON + timedelta(days=7 * i) for i in range(6)), hdss=4)
    decided = EnrollmentSettings(
        MON, decisions=(ReviewDecision(MON + timedelta(days=35), "continue"),)
    )
    again = plan(
        protocol, decided, history, MON + timedelta(days=36), 60, AssumedResponse(never_dry=True)
    )
    # Continue: another six weekly sessions before the next review.
    assert not again.review
    assert [c.on for c in again.changes if c.is_review] == [
        MON + timedelta(days=35),
        MON + timedelta(days=77),
    ]


def test_a_relapse_in_maintenance_brings_the_next_session_forward(
    protocols: dict[str, Protocol],
) -> None:
    protocol = protocols["tap-water-hyperhidrosis"]
    everyday = frozenset(range(7))
    induction = [MON + timedelta(days=2 * i) for i in range(6)]
    history = confirmed(*induction, hdss=1)
    in_maintenance = plan(protocol, EnrollmentSettings(MON, everyday), history, induction[-1])
    assert in_maintenance.phase == "maintenance"
    relapse_day = induction[-1] + timedelta(days=7)
    history += confirmed(relapse_day, hdss=4)
    after = plan(
        protocol, EnrollmentSettings(MON, everyday), history, relapse_day + timedelta(days=1)
    )
    assert after.sessions[0].local_date == relapse_day + timedelta(days=3)


def test_no_more_appointments_are_booked_while_two_are_unrecorded(
    protocols: dict[str, Protocol],
) -> None:
    protocol = protocols["dexamethasone-tendinopathy"]
    history = [
        *confirmed(MON),
        PastSession(MON + timedelta(days=2), SessionStatus.UNRECORDED),
        PastSession(MON + timedelta(days=4), SessionStatus.UNRECORDED),
    ]
    today = MON + timedelta(days=5)
    assert plan(protocol, EnrollmentSettings(MON), history, today).sessions == ()
    history[-1] = PastSession(MON + timedelta(days=4), SessionStatus.CONFIRMED)
    assert plan(protocol, EnrollmentSettings(MON), history, today).sessions
