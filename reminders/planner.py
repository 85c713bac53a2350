"""The taper planner: a pure function from protocol, enrollment settings, session history
and today to the sessions of the next horizon.

No database, no clock, no I/O. The phase a patient is in is not stored anywhere: it is
derived by replaying the confirmed sessions in date order, so the same history always
gives the same plan. The plan is then projected forward assuming the patient does every
planned session (and, for previews, reports a stated response).

Hard caps hold whatever the history: at most one session a local day, at most the
protocol's `max_per_week` in any 7 days, nothing before today, nothing on an excluded
weekday, nothing while the patient is away. `_place` is the one place that enforces them.

Everything that shapes a plan is an input, never stored state: the confirmed sessions
with their reports, the clinician's review decisions, the patient's absences, and the
date from which a patient who stopped confirming is reminded only weekly. Replaying the
same inputs always gives the same plan.

A building phase that reaches its maximum without the response it waits for does not
move on by itself: the patient stays on the phase's cadence with a review open until a
clinician decides to continue (another block), move on, or end the course. A phase with
`review_without_dry` opens the same review after that many sessions without a dry
report, and a fixed-days phase that waits for dry reports goes on every
`interval_days` after its last day until they come or a clinician decides.

On an interval cadence (maintenance) a session not done is made up once, on the next
allowed day, and the interval then counts from the make-up. A patient who stopped
confirming (`slowed_since`) is asked once a week, on the week's first allowed weekday.
Appointments at the clinic stop being booked while two or more are unrecorded, until
staff record them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import lru_cache
from typing import Literal

from reminders.protocols import WEEKDAYS, Phase, Protocol
from reminders.states import SessionStatus

ReviewAction = Literal["continue", "move_on", "end"]
ChangeReason = Literal["sessions", "dry", "no_response", "relapse", "decision"]
# Appointments nobody recorded, after which no more are booked: the clinic may be
# booking a patient who stopped coming.
UNRECORDED_TO_STOP = 2
# Far enough to find an allowed day under any cap; a protocol can't need more.
_SEARCH_DAYS = 400
NOT_DRY_HDSS = 3
DRY_HDSS = 1
RELAPSE_HDSS = 4


@dataclass(frozen=True, slots=True)
class PastSession:
    """A session from the enrollment's history, as the planner needs it."""

    local_date: date
    status: SessionStatus
    hdss: int | None = None


@dataclass(frozen=True, slots=True)
class ReviewDecision:
    """A clinician's answer to an open review, taking effect after `on`'s sessions."""

    on: date
    action: ReviewAction


@dataclass(frozen=True, slots=True)
class Absence:
    """Local dates (both included) on which the patient is away: nothing is planned."""

    first: date
    last: date

    def covers(self, day: date) -> bool:
        """Return True if the patient is away on `day`."""
        return self.first <= day <= self.last


@dataclass(frozen=True, slots=True)
class EnrollmentSettings:
    """What the planner needs from an enrollment.

    `weekdays` are the allowed weekdays (0 = Monday); the others are excluded. None
    uses the protocol's `default_weekdays`. `slowed_since` is set when the clinic was
    told the patient stopped confirming: until a session is confirmed on or after it,
    sessions are at least a week after the last one not done.
    """

    start_date: date
    weekdays: frozenset[int] | None = None
    body_area: str | None = None
    decisions: tuple[ReviewDecision, ...] = ()
    absences: tuple[Absence, ...] = ()
    slowed_since: date | None = None
    # Nothing is planned before this day (a held plan goes on from a clinician's day).
    resume_on: date | None = None
    # Days the clinic is closed, for a protocol given at the clinic.
    closed: frozenset[date] = frozenset()


