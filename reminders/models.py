"""SQLModel tables. Times are stored in UTC; session dates are the patient's local dates."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from reminders.adherence import NO_RISK
from reminders.fields import Day, EmailAddress, Instant, Note, PatientLocale, SingleLine
from reminders.ids import new_id
from reminders.outcomes import SideEffect
from reminders.planner import Plan
from reminders.states import EscalationState
from reminders.weekdays import weekday_name, weekday_names

if TYPE_CHECKING:
    from reminders.stores.session_store import SessionRow


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that always goes in and comes out as an aware UTC datetime.

    SQLite has no time zone type, so values are stored naive in UTC and tagged on read.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _stamp() -> Any:
    """A row's creation or change stamp. It has no default: the writer passes the `now`
    of its unit of work, so the stamps and every watermark compared with them (the
    standings' last look, retention, idempotency windows) come from one clock."""
    return Field(sa_type=UTCDateTime, nullable=False)


class Clinic(SQLModel, table=True):
    """A tenant: its staff and systems authenticate with one of the clinic's API keys."""

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    alert_email: str | None = Field(default=None, max_length=320)
    webhook_include_names: bool = False
    # For protocols given at the clinic: its zone and the weekdays it is open.
    timezone: str | None = Field(default=None, max_length=64)
    open_weekdays: str = Field(default="mon,tue,wed,thu,fri", max_length=27)
    # How patients see and reach the clinic: the name their messages come from (`name`
    # when unset), where their replies go, and a phone number to call.
    display_name: str | None = Field(default=None, max_length=100)
    reply_to: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)
    # The clinic's digest (`services.digest`): daily, weekly (Mondays) or off; and when
    # the last one went out.
    digest: str = Field(default="daily", max_length=8)
    digest_sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = _stamp()


class ApiKey(SQLModel, table=True):
    """A named key of a clinic, stored hashed. What a key does is recorded under its
    name; a revoked key stays listed so the record keeps meaning something."""

    __tablename__ = "api_key"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "name", name="uq_api_key_name"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    clinic_id: str = Field(foreign_key="clinic.id", index=True, max_length=32)
    name: str = Field(max_length=100)
    key_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _stamp()
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class IdempotentRequest(SQLModel, table=True):
    """The first answer to a POST sent with an `Idempotency-Key`, replayed when the same
    caller sends the same key again. `status` is NULL while the first is in progress."""

    __tablename__ = "idempotent_request"

    scope: str = Field(primary_key=True, max_length=64)
    key: str = Field(primary_key=True, max_length=200)
    request_digest: str = Field(max_length=64)
    status: int | None = None
    content_type: str | None = Field(default=None, max_length=100)
    body: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = _stamp()


class Heartbeat(SQLModel, table=True):
    """When a part of the service last proved it could write (readiness)."""

    name: str = Field(primary_key=True, max_length=32)
    at: datetime = Field(sa_type=UTCDateTime)


class ClinicClosedDate(SQLModel, table=True):
    """A day the clinic is closed (a public holiday): no appointment is planned on it."""

    __tablename__ = "clinic_closed_date"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "local_date", name="uq_clinic_closed_date"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    clinic_id: str = Field(foreign_key="clinic.id", index=True, max_length=32)
    local_date: date
    reason: str | None = Field(default=None, max_length=200)
    created_at: datetime = _stamp()


