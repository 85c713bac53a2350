"""`reminders simulate`: how every shipped protocol's course ends for the patients a nurse
worries about, checked by invariants (the stories are defined in `simulation.STORIES`).
Every protocol on SQLite; one representative per story on PostgreSQL. 120 days hold every
story's turn (the fixed schedule's old loop came round within 40); `reminders simulate`
runs 200 by default."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest

from reminders.runtime import Runtime
from reminders.simulation import Simulation, simulate
from tests.conftest import PROTOCOLS_DIR

START = date(2027, 1, 4)
DAYS = 120
PROTOCOLS = sorted(p.stem for p in PROTOCOLS_DIR.glob("*.toml"))
# Protocols that end in an ongoing maintenance phase.
MAINTAINED = ["glycopyrrolate-hyperhidrosis", "tap-water-fixed-schedule", "tap-water-hyperhidrosis"]
PAIN = ["dexamethasone-plantar-heel", "dexamethasone-tendinopathy", "sports-injury-short-course"]
# The one protocol each story also runs on PostgreSQL.
ON_POSTGRESQL = {
    "non-responder": "tap-water-fixed-schedule",
    "drop-out": "sports-injury-short-course",
    "lapsed-for-good": "tap-water-hyperhidrosis",
    "misses-one-in-maintenance": "glycopyrrolate-hyperhidrosis",
    "worsening-pain": "dexamethasone-tendinopathy",
}
# What tells the clinic a patient stopped, by whom the course is given.
STOPPED = ("escalation:missed_sessions", "escalation:lapsed", "escalation:unrecorded")
FINAL = ("reminders_stopped", "completed")
_RUNS: dict[tuple[str, str, str], Simulation] = {}


def cases(story: str, protocols: list[str] = PROTOCOLS) -> list[object]:
    """Each protocol on SQLite, and the story's representative on PostgreSQL too."""
    found: list[object] = [pytest.param("sqlite", p, id=f"sqlite-{p}") for p in protocols]
    found.append(pytest.param("postgresql", ON_POSTGRESQL[story], id="postgresql"))
    return found


def run(rt: Runtime, protocol: str, story: str) -> Simulation:
    key = (rt.engine.dialect.name, protocol, story)
    if key not in _RUNS:
        rt.settings.email_backend = "maildir"
        _RUNS[key] = simulate(rt, protocol, START, DAYS, story, "Europe/Berlin")
    return _RUNS[key]


def patient_messages(result: Simulation, after: date, until: date | None = None) -> list[str]:
    return [
        kind
        for day in result.days
        if day.date > after and (until is None or day.date <= until)
        for kind in day.patient
    ]


@pytest.mark.parametrize(("backend", "protocol"), cases("non-responder"))
def test_a_non_responder_is_reviewed_and_never_loops(rt: Runtime, protocol: str) -> None:
    result = run(rt, protocol, "non-responder")
    clinic = {kind for day in result.days for kind in day.clinic}
    assert clinic & {"escalation:no_response", "escalation:no_improvement"}
    phases = [d.phase for d in result.days]
    changes = [(a, b) for a, b in itertools.pairwise(phases) if a != b]
    assert ("maintenance", "induction") not in changes
    assert len({b for _, b in changes}) == len(changes), "no phase entered twice"


@pytest.mark.parametrize("story", ["drop-out", "lapsed-for-good"])
@pytest.mark.parametrize(("backend", "protocol"), cases("drop-out"))
def test_a_patient_who_stops_gets_one_final_message_and_little_before_it(
    rt: Runtime, protocol: str, story: str, backend: str
) -> None:
    if backend == "postgresql" and protocol != ON_POSTGRESQL[story]:
        protocol = ON_POSTGRESQL[story]
    result = run(rt, protocol, story)
    told = [d.date for d in result.days if set(d.clinic) & set(STOPPED)]
    sent = [kind for day in result.days for kind in day.patient]
    assert sent[-1] in FINAL, "the course ends with one message"
    assert sum(1 for kind in sent if kind in FINAL) == 1
    if told:
        assert len(patient_messages(result, told[0] - timedelta(days=1))) <= 12
    else:  # a course that ended before the patient stopped
        assert sent[-1] == "completed"


@pytest.mark.parametrize(("backend", "protocol"), cases("misses-one-in-maintenance", MAINTAINED))
def test_one_miss_in_maintenance_is_made_up_once_without_a_flood(
    rt: Runtime, protocol: str
) -> None:
    result = run(rt, protocol, "misses-one-in-maintenance")
    (missed,) = [d.date for d in result.days if "session.missed" in d.clinic]
    miss = missed - timedelta(days=1)
    assert len(patient_messages(result, miss, miss + timedelta(days=7))) <= 4
    assert not any("escalation:lapsed" in d.clinic for d in result.days)


@pytest.mark.parametrize(("backend", "protocol"), cases("worsening-pain", PAIN))
def test_pain_that_gets_worse_tells_the_clinic(rt: Runtime, protocol: str) -> None:
    result = run(rt, protocol, "worsening-pain")
    # When the course turns worse (pain 4), and again, urgent, at pain 8: not at the end.
    turned, urgent = [d.date for d in result.days if "escalation:worsening" in d.clinic]
    assert turned < urgent < START + timedelta(days=14)
