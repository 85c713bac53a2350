"""Read-only queries behind the API: lists with cursors, adherence, deliveries.

Every query is scoped to one clinic; another clinic's ids are simply not found.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Generic, TypeVar

import sqlalchemy as sa
from sqlmodel import Session, col, select

from reminders.adherence import Adherence, SessionFact, Tally, adherence
from reminders.errors import InvalidInput, NotFound
from reminders.models import (
    AdherencePublic,
    AuditEvent,
    Enrollment,
    EnrollmentPublic,
    Escalation,
    OutcomeTrend,
    Patient,
    SessionPublic,
    TallyPublic,
    WebhookEndpoint,
    WeekPublic,
)
from reminders.protocols import Protocol
from reminders.services.enrollments import get_enrollment
from reminders.services.patients import get_patient
from reminders.states import ONGOING, DeliveryState, EscalationState, SessionStatus
from reminders.stores import outbox, session_store
from reminders.stores.outbox import DeliveryRow
from reminders.stores.session_store import AdherenceRow, SessionRow
from reminders.timing import local_today
from reminders.weekdays import weekday_names

T = TypeVar("T")
Newest = TypeVar("Newest", Escalation, AuditEvent)
MAX_PAGE = 200
CURSOR_PATTERN = r"^[0-9a-f]{32}$"


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list and the cursor for the next (None at the end)."""

    items: list[T]
    next_cursor: str | None


def check_page(cursor: str | None, limit: int) -> None:
    if cursor is not None and not re.fullmatch(CURSOR_PATTERN, cursor):
        raise InvalidInput("cursor", "not a cursor this API gave out")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("limit", f"must be between 1 and {MAX_PAGE}")


def page_of(rows: Sequence[T], limit: int, key: str) -> Page[T]:
    more = len(rows) > limit
    items = list(rows[:limit])
    return Page(items, getattr(items[-1], key) if more and items else None)


def list_patients(
    db: Session, clinic_id: str, cursor: str | None, limit: int, external_id: str | None = None
) -> Page[Patient]:
    """Return a page of the clinic's patients (those with `external_id`, if given),
    oldest first."""
    check_page(cursor, limit)
    query = select(Patient).where(Patient.clinic_id == clinic_id, col(Patient.erased_at).is_(None))
    if external_id is not None:
        query = query.where(Patient.external_id == external_id)
    if cursor:
        query = query.where(col(Patient.id) > cursor)
    rows = db.exec(query.order_by(col(Patient.id)).limit(limit + 1)).all()
    return page_of(rows, limit, "id")


def check_state(state: str | None, states: Sequence[str]) -> None:
    if state is not None and state not in states:
        raise InvalidInput("state", f"must be one of {', '.join(states)}")


def newest_escalations(
    db: Session, clinic_id: str, state: str | None, cursor: str | None, limit: int
) -> Page[Escalation]:
    """Return a page of the clinic's escalations (ids sort by time), newest first,
    optionally those in one state; raise InvalidInput naming the field."""
    check_state(state, tuple(EscalationState))
    wanted = [col(Escalation.state) == state] if state else []
    return _newest(db, Escalation, clinic_id, cursor, limit, *wanted)


def open_escalations_by_priority(
    db: Session, clinic_id: str, cursor: str | None, limit: int
) -> Page[Escalation]:
    """Return a page of the clinic's open escalations, most urgent first and oldest
    first within a rank (`safety.Priority`): the order the inbox and Today show."""
    rank, _, after = (cursor or "").partition(".")
    check_page(after or None, limit)
    query = select(Escalation).where(
        col(Escalation.clinic_id) == clinic_id, col(Escalation.state) == EscalationState.OPEN
    )
    if cursor:
        if not rank.isdigit() or not after:
            raise InvalidInput("cursor", "not a cursor this API gave out")
        query = query.where(
            sa.tuple_(col(Escalation.priority), col(Escalation.id)) > (int(rank), after)
        )
    order = (col(Escalation.priority), col(Escalation.id))
    rows = db.exec(query.order_by(*order).limit(limit + 1)).all()
    page = page_of(rows, limit, "id")
    last = page.items[-1] if page.items else None
    return Page(page.items, f"{last.priority}.{last.id}" if page.next_cursor and last else None)