@dataclass(frozen=True, slots=True)
class AssumedResponse:
    """What a preview assumes the patient reports (HDSS).

    Dry (1) from the `dry_after`-th session on and not dry (3) before it; `never_dry`
    reports 4 every time (a non-responder); the session numbers in `relapses` report 4
    (a relapse) whatever else holds. Without any of these nothing is reported.
    """

    dry_after: int | None = None
    never_dry: bool = False
    relapses: frozenset[int] = frozenset()

    def hdss_for(self, session_number: int) -> int | None:
        """Return the HDSS assumed for the n-th confirmed session (1-based), or None."""
        if session_number in self.relapses or self.never_dry:
            return RELAPSE_HDSS
        if self.dry_after is None:
            return None
        return DRY_HDSS if session_number >= self.dry_after else NOT_DRY_HDSS


@dataclass(frozen=True, slots=True)
class PlannedSession:
    """One session the plan puts on a local date."""

    local_date: date
    phase: str
    minutes: int


@dataclass(frozen=True, slots=True)
class PhaseChange:
    """The plan moved from one phase to another (or finished) after a session.

    A review point is a change with reason `no_response` whose `to_phase` is the phase
    itself: the patient stays there until a clinician decides.
    """

    on: date
    from_phase: str
    to_phase: str | None
    reason: ChangeReason

    @property
    def is_review(self) -> bool:
        """True for a review point, where nothing moved."""
        return self.reason == "no_response"


@dataclass(frozen=True, slots=True)
class Plan:
    """The planner's answer.

    `phase` is where the patient is now (after their history); `sessions` the planned
    ones up to the horizon; `completed` is true when the course has ended;
    `review` holds the open review a clinician must decide (empty when none);
    `changes` lists phase changes and review points, first those the history caused
    and then the projected ones (`history_changes` says how many are from history).
    """

    phase: str
    sessions: tuple[PlannedSession, ...]
    completed: bool
    review: tuple[str, ...]
    interval_days: int | None
    changes: tuple[PhaseChange, ...]
    history_changes: int


