"""Recording what a patient did: confirmations and skips. Each re-plans the enrollment."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from reminders.db import detached, read_columns, table_of, write_columns
from reminders.errors import Conflict, InvalidInput, NotFound
from reminders.fields import checked, note
from reminders.models import Enrollment, Patient, SessionReport, TreatmentSession, utcnow
from reminders.planner import Plan
from reminders.runtime import Runtime
from reminders.services.enrollments import local_today, replan
from reminders.services.events import emit, patient_data

# A device clock or a phone a few minutes ahead should not turn a report away.
CLOCK_SKEW = timedelta(minutes=5)


_SESSIONS, _ENROLLMENTS, _PATIENTS = (
    table_of(TreatmentSession),
    table_of(Enrollment),
    table_of(Patient),
)
# Built once: confirmations run it on every request, and building a statement costs
# more than running it.
_SESSION_WITH_ENROLLMENT = (
    sa.select(_SESSIONS, _ENROLLMENTS, _PATIENTS)
    .select_from(
        _SESSIONS.join(_ENROLLMENTS, _ENROLLMENTS.c.id == _SESSIONS.c.enrollment_id).join(
            _PATIENTS, _PATIENTS.c.id == _ENROLLMENTS.c.patient_id
        )
    )
    .where(_SESSIONS.c.id == sa.bindparam("session_id"))
)
_SESSION_KEYS, _ENROLLMENT_KEYS, _PATIENT_KEYS = (
    tuple(table.c.keys()) for table in (_SESSIONS, _ENROLLMENTS, _PATIENTS)
)


def get_session(
    db: Session, clinic_id: str | None, session_id: str
) -> tuple[TreatmentSession, Enrollment, Patient]:
    """Return the session, its enrollment and patient, read in one query, as detached
    objects (`db.detached`: every confirmation reads them, and the ORM's loading cost
    more than the query); change them with `write_columns`. Raise NotFound if missing
    or another clinic's."""
    found = read_columns(db, _SESSION_WITH_ENROLLMENT, {"session_id": session_id}).first()
    if found is None:
        raise NotFound("session", session_id)
    enrollment_at = len(_SESSION_KEYS)
    patient_at = enrollment_at + len(_ENROLLMENT_KEYS)
    enrollment = detached(Enrollment, _ENROLLMENT_KEYS, found[enrollment_at:patient_at])
    if clinic_id is not None and enrollment.clinic_id != clinic_id:
        raise NotFound("session", session_id)
    session = detached(TreatmentSession, _SESSION_KEYS, found[:enrollment_at])
    patient = detached(Patient, _PATIENT_KEYS, found[patient_at:])
    return session, enrollment, patient


def _recordable(session: TreatmentSession, now: datetime, *, ahead_ok: bool) -> None:
    if session.status == "cancelled":
        raise Conflict("the session was cancelled by a re-plan; record an unscheduled one")
    if not ahead_ok and session.local_date > local_today(now, session.timezone):
        raise InvalidInput("session", f"is planned for {session.local_date}, a later day")


def confirm_session(
    db: Session,
    rt: Runtime,
    clinic_id: str | None,
    session_id: str,
    report: SessionReport,
    now: datetime,
) -> tuple[TreatmentSession, Plan | None]:
    """Record a session as done, with the optional report, and re-plan.

    Confirming an already confirmed session changes nothing and returns (session, None).
    Raises NotFound, InvalidInput (a later day, completed_at in the future) or Conflict.
    """
    session, enrollment, patient = get_session(db, clinic_id, session_id)
    if session.status == "confirmed":
        return session, None
    _recordable(session, now, ahead_ok=False)
    completed_at = report.completed_at or now
    if completed_at.tzinfo is None:
        raise InvalidInput("completed_at", "needs a time zone offset")
    if completed_at > now + CLOCK_SKEW:
        raise InvalidInput("completed_at", "is in the future")
    write_columns(
        db,
        session,
        status="confirmed",
        completed_at=completed_at,
        hdss=report.hdss,
        current_ma=report.current_ma,
        minutes_done=report.minutes,
        updated_at=utcnow(),
    )
    _emit_session_event(db, "session.confirmed", session, enrollment, patient, now)
    return session, replan(db, rt, enrollment, now, patient=patient)


