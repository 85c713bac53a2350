"""What becomes of a delivery: whether it is still worth sending (now, later, or never),
and what a channel's answer makes of it (sent, retried, dead, expired, failed).

Pure: plain values in, a decision out; no database, no clock (`now` is passed), no I/O.
The dispatcher loads the rows, calls `decide` and `result_values`, and has the outbox
(`stores.outbox`) write the answer.

How a delivery moves from state to state is drawn in `reminders.states`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from reminders.kinds import ABOUT_THE_END, NUDGES, SESSION_BOUND, TO_THE_CLINIC
from reminders.states import DeliveryAudience, DeliveryState, EnrollmentStatus, SessionStatus
from reminders.timing import QuietHours, after_quiet_hours


@dataclass(frozen=True, slots=True)
class PatientMessageFacts:
    """What `decide` needs to know about a message for a patient.

    `session_status` and `enrollment_status` are None for a message tied to neither;
    `patient_reachable` is False when the patient unsubscribed or no longer exists.
    """

    kind: str
    expires_at: datetime | None
    patient_reachable: bool
    session_status: str | None
    enrollment_status: str | None
    zone: str
    quiet: QuietHours
    # The course winds down (`course_state`): asked once a week, nothing more.
    winding_down: bool = False


@dataclass(frozen=True, slots=True)
class Send:
    """Send it now."""


@dataclass(frozen=True, slots=True)
class Defer:
    """Not now: try again at `until` (quiet hours). Not an attempt."""

    until: datetime


@dataclass(frozen=True, slots=True)
class End:
    """Never: the delivery ends in `state` for `reason`."""

    state: DeliveryState
    reason: str


Decision = Send | Defer | End
SEND = Send()


def decide(facts: PatientMessageFacts, now: datetime) -> Decision:
    """Return whether the patient message described by `facts` goes out at `now`."""
    if not facts.patient_reachable:
        return End(DeliveryState.CANCELLED, "patient unsubscribed")
    if facts.expires_at is not None and now >= facts.expires_at:
        return End(DeliveryState.EXPIRED, "useful window passed")
    if (
        facts.session_status is not None
        and facts.kind in SESSION_BOUND
        and facts.session_status != SessionStatus.PLANNED
    ):
        return End(DeliveryState.CANCELLED, f"session {facts.session_status}")
    if (
        facts.enrollment_status is not None
        and facts.enrollment_status != EnrollmentStatus.ACTIVE
        and facts.kind not in ABOUT_THE_END
    ):
        return End(DeliveryState.CANCELLED, f"enrollment {facts.enrollment_status}")
    if facts.winding_down and facts.kind in NUDGES:
        return End(DeliveryState.CANCELLED, "the course winds down: weekly reminders only")
    resume = after_quiet_hours(now, facts.zone, facts.quiet)
    if resume <= now:
        return SEND
    if facts.expires_at is not None and resume >= facts.expires_at:
        return End(DeliveryState.EXPIRED, "quiet hours until too late")
    return Defer(resume)


def address_cut_off(audience: str, outcome: Outcome | None) -> bool:
    """Return True if a message to a patient found their address refused for good: no
    reminder can reach them there (`services.reachability`)."""
    refused = outcome is not None and outcome.status == "failed" and outcome.address_refused
    return refused and audience == DeliveryAudience.PATIENT


def undeliverable_cause(
    kind: str, channel: str, state: str, error: str | None, told_already: bool
) -> str | None:
    """Return the cause to tell the clinic about when a delivery ends in `state`, or None.

    A delivery that ends failed or dead leaves a patient without a message, so the clinic
    hears of it, once per cause: the cause is the channel and the error without its
    details (`HTTP 500`, `SMTP 550 ...`, `internal error`), so a broken mail server makes
    one alert, not one per message. Not for messages to the clinic itself, nor when the
    clinic was already told by other means (its endpoint was disabled or is failing).
    """
    if state not in (DeliveryState.FAILED, DeliveryState.DEAD) or told_already:
        return None
    if kind in TO_THE_CLINIC:
        return None
    summary = (error or "unknown error").split(": ", 1)[0].strip()
    if summary.startswith("SMTP "):
        # A mail server's text often quotes the recipient: the reply code is the cause.
        summary = " ".join(summary.split()[:2])
    return f"{channel}: {summary}"


# Standard Webhooks' suggested schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
RETRY_DELAYS_S: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
JITTER = 0.1
ERROR_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a channel made of one message.

    sent: accepted; retry: try again later (`retry_after` seconds if the receiver asked);
    failed: permanent, do not retry; gone: the endpoint said 410, disable it; deferred:
    not tried (its destination is busy with slow requests), try in `retry_after` seconds
    without counting an attempt. `address_refused`: the mail server refused the
    recipient's address for good (a 5xx at RCPT or DATA, or no SMTPUTF8 for it).
    """

    status: Literal["sent", "retry", "failed", "gone", "deferred"]
    error: str | None = None
    retry_after: float | None = None
    address_refused: bool = False


def retry_delay(attempts: int, rand: Callable[[], float] = random.random) -> timedelta | None:
    """Return the wait after the `attempts`-th failed attempt, jittered by +-10 %, or
    None when the schedule is used up."""
    if attempts < 1 or attempts > len(RETRY_DELAYS_S):
        return None
    base = RETRY_DELAYS_S[attempts - 1]
    return timedelta(seconds=base * (1 + JITTER * (2 * rand() - 1)))


def result_values(
    attempts: int,
    expires_at: datetime | None,
    outcome: Outcome,
    now: datetime,
    rand: Callable[[], float] = random.random,
) -> dict[str, Any]:
    """Return the column values that record `outcome` for a claimed delivery, its
    `attempts`-th, that is useful until `expires_at`.

    A retry that the schedule has no room for makes the delivery dead; one that would
    land after the delivery's useful window makes it expired.
    """
    error = outcome.error[:ERROR_LIMIT] if outcome.error else None
    done: dict[str, Any] = {"lease_until": None, "last_error": error}
    if outcome.status == "sent":
        return {**done, "state": DeliveryState.SENT, "sent_at": now}
    if outcome.status in ("failed", "gone"):
        return {**done, "state": DeliveryState.FAILED}
    if outcome.status == "deferred":
        wait = timedelta(seconds=outcome.retry_after or 0)
        return {
            **done,
            "state": DeliveryState.PENDING,
            "next_attempt_at": now + wait,
            "attempts": attempts - 1,
        }
    delay = retry_delay(attempts, rand)
    if delay is None:
        return {**done, "state": DeliveryState.DEAD}
    if outcome.retry_after is not None:
        delay = max(delay, timedelta(seconds=outcome.retry_after))
    next_attempt = now + delay
    if expires_at is not None and next_attempt >= expires_at:
        return {**done, "state": DeliveryState.EXPIRED}
    return {**done, "state": DeliveryState.PENDING, "next_attempt_at": next_attempt}
