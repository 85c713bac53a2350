"""Enrolling patients in protocols and keeping their plans current (re-planning)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from reminders.db import insert_rows
from reminders.errors import Conflict, InvalidInput, NotFound
from reminders.ids import new_id
from reminders.models import (
    WEEKDAY_NAMES,
    Enrollment,
    EnrollmentCreate,
    Patient,
    TreatmentSession,
    utcnow,
)
from reminders.planner import EnrollmentSettings, PastSession, Plan, plan
from reminders.protocols import CONTRAINDICATIONS, Protocol
from reminders.runtime import Runtime
from reminders.services.events import emit, escalate, patient_data
from reminders.services.reminding import Recipient, recipient, write_reminders_for
from reminders.timing import zone

MAX_DAYS_IN_PAST = 30
MAX_DAYS_IN_FUTURE = 365


def local_today(now: datetime, timezone: str) -> date:
    """Return the patient's local date at the instant `now`."""
    return now.astimezone(zone(timezone)).date()


def weekdays_from_text(text: str | None) -> frozenset[int] | None:
    """Return the weekday numbers stored as 'mon,wed,fri', or None for every day."""
    if text is None:
        return None
    return frozenset(WEEKDAY_NAMES.index(name) for name in text.split(","))


def settings_of(enrollment: Enrollment) -> EnrollmentSettings:
    """Return what the planner needs from a stored enrollment."""
    return EnrollmentSettings(
        start_date=enrollment.start_date,
        weekdays=weekdays_from_text(enrollment.weekdays),
        body_area=enrollment.body_area,
    )


_PATIENT_COLUMNS = (
    col(Patient.id),
    col(Patient.clinic_id),
    col(Patient.timezone),
    col(Patient.reminder_time),
    col(Patient.quiet_start),
    col(Patient.quiet_end),
    col(Patient.channel),
    col(Patient.unsubscribed_at),
)


@dataclass(frozen=True, slots=True)
class _PatientFacts:
    """What enrolling needs to know of a patient, read as plain columns."""

    id: str
    clinic_id: str
    timezone: str
    reminder_time: str
    quiet_start: str | None
    quiet_end: str | None
    channel: str
    unsubscribed_at: datetime | None


@dataclass(frozen=True, slots=True)
class EnrollRequest:
    """One patient to enroll, for `enroll_many`."""

    patient_id: str
    enrollment: EnrollmentCreate


def _checked(
    request: EnrollmentCreate, protocols: Mapping[str, Protocol], today: date, where: str
) -> tuple[Protocol, str | None]:
    """Return the protocol and stored weekdays; raise InvalidInput naming the field."""
    protocol = protocols.get(request.protocol)
    if protocol is None:
        raise InvalidInput(f"{where}protocol", f"unknown protocol {request.protocol!r}")
    if request.start_date < today - timedelta(days=MAX_DAYS_IN_PAST):
        raise InvalidInput(f"{where}start_date", f"more than {MAX_DAYS_IN_PAST} days in the past")
    if request.start_date > today + timedelta(days=MAX_DAYS_IN_FUTURE):
        raise InvalidInput(
            f"{where}start_date", f"more than {MAX_DAYS_IN_FUTURE} days in the future"
        )
    weekdays: str | None = None
    if request.weekdays is not None:
        unknown = [d for d in request.weekdays if d not in WEEKDAY_NAMES]
        if unknown:
            raise InvalidInput(f"{where}weekdays", f"unknown weekday(s): {', '.join(unknown)}")
        if not request.weekdays:
            raise InvalidInput(f"{where}weekdays", "at least one weekday must be allowed")
        weekdays = ",".join(d for d in WEEKDAY_NAMES if d in request.weekdays)
    unknown_answers = sorted(set(request.screening) - set(CONTRAINDICATIONS))
    if unknown_answers:
        raise InvalidInput(
            f"{where}screening", f"unknown contraindication(s): {', '.join(unknown_answers)}"
        )
    unanswered = [c for c in protocol.contraindications if c not in request.screening]
    if unanswered:
        raise InvalidInput(f"{where}screening", f"not answered: {', '.join(unanswered)}")
    flagged = [c for c in protocol.contraindications if request.screening[c]]
    reason = (request.override_reason or "").strip()
    if flagged and not reason:
        raise InvalidInput(
            f"{where}screening",
            f"contraindicated: {', '.join(flagged)}; enrolling needs an override_reason",
        )
    return protocol, weekdays


