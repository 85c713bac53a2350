"""What each kind of delivery is, in one table: who it is for, how it relates to a
session, what the patient's timing makes of it, the webhook event that carries it, and
the subject and SMS text it goes out with. Producers, the dispatcher's decisions and the
texts read it; a test checks that every kind is complete. Pure: names and texts only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from reminders.locales import N_
from reminders.states import DeliveryAudience


class DeliveryKind(StrEnum):
    # To the patient, by email or relayed by the clinic's webhook.
    REMINDER = "reminder"
    DAY_BEFORE = "day_before"
    FOLLOW_UP = "follow_up"
    SNOOZE = "snooze"
    APPOINTMENT = "appointment"
    APPOINTMENT_CANCELLED = "appointment_cancelled"
    MISSED = "missed"
    OVERDUE = "overdue"
    COMPLETED = "completed"
    COURSE_ENDED = "course_ended"
    REMINDERS_STOPPED = "reminders_stopped"
    WELCOME = "welcome"
    # To the clinic's alert address.
    CLINIC_ALERT = "clinic_alert"
    ESCALATION = "escalation"
    DIGEST = "digest"
    # To one of the clinic's staff.
    STAFF_SETUP = "staff_setup"
    STAFF_RESET = "staff_reset"
    STAFF_LOCKED = "staff_locked"
    # Events for the clinic's systems: the kind is the event's type.
    SESSION_CONFIRMED = "session.confirmed"
    SESSION_SKIPPED = "session.skipped"
    SESSION_MISSED = "session.missed"
    SESSION_PROBLEM_REPORTED = "session.problem_reported"
    PLAN_PHASE_CHANGED = "plan.phase_changed"
    ENROLLMENT_COMPLETED = "enrollment.completed"
    PATIENT_ESCALATION = "patient.escalation"
    PATIENT_ERASED = "patient.erased"
    CLINIC_DIGEST = "clinic.digest"


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of delivery.

    `event`: the webhook event type that carries it (a patient message relayed, or an
    event); `session_bound`: pointless once its session is no longer planned;
    `about_the_end`: still sent once the enrollment is no longer active; `linked`:
    carries its session's page link; `timed_by_patient`: made from the patient's
    reminder time, quiet hours, zone and channel, so made again when those change;
    `reminds`: reminds the patient of a session at home (`safety.blame_patient`);
    `to_the_clinic`: the clinic's own message (if it fails, telling the clinic again by
    the same means would only fail again); `nudges`: not sent while the course winds
    down (`course_state`): the patient is asked once a week and nothing more.
    """

    audience: DeliveryAudience
    event: str | None = None
    subject: str | None = None
    sms: str | None = None
    session_bound: bool = False
    about_the_end: bool = False
    linked: bool = False
    timed_by_patient: bool = False
    reminds: bool = False
    to_the_clinic: bool = False
    nudges: bool = False


_PATIENT = DeliveryAudience.PATIENT
_SESSION_TODAY = N_("%(clinic)s: treatment session today (%(day)s). Tell us when done: %(link)s")

