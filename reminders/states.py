"""The states a session, an enrollment, a delivery and an escalation can be in, and how
each moves from one to the next. Pure: names only; the services make the moves.

A session (`treatment_session.status`):

    planned --the patient or clinic confirms--------------> confirmed
       |------the patient or clinic skips it--------------> skipped
       |------its local day ends, grace passed, no word---> missed
       |------the same, but no reminder could reach them--> not_reminded
       |------at the clinic, its day passed unrecorded----> unrecorded
       +------re-planned away, paused, withdrawn, away----> cancelled

    A late word still counts: missed, skipped and unrecorded sessions can be confirmed
    (missed ones skipped) afterwards; a cancelled session's row is planned again when a
    re-plan puts a session back on its day.

An enrollment (`enrollment.status`):

    active <--pause / resume--> paused
       |                          |
       +---withdraw---> withdrawn <+
       +---the plan's last phase ends---> completed
       +---a side effect that holds the plan---> held (from paused too)
       +---slowed, 3 weekly sessions unanswered---> dormant --a confirmation / resume--> active
       +---a short course past its last day + 14---> ended (reason expired)

    A patient who stops confirming winds down first (`course_state`): once the clinic
    is told (missed_sessions, lapsed) the enrollment is `slowed_since` that day: one
    session a week, no follow-ups or missed notices, until a confirmation.

    held --a clinician decides: continue--> active
         +-----------------------pause----> paused
         +-----------------------end------> withdrawn
    Nothing is planned, reminded or counted as missed while held.

A delivery (`delivery.state`; `decisions.py` decides each move, `stores/outbox.py`
writes it):

    pending --claimed--> sending --accepted-------------------> sent
       ^                    +--retry, room in the schedule-----> pending
       |                    +--retry, no room left-------------> dead
       |                    +--retry after its useful window---> expired
       |                    +--refused for good, 410-----------> failed
       |                    +--not worth sending (`decide`)----> cancelled / expired
       +--quiet hours, or its destination busy: back, not an attempt--+
       +--the patient unsubscribed, was erased, the session is gone--> cancelled

An escalation (`escalation.state`): open --acknowledged by staff--> acknowledged.
"""

from __future__ import annotations

from enum import StrEnum


class SessionStatus(StrEnum):
    PLANNED = "planned"
    CONFIRMED = "confirmed"
    SKIPPED = "skipped"
    MISSED = "missed"
    CANCELLED = "cancelled"
    UNRECORDED = "unrecorded"
    # Not done, and never reminded because no reminder could reach the patient: not
    # their miss (`safety.blame_patient`); left out of adherence's rate.
    NOT_REMINDED = "not_reminded"


class EnrollmentStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    WITHDRAWN = "withdrawn"
    COMPLETED = "completed"
    HELD = "held"
    # Wound down: the patient answered none of the weekly sessions after the clinic was
    # told they stopped; nothing is planned or sent until they confirm or it resumes.
    DORMANT = "dormant"
    # A short course that ran out of time (`end_reason` says why).
    ENDED = "ended"


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    DEAD = "dead"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class DeliveryAudience(StrEnum):
    """Who a delivery is for; `Delivery.kind` says what it is."""

    PATIENT = "patient"  # a message to a patient: by email, or relayed by a webhook
    CLINIC = "clinic"  # an email to the clinic's alert address
    INTEGRATION = "integration"  # an event for the clinic's systems, by webhook
    STAFF = "staff"  # an email to one of the clinic's staff (an invite, a reset, a lock)


class EscalationState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"


class EscalationReason(StrEnum):
    """Why the clinic is told about a patient (the inbox's and the webhook's `reason`)."""

    MISSED_SESSIONS = "missed_sessions"
    LAPSED = "lapsed"
    NO_RESPONSE = "no_response"
    SIDE_EFFECT = "side_effect"
    UNRECORDED = "unrecorded"
    UNSUBSCRIBED = "unsubscribed"
    UNDELIVERABLE = "undeliverable"
    UNREACHABLE = "unreachable"
    WORSENING = "worsening"
    NO_IMPROVEMENT = "no_improvement"
    DORMANT = "dormant"
    EXPIRED = "expired"
    OVER_TREATMENT = "over_treatment"


# A course still under way: it may have sessions planned and messages to send, or (held)
# wait for a clinician's decision.
# Escalations that ask a clinician to decide how a course goes on.
REVIEW_REASONS = (EscalationReason.NO_RESPONSE, EscalationReason.NO_IMPROVEMENT)
# A course that takes no more sessions: it completed, or ran out of time.
FINISHED = (EnrollmentStatus.COMPLETED, EnrollmentStatus.ENDED)
ONGOING = (
    EnrollmentStatus.ACTIVE,
    EnrollmentStatus.PAUSED,
    EnrollmentStatus.HELD,
    EnrollmentStatus.DORMANT,
)
# A delivery in one of these is done with: it will never be sent (again).
ENDED = (
    DeliveryState.SENT,
    DeliveryState.FAILED,
    DeliveryState.DEAD,
    DeliveryState.EXPIRED,
    DeliveryState.CANCELLED,
)