def _newest(
    db: Session,
    model: type[Newest],
    clinic_id: str,
    cursor: str | None,
    limit: int,
    *where: sa.ColumnElement[bool],
) -> Page[Newest]:
    """A page of the clinic's rows of `model` (whose ids sort by time), newest first."""
    check_page(cursor, limit)
    query = select(model).where(col(model.clinic_id) == clinic_id, *where)
    if cursor:
        query = query.where(col(model.id) < cursor)
    rows = db.exec(query.order_by(col(model.id).desc()).limit(limit + 1)).all()
    return page_of(rows, limit, "id")


def audit_log(db: Session, clinic_id: str, cursor: str | None, limit: int) -> Page[AuditEvent]:
    """Return a page of the clinic's audit log, newest first."""
    return _newest(db, AuditEvent, clinic_id, cursor, limit)


def list_deliveries(
    db: Session,
    clinic_id: str,
    state: str | None,
    cursor: str | None,
    limit: int,
    channel: str | None = None,
) -> Page[DeliveryRow]:
    """Return a page of the clinic's deliveries, newest first, optionally in one state
    or through one channel."""
    check_page(cursor, limit)
    check_state(state, tuple(DeliveryState))
    wanted = DeliveryState(state) if state else None
    rows = outbox.newest_of_clinic(db, clinic_id, wanted, cursor, limit + 1, channel)
    return page_of(rows, limit, "id")


def get_delivery(db: Session, clinic_id: str, delivery_id: str) -> DeliveryRow:
    """Return one of the clinic's deliveries; raise NotFound otherwise."""
    delivery = outbox.get(db, delivery_id)
    if delivery is None or delivery.clinic_id != clinic_id:
        raise NotFound("delivery", delivery_id)
    return delivery


def list_endpoints(db: Session, clinic_id: str) -> list[WebhookEndpoint]:
    """Return the clinic's webhook endpoints."""
    return list(
        db.exec(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.clinic_id == clinic_id)
            .order_by(col(WebhookEndpoint.id))
        )
    )


def _tally(tally: Tally) -> TallyPublic:
    return TallyPublic(
        confirmed=tally.confirmed, skipped=tally.skipped, missed=tally.missed, rate=tally.rate
    )


def adherence_public(figures: Adherence) -> AdherencePublic:
    """Return adherence figures as the API shows them."""

    return AdherencePublic(
        rate=figures.overall.rate,
        confirmed=figures.overall.confirmed,
        skipped=figures.overall.skipped,
        missed=figures.overall.missed,
        not_reminded=figures.not_reminded,
        on_time_share=figures.on_time_share,
        current_streak=figures.streak,
        missed_in_a_row=figures.missed_in_a_row,
        days_since_last_session=figures.days_since_last,
        last_session=figures.last_session,
        weeks=[
            WeekPublic(week=w, **_tally(t).model_dump()) for w, t in sorted(figures.weeks.items())
        ],
        phases={p: _tally(t) for p, t in figures.phases.items()},
    )


def session_facts(rows: Sequence[SessionRow | AdherenceRow]) -> list[SessionFact]:
    return [SessionFact(r.local_date, r.status, r.phase, r.completed_at, r.timezone) for r in rows]


