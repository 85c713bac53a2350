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


# A course still under way: it may have sessions planned and messages to send, or (held)
# wait for a clinician's decision.
ONGOING = (EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED, EnrollmentStatus.HELD)
# A delivery in one of these is done with: it will never be sent (again).
ENDED = (
    DeliveryState.SENT,
    DeliveryState.FAILED,
    DeliveryState.DEAD,
    DeliveryState.EXPIRED,
    DeliveryState.CANCELLED,
)
