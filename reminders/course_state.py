"""Where a course stands beyond its plan: winding down when the patient stops answering,
and running out of time. Pure: the history, the protocol and the day are passed in.

    active --the clinic is told of misses or a lapse--> slowed (from `slowed_since`)
    slowed --a confirmation---------------------------> active, same phase and progress
    slowed --DORMANT_AFTER sessions unanswered---------> dormant
    dormant --a confirmation, or the clinic resumes it-> active, same phase and progress
    a short course, EXPIRES_AFTER past the last day of its full plan --> ended (expired)

Slowed, the patient is asked once a week (the planner's `slowed_since`) with no
follow-ups or missed notices. Dormant, nothing is planned or sent but one message asking
them to contact the clinic, and the clinic is told once. Acknowledging an escalation is
"seen": it changes no pace.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import date, timedelta

from reminders.planner import EnrollmentSettings, PastSession, preview
from reminders.protocols import Protocol
from reminders.states import SessionStatus

# Weekly sessions with no confirmation, skip or absence after which a slowed course
# goes dormant.
DORMANT_AFTER = 3
# A short course ends this long after the last day of its plan done in full.
EXPIRES_AFTER = timedelta(days=14)
# Statuses a patient's own word is: a skip is an answer, a miss is not.
_ANSWERED = frozenset({SessionStatus.CONFIRMED, SessionStatus.SKIPPED})


def unanswered_since(history: Iterable[PastSession], slowed_since: date) -> int:
    """Return how many sessions from `slowed_since` on were missed since the patient last
    answered (confirmed or skipped one)."""
    count = 0
    for session in sorted(history, key=lambda s: s.local_date):
        if session.local_date < slowed_since:
            continue
        if session.status in _ANSWERED:
            count = 0
        elif session.status == SessionStatus.MISSED:
            count += 1
    return count


def goes_dormant(history: Iterable[PastSession], slowed_since: date | None) -> bool:
    """Return True when a slowed course has gone DORMANT_AFTER sessions unanswered."""
    return slowed_since is not None and unanswered_since(history, slowed_since) >= DORMANT_AFTER


def is_short(protocol: Protocol) -> bool:
    """Return True for a course that ends by itself (every phase ends)."""
    return all(phase.ends for phase in protocol.phases)


def expires_on(
    protocol: Protocol, settings: EnrollmentSettings, counts_from: date | None
) -> date | None:
    """Return the day a short course ends as `expired`: the last day of its plan done in
    full from its start (from `counts_from` when it resumed after a pause, which gives
    the patient the whole course again), plus EXPIRES_AFTER. None for ongoing courses."""
    if not is_short(protocol):
        return None
    start = max(settings.start_date, counts_from or settings.start_date)
    full = preview(protocol, replace(settings, start_date=start, slowed_since=None), days=400)
    if not full.sessions:
        return None
    return full.sessions[-1].local_date + EXPIRES_AFTER