@dataclass(slots=True)
class _State:
    """Where a patient stands, built by applying sessions one by one."""

    protocol: Protocol
    phase_index: int = 0
    in_phase: int = 0
    total: int = 0
    dry_streak: int = 0
    relapse_streak: int = 0
    # Sessions in this phase since the last dry report (`Phase.review_without_dry`).
    since_dry: int = 0
    interval_days: int | None = None
    # A relapse brings the next session forward (`Phase.relapse_next_in_days`).
    next_gap: int | None = None
    anchor: date | None = None
    last: date | None = None
    completed: bool = False
    # Sessions in this phase after which an unanswered phase asks for a review.
    review_at: int | None = None
    review: str | None = None
    recent: list[int] = field(default_factory=list)
    changes: list[PhaseChange] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.interval_days = self.protocol.phases[0].interval_days
        self.review_at = self.protocol.phases[0].max_sessions

    @property
    def phase(self) -> Phase:
        return self.protocol.phases[self.phase_index]

    def apply(self, on: date, hdss: int | None) -> None:
        """Count a confirmed session on `on` with an optional HDSS report."""
        phase = self.phase
        self.in_phase += 1
        self.total += 1
        if self.anchor is None:
            self.anchor = on
        self.last = on
        self.next_gap = None
        self.recent.append(on.toordinal())
        self.since_dry += 1
        if hdss is not None:
            if hdss <= self.protocol.hdss_dry_max:
                self.dry_streak += 1
                self.relapse_streak = 0
                self.since_dry = 0
            else:
                self.dry_streak = 0
                self.relapse_streak += 1
            if phase.lengthen_after is not None and self._adapt_interval(phase, on, hdss):
                return
        if (phase.sessions is not None and self.in_phase >= phase.sessions) or (
            phase.days is not None
            and phase.dry_reports is None
            and self.in_phase >= len(phase.days)
        ):
            self._move(on, self.phase_index + 1, "sessions")
        elif (
            phase.dry_reports is not None
            and self.dry_streak >= phase.dry_reports
            and self.in_phase >= phase.min_sessions
        ):
            self._move(on, self.phase_index + 1, "dry")
        elif self.review is None and self.review_at is not None and self.in_phase >= self.review_at:
            self._open_review(
                on, f"no response after {self.in_phase} {phase.name} sessions ({on.isoformat()})"
            )
        elif (
            self.review is None
            and phase.review_without_dry is not None
            and self.since_dry >= phase.review_without_dry
        ):
            self._open_review(
                on, f"no dry report in {self.since_dry} {phase.name} sessions ({on.isoformat()})"
            )

    def _open_review(self, on: date, why: str) -> None:
        self.review = why
        self.changes.append(PhaseChange(on, self.phase.name, self.phase.name, "no_response"))

    def hold(self, on: date) -> None:
        """Keep the pace around an appointment nobody recorded: it most likely took
        place, so the next one is not pulled forward, but it does not count toward
        moving on until staff record it."""
        self.last = on
        self.recent.append(on.toordinal())

    def decide(self, decision: ReviewDecision) -> None:
        """Apply a clinician's decision; one without an open review changes nothing."""
        if self.review is None or self.completed:
            return
        self.review = None
        if decision.action == "continue":
            # Another block: as many sessions again before the next review.
            self.since_dry = 0
            if self.phase.max_sessions is not None:
                self.review_at = self.in_phase + self.phase.max_sessions
        elif decision.action == "move_on":
            self._move(decision.on, self.phase_index + 1, "decision")
        else:
            self._move(decision.on, len(self.protocol.phases), "decision")

    def _adapt_interval(self, phase: Phase, on: date, hdss: int) -> bool:
        """Lengthen or reset the maintenance interval; return True if the phase changed."""
        assert phase.interval_days is not None and phase.max_interval_days is not None
        assert phase.lengthen_after is not None
        current = self.interval_days or phase.interval_days
        if hdss <= self.protocol.hdss_dry_max:
            if self.dry_streak >= phase.lengthen_after:
                self.interval_days = min(current + phase.step_days, phase.max_interval_days)
                self.dry_streak = 0
            return False
        self.interval_days = phase.interval_days
        self.next_gap = phase.relapse_next_in_days
        if (
            phase.return_to is not None
            and phase.relapses_to_return is not None
            and self.relapse_streak >= phase.relapses_to_return
        ):
            self._move(on, self.protocol.phase_index(phase.return_to), "relapse")
            return True
        return False

    def _move(self, on: date, to_index: int, reason: ChangeReason) -> None:
        from_name = self.phase.name
        self.review = None
        if to_index >= len(self.protocol.phases):
            self.completed = True
            self.changes.append(PhaseChange(on, from_name, None, reason))
            return
        self.phase_index = to_index
        self.in_phase = 0
        self.dry_streak = 0
        self.relapse_streak = 0
        self.since_dry = 0
        self.next_gap = None
        self.anchor = None
        self.interval_days = self.phase.interval_days
        self.review_at = self.phase.max_sessions
        self.changes.append(PhaseChange(on, from_name, self.phase.name, reason))

    def earliest(self, not_before: date, allowed: frozenset[int]) -> date:
        """Return the date the current phase's cadence asks for, at or after `not_before`."""
        phase = self.phase
        last = self.last
        if phase.cadence == "weekly":
            assert phase.per_week is not None
            target = last + timedelta(days=_spacing(allowed, phase.per_week)) if last else None
        elif phase.cadence == "interval":
            assert self.interval_days is not None
            gap = self.next_gap or self.interval_days
            target = last + timedelta(days=gap) if last else None
        elif phase.days is not None and self.in_phase >= len(phase.days):
            # The fixed days are done and the phase waits for dry reports.
            assert phase.interval_days is not None and last is not None
            target = last + timedelta(days=phase.interval_days)
        else:
            assert phase.days is not None
            anchor = self.anchor
            target = anchor + timedelta(days=phase.days[self.in_phase] - 1) if anchor else None
        if target is None or target < not_before:
            return not_before
        return target


