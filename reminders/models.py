"""SQLModel tables. Times are stored in UTC; session dates are the patient's local dates."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from reminders.fields import EmailAddress, Note, SingleLine
from reminders.ids import new_id


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


def utcnow() -> datetime:
    """Return the current instant as an aware UTC datetime."""
    return datetime.now(UTC)


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class Clinic(SQLModel, table=True):
    """A tenant: its staff and systems authenticate with the clinic's API key."""

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    api_key_hash: str = Field(max_length=64, unique=True)
    alert_email: str | None = Field(default=None, max_length=320)
    webhook_include_names: bool = False
    created_at: datetime = _created()


class Patient(SQLModel, table=True):
    """A patient of one clinic, with how and when they want to be reminded."""

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
    created_at: datetime = _created()


class Enrollment(SQLModel, table=True):
    """A patient's plan: one protocol from a start date with the patient's preferences.

    `phase`, `interval_days` and `review_reason` are the planner's last answer, kept so
    lists and reminders need not re-plan; the history of sessions is the source of truth.
    """

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    clinic_id: str = Field(foreign_key="clinic.id", index=True, max_length=32)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=32)
    protocol_id: str = Field(max_length=100)
    start_date: date
    body_area: str | None = Field(default=None, max_length=50)
    weekdays: str | None = Field(default=None, max_length=27)
    status: str = Field(default="active", max_length=16, index=True)
    phase: str = Field(max_length=50)
    interval_days: int | None = None
    planned_on: date | None = None
    review_reason: str | None = Field(default=None, max_length=500)
    screening: str = Field(default="{}", max_length=2000)
    override_reason: str | None = Field(default=None, max_length=1000)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class TreatmentSession(SQLModel, table=True):
    """One treatment occurrence on a patient's local date.

    planned -> confirmed / skipped / missed, or cancelled when a re-plan drops it. At
    most one row per enrollment and local date: a re-plan reuses a cancelled row.
    """

    __tablename__ = "treatment_session"
    __table_args__ = (
        sa.UniqueConstraint("enrollment_id", "local_date", name="uq_session_enrollment_date"),
        sa.Index("ix_session_status_date", "status", "local_date"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    enrollment_id: str = Field(foreign_key="enrollment.id", max_length=32)
    local_date: date
    timezone: str = Field(max_length=64)
    phase: str = Field(max_length=50)
    status: str = Field(default="planned", max_length=16)
    minutes: int
    unscheduled: bool = False
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    hdss: int | None = None
    current_ma: float | None = None
    minutes_done: int | None = None
    skip_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = _created()
    updated_at: datetime = _created()


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
    created_at: datetime = _created()


class Delivery(SQLModel, table=True):
    """One message to send through one channel, held in the outbox until it is done.

    `id` is the message's identity for its whole life: the `webhook-id` header, the
    email's Message-ID. States: pending -> sending -> sent, or back to pending for a
    retry, or failed (permanent), dead (out of retries), expired (past its useful
    window), cancelled (no longer relevant). One per session, kind, channel and target.
    """

    __table_args__ = (
        sa.UniqueConstraint(
            "session_id", "kind", "channel", "target", name="uq_delivery_session_kind"
        ),
        sa.Index("ix_delivery_state_next", "state", "next_attempt_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    clinic_id: str = Field(foreign_key="clinic.id", index=True, max_length=32)
    patient_id: str | None = Field(default=None, foreign_key="patient.id", max_length=32)
    session_id: str | None = Field(default=None, foreign_key="treatment_session.id", max_length=32)
    kind: str = Field(max_length=32)
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
    created_at: datetime = _created()


class PatientToken(SQLModel, table=True):
    """A link token for a patient (session page or unsubscribe), stored only as a hash."""

    __tablename__ = "patient_token"

    token_hash: str = Field(primary_key=True, max_length=64)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=32)
    session_id: str | None = Field(default=None, foreign_key="treatment_session.id", max_length=32)
    purpose: str = Field(max_length=16)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = _created()


WEEKDAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class _Input(BaseModel):
    """Inputs refuse unknown fields, so a typo is an error and not a silent default.

    Free text is `SingleLine` or, where it may span lines, `Note` (see fields.py): no
    control character gets in."""

    model_config = ConfigDict(extra="forbid")


class QuietHours(_Input):
    """Local times between which no message is sent (may wrap midnight)."""

    start: str = PydanticField(pattern=HHMM)
    end: str = PydanticField(pattern=HHMM)


class PatientCreate(_Input):
    """A new patient as a clinic sends it."""

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
    quiet_hours: QuietHours | None = None
    channel: Literal["email", "webhook"] = "email"
    locale: str = PydanticField(default="en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    external_id: SingleLine | None = PydanticField(default=None, max_length=200)


class EnrollmentCreate(_Input):
    """A request to enroll a patient in a protocol, with the contraindication screening.

    `screening` answers every contraindication the protocol lists (true = present).
    """

    protocol: SingleLine = PydanticField(
        min_length=1, max_length=100, examples=["tap-water-hyperhidrosis"]
    )
    start_date: date = PydanticField(examples=["2026-12-07"])
    body_area: str | None = PydanticField(
        default=None, max_length=50, pattern=r"^[a-z][a-z-]*$", examples=["palms"]
    )
    weekdays: list[SingleLine] | None = PydanticField(
        default=None, max_length=7, examples=[["mon", "wed", "fri"]]
    )
    screening: dict[SingleLine, bool] = PydanticField(default_factory=dict, max_length=50)
    override_reason: Note | None = PydanticField(default=None, max_length=1000)


class SessionReport(_Input):
    """What a patient or clinic reports with a confirmation."""

    completed_at: datetime | None = None
    minutes: int | None = PydanticField(default=None, ge=1, le=120)
    current_ma: float | None = PydanticField(default=None, ge=0, le=30)
    hdss: int | None = PydanticField(default=None, ge=1, le=4)


class PatientUpdate(_Input):
    """Fields a clinic may change on a patient; those left out stay as they are."""

    name: SingleLine | None = PydanticField(default=None, min_length=1, max_length=200)
    email: EmailAddress | None = None
    timezone: SingleLine | None = PydanticField(
        default=None, min_length=1, max_length=64, examples=["America/New_York"]
    )
    reminder_time: str | None = PydanticField(default=None, pattern=HHMM, examples=["07:45"])
    quiet_hours: QuietHours | None = None
    channel: Literal["email", "webhook"] | None = None
    locale: str | None = PydanticField(default=None, pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    external_id: SingleLine | None = PydanticField(default=None, max_length=200)


class PatientPublic(BaseModel):
    """A patient as the API shows it to the patient's clinic."""

    id: str
    name: str
    email: str | None
    timezone: str
    reminder_time: str
    quiet_hours: QuietHours | None
    channel: str
    locale: str
    external_id: str | None
    unsubscribed_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, patient: Patient) -> PatientPublic:
        """Return the public view of a patient row."""
        quiet = (
            QuietHours(start=patient.quiet_start, end=patient.quiet_end)
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
    completed_at: datetime | None
    hdss: int | None
    current_ma: float | None
    minutes_done: int | None
    skip_reason: str | None

    @classmethod
    def of(cls, session: TreatmentSession) -> SessionPublic:
        """Return the public view of a session row."""
        return cls(date=session.local_date, **session.model_dump(exclude={"local_date"}))


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
    on_time_share: float | None
    current_streak: int
    missed_in_a_row: int
    days_since_last_session: int | None
    last_session: date | None
    weeks: list[WeekPublic]
    phases: dict[str, TallyPublic]


class EnrollmentPublic(BaseModel):
    """An enrollment with where the patient stands and what comes next."""

    id: str
    patient_id: str
    protocol: str
    start_date: date
    body_area: str | None
    weekdays: list[str] | None
    status: str
    phase: str
    interval_days: int | None
    review_reason: str | None
    screening: dict[str, bool]
    override_reason: str | None
    created_at: datetime
    upcoming: list[SessionPublic]
    adherence: AdherencePublic


class SkipRequest(_Input):
    """Why a session will not be done (optional)."""

    reason: Note | None = PydanticField(default=None, max_length=500)


class PatientRisk(BaseModel):
    """One line of the clinic's adherence summary."""

    patient_id: str
    name: str
    external_id: str | None
    adherence: AdherencePublic


class WebhookEndpointCreate(_Input):
    """A clinic's receiver; `events` lists the types it wants, or ["*"] for all."""

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