KINDS: dict[DeliveryKind, Kind] = {
    DeliveryKind.REMINDER: Kind(
        _PATIENT, "session.reminder", N_("Your treatment session today"), _SESSION_TODAY,
        session_bound=True, linked=True, timed_by_patient=True, reminds=True,
    ),
    # Timed by the patient's own "later", not by their settings: it stays as asked.
    DeliveryKind.SNOOZE: Kind(
        _PATIENT, "session.reminder", N_("Reminder: your treatment session today"),
        _SESSION_TODAY, session_bound=True, linked=True, reminds=True,
    ),
    DeliveryKind.DAY_BEFORE: Kind(
        _PATIENT, "session.reminder", N_("Your treatment session tomorrow"),
        N_("%(clinic)s: treatment session tomorrow (%(day)s)."),
        session_bound=True, linked=True, timed_by_patient=True, reminds=True, nudges=True,
    ),
    DeliveryKind.FOLLOW_UP: Kind(
        _PATIENT, "session.follow_up", N_("Did you manage today's session?"),
        N_("%(clinic)s: did you manage today's session? Tell us: %(link)s"),
        session_bound=True, linked=True, timed_by_patient=True, nudges=True,
    ),
    DeliveryKind.APPOINTMENT: Kind(
        _PATIENT, "session.reminder", N_("Your appointment tomorrow"),
        N_("%(clinic)s: your appointment at the clinic is tomorrow (%(day)s)."),
        session_bound=True, timed_by_patient=True,
    ),
    # Sent however the course stands now: a pause or a hold is what cancelled it.
    DeliveryKind.APPOINTMENT_CANCELLED: Kind(
        _PATIENT, "patient.appointment_cancelled", N_("Your appointment is cancelled"),
        N_("%(clinic)s: your appointment on %(day)s is cancelled. Your clinic will tell you "
           "the next one."),
        about_the_end=True,
    ),
    DeliveryKind.MISSED: Kind(
        _PATIENT, "patient.missed_notice", N_("We missed your session"),
        N_("%(clinic)s: we missed your session (%(day)s). Your plan is updated: %(link)s"),
        linked=True, nudges=True,
    ),
    DeliveryKind.OVERDUE: Kind(
        _PATIENT, "patient.overdue", N_("Time for your next session"),
        N_("%(clinic)s: time for your next session. Tell us when done: %(link)s"),
        linked=True, nudges=True,
    ),
    DeliveryKind.COMPLETED: Kind(
        _PATIENT, "patient.completion_notice", N_("Your treatment course is complete"),
        N_("%(clinic)s: your treatment course is complete. Thank you!"),
        about_the_end=True,
    ),
    DeliveryKind.COURSE_ENDED: Kind(
        _PATIENT, "patient.course_ended_notice", N_("Your clinic has ended your treatment course"),
        N_("%(clinic)s has ended your treatment course and will contact you."),
        about_the_end=True,
    ),
    # The last message of a course wound down, or run out of time.
    DeliveryKind.REMINDERS_STOPPED: Kind(
        _PATIENT, "patient.reminders_stopped_notice", N_("Please contact your clinic"),
        N_("%(clinic)s: we have stopped your reminders. Please contact us to go on with "
           "your treatment."),
        about_the_end=True,
    ),
    DeliveryKind.WELCOME: Kind(
        _PATIENT, "patient.welcome", N_("Your treatment plan"),
        N_("%(clinic)s has planned your treatment. First session: %(day)s."),
    ),
    DeliveryKind.CLINIC_ALERT: Kind(DeliveryAudience.CLINIC, to_the_clinic=True),
    DeliveryKind.ESCALATION: Kind(DeliveryAudience.CLINIC, to_the_clinic=True),
    DeliveryKind.DIGEST: Kind(DeliveryAudience.CLINIC, to_the_clinic=True),
    DeliveryKind.STAFF_SETUP: Kind(
        DeliveryAudience.STAFF, subject="Your account in the reminders web app"
    ),
    DeliveryKind.STAFF_RESET: Kind(
        DeliveryAudience.STAFF, subject="Reset your password for the reminders web app"
    ),
    DeliveryKind.STAFF_LOCKED: Kind(
        DeliveryAudience.STAFF, subject="Your reminders account was locked"
    ),
    **{
        kind: Kind(DeliveryAudience.INTEGRATION, str(kind))
        for kind in (
            DeliveryKind.SESSION_CONFIRMED,
            DeliveryKind.SESSION_SKIPPED,
            DeliveryKind.SESSION_MISSED,
            DeliveryKind.SESSION_PROBLEM_REPORTED,
            DeliveryKind.PLAN_PHASE_CHANGED,
            DeliveryKind.ENROLLMENT_COMPLETED,
            DeliveryKind.PATIENT_ERASED,
        )
    },
    DeliveryKind.PATIENT_ESCALATION: Kind(
        DeliveryAudience.INTEGRATION, "patient.escalation", to_the_clinic=True
    ),
    DeliveryKind.CLINIC_DIGEST: Kind(
        DeliveryAudience.INTEGRATION, "clinic.digest", to_the_clinic=True
    ),
}  # fmt: skip


def kinds_where(**wanted: bool) -> frozenset[str]:
    """The kinds whose flags are as given, e.g. `kinds_where(timed_by_patient=True)`."""
    return frozenset(
        kind
        for kind, spec in KINDS.items()
        if all(getattr(spec, flag) == value for flag, value in wanted.items())
    )


SESSION_BOUND = kinds_where(session_bound=True)
ABOUT_THE_END = kinds_where(about_the_end=True)
LINKED = kinds_where(linked=True)
TIMED_BY_PATIENT = kinds_where(timed_by_patient=True)
REMINDS = kinds_where(reminds=True)
TO_THE_CLINIC = kinds_where(to_the_clinic=True)
NUDGES = kinds_where(nudges=True)
# The webhook events a clinic may subscribe to, in the order the table names them.
EVENT_TYPES: tuple[str, ...] = tuple(
    dict.fromkeys(spec.event for spec in KINDS.values() if spec.event is not None)
)


def event_of(kind: str) -> str:
    """The webhook event that carries a delivery of `kind`."""
    event = KINDS[DeliveryKind(kind)].event
    if event is None:
        raise ValueError(f"{kind} goes by no webhook")
    return event