def _screening_json(screening: dict[str, bool]) -> str:
    return _screening_text(tuple(sorted(screening.items())))


@lru_cache(maxsize=256)
def _screening_text(answers: tuple[tuple[str, bool], ...]) -> str:
    return json.dumps(dict(answers))


def _session_row(
    enrollment_id: str, local_date: date, timezone: str, phase: str, minutes: int, now: datetime
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "enrollment_id": enrollment_id,
        "local_date": local_date,
        "timezone": timezone,
        "phase": phase,
        "status": "planned",
        "minutes": minutes,
        "unscheduled": False,
        "created_at": now,
        "updated_at": now,
    }


def enroll_many(
    db: Session,
    rt: Runtime,
    clinic_id: str,
    requests: Sequence[EnrollRequest],
    now: datetime,
) -> list[str]:
    """Enroll patients and write each plan's first horizon of sessions; return the ids.

    Everything is checked before anything is written, so a bad request writes nothing.
    Reminders due soon are scheduled in the same transaction.
    Raises NotFound for a patient missing or of another clinic, InvalidInput naming the
    field (prefixed with the position when there are several), Conflict when the patient
    already has an active enrollment in that protocol and body area.
    """
    protocols = rt.protocols
    horizon_days = rt.settings.horizon_days
    patient_ids = list({r.patient_id for r in requests})
    # Plain columns, not ORM objects: bulk imports load many patients.
    patients: dict[str, _PatientFacts] = {}
    for chunk_start in range(0, len(patient_ids), 500):
        chunk = patient_ids[chunk_start : chunk_start + 500]
        query = sa.select(*_PATIENT_COLUMNS).where(col(Patient.id).in_(chunk))
        for found in db.execute(query):
            patients[found[0]] = _PatientFacts(*found)
    if len(requests) == 1:
        existing = db.exec(
            select(Enrollment).where(
                Enrollment.patient_id == requests[0].patient_id,
                Enrollment.protocol_id == requests[0].enrollment.protocol,
                Enrollment.status.in_(("active", "paused")),  # type: ignore[attr-defined]
            )
        ).all()
    else:
        existing = []
    busy = {(e.protocol_id, e.body_area) for e in existing}
    created = utcnow()
    enrollment_rows: list[dict[str, Any]] = []
    session_rows: list[dict[str, Any]] = []
    first_plans: dict[tuple[str, date, str | None, str | None, date], Plan] = {}
    soon: list[tuple[str, date, str, Recipient]] = []
    for i, request in enumerate(requests):
        where = f"[{i}]." if len(requests) > 1 else ""
        patient = patients.get(request.patient_id)
        if patient is None or patient.clinic_id != clinic_id:
            raise NotFound("patient", request.patient_id)
        timezone = patient.timezone
        wanted = request.enrollment
        today = local_today(now, timezone)
        protocol, weekdays = _checked(wanted, protocols, today, where)
        if (protocol.id, wanted.body_area) in busy:
            raise Conflict(
                f"patient {request.patient_id} already has an active {protocol.id} enrollment"
                + (f" for {wanted.body_area}" if wanted.body_area else "")
            )
        # The planner is pure: a batch plans each distinct set of inputs once.
        key = (protocol.id, wanted.start_date, weekdays, wanted.body_area, today)
        first = first_plans.get(key)
        if first is None:
            settings = EnrollmentSettings(
                wanted.start_date, weekdays_from_text(weekdays), wanted.body_area
            )
            first = first_plans[key] = plan(protocol, settings, (), today, horizon_days)
        enrollment_id = new_id()
        enrollment_rows.append(
            {
                "id": enrollment_id,
                "clinic_id": clinic_id,
                "patient_id": request.patient_id,
                "protocol_id": protocol.id,
                "start_date": wanted.start_date,
                "body_area": wanted.body_area,
                "weekdays": weekdays,
                "status": "active",
                "phase": first.phase,
                "interval_days": first.interval_days,
                "planned_on": today,
                "screening": _screening_json(wanted.screening),
                "override_reason": (wanted.override_reason or "").strip() or None,
                "created_at": created,
                "updated_at": created,
            }
        )
        for planned in first.sessions:
            row = _session_row(
                enrollment_id, planned.local_date, timezone, planned.phase, planned.minutes, created
            )
            session_rows.append(row)
            if patient.unsubscribed_at is None:
                soon.append(
                    (row["id"], planned.local_date, timezone, recipient(patient, rt.settings))
                )
    insert_rows(db, Enrollment, enrollment_rows)
    insert_rows(db, TreatmentSession, session_rows)
    write_reminders_for(db, rt.settings, now, soon)
    return [row["id"] for row in enrollment_rows]


