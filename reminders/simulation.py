"""`reminders simulate`: one patient's whole course, run through the real service.

The real planner, sweep, dispatcher (its decisions: quiet hours, useful windows,
cancellations) and escalation code run against a throwaway database, with a clock this
module owns and passes in. It jumps from one scheduled instant to the next: a delivery
falling due, the daily sweep, or something the story's patient or clinic does. There is
no second model of the rules: change the service and the simulation changes with it.

Email goes to a Maildir in the throwaway folder, as in the embedded default; webhooks go
to `ClinicReceiver`, which stands for the clinic's systems and accepts everything.
What was received is read back from the outbox, so it is what the service really sent.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlmodel import Session, select

from reminders.channels import Sender
from reminders.channels.email import email_sender
from reminders.channels.webhook import WebhookMessage
from reminders.db.engine import session_scope
from reminders.db.schema import migrate
from reminders.decisions import Outcome
from reminders.dispatcher import Dispatcher, Senders
from reminders.errors import RemindersError
from reminders.models import (
    Enrollment,
    EnrollmentCreate,
    Escalation,
    PatientCreate,
    SessionReport,
)
from reminders.outcomes import RatedBy
from reminders.runtime import Runtime
from reminders.services import (
    absences,
    clinics,
    course_status,
    digest,
    enrollments,
    holds,
    patients,
    reading,
    sessions,
    webhooks,
)
from reminders.services.holds import HoldDecision
from reminders.services.patients import PatientDefaults
from reminders.services.sweep import sweep
from reminders.settings import Settings
from reminders.states import DeliveryAudience, EnrollmentStatus, SessionStatus
from reminders.stores import outbox, session_store
from reminders.stores.session_store import SessionRow
from reminders.timing import local_to_utc, zone

STORIES: dict[str, str] = {
    "dry": "confirms every session; better (HDSS 1, no pain) from the 4th on",
    "relapse": "as dry, but relapses (the scale's worst) at the 3rd and 6th maintenance sessions",
    "non-responder": "confirms every session, never better (the scale's worst)",
    "misses-two": "as dry, but lets the 2nd and 3rd reminders pass",
    "stops-in-maintenance": "as dry, then stops confirming after two months",
    "pause-3-weeks": "as dry; the clinic pauses the plan for three weeks after day 60",
    "away-10-days": "as dry; the patient says they are away for 10 days from day 42",
    "extra-session": "as dry; does an extra session on day 21, which has none planned",
    "burn": "as dry, but reports a burn with the 4th session; the clinic lets the plan go on "
    "at 10:00 three days later",
    "late-blister": "as dry, but reports blistering from the 4th session's link at 08:00 the "
    "next morning; the clinic lets the plan go on at 10:00 three days later",
    "quiet-hours-time": "the clinic asks for reminders at 22:30 (refused: inside the quiet "
    "hours), then 20:30; as dry",
    "endpoint-deleted": "reminded by webhook; as dry until the clinic's systems stop "
    "taking them: it tries to delete its only endpoint on day 10, and from day 12 the "
    "endpoint answers 500 until the service disables it",
    "worsening-pain": "confirms every session, worse each time: pain 2, 4, 6, 8 (then 8; on "
    "another scale, two grades worse each time from its second-best)",
    "drop-out": "confirms the first two sessions, then never again",
    "lapsed-for-good": "as dry until two sessions into the last phase (maintenance, or the "
    "course itself), then never again",
    "misses-one-in-maintenance": "as dry, but lets the second session of the last phase "
    "pass; confirms everything after it",
}
# The `quiet-hours-time` story's times: one inside the default quiet hours, then one not.
NIGHT_TIME, EVENING_TIME = "22:30", "20:30"
# The `endpoint-deleted` story's days.
DELETE_ON_DAY, FAILS_FROM_DAY = 10, 12
# Which confirmation brings the `burn` and `late-blister` stories' side effect.
SIDE_EFFECT_AT = 4
DECIDED_AFTER_DAYS = 3
REMINDER_TIME = "18:00"
ANSWER_AFTER = timedelta(minutes=30)
# The missed-session grace ends at local noon; the day's sweep comes just after.
SWEEP_AT = time(12, 5)
# When staff record the day's appointments, for protocols given at the clinic.
CLINIC_ROUND = time(11, 0)


class ClinicReceiver:
    """The clinic's systems in a simulation: every webhook is taken at once, or, from
    `fails_from` on, answered with a server error."""

    def __init__(self, clock: Callable[[], datetime], fails_from: datetime | None = None) -> None:
        self.taken: list[str] = []
        self.clock = clock
        self.fails_from = fails_from

    async def __aenter__(self) -> ClinicReceiver:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def submit(self, message: WebhookMessage) -> asyncio.Future[Outcome]:
        """Take the message (or fail it)."""
        answered: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        if self.fails_from is not None and self.clock() >= self.fails_from:
            answered.set_result(Outcome("retry", "HTTP 500"))
            return answered
        self.taken.append(message.delivery_id)
        answered.set_result(Outcome("sent"))
        return answered

    def backlog(self) -> int:
        """Nothing ever waits."""
        return 0

    def hand_back_queued(self) -> None:
        """Nothing ever waits."""


class _NotingMailbox:
    """The real email sender, noting which deliveries it sent (by Message-ID)."""

    def __init__(self, sender: Sender[EmailMessage]) -> None:
        self.sender = sender
        self.taken: list[str] = []

    def send(self, messages: Sequence[EmailMessage]) -> list[Outcome]:
        """Send through the real sender; note the deliveries it took."""
        outcomes = self.sender.send(messages)
        for message, outcome in zip(messages, outcomes, strict=True):
            if outcome.status == "sent":
                self.taken.append(str(message["Message-ID"]).strip("<>").partition("@")[0])
        return outcomes


@dataclass
class Day:
    """What one local day brought."""

    date: date
    phase: str
    patient: list[str] = field(default_factory=list)
    clinic: list[str] = field(default_factory=list)
    # Local HH:MM each patient message arrived, in the order of `patient`.
    patient_at: list[str] = field(default_factory=list)


@dataclass
class Simulation:
    """The simulated course, day by day, and the count of each kind received."""

    protocol: str
    story: str
    timezone: str
    days: list[Day]
    # What the service refused of what the story's patient or clinic did.
    refused: list[str] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        """How many of each message or event kind were received in all."""
        counts = Counter(kind for day in self.days for kind in [*day.patient, *day.clinic])
        return dict(sorted(counts.items()))

    def as_json(self) -> dict[str, Any]:
        """Return `{"days": [{"date", "phase", "patient", "clinic"}], "totals"}`."""
        return {
            "protocol": self.protocol,
            "story": self.story,
            "timezone": self.timezone,
            "days": [
                {
                    "date": d.date.isoformat(),
                    "phase": d.phase,
                    "patient": d.patient,
                    "clinic": d.clinic,
                    "patient_at": d.patient_at,
                }
                for d in self.days
            ],
            "totals": self.totals,
            "refused": self.refused,
        }


@dataclass
class _Course:
    """The simulated patient and what the loop knows of them."""

    patient_id: str
    enrollment_id: str
    clinic_id: str
    timezone: str
    start: date
    reminders_seen: int = 0
    # What the story's patient has decided: to stop for good, or to let one pass.
    stopped: bool = False
    lets_one_pass: bool = False


Action = Callable[[Session, datetime], None]


class _Clock:
    """The simulation's time, handed to the dispatcher and every service call."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def throwaway_settings(settings: Settings, folder: Path) -> Settings:
    """Return the operator's settings (so their rules are the ones simulated), with the
    database, Maildir and key in `folder`."""
    return settings.model_copy(
        update={
            "var_dir": folder,
            "database_url": f"sqlite:///{folder / 'simulation.sqlite3'}",
            "email_backend": "maildir",
            "maildir_path": folder / "maildir",
            "webhook_allowed_hosts": ["127.0.0.1"],
            "secret_key": None,
        }
    )