def enrollment_view(
    db: Session,
    clinic_id: str,
    enrollment_id: str,
    now: datetime,
    protocols: Mapping[str, Protocol],
) -> EnrollmentPublic:
    """Return an enrollment with its upcoming sessions and adherence; raise NotFound."""
    enrollment = get_enrollment(db, clinic_id, enrollment_id)
    # An erased patient's enrollments stay readable: only the zone is needed here.
    patient = db.get(Patient, enrollment.patient_id)
    assert patient is not None  # foreign key
    today = local_today(now, patient.timezone)
    rows = session_store.of_enrollment(db, enrollment.id)
    upcoming = [
        SessionPublic.of(r)
        for r in rows
        if r.status == SessionStatus.PLANNED and r.local_date >= today
    ]
    return EnrollmentPublic(
        id=enrollment.id,
        patient_id=enrollment.patient_id,
        protocol=enrollment.protocol_id,
        protocol_version=enrollment.protocol_version,
        start_date=enrollment.start_date,
        body_area=enrollment.body_area,
        weekdays=weekday_names(enrollment.weekdays) if enrollment.weekdays else None,
        status=enrollment.status,
        phase=enrollment.phase,
        interval_days=enrollment.interval_days,
        review_reason=enrollment.review_reason,
        paused_until=enrollment.paused_until,
        pause_reason=enrollment.pause_reason,
        screening=json.loads(enrollment.screening),
        override_reason=enrollment.override_reason,
        created_at=enrollment.created_at,
        upcoming=upcoming,
        adherence=adherence_public(adherence(session_facts(rows), today)),
        outcome_trend=outcome_trend(rows, _scale_of(enrollment.protocol_id, protocols)),
    )


def _scale_of(protocol_id: str, protocols: Mapping[str, Protocol]) -> str | None:
    """Return the outcome scale id of a protocol, or None (unknown or none asked)."""
    protocol = protocols.get(protocol_id)
    return protocol.outcome_scale if protocol else None


def sessions_reported(rows: Sequence[SessionRow]) -> list[SessionRow]:
    """The confirmed sessions with an outcome, in the order given."""
    return [r for r in rows if r.status == SessionStatus.CONFIRMED and r.outcome is not None]


def outcome_trend(rows: Sequence[SessionRow], scale: str | None) -> OutcomeTrend | None:
    """Return the first and latest outcome reported, or None before any."""
    reported = sessions_reported(rows)
    if scale is None or not reported:
        return None
    first, latest = reported[0], reported[-1]
    assert first.outcome is not None and latest.outcome is not None
    return OutcomeTrend(
        scale=scale,
        first=first.outcome,
        first_on=first.local_date,
        latest=latest.outcome,
        latest_on=latest.local_date,
        reports=len(reported),
    )


def sessions_between(
    db: Session, clinic_id: str, enrollment_id: str, start: date | None, end: date | None
) -> list[SessionRow]:
    """Return an enrollment's sessions between two local dates (inclusive)."""
    if start and end and end < start:
        raise InvalidInput("to", "must not be before from")
    enrollment = get_enrollment(db, clinic_id, enrollment_id)
    return [
        r
        for r in session_store.of_enrollment(db, enrollment.id)
        if (start is None or r.local_date >= start) and (end is None or r.local_date <= end)
    ]


def patient_adherence(
    db: Session, clinic_id: str, patient_id: str, now: datetime
) -> AdherencePublic:
    """Return a patient's adherence over all their enrollments; raise NotFound."""
    patient = get_patient(db, clinic_id, patient_id)
    enrollment_ids = db.exec(select(Enrollment.id).where(Enrollment.patient_id == patient.id))
    rows = session_store.of_enrollments(db, enrollment_ids)
    return adherence_public(adherence(session_facts(rows), local_today(now, patient.timezone)))


def ongoing_facts(db: Session, which: sa.ColumnElement[bool]) -> dict[str, list[SessionFact]]:
    """What adherence reads of the sessions of the ongoing enrollments that
    `which` picks, by patient (the sessions a patient's adherence and risk are made of)."""
    # The status is checked here, not in SQL: given both, SQLite may walk the status
    # index (every ongoing enrollment of every clinic) instead of the one `which` names.
    found = db.exec(select(Enrollment.id, Enrollment.patient_id, Enrollment.status).where(which))
    patient_of = {enrollment: patient for enrollment, patient, status in found if status in ONGOING}
    by_patient: dict[str, list[AdherenceRow]] = defaultdict(list)
    for row in session_store.facts_of_enrollments(db, patient_of):
        by_patient[patient_of[row.enrollment_id]].append(row)
    return defaultdict(list, {p: session_facts(rows) for p, rows in by_patient.items()})
