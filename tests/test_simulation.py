"""`reminders simulate`: each story over 200 days through the real service, on both
databases, across the change to summer time (Europe/Berlin, 2027-03-28)."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest

from reminders.runtime import Runtime
from reminders.simulation import Simulation, simulate

pytestmark = pytest.mark.both_databases
START = date(2026, 12, 7)
SUMMER_TIME = date(2027, 3, 28)

EXPECTED: dict[str, dict[str, int]] = {
    "dry": {"plan.phase_changed": 1, "reminder": 17, "session.confirmed": 17},
    # Each relapse is a line of the clinic's digest.
    "relapse": {
        "clinic.digest": 2, "plan.phase_changed": 1, "reminder": 21, "session.confirmed": 21,
    },
    # The review is sent again every two weeks while nobody decides.
    "non-responder": {
        "clinic.digest": 1, "escalation:no_response": 1, "realert:no_response": 12,
        "reminder": 86, "session.confirmed": 86,
    },
    # After the clinic is told, no more missed notices: the second miss has none.
    "misses-two": {
        "clinic.digest": 1, "escalation:missed_sessions": 1, "follow_up": 2, "missed": 1,
        "plan.phase_changed": 1, "reminder": 19, "session.confirmed": 17, "session.missed": 2,
    },
    # Made up once, nudged, the clinic told; then asked every interval until dormant.
    "stops-in-maintenance": {
        "clinic.digest": 2, "escalation:dormant": 1, "escalation:lapsed": 1, "follow_up": 2,
        "missed": 2, "overdue": 1, "plan.phase_changed": 1, "reminder": 16,
        "reminders_stopped": 1, "session.confirmed": 11, "session.missed": 5,
    },
    "pause-3-weeks": {"plan.phase_changed": 1, "reminder": 16, "session.confirmed": 16},
    "away-10-days": {"plan.phase_changed": 1, "reminder": 16, "session.confirmed": 16},
    "extra-session": {"plan.phase_changed": 1, "reminder": 16, "session.confirmed": 17},
    "burn": {
        "clinic.digest": 1, "escalation:side_effect": 1, "plan.phase_changed": 1,
        "reminder": 17, "session.confirmed": 17,
    },
    "late-blister": {
        "clinic.digest": 1, "escalation:side_effect": 1, "plan.phase_changed": 1,
        "reminder": 17, "session.confirmed": 17, "session.problem_reported": 1,
    },
    "quiet-hours-time": {"plan.phase_changed": 1, "reminder": 17, "session.confirmed": 17},
    "endpoint-deleted": {
        "escalation:unreachable": 1, "plan.phase_changed": 1, "reminder": 6,
        "session.confirmed": 6,
    },
}  # fmt: skip
# What the service refuses of what these stories' clinics do.
REFUSED = {
    "quiet-hours-time": ["reminder_time: a reminder at 22:30 falls inside the quiet hours"],
    "endpoint-deleted": ["1 patient(s) are reminded by webhook and this is the clinic's last"],
}
REMINDER_TIMES = {"quiet-hours-time": "20:30"}


# A story's result depends only on the code and the backend: each runs once per backend
# and the tests below read it, which keeps the whole file well under a minute.
_RUNS: dict[tuple[str, str], Simulation] = {}


def run(rt: Runtime, story: str) -> Simulation:
    key = (rt.engine.dialect.name, story)
    if key not in _RUNS:
        rt.settings.email_backend = "maildir"
        _RUNS[key] = simulate(rt, "tap-water-hyperhidrosis", START, 200, story, "Europe/Berlin")
    return _RUNS[key]


def days_with(result: Simulation, kind: str) -> list[date]:
    return [d.date for d in result.days if kind in d.patient or kind in d.clinic]


@pytest.mark.parametrize("story", list(EXPECTED))
def test_each_story_sends_exactly_what_the_rules_say(rt: Runtime, story: str) -> None:
    result = run(rt, story)
    # Every story starts with the patient's welcome.
    assert result.totals == {**EXPECTED[story], "welcome": 1}
    refused = [line.partition(": ")[2] for line in result.refused]
    wanted = REFUSED.get(story, [])
    assert len(refused) == len(wanted), "the service took everything else the story's people did"
    assert all(line.startswith(start) for line, start in zip(refused, wanted, strict=True))
    times = {
        at for d in result.days for kind, at in zip(d.patient, d.patient_at, strict=True)
        if kind == "reminder"
    }  # fmt: skip
    assert times == {REMINDER_TIMES.get(story, "18:00")}, "the local time holds across DST"
    reminded = days_with(result, "reminder")
    if story != "endpoint-deleted":  # no reminder reaches that patient by spring
        assert any(d < SUMMER_TIME for d in reminded) and any(d > SUMMER_TIME for d in reminded)


def test_a_dry_patient_on_four_week_maintenance_is_never_nagged(rt: Runtime) -> None:
    result = run(rt, "dry")
    reminded = days_with(result, "reminder")
    gaps = [(b - a).days for a, b in itertools.pairwise(reminded)]
    assert max(gaps) == 28
    assert not days_with(result, "overdue") and not days_with(result, "escalation:lapsed")


def test_a_non_responder_is_reviewed_not_moved_on(rt: Runtime) -> None:
    result = run(rt, "non-responder")
    assert {d.phase for d in result.days} == {"induction"}
    (review_day,) = days_with(result, "escalation:no_response")
    assert review_day == date(2027, 1, 1)  # the twelfth session, Mon/Wed/Fri from the 7th


def test_a_patient_who_stops_is_nudged_once_the_clinic_told_once_then_wound_down(
    rt: Runtime,
) -> None:
    result = run(rt, "stops-in-maintenance")
    (missed, made_up) = days_with(result, "missed")
    (nudged,) = days_with(result, "overdue")
    (told,) = days_with(result, "escalation:lapsed")
    assert missed < made_up < nudged < told
    after = [d for d in days_with(result, "reminder") if d > told]
    assert len(after) == 3  # three sessions unanswered, then dormant
    assert all((b - a).days >= 7 for a, b in itertools.pairwise(after))
    assert not [d for d in days_with(result, "follow_up") + days_with(result, "missed") if d > told]
    (stopped,) = days_with(result, "reminders_stopped")
    assert stopped == days_with(result, "escalation:dormant")[0] > after[-1]
    assert not [d for d in result.days if d.date > stopped and d.patient]


def test_a_pause_plans_nothing_inside_it_and_resuming_is_not_overdue(rt: Runtime) -> None:
    result = run(rt, "pause-3-weeks")
    paused = [d for d in result.days if d.phase == "paused"]
    assert paused[0].date == START + timedelta(days=60)
    assert paused[-1].date == START + timedelta(days=80)
    reminded = days_with(result, "reminder")
    assert not [d for d in reminded if paused[0].date <= d <= paused[-1].date]
    assert not days_with(result, "overdue")


def test_nothing_is_planned_while_the_patient_is_away(rt: Runtime) -> None:
    result = run(rt, "away-10-days")
    away = START + timedelta(days=42), START + timedelta(days=51)
    assert not [d for d in days_with(result, "reminder") if away[0] <= d <= away[1]]
    assert not days_with(result, "missed") and not days_with(result, "overdue")


def test_an_extra_session_is_recorded_on_its_own_day(rt: Runtime) -> None:
    result = run(rt, "extra-session")
    confirmed = set(days_with(result, "session.confirmed"))
    reminded = set(days_with(result, "reminder"))
    (extra,) = confirmed - reminded
    assert extra >= START + timedelta(days=21)


@pytest.mark.parametrize("story", ["burn", "late-blister"])
def test_a_side_effect_that_holds_the_plan_stops_reminders_until_the_clinic_decides(
    rt: Runtime, story: str
) -> None:
    result = run(rt, story)
    (alerted,) = days_with(result, "escalation:side_effect")
    held = [d.date for d in result.days if d.phase == "held"]
    assert held[0] == alerted
    decided = alerted + timedelta(days=3)
    assert held[-1] == decided - timedelta(days=1), "held until the decision at 10:00"
    reminded = days_with(result, "reminder")
    assert not [d for d in reminded if alerted < d <= decided], "nothing while held"
    assert [d for d in reminded if d > decided], "reminders again after the decision"
    assert not days_with(result, "missed") and not days_with(result, "escalation:missed_sessions")


def test_a_late_blister_is_stored_on_its_own_session_and_makes_no_session(rt: Runtime) -> None:
    result = run(rt, "late-blister")
    (reported,) = days_with(result, "session.problem_reported")
    confirmed = days_with(result, "session.confirmed")
    assert reported - timedelta(days=1) in confirmed, "the session of the evening before"
    assert reported not in confirmed, "no unscheduled session on the day of the report"
    assert set(confirmed) <= set(days_with(result, "reminder"))


def test_a_patient_whose_endpoint_stopped_is_never_blamed_for_what_never_reached_them(
    rt: Runtime,
) -> None:
    result = run(rt, "endpoint-deleted")
    assert days_with(result, "missed") == [] and days_with(result, "session.missed") == []
    assert days_with(result, "escalation:missed_sessions") == []
    assert days_with(result, "escalation:lapsed") == [] and days_with(result, "overdue") == []
    (unreachable,) = days_with(result, "escalation:unreachable")
    assert unreachable > START + timedelta(days=12)