def simulate_in_throwaway(
    settings: Settings, protocol_id: str, start: date, days: int, story: str, timezone: str
) -> Simulation:
    """Run `simulate` on a new database in a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="reminders-simulation-") as folder:
        scratch = throwaway_settings(settings, Path(folder))
        migrate(scratch.database_url)
        rt = Runtime.from_settings(scratch)
        try:
            return simulate(rt, protocol_id, start, days, story, timezone)
        finally:
            rt.close()


def simulate(
    rt: Runtime, protocol_id: str, start: date, days: int, story: str, timezone: str
) -> Simulation:
    """Run `story` for `days` days from `start` on `rt`'s (throwaway) database and return
    what the patient and the clinic received. Raises RemindersError for bad input."""
    if story not in STORIES:
        raise RemindersError(f"story: expected one of {', '.join(STORIES)}")
    enroll_at = local_to_utc(start, time(8, 0), timezone)
    clock = _Clock(enroll_at)
    rt = rt.with_clock(clock)
    refused: list[str] = []
    with session_scope(rt.engine) as db:
        course = _set_up(db, rt, protocol_id, start, timezone, enroll_at, story, refused)
    mailbox = _NotingMailbox(email_sender(rt.settings))
    fails_from = (
        local_to_utc(start + timedelta(days=FAILS_FROM_DAY), time(0, 0), timezone)
        if story == "endpoint-deleted"
        else None
    )
    clinic = ClinicReceiver(clock, fails_from)
    dispatcher = Dispatcher(rt, Senders(email=mailbox, webhook=clinic), worker="simulation")
    runner = _Runner(rt, course, story, clock, dispatcher, (mailbox.taken, clinic.taken))
    runner.refused.extend(refused)
    return runner.run(start + timedelta(days=days))


def _set_up(
    db: Session, rt: Runtime, protocol_id: str, start: date, timezone: str, now: datetime,
    story: str, refused: list[str],
) -> _Course:  # fmt: skip
    """The clinic, its endpoint, the patient and the enrollment; what the service refused
    on the way goes in `refused`."""
    clinic, _key = clinics.create_clinic(db, "Simulated clinic", now)
    # In the patient's zone, so its digest comes at 07:30 their time.
    clinic.timezone = timezone
    db.flush()
    webhooks.add_endpoint(db, rt.settings, clinic.id, "https://127.0.0.1/simulated-clinic", now)
    by_webhook = story == "endpoint-deleted"
    times = [NIGHT_TIME, EVENING_TIME] if story == "quiet-hours-time" else [REMINDER_TIME]
    for reminder_time in times:
        wanted = PatientCreate(
            name="Simulated Patient",
            email=None if by_webhook else "patient@simulation.invalid",
            channel="webhook" if by_webhook else "email",
            timezone=timezone,
            reminder_time=reminder_time,
        )
        try:
            with db.begin_nested():
                patient = patients.add_patient(
                    db, clinic.id, wanted, now, defaults=PatientDefaults.of(rt.settings)
                )
            break
        except RemindersError as refusal:
            refused.append(f"{now.isoformat(timespec='minutes')}: {refusal}")
    else:
        raise RemindersError("reminder_time: the service took none of the story's times")
    protocol = rt.protocols.get(protocol_id)
    if protocol is None:
        raise RemindersError(f"protocol: unknown protocol {protocol_id!r}")
    request = EnrollmentCreate(
        protocol=protocol_id,
        start_date=start,
        body_area=protocol.body_areas[0],
        screening={c: False for c in protocol.contraindications},
    )
    enrollment = enrollments.enroll(db, rt, clinic.id, patient.id, request, now)
    return _Course(patient.id, enrollment.id, clinic.id, timezone, start)


class _Runner:
    """The loop: jump to the next instant, act, sweep, dispatch, record."""

    def __init__(
        self,
        rt: Runtime,
        course: _Course,
        story: str,
        clock: _Clock,
        dispatcher: Dispatcher,
        taken: tuple[list[str], ...],
    ) -> None:
        self.rt = rt
        self.taken = taken
        self.course = course
        self.story = story
        self.clock = clock
        self.dispatcher = dispatcher
        self.actions: list[tuple[datetime, int, Action]] = []
        self.order = itertools.count()
        self.received: dict[date, Day] = {}
        self.refused: list[str] = []
        self.phases: dict[date, str] = {}
        self.seen: set[str] = set()  # escalations already noted
        self._plan_story_events()
        self.at(self.local(0, digest.DIGEST_AT), self._digest_round)

    def _digest_round(self, db: Session, now: datetime) -> None:
        """The sweep's digest step at the clinic's 07:30, as the service's minutely sweep
        would send it (the simulation's own sweep comes at noon)."""
        self.at(self._next_local(now, digest.DIGEST_AT), self._digest_round)
        digest.send_digests(db, self.rt, now, digest.due_clinics(db, self.rt, now))

    def local(self, day_offset: int, at: time) -> datetime:
        """The UTC instant of local `at` on the course's `day_offset`-th day."""
        day = self.course.start + timedelta(days=day_offset)
        return local_to_utc(day, at, self.course.timezone)

    def at(self, when: datetime, action: Action) -> None:
        heapq.heappush(self.actions, (when, next(self.order), action))

    def run(self, end: date) -> Simulation:
        finish = local_to_utc(end, time(0, 0), self.course.timezone)
        next_sweep = self.local(0, SWEEP_AT)
        while True:
            due = self.dispatcher.next_due()
            now = min(t for t in (next_sweep, due, self._next_action()) if t is not None)
            now = max(now, self.clock.now)
            if now >= finish:
                break
            self.clock.now = now
            changed = False
            while self.actions and self.actions[0][0] <= now:
                _, _, action = heapq.heappop(self.actions)
                self._try(action)
                changed = True
            if next_sweep <= now:
                sweep(self.rt, now)
                next_sweep = self._next_local(next_sweep)
                changed = True
            # A dispatcher run has a cost of its own (an event loop, a database thread):
            # start one only when something is due.
            ready = self.dispatcher.next_due() if changed else due
            if ready is not None and ready <= now:
                self.dispatcher.dispatch()
                changed = True  # a run may open escalations (a message that failed)
            self._record(now, changed)
            if due is not None and due <= now and self.dispatcher.next_due() == due:
                # Nothing could move it now (a lease, a retry): look again a bit later.
                self.clock.now = now + timedelta(minutes=1)
        return self._result(end)

    def _next_action(self) -> datetime | None:
        return self.actions[0][0] if self.actions else None

    def _next_local(self, instant: datetime, at: time = SWEEP_AT) -> datetime:
        local = instant.astimezone(zone(self.course.timezone))
        return local_to_utc(local.date() + timedelta(days=1), at, self.course.timezone)

    def _try(self, action: Action) -> None:
        try:
            with session_scope(self.rt.engine) as db:
                action(db, self.clock.now)
        except RemindersError as refused:
            # E.g. a session re-planned away before the patient answered: shown, as
            # the service would have shown it to the patient or the clinic.
            self.refused.append(f"{self.clock.now.isoformat(timespec='minutes')}: {refused}")

    def _record(self, now: datetime, changed: bool) -> None:
        """Read what the dispatcher sent at `now`, and let the story's patient answer;
        note the phase where something may have changed it."""
        ids = sorted(i for taken in self.taken for i in taken)
        if not ids and not changed:
            return
        for taken in self.taken:
            taken.clear()
        with session_scope(self.rt.engine, write=False) as db:
            sent = outbox.by_ids(db, ids)
            # From the clinic's inbox, so one is seen however it would have been told.
            found = db.exec(
                select(Escalation.id, Escalation.reason).where(
                    Escalation.clinic_id == self.course.clinic_id, Escalation.created_at == now
                )
            ).all()
            opened = [reason for escalation_id, reason in found if escalation_id not in self.seen]
            self.seen.update(escalation_id for escalation_id, _ in found)
            enrollment = db.get(Enrollment, self.course.enrollment_id)
            assert enrollment is not None
            phase = (
                enrollment.phase
                if enrollment.status == EnrollmentStatus.ACTIVE
                else enrollment.status
            )
        local = now.astimezone(zone(self.course.timezone))
        today = local.date()
        self.phases[today] = phase
        day = self.received.setdefault(today, Day(today, phase))
        day.clinic.extend(f"escalation:{reason}" for reason in opened)
        for delivery in sent:
            if delivery.audience == DeliveryAudience.PATIENT:
                day.patient.append(delivery.kind)
                day.patient_at.append(f"{local:%H:%M}")
                if delivery.kind == "reminder" and delivery.session_id:
                    self._answer(delivery.session_id, now)
            elif delivery.kind != "patient.escalation":  # counted from the inbox above
                day.clinic.append(delivery.kind)
            elif (event := json.loads(delivery.payload)).get("realert"):
                # The same escalation sent again: not in the inbox as a new one.
                day.clinic.append(f"realert:{event['reason']}")

    def _answer(self, session_id: str, reminded_at: datetime) -> None:
        """The story's patient reads a reminder and may confirm half an hour later."""
        if not self._turns_up(reminded_at):
            return

        def confirm(db: Session, now: datetime) -> None:
            self._confirm(db, session_id, now, "patient")

        self.at(reminded_at + ANSWER_AFTER, confirm)

    def _confirm(self, db: Session, session_id: str, now: datetime, by: RatedBy) -> None:
        """Record the story's session as done, by the patient or (at the clinic) the
        staff, with what the story reports; a side-effect story's 4th brings its own."""
        nth = self._confirmed(db) + 1
        burn = self.story == "burn" and nth == SIDE_EFFECT_AT
        outcome = self._outcome(db, by)
        report = SessionReport(outcome=outcome, side_effect="burn" if burn else None)
        sessions.confirm_session(db, self.rt, None, session_id, report, now, reported_by=by)
        if self.story in ("burn", "late-blister") and nth == SIDE_EFFECT_AT:
            self._side_effect_story(session_id, now)
        self._decide_what_next(db, nth)

    def _decide_what_next(self, db: Session, nth: int) -> None:
        """After the `nth` session done: the stories whose patient stops, or lets one
        pass, decide here."""
        if self.story == "drop-out" and nth >= 2:
            self.course.stopped = True
        if self.story not in ("lapsed-for-good", "misses-one-in-maintenance"):
            return
        enrollment = db.get(Enrollment, self.course.enrollment_id)
        assert enrollment is not None
        last_phase = self.rt.protocols[enrollment.protocol_id].phases[-1].name
        rows = session_store.of_enrollment(db, self.course.enrollment_id)
        in_last = sum(
            1 for r in rows if r.status == SessionStatus.CONFIRMED and r.phase == last_phase
        )
        if self.story == "lapsed-for-good" and in_last >= 2:
            self.course.stopped = True
        if self.story == "misses-one-in-maintenance" and in_last == 1:
            self.course.lets_one_pass = True

    def _confirmed(self, db: Session) -> int:
        rows = session_store.of_enrollment(db, self.course.enrollment_id)
        return sum(1 for r in rows if r.status == SessionStatus.CONFIRMED)

    def _side_effect_story(self, session_id: str, confirmed_at: datetime) -> None:
        """A late blister reported from the session's link the next morning; then, for
        both stories, the clinician's decision to go on."""
        today = confirmed_at.astimezone(zone(self.course.timezone)).date()
        if self.story == "late-blister":

            def blister(db: Session, now: datetime) -> None:
                link = session_store.get(db, session_id)
                assert link is not None
                sessions.report_problem(db, self.rt, link, "blistering", None, None, now)

            self.at(
                local_to_utc(today + timedelta(days=1), time(8, 0), self.course.timezone), blister
            )
            today += timedelta(days=1)

        def go_on(db: Session, now: datetime) -> None:
            answer = HoldDecision("continue", "simulated clinician", "settings checked")
            holds.decide_hold(db, self.rt, None, self.course.enrollment_id, answer, now)

        decided = today + timedelta(days=DECIDED_AFTER_DAYS)
        self.at(local_to_utc(decided, time(10, 0), self.course.timezone), go_on)

    def _turns_up(self, when: datetime) -> bool:
        """Whether the story's patient does the session they are asked to do `when`."""
        self.course.reminders_seen += 1
        seen = self.course.reminders_seen
        day_offset = (when.astimezone(zone(self.course.timezone)).date() - self.course.start).days
        if self.story == "misses-two" and seen in (2, 3):
            return False
        if self.course.stopped:
            return False
        if self.course.lets_one_pass:
            self.course.lets_one_pass = False
            return False
        return not (self.story == "stops-in-maintenance" and day_offset > 60)

    def _clinic_day(self, db: Session, now: datetime) -> None:
        """For a protocol given at the clinic: staff record the day's appointment if the
        patient came, then look again tomorrow."""
        self.at(self._next_local(now, CLINIC_ROUND), self._clinic_day)
        today = now.astimezone(zone(self.course.timezone)).date()
        rows = session_store.of_enrollment(db, self.course.enrollment_id)
        due = next(
            (r for r in rows if r.local_date == today and r.status == SessionStatus.PLANNED), None
        )
        if due is None or not self._turns_up(now):
            return
        self._confirm(db, due.id, now, "clinician")

    def _outcome(self, db: Session, by: RatedBy = "patient") -> str | None:
        """What the story's patient reports on the protocol's scale: the best code once
        better, one near the worst before, the worst for a relapse or no response."""
        enrollment = db.get(Enrollment, self.course.enrollment_id)
        assert enrollment is not None
        protocol = self.rt.protocols[enrollment.protocol_id]
        scale = protocol.scale
        if scale is None or (scale.rated_by == "clinician" and by != "clinician"):
            return None
        better, not_yet, worst = (
            scale.values[0],
            scale.values[len(scale.values) * 2 // 3],
            scale.values[-1],
        )
        if self.story == "non-responder":
            return worst
        done = [
            s
            for s in session_store.of_enrollment(db, self.course.enrollment_id)
            if s.status == SessionStatus.CONFIRMED
        ]
        if self.story == "worsening-pain":
            rank = min(2 + 2 * len(done), len(scale.values) * 4 // 5)
            return scale.values[min(rank, len(scale.values) - 1)]
        in_maintenance = sum(1 for s in done if s.phase == "maintenance") + 1
        if (
            self.story == "relapse"
            and enrollment.phase == "maintenance"
            and in_maintenance in (3, 6)
        ):
            return worst
        return not_yet if len(done) + 1 < 4 else better

    def _plan_story_events(self) -> None:
        course = self.course
        if self.story == "endpoint-deleted":

            def delete_endpoint(db: Session, now: datetime) -> None:
                patient = patients.get_patient(db, None, course.patient_id)
                for endpoint in reading.list_endpoints(db, patient.clinic_id):
                    webhooks.delete_endpoint(db, patient.clinic_id, endpoint.id, now)

            self.at(self.local(DELETE_ON_DAY, time(9, 0)), delete_endpoint)
        if self.rt.protocols[self.course_protocol()].given_at == "clinic":
            self.at(self.local(0, CLINIC_ROUND), self._clinic_day)
        if self.story == "pause-3-weeks":

            def pause(db: Session, now: datetime) -> None:
                until = course.start + timedelta(days=81)
                course_status.set_status(
                    db, self.rt, None, course.enrollment_id, "paused", now, until=until
                )

            self.at(self.local(60, time(9, 0)), pause)
        elif self.story == "away-10-days":

            def away(db: Session, now: datetime) -> None:
                patient = patients.get_patient(db, None, course.patient_id)
                first = course.start + timedelta(days=42)
                last = first + timedelta(days=9)
                absences.add_absence(db, self.rt, patient, first, last, None, "patient", now)

            self.at(self.local(40, time(9, 0)), away)
        elif self.story == "extra-session":
            self.at(self.local(21, time(10, 0)), self._extra_session)

    def _extra_session(self, db: Session, now: datetime) -> None:
        """From the link of the last session done, record one today; on a day that has a
        session already, try the next."""
        rows = session_store.of_enrollment(db, self.course.enrollment_id)
        today = now.astimezone(zone(self.course.timezone)).date()
        if any(r.local_date == today for r in rows):
            self.at(now + timedelta(days=1), self._extra_session)
            return
        latest = max((r for r in rows if r.status == SessionStatus.CONFIRMED), key=_by_date)
        report = SessionReport(outcome=self._outcome(db))
        sessions.confirm_from_link(db, self.rt, latest, today, report, now)

    def _result(self, end: date) -> Simulation:
        days: list[Day] = []
        phase = "-"
        day = self.course.start
        while day < end:
            phase = self.phases.get(day, phase)  # as the day ended
            found = self.received.get(day) or Day(day, phase)
            found.phase = phase
            days.append(found)
            day += timedelta(days=1)
        protocol = self.course_protocol()
        return Simulation(protocol, self.story, self.course.timezone, days, self.refused)

    def course_protocol(self) -> str:
        with session_scope(self.rt.engine, write=False) as db:
            enrollment = db.get(Enrollment, self.course.enrollment_id)
            assert enrollment is not None
            return enrollment.protocol_id


def _by_date(row: SessionRow) -> date:
    return row.local_date