def skip_session(
    db: Session,
    rt: Runtime,
    clinic_id: str | None,
    session_id: str,
    reason: str | None,
    now: datetime,
) -> tuple[TreatmentSession, Plan | None]:
    """Record that the patient will not do a session, and re-plan.

    Skipping an already skipped session changes nothing and returns (session, None).
    Raises NotFound, InvalidInput or Conflict (a confirmed or cancelled session).
    """
    session, enrollment, patient = get_session(db, clinic_id, session_id)
    if session.status == "skipped":
        return session, None
    if session.status == "confirmed":
        raise Conflict("the session is already confirmed")
    # A patient may skip ahead ("away on Friday"); the re-plan keeps that day free.
    _recordable(session, now, ahead_ok=True)
    if reason is not None and len(checked("reason", reason, note)) > 500:
        raise InvalidInput("reason", "at most 500 characters")
    write_columns(db, session, status="skipped", skip_reason=reason, updated_at=utcnow())
    _emit_session_event(db, "session.skipped", session, enrollment, patient, now)
    return session, replan(db, rt, enrollment, now, patient=patient)


def session_event_data(
    db: Session,
    session: TreatmentSession,
    enrollment: Enrollment,
    patient: Patient | None = None,
) -> dict[str, Any]:
    """Return the data of a session.* event: ids, date and what was reported. `patient`
    saves reading the enrollment's patient where the caller has it."""
    patient = patient or db.get(Patient, enrollment.patient_id)
    assert patient is not None  # foreign key
    return {
        **patient_data(db, patient),
        "enrollment_id": enrollment.id,
        "session_id": session.id,
        "local_date": session.local_date.isoformat(),
        "timezone": session.timezone,
        "phase": session.phase,
        "status": session.status,
        "unscheduled": session.unscheduled,
        "completed_at": session.completed_at.isoformat() if session.completed_at else None,
        "hdss": session.hdss,
        "current_ma": session.current_ma,
        "minutes": session.minutes_done,
        "skip_reason": session.skip_reason,
    }


def _emit_session_event(
    db: Session,
    event: str,
    session: TreatmentSession,
    enrollment: Enrollment,
    patient: Patient,
    now: datetime,
) -> None:
    emit(
        db,
        enrollment.clinic_id,
        event,
        partial(session_event_data, db, session, enrollment, patient),
        now,
        session_id=session.id,
        patient_id=enrollment.patient_id,
    )


def confirm_today(
    db: Session,
    rt: Runtime,
    session: TreatmentSession,
    report: SessionReport,
    now: datetime,
) -> TreatmentSession:
    """Record what a patient reports from a session link.

    A planned or missed session dated today or earlier is confirmed (a late confirmation
    counts for its own date); a confirmed one stays as it is (confirming twice is
    harmless); for a skipped, cancelled or later session, today's session is recorded,
    as an unscheduled one if nothing was planned today.

    An extra session counts like any other: the re-plan keeps the caps (one a day, the
    weekly maximum in any 7 days) for everything still planned. Confirming twice
    changes nothing. Returns the confirmed session.
    """
    enrollment = db.get(Enrollment, session.enrollment_id)
    assert enrollment is not None  # foreign key
    patient = db.get(Patient, enrollment.patient_id)
    assert patient is not None  # foreign key
    today = local_today(now, patient.timezone)
    if session.status == "confirmed":
        return session
    if session.status in ("planned", "missed") and session.local_date <= today:
        confirmed, _ = confirm_session(db, rt, None, session.id, report, now)
        return confirmed
    existing = db.exec(
        select(TreatmentSession).where(
            TreatmentSession.enrollment_id == enrollment.id, TreatmentSession.local_date == today
        )
    ).first()
    if existing is not None and existing.status == "confirmed":
        return existing
    if existing is not None and existing.status != "cancelled":
        confirmed, _ = confirm_session(db, rt, None, existing.id, report, now)
        return confirmed
    protocol = rt.protocols.get(enrollment.protocol_id)
    minutes = protocol.session_minutes(enrollment.body_area) if protocol else session.minutes
    extra = existing or TreatmentSession(
        enrollment_id=enrollment.id,
        local_date=today,
        timezone=patient.timezone,
        phase=enrollment.phase,
        minutes=minutes,
    )
    extra.unscheduled = True
    extra.status = "planned"
    db.add(extra)
    db.flush()
    confirmed, _ = confirm_session(db, rt, None, extra.id, report, now)
    return confirmed
