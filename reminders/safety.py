"""Safety and reachability: which reports hold a plan, whether a patient can be reached
at all, and how urgent an escalation is. Pure: the services act on the answers.

No source text gives a rule for holding a plan; DESIGN.md's side-effect rule (blistering
or a burn alerts the clinic at once) is the reason a plan stops until a clinician has
looked: a burn with electrical current can mean wrong settings or a damaged electrode,
and the next session would repeat it.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, time, timedelta
from enum import IntEnum, StrEnum

from reminders.outcomes import ALARMING, SideEffect
from reminders.states import EscalationReason
from reminders.timing import QuietHours

# What a protocol file that names nothing holds its plans on.
DEFAULT_HOLD_ON: tuple[SideEffect, ...] = (SideEffect.BLISTERING, SideEffect.BURN)


def holds_plan(side_effect: str | None, hold_on: Collection[str]) -> bool:
    """Return True if a reported side effect stops the plan until a clinician decides."""
    return side_effect is not None and side_effect in hold_on


# From nothing to report to the most serious: a session keeps the worst it was told of.
SEVERITY: tuple[str, ...] = (
    SideEffect.NONE,
    SideEffect.DRYNESS,
    SideEffect.REDNESS,
    SideEffect.OTHER,
    SideEffect.BLISTERING,
    SideEffect.BURN,
)


def worst(stored: str | None, reported: str | None) -> str | None:
    """Return the more serious of a session's stored side effect and a new report."""
    if stored is None or reported is None:
        return stored or reported
    return max(stored, reported, key=SEVERITY.index)


def tells_the_clinic(side_effect: str | None, note: str | None, hold_on: Collection[str]) -> bool:
    """Return True if a report needs a person at the clinic: one that holds the plan, one
    the clinic is always told of (blistering, a burn), or anything else the patient put
    in words ("other: dizzy, heart racing")."""
    if side_effect is None or side_effect == SideEffect.NONE:
        return False
    if holds_plan(side_effect, hold_on) or side_effect in ALARMING:
        return True
    return side_effect == SideEffect.OTHER and bool(note and note.strip())


def restart_on(today: date, given_at: str, notice_days: int, *, after_hold: bool) -> date | None:
    """Return the first day a plan that starts again (a pause ended, a hold lifted) may
    place a session on; None: today.

    Appointments at the clinic are `notice_days` ahead, so the patient can be told and
    come; after a hold a home session waits at least until tomorrow, the day after a
    clinician looked."""
    if given_at == "clinic":
        return today + timedelta(days=max(notice_days, 1 if after_hold else 0))
    return today + timedelta(days=1) if after_hold else None


class Unreachable(StrEnum):
    """Why no reminder can reach a patient."""

    QUIET_HOURS = "quiet_hours"  # the reminder time falls inside the quiet hours
    NO_ENDPOINT = "no_endpoint"  # reminded by webhook, and no enabled endpoint takes them
    EMAIL_REFUSED = "email_refused"  # the last email to the address was refused for good


def unreachable_causes(
    reminder_time: time,
    quiet: QuietHours,
    channel: str,
    *,
    reminder_endpoint: bool,
    email_refused: bool,
) -> tuple[Unreachable, ...]:
    """Return every reason the patient's reminders cannot reach them; empty when they can.

    `reminder_endpoint`: the clinic has an enabled endpoint taking `session.reminder`;
    `email_refused`: the last email to the patient's current address was refused
    permanently."""
    causes = []
    if quiet.covers(reminder_time):
        causes.append(Unreachable.QUIET_HOURS)
    if channel == "webhook" and not reminder_endpoint:
        causes.append(Unreachable.NO_ENDPOINT)
    if channel == "email" and email_refused:
        causes.append(Unreachable.EMAIL_REFUSED)
    return tuple(causes)


def blame_patient(reminded: bool, reachable: bool) -> bool:
    """Return True if a session not done counts as the patient's miss: they were
    reminded, or could have been (a reminder that failed for a passing reason is the
    clinic's to hear of, as undeliverable, and still the patient's session)."""
    return reminded or reachable


class Priority(IntEnum):
    """How urgent an escalation is: the inbox, Today and every call list sort by it,
    oldest first within a rank."""

    HOLD = 1  # a side effect that holds a plan
    WORSENING = 2  # the patient's condition worsening
    UNREACHABLE = 3  # no reminder can reach the patient
    REVIEW = 4  # a clinician's review is waiting
    ADHERENCE = 5  # missed sessions, a lapse, appointments not recorded
    OTHER = 6


_BY_REASON = {
    EscalationReason.UNREACHABLE: Priority.UNREACHABLE,
    EscalationReason.NO_RESPONSE: Priority.REVIEW,
    EscalationReason.NO_IMPROVEMENT: Priority.REVIEW,
    EscalationReason.WORSENING: Priority.WORSENING,
    EscalationReason.DORMANT: Priority.ADHERENCE,
    EscalationReason.EXPIRED: Priority.ADHERENCE,
    EscalationReason.OVER_TREATMENT: Priority.ADHERENCE,
    EscalationReason.MISSED_SESSIONS: Priority.ADHERENCE,
    EscalationReason.LAPSED: Priority.ADHERENCE,
    EscalationReason.UNRECORDED: Priority.ADHERENCE,
}


def priority(reason: str, *, holds: bool = False) -> Priority:
    """Return the rank of an escalation for `reason`; `holds`: its side effect held the
    plan."""
    if reason == EscalationReason.SIDE_EFFECT and holds:
        return Priority.HOLD
    return _BY_REASON.get(EscalationReason(reason), Priority.OTHER)


def over_treatment(done: Collection[date], day: date, max_per_week: int) -> bool:
    """Return True when the sessions done in the 7 days ending on `day` are more than the
    protocol's weekly maximum: more is not better (irritated skin, burns)."""
    return sum(1 for d in done if timedelta(0) <= day - d < timedelta(days=7)) > max_per_week