def _place(
    state: _State,
    not_before: date,
    allowed: frozenset[int],
    blocked: frozenset[date],
    absences: tuple[Absence, ...],
    missed: tuple[int, ...],
) -> date:
    """Return the first date at or after the cadence's wish that breaks no hard cap.

    Missed sessions count toward the weekly cap (not toward moving on): a patient who
    stops confirming is asked again at the protocol's pace, not every day.
    """
    protocol = state.protocol
    phase = state.phase
    cap = protocol.max_per_week
    if phase.per_week is not None and phase.per_week < cap:
        cap = phase.per_week
    day = state.earliest(not_before, allowed)
    if state.last is not None and day <= state.last:
        day = state.last + timedelta(days=1)
    recent = state.recent
    for _ in range(_SEARCH_DAYS):
        free = not any(a.covers(day) for a in absences)
        if day.weekday() in allowed and day not in blocked and free:
            ordinal = day.toordinal()
            if _in_window(recent, ordinal) + _in_window(missed, ordinal) < cap:
                return day
        day += timedelta(days=1)
    raise AssertionError("no allowed day within the search range")  # pragma: no cover


def _in_window(ordinals: list[int] | tuple[int, ...], ordinal: int) -> int:
    """Return how many of the sorted `ordinals` fall in the 7 days ending on `ordinal`."""
    count = 0
    for past in reversed(ordinals):
        if past <= ordinal - 7:
            break
        count += 1
    return count