class Patient(SQLModel, table=True):
    """A patient of one clinic, with how and when they want to be reminded. The
    clinic's own id for the patient (`external_id`) names one patient of the clinic."""

    __table_args__ = (
        sa.UniqueConstraint("clinic_id", "external_id", name="uq_patient_external_id"),
        sa.Index("ix_patient_clinic_risk", "clinic_id", "risk_rank", "id"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    clinic_id: str = Field(foreign_key="clinic.id", index=True, max_length=32)
    name: str = Field(max_length=200)
    email: str | None = Field(default=None, max_length=320)
    timezone: str = Field(max_length=64)
    reminder_time: str = Field(max_length=5)
    quiet_start: str | None = Field(default=None, max_length=5)
    quiet_end: str | None = Field(default=None, max_length=5)
    channel: str = Field(default="email", max_length=16)
    locale: str = Field(default="en", max_length=16)
    external_id: str | None = Field(default=None, max_length=200)
    unsubscribed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resubscribed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resubscribed_by: str | None = Field(default=None, max_length=300)
    resubscribe_consent: str | None = Field(default=None, max_length=500)
    # Why no reminder can reach the patient (`safety.Unreachable`, comma-separated), as
    # last worked out at `reachability_checked_at` (None: not yet; the sweep will).
    unreachable: str | None = Field(default=None, max_length=100)
    reachability_checked_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    # The address a mail server last refused for good; a cause while it is `email`.
    email_refused: str | None = Field(default=None, max_length=320)
    erased_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    erased_by: str | None = Field(default=None, max_length=300)
    # The calendar feed's token is derived from this: revoking the feed counts it up, so
    # the old link stops working and a new one takes its place.
    calendar_generation: int = 0
    # The patient's standing, kept by `services.standings` so the clinic's lists sort
    # and show it without reading every session: `risk_rank` sorts most at risk first.
    risk_rank: str = Field(
        default=NO_RISK, max_length=40, sa_column_kwargs={"server_default": NO_RISK}
    )
    adherence_rate: float | None = None
    missed_in_a_row: int = 0
    last_session_on: date | None = None
    created_at: datetime = _stamp()


class Enrollment(SQLModel, table=True):
    """A patient's plan: one protocol from a start date with the patient's preferences.

    `phase`, `interval_days` and `review_reason` are the planner's last answer, kept so
    lists and reminders need not re-plan; the history of sessions is the source of truth.
    """

    __table_args__ = (sa.Index("ix_enrollment_updated_at", "updated_at"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    clinic_id: str = Field(foreign_key="clinic.id", index=True, max_length=32)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=32)
    protocol_id: str = Field(max_length=100)
    # The protocol version planned by; None for enrollments older than versions.
    protocol_version: int | None = None
    start_date: date
    body_area: str | None = Field(default=None, max_length=50)
    weekdays: str | None = Field(default=None, max_length=27)
    status: str = Field(default="active", max_length=16, index=True)
    phase: str = Field(max_length=50)
    interval_days: int | None = None
    planned_on: date | None = None
    review_reason: str | None = Field(default=None, max_length=500)
    paused_until: date | None = None
    pause_reason: str | None = Field(default=None, max_length=500)
    # Lapse counting starts again on this day: a pause ended, or the clinic acted.
    counting_from: date | None = None
    # The day the clinic was told this patient stopped confirming: the course winds
    # down (`course_state`) until the patient confirms again or the clinic resumes it.
    slowed_since: date | None = None
    # Why an `ended` course ended (`course_state.EndReason`).
    end_reason: str | None = Field(default=None, max_length=32)
    # Nothing is planned before this day: a clinician let a held plan go on from it.
    resume_on: date | None = None
    screening: str = Field(default="{}", max_length=2000)
    override_reason: str | None = Field(default=None, max_length=1000)
    created_at: datetime = _stamp()
    updated_at: datetime = _stamp()


class TreatmentSession(SQLModel, table=True):
    """One treatment occurrence on a patient's local date; its states are drawn in
    `states`, and `stores.session_store` reads and writes its rows. At most one row per
    enrollment and local date: a re-plan reuses a cancelled row.
    """

    __tablename__ = "treatment_session"
    __table_args__ = (
        sa.UniqueConstraint("enrollment_id", "local_date", name="uq_session_enrollment_date"),
        sa.Index("ix_session_status_date", "status", "local_date"),
        sa.Index("ix_session_updated_at", "updated_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    enrollment_id: str = Field(foreign_key="enrollment.id", max_length=32)
    local_date: date
    timezone: str = Field(max_length=64)
    phase: str = Field(max_length=50)
    status: str = Field(default="planned", max_length=16)
    minutes: int
    unscheduled: bool = False
    # An appointment at the clinic: staff record it; unrecorded after the grace, the
    # clinic is told (status "unrecorded") and the patient is not sent a missed notice.
    at_clinic: bool = False
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    hdss: int | None = None
    # The code reported on the protocol's outcome scale ("1+" is a code, not a number).
    outcome: str | None = Field(default=None, max_length=8)
    side_effect: str | None = Field(default=None, max_length=16)
    side_effect_note: str | None = Field(default=None, max_length=500)
    current_ma: float | None = None
    minutes_done: int | None = None
    skip_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = _stamp()
    updated_at: datetime = _stamp()


class ProtocolVersion(SQLModel, table=True):
    """One content of a protocol file, numbered; enrollments keep the one they were
    enrolled on (`Enrollment.protocol_version`)."""

    __tablename__ = "protocol_version"
    __table_args__ = (
        sa.UniqueConstraint("protocol_id", "version", name="uq_protocol_version_number"),
        sa.UniqueConstraint("protocol_id", "digest", name="uq_protocol_version_digest"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    protocol_id: str = Field(max_length=100)
    version: int
    digest: str = Field(max_length=64)
    body: str = Field(sa_type=sa.Text)
    created_at: datetime = _stamp()


class ReviewDecisionRow(SQLModel, table=True):
    """A clinician's decision on an enrollment's open review; an input of the planner."""

    __tablename__ = "review_decision"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    enrollment_id: str = Field(foreign_key="enrollment.id", index=True, max_length=32)
    local_date: date
    action: str = Field(max_length=16)
    decided_by: str | None = Field(default=None, max_length=300)
    note: str | None = Field(default=None, max_length=2000)
    created_at: datetime = _stamp()


class AbsenceRow(SQLModel, table=True):
    """Local dates (both included) a patient is away: nothing is planned, reminded,
    missed or escalated inside them."""

    __tablename__ = "absence"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    clinic_id: str = Field(foreign_key="clinic.id", index=True, max_length=32)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=32)
    first_date: date
    last_date: date
    reason: str | None = Field(default=None, max_length=500)
    set_by: str = Field(max_length=16)
    created_at: datetime = _stamp()


class Escalation(SQLModel, table=True):
    """Something the clinic must look at. One open escalation per cause (see
    `events.escalate`): `open_key` is unique while open and cleared on acknowledgement,
    so a cause that persists (a lapse, a broken mail server) is raised once, not once a
    day.

    `detail` holds ids and dates only, never names.
    """

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    clinic_id: str = Field(foreign_key="clinic.id", index=True, max_length=32)
    patient_id: str | None = Field(default=None, foreign_key="patient.id", max_length=32)
    enrollment_id: str | None = Field(default=None, max_length=32)
    session_id: str | None = Field(default=None, max_length=32)
    reason: str = Field(max_length=32)
    # `safety.Priority`: 1 is the most urgent; lists sort by it, then oldest first.
    priority: int = Field(default=6)
    detail: str = Field(max_length=1000)
    # The patient's own words about a side effect: shown to staff, never put in email
    # subjects or logs, cleared by erasure.
    patient_note: str | None = Field(default=None, max_length=2000)
    state: str = Field(default=EscalationState.OPEN, max_length=16)
    open_key: str | None = Field(default=None, max_length=200, unique=True)
    # A review nobody decided is sent again (`escalations.realert_undecided`).
    alerted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    realerts: int = Field(default=0)
    acknowledged_by: str | None = Field(default=None, max_length=300)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    note: str | None = Field(default=None, max_length=2000)
    created_at: datetime = _stamp()


class StaffMember(SQLModel, table=True):
    """A person of one clinic who uses the web app, as `admin` or `clinician`. An email
    address belongs to one clinic, across the service. `password_hash` is None until
    they follow their setup link; failed logins count up to a lock (`services.staff`)."""

    __tablename__ = "staff_member"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    clinic_id: str = Field(foreign_key="clinic.id", index=True, max_length=32)
    email: str = Field(max_length=320, unique=True)
    role: str = Field(max_length=16)
    password_hash: str | None = Field(default=None, max_length=200)
    failed_logins: int = 0
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = _stamp()


class StaffLogin(SQLModel, table=True):
    """A staff member logged in to the web app: the cookie holds a secret whose hash is
    the key. Logging out (or an admin disabling the member) ends it; so does time."""

    __tablename__ = "staff_login"

    token_hash: str = Field(primary_key=True, max_length=64)
    staff_id: str = Field(foreign_key="staff_member.id", index=True, max_length=32)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = _stamp()


class StaffLink(SQLModel, table=True):
    """A one-time link that lets a staff member set a password: `setup` (a new account)
    or `reset` (forgotten). Only the token's hash is kept."""

    __tablename__ = "staff_link"

    token_hash: str = Field(primary_key=True, max_length=64)
    staff_id: str = Field(foreign_key="staff_member.id", index=True, max_length=32)
    purpose: str = Field(max_length=16)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = _stamp()


class DigestLine(SQLModel, table=True):
    """Something about a course the clinic's digest names (`services.digest`): a
    completion with its verdict, a return to induction, a relapse, worsening, a course
    wound down or run out of time. `detail` holds ids, dates and scale codes only."""

    __tablename__ = "digest_line"
    __table_args__ = (sa.Index("ix_digest_line_clinic_created", "clinic_id", "created_at"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    clinic_id: str = Field(foreign_key="clinic.id", max_length=32)
    patient_id: str = Field(foreign_key="patient.id", max_length=32)
    enrollment_id: str = Field(max_length=32)
    kind: str = Field(max_length=32)
    detail: str = Field(max_length=500)
    created_at: datetime = _stamp()


class AuditEvent(SQLModel, table=True):
    """Something a person changed: who (`actor`: a staff email or an API key's name),
    when, what (`action` on `subject_type` `subject_id`) and its particulars (`detail`,
    JSON of ids, dates, choices and the reason or note the person gave; never a patient's
    name or contact details)."""

    __tablename__ = "audit_event"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    clinic_id: str = Field(foreign_key="clinic.id", index=True, max_length=32)
    actor: str = Field(max_length=400)
    staff_id: str | None = Field(default=None, max_length=32)
    action: str = Field(max_length=40)
    subject_type: str = Field(max_length=32)
    subject_id: str | None = Field(default=None, max_length=32)
    detail: str = Field(default="{}", sa_type=sa.Text)
    created_at: datetime = _stamp()


class WebhookEndpoint(SQLModel, table=True):
    """A clinic's receiver of signed webhooks (Standard Webhooks).

    The secret must be usable for signing, so it is stored as given; while a rotation
    is under way the previous secret signs too, until `previous_secret_until`.
    """

    __tablename__ = "webhook_endpoint"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    clinic_id: str = Field(foreign_key="clinic.id", index=True, max_length=32)
    url: str = Field(max_length=2000)
    secret: str = Field(max_length=100)
    previous_secret: str | None = Field(default=None, max_length=100)
    previous_secret_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    events: str = Field(default="*", max_length=1000)
    enabled: bool = True
    disabled_reason: str | None = Field(default=None, max_length=500)
    failing_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = _stamp()


class Delivery(SQLModel, table=True):
    """One message to send through one channel, held in the outbox until it is done.

    `id` is the message's identity for its whole life: the `webhook-id` header, the
    email's Message-ID. Its states are drawn in `states`; `stores.outbox` reads and writes
    its rows. One per session, kind, channel and target.
    """

    __table_args__ = (
        sa.UniqueConstraint(
            "session_id", "kind", "channel", "target", name="uq_delivery_session_kind"
        ),
        sa.Index("ix_delivery_state_next", "state", "next_attempt_at"),
        sa.Index("ix_delivery_patient", "patient_id"),
        # A clinic's deliveries newest first, all or of one channel (its webhooks).
        sa.Index("ix_delivery_clinic_channel", "clinic_id", "channel", "id"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    clinic_id: str = Field(foreign_key="clinic.id", max_length=32)
    patient_id: str | None = Field(default=None, foreign_key="patient.id", max_length=32)
    session_id: str | None = Field(default=None, foreign_key="treatment_session.id", max_length=32)
    # What the message is (reminder, clinic_alert, session.confirmed, ...) and who it is
    # for (patient, clinic, integration: `states.DeliveryAudience`).
    kind: str = Field(max_length=32)
    audience: str = Field(max_length=16)
    channel: str = Field(max_length=16)
    target: str = Field(max_length=32)
    state: str = Field(default="pending", max_length=16)
    due_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    next_attempt_at: datetime = Field(sa_type=UTCDateTime)
    attempts: int = 0
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    claimed_by: str | None = Field(default=None, max_length=64)
    last_error: str | None = Field(default=None, max_length=1000)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    payload: str = Field(default="{}", max_length=20000)
    created_at: datetime = _stamp()


class PatientToken(SQLModel, table=True):
    """A link token for a patient (session page or unsubscribe), stored only as a hash."""

    __tablename__ = "patient_token"

    token_hash: str = Field(primary_key=True, max_length=64)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=32)
    session_id: str | None = Field(default=None, foreign_key="treatment_session.id", max_length=32)
    purpose: str = Field(max_length=16)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = _stamp()


HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class _Input(BaseModel):
    """Inputs refuse unknown fields, so a typo is an error and not a silent default.

    Free text is `SingleLine` or, where it may span lines, `Note` (see fields.py): no
    control character gets in."""

    model_config = ConfigDict(extra="forbid")


def _example(body: dict[str, Any]) -> ConfigDict:
    """An input's settings with a whole example body for the API's documentation."""
    return ConfigDict(extra="forbid", json_schema_extra={"examples": [body]})


class QuietHoursSetting(_Input):
    """A patient's quiet hours as the API takes and shows them: local HH:MM times
    between which no message is sent (may wrap midnight); `timing.QuietHours` is the
    rule itself."""

    model_config = _example({"start": "21:00", "end": "08:00"})

    start: str = PydanticField(pattern=HHMM)
    end: str = PydanticField(pattern=HHMM)


class PatientCreate(_Input):
    """A new patient as a clinic sends it."""

    model_config = _example(
        {
            "name": "Ann Example",
            "email": "ann@example.org",
            "timezone": "Europe/Berlin",
            "reminder_time": "18:30",
            "quiet_hours": {"start": "21:00", "end": "08:00"},
            "channel": "email",
            "locale": "en",
            "external_id": "EHR-1042",
        }
    )

    name: SingleLine = PydanticField(min_length=1, max_length=200, examples=["Ann Example"])
    email: EmailAddress | None = PydanticField(default=None, examples=["ann@example.org"])
    timezone: SingleLine = PydanticField(
        min_length=1, max_length=64, description="IANA time zone.", examples=["Europe/Berlin"]
    )
    reminder_time: str | None = PydanticField(
        default=None,
        pattern=HHMM,
        description="Local HH:MM; the operator's default_reminder_time when left out.",
        examples=["18:30"],
    )
    quiet_hours: QuietHoursSetting | None = None
    channel: Literal["email", "webhook"] = "email"
    locale: PatientLocale = PydanticField(
        default="en",
        description="One of en, de, es, fr, pt-BR; a regional variant reads its"
        " language's messages (en-US → en, pt-PT → pt-BR).",
        examples=["pt-BR"],
    )
    external_id: SingleLine | None = PydanticField(default=None, max_length=200)


class EnrollmentCreate(_Input):
    """A request to enroll a patient in a protocol, with the contraindication screening.

    `screening` answers every contraindication the protocol lists (true = present).
    """

    model_config = _example(
        {
            "protocol": "tap-water-hyperhidrosis",
            "start_date": "2026-12-07",
            "body_area": "palms",
            "weekdays": ["mon", "wed", "fri"],
            "screening": {
                "pacemaker": False,
                "pregnancy": False,
                "epilepsy": False,
                "heart_disease": False,
                "metal_implants": False,
                "skin_defects": False,
                "reduced_sensation": False,
                "acute_infection": False,
                "cancer_in_area": False,
            },
        }
    )

    protocol: SingleLine = PydanticField(
        min_length=1, max_length=100, examples=["tap-water-hyperhidrosis"]
    )
    start_date: Day = PydanticField(examples=["2026-12-07"])
    body_area: str | None = PydanticField(
        default=None,
        max_length=50,
        pattern=r"^[a-z][a-z-]*$",
        examples=["palms"],
        description="The treated area, one of the protocol's `body_areas` (hands, feet and "
        "armpits are understood too). Required where the protocol lists areas (every "
        "shipped one): one enrollment per treated area.",
    )
    weekdays: list[SingleLine] | None = PydanticField(
        default=None, max_length=7, examples=[["mon", "wed", "fri"]]
    )
    screening: dict[SingleLine, bool] = PydanticField(default_factory=dict, max_length=50)
    override_reason: Note | None = PydanticField(default=None, max_length=1000)
    welcome: bool = PydanticField(
        default=True,
        description="Send the patient a welcome with the first weeks of the plan (false: "
        "they already know it, e.g. a second body area).",
    )


class SessionReport(_Input):
    """What a patient or clinic reports with a confirmation.

    `outcome` is a code of the protocol's outcome scale (GET /v1/protocols/{id} names
    it); `hdss` is still accepted for protocols that ask HDSS. A side effect of
    blistering or a burn tells the clinic at once.
    """

    model_config = _example(
        {
            "hdss": 2,
            "current_ma": 12.5,
            "minutes": 20,
            "side_effect": "dryness",
            "side_effect_note": "itching for an hour",
        }
    )

    completed_at: Instant | None = None
    minutes: int | None = PydanticField(default=None, ge=1, le=120)
    current_ma: float | None = PydanticField(default=None, ge=0, le=30)
    hdss: int | None = PydanticField(default=None, ge=1, le=4)
    outcome: SingleLine | None = PydanticField(default=None, max_length=8, examples=["2"])
    side_effect: SideEffect | None = None
    side_effect_note: Note | None = PydanticField(
        default=None, max_length=500, examples=["itching for an hour"]
    )


class PatientUpdate(_Input):
    """Fields a clinic may change on a patient; those left out stay as they are."""

    model_config = _example({"reminder_time": "07:45", "timezone": "America/New_York"})

    name: SingleLine | None = PydanticField(default=None, min_length=1, max_length=200)
    email: EmailAddress | None = None
    timezone: SingleLine | None = PydanticField(
        default=None, min_length=1, max_length=64, examples=["America/New_York"]
    )
    reminder_time: str | None = PydanticField(default=None, pattern=HHMM, examples=["07:45"])
    quiet_hours: QuietHoursSetting | None = None
    channel: Literal["email", "webhook"] | None = None
    locale: PatientLocale | None = None
    external_id: SingleLine | None = PydanticField(default=None, max_length=200)
    subscribed: bool | None = PydanticField(
        default=None,
        description="false stops every message (as the patient's unsubscribe link does);"
        " true resubscribes a patient who unsubscribed, with `consent` saying how they"
        " agreed.",
    )
    consent: Note | None = PydanticField(
        default=None,
        min_length=1,
        max_length=500,
        examples=["Asked at the 3 March visit to get reminders again"],
    )


class PatientPublic(BaseModel):
    """A patient as the API shows it to the patient's clinic."""

    id: str
    name: str
    email: str | None
    timezone: str
    reminder_time: str
    quiet_hours: QuietHoursSetting | None
    channel: str
    locale: str
    external_id: str | None
    unsubscribed_at: datetime | None
    resubscribed_at: datetime | None
    resubscribed_by: str | None
    resubscribe_consent: str | None
    created_at: datetime

    @classmethod
    def of(cls, patient: Patient) -> PatientPublic:
        """Return the public view of a patient row."""
        quiet = (
            QuietHoursSetting(start=patient.quiet_start, end=patient.quiet_end)
            if patient.quiet_start and patient.quiet_end
            else None
        )
        return cls(
            **patient.model_dump(exclude={"clinic_id", "quiet_start", "quiet_end"}),
            quiet_hours=quiet,
        )


class SessionPublic(BaseModel):
    """A treatment session."""

    id: str
    enrollment_id: str
    date: date
    timezone: str
    phase: str
    status: str
    minutes: int
    unscheduled: bool
    at_clinic: bool
    completed_at: datetime | None
    hdss: int | None
    outcome: str | None
    side_effect: str | None
    side_effect_note: str | None
    current_ma: float | None
    minutes_done: int | None
    skip_reason: str | None

    @classmethod
    def of(cls, session: SessionRow) -> SessionPublic:
        """Return the public view of a session row."""
        values = {name: getattr(session, name) for name in cls.model_fields if name != "date"}
        return cls(date=session.local_date, **values)


class TallyPublic(BaseModel):
    """Counts over due sessions and their adherence rate (null when none were due)."""

    confirmed: int
    skipped: int
    missed: int
    rate: float | None


class WeekPublic(TallyPublic):
    """One ISO week's tally."""

    week: str


class AdherencePublic(BaseModel):
    """Adherence figures for one patient (over all their enrollments) or one enrollment."""

    rate: float | None
    confirmed: int
    skipped: int
    missed: int
    not_reminded: int = PydanticField(
        description="Sessions not done that no reminder could reach the patient about: "
        "not counted in the rate."
    )
    on_time_share: float | None
    current_streak: int
    missed_in_a_row: int
    days_since_last_session: int | None
    last_session: date | None
    weeks: list[WeekPublic]
    phases: dict[str, TallyPublic]


class OutcomeTrend(BaseModel):
    """The first and the latest outcome reported on the protocol's scale."""

    scale: str
    first: str
    first_on: date
    latest: str
    latest_on: date
    reports: int


class EnrollmentPublic(BaseModel):
    """An enrollment with where the patient stands and what comes next."""

    id: str
    patient_id: str
    protocol: str
    protocol_version: int | None
    start_date: date
    body_area: str | None
    weekdays: list[str] | None
    status: str
    phase: str
    interval_days: int | None
    review_reason: str | None = PydanticField(
        description="Set while a clinician must decide (POST .../review): the patient has "
        "not responded; reminders continue on the current phase."
    )
    paused_until: date | None
    pause_reason: str | None
    screening: dict[str, bool]
    override_reason: str | None
    created_at: datetime
    upcoming: list[SessionPublic]
    adherence: AdherencePublic
    outcome_trend: OutcomeTrend | None


class CalendarFeedPublic(BaseModel):
    """A patient's private calendar feed: whoever has the link sees the patient's
    sessions, so it goes to the patient alone; revoking it gives a new one."""

    url: str = PydanticField(examples=["https://reminders.example.org/c/3q2-7wEXAMPLE.ics"])


class SkipRequest(_Input):
    """Why a session will not be done (optional)."""

    model_config = _example({"reason": "travelling"})

    reason: Note | None = PydanticField(default=None, max_length=500)


class ClinicPublic(BaseModel):
    """The clinic the API key belongs to, and when it gives appointments."""

    id: str
    name: str
    timezone: str | None
    open_weekdays: list[str]
    display_name: str | None
    reply_to: str | None
    phone: str | None
    digest: str

    @classmethod
    def of(cls, clinic: Clinic | sa.Row[Any]) -> ClinicPublic:
        """Return the public view of a clinic row (a model, or a row of its columns)."""
        return cls(
            id=clinic.id,
            name=clinic.name,
            timezone=clinic.timezone,
            open_weekdays=weekday_names(clinic.open_weekdays),
            display_name=clinic.display_name,
            reply_to=clinic.reply_to,
            phone=clinic.phone,
            digest=clinic.digest,
        )


class ApiKeyCreate(_Input):
    """A new API key for the calling clinic, named for what will use it."""

    model_config = _example({"name": "ehr-sync"})

    name: SingleLine = PydanticField(min_length=1, max_length=60, examples=["ehr-sync"])


class ApiKeyPublic(BaseModel):
    """One of the clinic's API keys (never the key itself)."""

    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyPublic:
        """Return the public view of a key row."""
        return cls.model_validate(key, from_attributes=True)


class ApiKeyCreated(ApiKeyPublic):
    """A new key: `key` is shown only in this answer."""

    key: str


class ClinicIdentity(_Input):
    """How patients see and reach the clinic, and how often it gets its digest. A field
    left out stays as it is; null clears it (the display name then falls back to the
    clinic's name; a digest cannot be cleared: set it to off)."""

    model_config = _example(
        {
            "display_name": "Northside Dermatology",
            "reply_to": "nurses@northside.example",
            "phone": "+49 30 1234567",
        }
    )

    display_name: SingleLine | None = PydanticField(
        default=None,
        min_length=1,
        max_length=100,
        description='The name patients\' messages come from: "<display name> via Reminders".',
    )
    reply_to: EmailAddress | None = PydanticField(
        default=None, description="Where patients' replies to an email go."
    )
    phone: str | None = PydanticField(
        default=None,
        pattern=r"^\+?[0-9][0-9 ()./-]{2,38}$",
        description="A number patients can call, shown in messages and on their pages.",
    )
    digest: Literal["daily", "weekly", "off"] | None = PydanticField(
        default=None,
        description="The clinic's digest of what happened to its courses, at 07:30 in its "
        "time zone (UTC if unset): every day, on Mondays, or off.",
    )

    def changes(self) -> dict[str, str | None]:
        """The identity fields the request gives, by column name."""
        given = self.model_fields_set & set(ClinicIdentity.model_fields)
        if self.digest is None:
            given.discard("digest")
        return {name: getattr(self, name) for name in sorted(given)}


class ClinicHours(_Input):
    """When the clinic gives appointments (protocols given at the clinic)."""

    model_config = _example(
        {"timezone": "Europe/Berlin", "open_weekdays": ["mon", "tue", "wed", "thu", "fri"]}
    )

    timezone: SingleLine | None = PydanticField(
        default=None, max_length=64, examples=["Europe/Berlin"]
    )
    open_weekdays: list[SingleLine] | None = PydanticField(
        default=None, min_length=1, max_length=7, examples=[["mon", "tue", "wed", "thu", "fri"]]
    )


class ClinicChange(ClinicHours, ClinicIdentity):
    """A change to the clinic: its identity, its hours, or both."""

    model_config = _example({"display_name": "Northside Dermatology", "phone": "+49 30 1234567"})


class ClosedDateCreate(_Input):
    """A day the clinic is closed."""

    model_config = _example({"date": "2026-12-25", "reason": "Christmas"})

    day: Day = PydanticField(alias="date", examples=["2026-12-25"])
    reason: SingleLine | None = PydanticField(default=None, max_length=200, examples=["Christmas"])


class ClosedDatePublic(BaseModel):
    """A day the clinic is closed."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    day: date = PydanticField(alias="date")
    reason: str | None


class PauseRequest(_Input):
    """Pause an enrollment: no sessions, reminders, misses or lapses until it resumes."""

    model_config = _example({"until": "2027-01-11", "reason": "surgery"})

    until: Day | None = PydanticField(
        default=None,
        description="Local date the enrollment resumes by itself; left out, it waits for a resume.",
        examples=["2027-01-04"],
    )
    reason: Note | None = PydanticField(default=None, max_length=500, examples=["surgery"])


class ReviewDecisionCreate(_Input):
    """A clinician's answer to an enrollment's open review (no response)."""

    model_config = _example({"decision": "move_on", "by": "Dr Weiss", "note": "dry since week 3"})

    decision: Literal["continue", "move_on", "end"] = PydanticField(
        description="continue: another block of the phase; move_on: the next phase; "
        "end: the course ends.",
        examples=["continue"],
    )
    by: SingleLine | None = PydanticField(default=None, max_length=200, examples=["Dr Weiss"])
    note: Note | None = PydanticField(default=None, max_length=2000)


class HoldDecisionCreate(_Input):
    """A clinician's answer to a plan held after a side effect."""

    model_config = _example(
        {"decision": "continue", "by": "Dr Weiss", "note": "settings checked, new pads"}
    )

    decision: Literal["continue", "pause", "end"] = PydanticField(
        description="continue: plan again from the first allowed day after today; pause: "
        "until `until`, then resume by itself; end: the course ends and the patient is told.",
        examples=["continue"],
    )
    by: SingleLine = PydanticField(min_length=1, max_length=200, examples=["Dr Weiss"])
    note: Note | None = PydanticField(default=None, max_length=2000)
    until: Day | None = PydanticField(
        default=None, description="For a pause: the local date it ends.", examples=["2027-01-11"]
    )


class AbsenceCreate(_Input):
    """Local dates (both included) the patient is away."""

    model_config = _example({"from": "2027-01-04", "to": "2027-01-13", "reason": "travelling"})

    first: Day = PydanticField(alias="from", examples=["2027-01-04"])
    last: Day = PydanticField(alias="to", examples=["2027-01-13"])
    reason: Note | None = PydanticField(default=None, max_length=500, examples=["travelling"])


class AbsencePublic(BaseModel):
    """An absence of a patient."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: str
    patient_id: str
    first: date = PydanticField(alias="from")
    last: date = PydanticField(alias="to")
    reason: str | None
    set_by: str
    created_at: datetime

    @classmethod
    def of(cls, row: AbsenceRow) -> AbsencePublic:
        """Return the public view of an absence row."""
        return cls(
            id=row.id,
            patient_id=row.patient_id,
            first=row.first_date,
            last=row.last_date,
            reason=row.reason,
            set_by=row.set_by,
            created_at=row.created_at,
        )


class Acknowledgement(_Input):
    """Who looked at an escalation, and what they noted."""

    model_config = _example({"by": "Nurse Kim", "note": "called, resumes Monday"})

    by: SingleLine = PydanticField(min_length=1, max_length=200, examples=["Nurse Kim"])
    note: Note | None = PydanticField(
        default=None, max_length=2000, examples=["called, resumes Monday"]
    )


class EscalationPublic(BaseModel):
    """Something a patient's clinic must look at."""

    id: str
    patient_id: str | None
    external_id: str | None
    enrollment_id: str | None
    session_id: str | None
    reason: str
    priority: int = PydanticField(
        description="1 is the most urgent: a side effect that held the plan."
    )
    detail: str
    patient_note: str | None = PydanticField(description="The patient's own words, if any.")
    state: str
    created_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    note: str | None

    @classmethod
    def of(cls, row: Escalation, external_id: str | None) -> EscalationPublic:
        """Return the public view of an escalation, with its patient's external id."""
        return cls(
            id=row.id,
            patient_id=row.patient_id,
            external_id=external_id,
            enrollment_id=row.enrollment_id,
            session_id=row.session_id,
            reason=row.reason,
            priority=row.priority,
            detail=row.detail,
            patient_note=row.patient_note,
            state=row.state,
            created_at=row.created_at,
            acknowledged_by=row.acknowledged_by,
            acknowledged_at=row.acknowledged_at,
            note=row.note,
        )


class PatientRisk(BaseModel):
    """One line of the clinic's adherence summary."""

    patient_id: str
    name: str
    external_id: str | None
    adherence: AdherencePublic


class WebhookEndpointCreate(_Input):
    """A clinic's receiver; `events` lists the types it wants, or ["*"] for all."""

    model_config = _example(
        {
            "url": "https://ehr.clinic.example.org/hooks/reminders",
            "events": ["session.missed", "patient.escalation"],
        }
    )

    url: SingleLine = PydanticField(min_length=1, max_length=2000)
    events: list[SingleLine] = PydanticField(
        default_factory=lambda: ["*"], min_length=1, max_length=20
    )


class WebhookEndpointPublic(BaseModel):
    """A webhook endpoint; its secret is shown only when created or rotated."""

    id: str
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    secret: str | None = None

    @classmethod
    def of(cls, endpoint: WebhookEndpoint, *, with_secret: bool = False) -> WebhookEndpointPublic:
        """Return the public view; the secret only when asked for."""
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            events=endpoint.events.split(","),
            enabled=endpoint.enabled,
            disabled_reason=endpoint.disabled_reason,
            created_at=endpoint.created_at,
            secret=endpoint.secret if with_secret else None,
        )


class DeliveryPublic(BaseModel):
    """One outbox message: what, to whom (ids), when, and what became of it."""

    id: str
    kind: str
    channel: str
    state: str
    patient_id: str | None
    session_id: str | None
    due_at: datetime
    next_attempt_at: datetime
    attempts: int
    sent_at: datetime | None
    last_error: str | None
    created_at: datetime


class PreviewSession(BaseModel):
    """A session of a previewed plan."""

    date: date
    weekday: str
    phase: str
    minutes: int


class PreviewChange(BaseModel):
    """A phase change, the end of the course (`to_phase` null) or a review point
    (`review` true: the patient stays in the phase until a clinician decides)."""

    on: date
    from_phase: str
    to_phase: str | None
    reason: str
    review: bool


class PlanPreview(BaseModel):
    """The whole plan from a start date, assuming every session is done (the API's
    preview and `reminders plan preview --json` alike)."""

    protocol: str
    start: date
    phase: str
    sessions: list[PreviewSession]
    changes: list[PreviewChange]
    review: list[str]
    review_points: list[date]
    ends_on: date | None
    completed: bool

    @classmethod
    def of(cls, protocol_id: str, start: date, plan: Plan) -> PlanPreview:
        """Return the preview of a plan."""
        return cls(
            protocol=protocol_id,
            start=start,
            phase=plan.phase,
            sessions=[
                PreviewSession(
                    date=s.local_date,
                    weekday=weekday_name(s.local_date.weekday()),
                    phase=s.phase,
                    minutes=s.minutes,
                )
                for s in plan.sessions
            ],
            changes=[
                PreviewChange(
                    on=c.on,
                    from_phase=c.from_phase,
                    to_phase=c.to_phase,
                    reason=c.reason,
                    review=c.is_review,
                )
                for c in plan.changes
            ],
            review=list(plan.review),
            review_points=[c.on for c in plan.changes if c.is_review],
            ends_on=next((c.on for c in plan.changes if c.to_phase is None), None),
            completed=plan.completed,
        )


class AuditEventPublic(BaseModel):
    """One entry of the clinic's audit log: who changed what, and when."""

    id: str
    at: datetime
    actor: str
    staff_id: str | None
    action: str
    subject_type: str
    subject_id: str | None
    detail: dict[str, Any]

    @classmethod
    def of(cls, row: AuditEvent) -> AuditEventPublic:
        return cls(
            id=row.id,
            at=row.created_at,
            actor=row.actor,
            staff_id=row.staff_id,
            action=row.action,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            detail=json.loads(row.detail),
        )