def enroll(
    db: Session,
    rt: Runtime,
    clinic_id: str,
    patient_id: str,
    request: EnrollmentCreate,
    now: datetime,
) -> Enrollment:
    """Enroll one patient; return the enrollment. Raises as `enroll_many`."""
    (enrollment_id,) = enroll_many(db, rt, clinic_id, [EnrollRequest(patient_id, request)], now)
    return get_enrollment(db, clinic_id, enrollment_id)


def get_enrollment(db: Session, clinic_id: str | None, enrollment_id: str) -> Enrollment:
    """Return the enrollment; raise NotFound if missing or another clinic's."""
    enrollment = db.get(Enrollment, enrollment_id)
    if enrollment is None or (clinic_id is not None and enrollment.clinic_id != clinic_id):
        raise NotFound("enrollment", enrollment_id)
    return enrollment


def sessions_of(db: Session, enrollment_id: str) -> list[TreatmentSession]:
    """Return every session row of an enrollment, oldest date first."""
    return list(
        db.exec(
            select(TreatmentSession)
            .where(TreatmentSession.enrollment_id == enrollment_id)
            .order_by(TreatmentSession.local_date)  # type: ignore[arg-type]
        )
    )


def replan(db: Session, rt: Runtime, enrollment: Enrollment, now: datetime) -> Plan:
    """Re-run the planner for an enrollment and bring its planned sessions in line.

    Planned sessions from today on that the new plan drops are cancelled; a cancelled
    row on a date the plan wants again is reused, so there is never a second session on
    one date. Reminders due soon for the new plan are scheduled in the same transaction.
    A paused or withdrawn enrollment keeps no planned sessions. Returns the plan
    (for an inactive enrollment, the plan it would have). Raises Conflict if the
    enrollment's protocol is no longer installed.
    """
    protocol = rt.protocols.get(enrollment.protocol_id)
    if protocol is None:
        raise Conflict(f"protocol {enrollment.protocol_id!r} is not installed")
    patient = db.get(Patient, enrollment.patient_id)
    assert patient is not None  # foreign key
    today = local_today(now, patient.timezone)
    rows = sessions_of(db, enrollment.id)
    history = [PastSession(r.local_date, r.status, r.hdss) for r in rows]  # type: ignore[arg-type]
    new_plan = plan(protocol, settings_of(enrollment), history, today, rt.settings.horizon_days)
    wanted = {s.local_date: s for s in new_plan.sessions} if enrollment.status == "active" else {}
    changed = utcnow()
    by_date = {r.local_date: r for r in rows}
    for row in rows:
        if row.status == "planned" and row.local_date >= today and row.local_date not in wanted:
            row.status = "cancelled"
            row.updated_at = changed
            db.add(row)
    fresh: list[dict[str, Any]] = []
    planned_ids: list[tuple[str, date]] = []
    for day, session in wanted.items():
        existing = by_date.get(day)
        if existing is None:
            added = _session_row(
                enrollment.id, day, patient.timezone, session.phase, session.minutes, changed
            )
            fresh.append(added)
            planned_ids.append((added["id"], day))
            continue
        planned_ids.append((existing.id, day))
        # The planner never plans on a day with a confirmed, skipped or missed session.
        assert existing.status in ("planned", "cancelled"), existing.status
        if (existing.status, existing.phase, existing.minutes, existing.timezone) != (
            "planned",
            session.phase,
            session.minutes,
            patient.timezone,
        ):
            existing.status = "planned"
            existing.phase = session.phase
            existing.minutes = session.minutes
            existing.timezone = patient.timezone
            existing.updated_at = changed
            db.add(existing)
    insert_rows(db, TreatmentSession, fresh)
    _tell_clinic_of_changes(db, enrollment, patient, new_plan, rows, now)
    enrollment.phase = new_plan.phase
    enrollment.interval_days = new_plan.interval_days
    enrollment.review_reason = "; ".join(new_plan.review) or None
    if new_plan.completed and enrollment.status == "active":
        enrollment.status = "completed"
    enrollment.planned_on = today
    enrollment.updated_at = changed
    db.add(enrollment)
    db.flush()
    if enrollment.status == "active" and patient.unsubscribed_at is None:
        who = recipient(patient, rt.settings)
        soon = [(session_id, day, patient.timezone, who) for session_id, day in planned_ids]
        write_reminders_for(db, rt.settings, now, soon)
    return new_plan