@lru_cache(maxsize=512)
def _spacing(allowed: frozenset[int], per_week: int) -> int:
    """Return the days to leave between sessions of a `per_week` cadence.

    Sessions are spread (3 a week on every day gives Mon/Wed/Fri, not Mon/Tue/Wed), but
    never so widely that the allowed weekdays can no longer hold `per_week` a week.
    """
    wanted = min(per_week, len(allowed))
    first = min(allowed)
    for gap in range(max(1, 7 // per_week), 0, -1):
        placed: list[int] = []
        day = first
        while day < 7 * 6:
            ok_gap = not placed or day - placed[-1] >= gap
            in_window = sum(1 for p in placed if p > day - 7)
            if day % 7 in allowed and ok_gap and in_window < per_week:
                placed.append(day)
            day += 1
        steady = sum(1 for p in placed if 14 <= p < 42)
        if steady >= 4 * wanted:
            return gap
    return 1


def _replay(
    protocol: Protocol,
    history: list[PastSession] | tuple[PastSession, ...],
    decisions: tuple[ReviewDecision, ...],
) -> _State:
    """Apply confirmed sessions and decisions in date order; a decision comes after the
    sessions of its day."""
    state = _State(protocol)
    events: list[tuple[date, int, PastSession | ReviewDecision]] = [
        (s.local_date, 0, s) for s in history if s.status in ("confirmed", "unrecorded")
    ]
    events += [(d.on, 1, d) for d in decisions]
    for _, _, event in sorted(events, key=lambda e: (e[0], e[1])):
        if state.completed:
            break
        if isinstance(event, PastSession) and event.status == "unrecorded":
            state.hold(event.local_date)
        elif isinstance(event, PastSession):
            state.apply(event.local_date, event.hdss)
        else:
            state.decide(event)
    return state


def allowed_weekdays(protocol: Protocol, enrollment: EnrollmentSettings) -> frozenset[int]:
    """Return the weekdays sessions may fall on: the enrollment's, or its protocol's."""
    if enrollment.weekdays is not None:
        return enrollment.weekdays
    return frozenset(WEEKDAYS.index(day) for day in protocol.default_weekdays)


def at_the_clinic(
    protocol: Protocol,
    enrollment: EnrollmentSettings,
    open_weekdays: frozenset[int],
    closed: frozenset[date],
) -> EnrollmentSettings:
    """Return the settings of an enrollment in a protocol given at the clinic: its
    weekdays narrowed to the clinic's open days (the open days alone when none is
    left), and the clinic's closed dates kept free."""
    wanted = allowed_weekdays(protocol, enrollment) & open_weekdays
    return replace(enrollment, weekdays=wanted or open_weekdays, closed=closed)


def _slowed_until(
    enrollment: EnrollmentSettings,
    history: list[PastSession] | tuple[PastSession, ...],
    allowed: frozenset[int],
) -> date | None:
    """Return the first day a slowed patient's next session may fall on (the week's
    first allowed weekday, after the last session not done), or None when not slowed."""
    since = enrollment.slowed_since
    if since is None:
        return None
    if any(s.status == "confirmed" and s.local_date >= since for s in history):
        return None
    not_done = [s.local_date for s in history if s.status in ("missed", "skipped")]
    if not not_done:
        return None
    day = max(not_done) + timedelta(days=1)
    while day.weekday() != min(allowed):
        day += timedelta(days=1)
    return day


def _after_a_missed_make_up(
    state: _State, history: list[PastSession] | tuple[PastSession, ...]
) -> date | None:
    """On an interval cadence a session not done is made up once, on the next allowed
    day; when the make-up is not done either, the next session comes an interval after
    it, not on the day after that as well. Returns that day, or None."""
    if state.phase.cadence != "interval" or state.interval_days is None:
        return None
    after = state.last or date.min
    not_done = sorted(
        s.local_date for s in history if s.status in ("missed", "skipped") and s.local_date > after
    )
    if len(not_done) < 2:
        return None
    return not_done[-1] + timedelta(days=state.interval_days)


def plan(
    protocol: Protocol,
    enrollment: EnrollmentSettings,
    history: list[PastSession] | tuple[PastSession, ...],
    today: date,
    horizon_days: int = 14,
    response: AssumedResponse | None = None,
) -> Plan:
    """Return the plan: where the patient stands and the sessions from today up to (not
    including) today + `horizon_days`.

    Only confirmed sessions count toward moving on; skipped and missed ones do not, but a
    skipped or missed session on or after today keeps that day free. Raises ValueError
    if the enrollment excludes every weekday.
    """
    allowed = allowed_weekdays(protocol, enrollment)
    if not allowed:
        raise ValueError("weekdays: at least one weekday must be allowed")
    state = _replay(protocol, history, enrollment.decisions)
    current_phase = state.phase.name
    completed = state.completed
    history_changes = len(state.changes)
    review = (state.review,) if state.review else ()
    interval = state.interval_days if state.phase.cadence == "interval" else None
    blocked = enrollment.closed | frozenset(
        s.local_date for s in history if s.status in ("skipped", "missed") and s.local_date >= today
    )
    missed = tuple(sorted(s.local_date.toordinal() for s in history if s.status == "missed"))
    assumed = response or AssumedResponse()
    minutes = protocol.session_minutes(enrollment.body_area)
    end = today + timedelta(days=horizon_days)
    not_before = max(
        today,
        enrollment.start_date,
        _slowed_until(enrollment, history, allowed) or today,
        enrollment.resume_on or today,
    )
    not_before = max(not_before, _after_a_missed_make_up(state, history) or not_before)
    sessions: list[PlannedSession] = []
    # Counted since the last appointment staff recorded: a gap before it was dealt with.
    last_recorded = max(
        (s.local_date for s in history if s.status == SessionStatus.CONFIRMED), default=date.min
    )
    unrecorded = sum(
        1 for s in history if s.status == SessionStatus.UNRECORDED and s.local_date > last_recorded
    )
    while not state.completed and unrecorded < UNRECORDED_TO_STOP:
        day = _place(state, not_before, allowed, blocked, enrollment.absences, missed)
        if day >= end:
            break
        sessions.append(PlannedSession(day, state.phase.name, minutes))
        state.apply(day, assumed.hdss_for(state.total + 1))
        not_before = day + timedelta(days=1)
    return Plan(
        phase=current_phase,
        sessions=tuple(sessions),
        completed=completed,
        review=review,
        interval_days=interval,
        changes=tuple(state.changes),
        history_changes=history_changes,
    )


def preview(
    protocol: Protocol,
    enrollment: EnrollmentSettings,
    days: int = 182,
    response: AssumedResponse | None = None,
) -> Plan:
    """Return the whole plan from the start date, assuming every session is done.

    Courses end when their last phase ends; ongoing protocols are shown for `days`.
    """
    return plan(protocol, enrollment, (), enrollment.start_date, days, response)