def _tell_clinic_of_changes(
    db: Session,
    enrollment: Enrollment,
    patient: Patient,
    new_plan: Plan,
    rows: list[TreatmentSession],
    now: datetime,
) -> None:
    """Emit plan.phase_changed for a phase the history moved into, and escalate a new
    'no response' review; both tied to the session that caused them, so once only."""
    by_date = {r.local_date: r for r in rows if r.status == "confirmed"}
    history = new_plan.changes[: new_plan.history_changes]
    if history and new_plan.phase != enrollment.phase:
        change = history[-1]
        cause = by_date.get(change.on)
        emit(
            db,
            enrollment.clinic_id,
            "plan.phase_changed",
            {
                **patient_data(db, patient),
                "enrollment_id": enrollment.id,
                "from": enrollment.phase,
                "to": new_plan.phase,
                "reason": change.reason,
                "on": change.on.isoformat(),
            },
            now,
            session_id=cause.id if cause else None,
            patient_id=patient.id,
        )
    old_reviews = set(filter(None, (enrollment.review_reason or "").split("; ")))
    for change in history:
        reason = next((r for r in new_plan.review if change.on.isoformat() in r), None)
        if change.reason == "no_response" and reason and reason not in old_reviews:
            cause = by_date.get(change.on)
            escalate(
                db,
                patient,
                "no_response",
                f"{reason}; please review the treatment",
                now,
                session_id=cause.id if cause else None,
            )


def set_status(
    db: Session, rt: Runtime, clinic_id: str | None, enrollment_id: str, status: str, now: datetime
) -> Enrollment:
    """Pause, resume or withdraw an enrollment and re-plan; return it.

    Raises NotFound, or Conflict for a change its current state does not allow.
    """
    allowed = {"paused": ("active",), "active": ("paused",), "withdrawn": ("active", "paused")}
    if status not in allowed:
        raise InvalidInput("status", "must be paused, active or withdrawn")
    enrollment = get_enrollment(db, clinic_id, enrollment_id)
    if enrollment.status == status:
        return enrollment
    if enrollment.status not in allowed[status]:
        raise Conflict(f"enrollment is {enrollment.status}; cannot become {status}")
    enrollment.status = status
    replan(db, rt, enrollment, now)
    return enrollment
