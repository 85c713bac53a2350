"""Enrolling patients in protocols (one, many, or a whole import) and previewing a plan."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from reminders.db.rows import (
    PreparedInsert,
    in_chunks,
    prepare_row_insert,
    run_insert,
)
from reminders.errors import Conflict, InvalidInput, NotFound, RemindersError
from reminders.ids import new_ids
from reminders.models import (
    AbsenceRow,
    Clinic,
    Enrollment,
    EnrollmentCreate,
    Patient,
    PlanPreview,
)
from reminders.planner import (
    Absence,
    AssumedResponse,
    EnrollmentSettings,
    Plan,
    at_the_clinic,
    plan,
    preview,
)
from reminders.protocols import CONTRAINDICATIONS, Protocol
from reminders.runtime import Runtime
from reminders.services import reachability
from reminders.services.audit import Actor, AuditAction, record
from reminders.services.clinics import clinic_days
from reminders.services.protocol_versions import current_version
from reminders.services.reminding import (
    PATIENT_FACT_COLUMNS,
    PatientFacts,
    Recipient,
    SessionToRemind,
    Subscription,
    clinic_endpoints,
    lookahead_days,
    notice_rows,
    recipient,
    reminder_rows_for,
)
from reminders.services.replan import weekdays_from_text
from reminders.states import ONGOING, EnrollmentStatus
from reminders.stores import outbox, session_store
from reminders.stores.session_store import NewSession
from reminders.timing import ZONE_SPREAD, local_today, send_window, zone
from reminders.weekdays import parse_weekdays, stored_weekdays

MAX_DAYS_IN_PAST = 30
MAX_DAYS_IN_FUTURE = 365


def _absences_of_patients(
    db: Session, patient_ids: Sequence[str], since: date
) -> dict[str, tuple[Absence, ...]]:
    """Return the absences ending on or after `since` of each of the patients."""
    found: dict[str, list[Absence]] = {}
    for chunk in in_chunks(patient_ids):
        rows = db.execute(
            sa.select(
                col(AbsenceRow.patient_id), col(AbsenceRow.first_date), col(AbsenceRow.last_date)
            ).where(col(AbsenceRow.patient_id).in_(chunk), col(AbsenceRow.last_date) >= since)
        )
        for patient_id, first, last in rows:
            found.setdefault(patient_id, []).append(Absence(first, last))
    return {
        patient_id: tuple(sorted(them, key=lambda a: a.first)) for patient_id, them in found.items()
    }


@dataclass(frozen=True, slots=True)
class EnrollRequest:
    """One patient to enroll, for `enroll_many`."""

    patient_id: str
    enrollment: EnrollmentCreate


@dataclass(frozen=True, slots=True)
class _Checked:
    """What a valid enrollment request stores beside its own fields."""

    protocol: Protocol
    weekdays: str | None
    screening: str
    body_area: str | None


def _checked(
    request: EnrollmentCreate, protocols: Mapping[str, Protocol], today: date, where: str
) -> _Checked:
    """Return the protocol, the stored weekdays and screening; raise InvalidInput naming
    the field."""
    protocol = protocols.get(request.protocol)
    if protocol is None:
        raise InvalidInput(f"{where}protocol", f"unknown protocol {request.protocol!r}")
    if request.start_date < today - timedelta(days=MAX_DAYS_IN_PAST):
        raise InvalidInput(f"{where}start_date", f"more than {MAX_DAYS_IN_PAST} days in the past")
    if request.start_date > today + timedelta(days=MAX_DAYS_IN_FUTURE):
        raise InvalidInput(
            f"{where}start_date", f"more than {MAX_DAYS_IN_FUTURE} days in the future"
        )
    if request.body_area is None and protocol.body_areas:
        # One enrollment per treated area: without one, that rule cannot hold.
        raise InvalidInput(
            f"{where}body_area",
            f"required for {protocol.id}; one of: {', '.join(protocol.body_areas)}",
        )
    body_area = body_area_of(protocol, request.body_area, f"{where}body_area")
    weekdays: str | None = None
    if request.weekdays is not None:
        weekdays = _stored_weekdays(tuple(request.weekdays), f"{where}weekdays")
    review = _screening_review(protocol.contraindications, tuple(request.screening.items()))
    if review.unknown:
        raise InvalidInput(
            f"{where}screening", f"unknown contraindication(s): {', '.join(review.unknown)}"
        )
    if review.unanswered:
        raise InvalidInput(f"{where}screening", f"not answered: {', '.join(review.unanswered)}")
    if review.flagged and not (request.override_reason or "").strip():
        raise InvalidInput(
            f"{where}screening",
            f"contraindicated: {', '.join(review.flagged)}; enrolling needs an override_reason",
        )
    return _Checked(protocol, weekdays, review.stored, body_area)


def body_area_of(protocol: Protocol, name: str | None, field: str) -> str | None:
    """Return the protocol's name for a body area (synonyms accepted); raise
    InvalidInput naming `field` and the valid areas for any other."""
    if name is None:
        return None
    area = protocol.body_area(name)
    if area is None:
        valid = ", ".join(protocol.body_areas) or "none: it names no body areas"
        raise InvalidInput(field, f"{name!r} is not an area of {protocol.id}; one of: {valid}")
    return area


# Bulk requests repeat a handful of weekday sets and screening answers: each distinct one
# is worked out once.
@lru_cache(maxsize=256)
def _stored_weekdays(days: tuple[str, ...], field: str) -> str:
    """Return the weekdays as stored ('mon,wed,fri'); raise InvalidInput naming `field`."""
    return stored_weekdays(parse_weekdays(days, field))


@dataclass(frozen=True, slots=True)
class _ScreeningReview:
    unknown: tuple[str, ...]
    unanswered: tuple[str, ...]
    flagged: tuple[str, ...]
    stored: str


@lru_cache(maxsize=1024)
def _screening_review(
    contraindications: tuple[str, ...], answers: tuple[tuple[str, bool], ...]
) -> _ScreeningReview:
    """Return the answers' problems against a protocol's contraindications, and the JSON
    stored for them."""
    given = dict(sorted(answers))
    return _ScreeningReview(
        unknown=tuple(name for name in given if name not in CONTRAINDICATIONS),
        unanswered=tuple(c for c in contraindications if c not in given),
        flagged=tuple(c for c in contraindications if given.get(c)),
        stored=json.dumps(given),
    )


@dataclass(slots=True)
class PreparedEnrollments:
    """A batch of checked and planned enrollments as the inserts that write them:
    enrollments, their sessions, the reminders due soon and the welcomes asked for.
    Plain data, so a writer process can run them."""

    ids: list[str]
    inserts: list[PreparedInsert]
    sessions: int


# Enrollment status is filtered in Python, not in SQL: given it, SQLite would pick the
# status index and read every active enrollment of every clinic. Built once: a bulk
# import runs it for every batch.
_PATIENTS_WITH_TREATMENTS = (
    sa.select(
        *PATIENT_FACT_COLUMNS,
        col(Enrollment.protocol_id),
        col(Enrollment.body_area),
        col(Enrollment.status),
        col(Enrollment.id),
    )
    .outerjoin(Enrollment, col(Enrollment.patient_id) == Patient.id)
    .where(col(Patient.id).in_(sa.bindparam("ids", expanding=True)))
)
_READ_CHUNK = 2000


Treatments = dict[tuple[str, str], str]


def _treatment(patient_id: str, protocol_id: str, body_area: str | None) -> tuple[str, str]:
    """What a patient may have only one active or paused enrollment for: a body area,
    or, where none was named, a protocol."""
    return (patient_id, f"area:{body_area}" if body_area else f"protocol:{protocol_id}")


def _read_patients(
    db: Session, patient_ids: list[str], busy: Treatments
) -> dict[str, PatientFacts]:
    """Return the patients by id, as plain columns (bulk imports read many), and add the
    treatment (`_treatment`) of each active or paused enrollment they have to `busy`,
    with the enrollment's id."""
    patients: dict[str, PatientFacts] = {}
    unique = list(dict.fromkeys(patient_ids))
    for chunk_start in range(0, len(unique), _READ_CHUNK):
        chunk = {"ids": unique[chunk_start : chunk_start + _READ_CHUNK]}
        for found in db.execute(_PATIENTS_WITH_TREATMENTS, chunk):
            patient_id = found[0]
            if patient_id not in patients:
                patients[patient_id] = PatientFacts(*found[: len(PATIENT_FACT_COLUMNS)])
            protocol_id, body_area, status, enrollment_id = found[len(PATIENT_FACT_COLUMNS) :]
            if status in ONGOING:
                busy[_treatment(patient_id, protocol_id, body_area)] = enrollment_id
    return patients


# A welcome shows the sessions of the plan's first two weeks.
WELCOME_WEEKS = timedelta(weeks=2)

RefusedRequest = Callable[[int, RemindersError], None]


@dataclass
class _Planning:
    """What preparing a batch of enrollments gathers: rows to write, the first plans
    (the planner is pure: each distinct set of inputs is planned once), the sessions
    whose reminders fall due soon, and the welcomes asked for."""

    db: Session
    rt: Runtime
    clinic_id: str
    now: datetime
    versions: Mapping[str, int]
    enrollment_rows: list[dict[str, Any]] = field(default_factory=list)
    session_rows: list[NewSession] = field(default_factory=list)
    first_plans: dict[tuple[Any, ...], Plan] = field(default_factory=dict)
    today_in: dict[str, date] = field(default_factory=dict)
    soon: list[SessionToRemind] = field(default_factory=list)
    welcomes: list[dict[str, Any]] = field(default_factory=list)

    def today(self, timezone: str) -> date:
        today = self.today_in.get(timezone)
        if today is None:
            today = self.today_in[timezone] = local_today(self.now, timezone)
        return today

    def first_plan(
        self,
        checked: _Checked,
        wanted: EnrollmentCreate,
        today: date,
        absences: tuple[Absence, ...],
        horizon_days: int | None = None,
    ) -> Plan:
        """The plan of a new enrollment from `today` for `horizon_days` (default: the
        operator's horizon), around the patient's recorded `absences`."""
        protocol = checked.protocol
        horizon = horizon_days or self.rt.settings.horizon_days
        key = (
            protocol.id, wanted.start_date, checked.weekdays, checked.body_area, today,
            absences, horizon,
        )  # fmt: skip
        first = self.first_plans.get(key)
        if first is None:
            inputs = EnrollmentSettings(
                wanted.start_date,
                weekdays_from_text(checked.weekdays),
                checked.body_area,
                absences=absences,
            )
            if protocol.given_at == "clinic":
                days = clinic_days(self.db, self.clinic_id, today)
                inputs = at_the_clinic(protocol, inputs, days.open_weekdays, days.closed)
            first = self.first_plans[key] = plan(protocol, inputs, (), today, horizon)
        return first

    def add(
        self,
        patient: PatientFacts,
        wanted: EnrollmentCreate,
        checked: _Checked,
        first: Plan,
        today: date,
        absences: tuple[Absence, ...],
    ) -> str:
        """Add the rows of one enrollment planned as `first`; return its id."""
        protocol = checked.protocol
        enrollment_id, *session_ids = new_ids(1 + len(first.sessions))
        self.enrollment_rows.append(
            {
                "id": enrollment_id,
                "clinic_id": self.clinic_id,
                "patient_id": patient.id,
                "protocol_id": protocol.id,
                "protocol_version": self.versions.get(protocol.id),
                "start_date": wanted.start_date,
                "body_area": checked.body_area,
                "weekdays": checked.weekdays,
                "status": EnrollmentStatus.ACTIVE,
                "phase": first.phase,
                "interval_days": first.interval_days,
                "planned_on": today,
                "screening": checked.screening,
                "override_reason": (wanted.override_reason or "").strip() or None,
                "created_at": self.now,
                "updated_at": self.now,
            }
        )
        at_clinic = protocol.given_at == "clinic"
        who = recipient(patient, self.rt.settings) if patient.unsubscribed_at is None else None
        soon_from, soon_until = lookahead_days(self.now)
        for planned, session_id in zip(first.sessions, session_ids, strict=True):
            day = planned.local_date
            self.session_rows.append(
                session_store.new_planned(
                    enrollment_id,
                    day,
                    patient.timezone,
                    planned.phase,
                    planned.minutes,
                    at_clinic,
                    self.now,
                    session_id=session_id,
                )
            )
            if who is not None and soon_from <= day <= soon_until:
                self.soon.append(SessionToRemind(session_id, day, patient.timezone, who, at_clinic))
        if wanted.welcome and who is not None:
            first_session = (first.sessions[0].local_date, session_ids[0]) if session_ids else None
            self._welcome(patient, who, checked, wanted, today, absences, first_session)
        return enrollment_id

    def _welcome(
        self,
        patient: PatientFacts,
        who: Recipient,
        checked: _Checked,
        wanted: EnrollmentCreate,
        today: date,
        absences: tuple[Absence, ...],
        first_session: tuple[date, str] | None,
    ) -> None:
        """Queue the welcome: the clinic, the first two weeks' sessions (planned beyond
        the horizon if the course starts later) and when reminders come. Tied to the
        first session when it is written now."""
        start = max(today, wanted.start_date)
        weeks = self.first_plan(
            checked, wanted, today, absences, (start - today).days + WELCOME_WEEKS.days
        ).sessions
        if not weeks:
            return
        first_day = weeks[0].local_date
        at_clinic = checked.protocol.given_at == "clinic"
        # The time reminders really come (after quiet hours), or none when quiet hours
        # hold them past the day: the welcome must not promise one that never comes.
        window = send_window(first_day, who.reminder_time, patient.timezone, who.quiet)
        local_due = window.due.astimezone(zone(patient.timezone))
        payload = {
            "clinic": self._clinic_name,
            "first_day": first_day.isoformat(),
            "reminder_at": f"{local_due:%H:%M}" if window.useful else None,
            "schedule": [
                s.local_date.isoformat() for s in weeks if s.local_date < first_day + WELCOME_WEEKS
            ],
            "at_clinic": at_clinic,
        }
        session_id = first_session[1] if first_session and first_session[0] == first_day else None
        self.welcomes.extend(
            notice_rows(
                self.db,
                self.rt.settings,
                "welcome",
                session_id,
                patient,
                self.now,
                payload,
                endpoints=self._endpoints,
            )
        )

    @cached_property
    def _clinic_name(self) -> str:
        clinic = self.db.get(Clinic, self.clinic_id)
        return clinic.name if clinic else ""

    @cached_property
    def _endpoints(self) -> list[Subscription]:
        """The clinic's webhook endpoints, read once for the batch's welcomes."""
        return clinic_endpoints(self.db, self.clinic_id)

    def prepared(self) -> PreparedEnrollments:
        dialect = self.db.get_bind().dialect
        reminders = reminder_rows_for(self.db, self.rt.settings, self.now, self.soon)
        return PreparedEnrollments(
            [row["id"] for row in self.enrollment_rows],
            [
                prepare_row_insert(dialect, Enrollment, self.enrollment_rows),
                session_store.prepare_planned(dialect, self.session_rows),
                outbox.prepare_queue(dialect, reminders + self.welcomes),
            ],
            len(self.session_rows),
        )


def prepare_enrollments(
    db: Session,
    rt: Runtime,
    clinic_id: str,
    requests: Sequence[EnrollRequest],
    now: datetime,
    *,
    versions: Mapping[str, int] | None = None,
    new_patients: Mapping[str, PatientFacts] | None = None,
    refused: RefusedRequest | None = None,
) -> PreparedEnrollments:
    """Check and plan enrollments and return the rows that enrolling them writes: each
    plan's first horizon of sessions and the reminders due soon. Reads, writes nothing.

    `versions` are the protocols' version numbers to record (`register_versions`).
    A request with `welcome` also queues the patient's welcome.
    `new_patients` are patients not written yet (an import's), by id. With `refused`, a
    request that cannot be enrolled is handed to it with its position in `requests` and
    left out, instead of raising.

    Raises NotFound for a patient missing or of another clinic, InvalidInput naming the
    field (prefixed with the position when there are several), Conflict when the patient
    already has an active or paused enrollment in that protocol and body area, or two
    requests ask for the same one.
    """
    # `busy` holds the treatment of every active or paused enrollment these patients
    # have, then of each request as it is accepted: one enrollment at a time per body
    # area.
    busy: Treatments = {}
    patients = dict(new_patients or {})
    unknown = [r.patient_id for r in requests if r.patient_id not in patients]
    patients |= _read_patients(db, unknown, busy) if unknown else {}
    planning = _Planning(db, rt, clinic_id, now, versions or {})
    # Absences the patients already have shape their first plans; new patients have none.
    away = _absences_of_patients(db, unknown, (now - ZONE_SPREAD).date())
    for i, request in enumerate(requests):
        where = f"[{i}]." if len(requests) > 1 and refused is None else ""
        try:
            patient = patients.get(request.patient_id)
            if patient is None or patient.clinic_id != clinic_id:
                raise NotFound("patient", request.patient_id)
            today = planning.today(patient.timezone)
            checked = _checked(request.enrollment, rt.protocols, today, where)
            treatment = _treatment(request.patient_id, checked.protocol.id, checked.body_area)
            if treatment in busy:
                raise _busy(request.patient_id, checked, busy[treatment])
        except (NotFound, InvalidInput, Conflict) as problem:
            if refused is None:
                raise
            refused(i, problem)
            continue
        absences = tuple(a for a in away.get(patient.id, ()) if a.last >= today)
        first = planning.first_plan(checked, request.enrollment, today, absences)
        busy[treatment] = planning.add(patient, request.enrollment, checked, first, today, absences)
    return planning.prepared()


def _busy(patient_id: str, checked: _Checked, existing: str | None) -> Conflict:
    where = f" for {checked.body_area}" if checked.body_area else f" in {checked.protocol.id}"
    return Conflict(
        f"patient {patient_id} already has an active or paused enrollment{where}: "
        f"{existing or 'an earlier request'}"
    )


def write_enrollments(db: Session, prepared: PreparedEnrollments) -> list[str]:
    """Run prepared enrollments' inserts; return the enrollment ids."""
    for insert in prepared.inserts:
        run_insert(db, insert)
    return prepared.ids


def enroll_many(
    db: Session,
    rt: Runtime,
    clinic_id: str,
    requests: Sequence[EnrollRequest],
    now: datetime,
) -> list[str]:
    """Enroll patients and write each plan's first horizon of sessions; return the ids.

    Everything is checked before anything is written, so a bad request writes nothing.
    Reminders due soon are scheduled in the same transaction. Raises as
    `prepare_enrollments`.
    """
    versions = register_versions(db, rt, {r.enrollment.protocol for r in requests}, now)
    prepared = prepare_enrollments(db, rt, clinic_id, requests, now, versions=versions)
    return write_enrollments(db, prepared)


def register_versions(
    db: Session, rt: Runtime, protocol_ids: set[str], now: datetime
) -> dict[str, int]:
    """Store the installed version of each protocol before enrollments name it, in the
    caller's transaction; return the numbers (unknown ids are left for the request's
    own check)."""
    return {
        protocol_id: current_version(db, rt, protocol_id, now)
        for protocol_id in sorted(protocol_ids & set(rt.protocols))
    }


def enroll(
    db: Session,
    rt: Runtime,
    clinic_id: str,
    patient_id: str,
    request: EnrollmentCreate,
    now: datetime,
    *,
    actor: Actor | None = None,
) -> Enrollment:
    """Enroll one patient; return the enrollment, recorded as `actor`'s doing (with the
    override, if a contraindication was answered yes). Raises as `enroll_many`."""
    (enrollment_id,) = enroll_many(db, rt, clinic_id, [EnrollRequest(patient_id, request)], now)
    enrollment = get_enrollment(db, clinic_id, enrollment_id)
    subject = ("enrollment", enrollment.id)
    record(
        db, actor, clinic_id, AuditAction.ENROLL, subject, now, patient_id=patient_id,
        protocol=enrollment.protocol_id, body_area=enrollment.body_area,
        start_date=enrollment.start_date,
    )  # fmt: skip
    flagged = [name for name, present in request.screening.items() if present]
    if flagged:
        record(
            db, actor, clinic_id, AuditAction.SCREENING_OVERRIDE, subject, now,
            patient_id=patient_id, flagged=flagged, reason=enrollment.override_reason,
        )  # fmt: skip
    patient = db.get(Patient, patient_id)
    if patient is not None and patient.unreachable:
        # Known to be cut off before this course: its clinic hears of it now.
        reachability.refresh(db, rt.settings, [patient], now)
    return enrollment


def plan_preview(
    rt: Runtime,
    protocol_id: str,
    start: date,
    now: datetime,
    *,
    body_area: str | None = None,
    weekdays: frozenset[int] | None = None,
    response: AssumedResponse = AssumedResponse(),
    days: int = 182,
) -> PlanPreview:
    """The plan a protocol would give from `start`, assuming every session is done
    (and `response`). Raises NotFound for an unknown protocol, InvalidInput naming
    `start` or `body_area`."""
    protocol = rt.protocols.get(protocol_id)
    if protocol is None:
        raise NotFound("protocol", protocol_id)
    if abs(start - now.date()) > timedelta(days=3650):
        raise InvalidInput("start", "must be within ten years of today")
    area = body_area_of(protocol, body_area, "body_area")
    plan = preview(protocol, EnrollmentSettings(start, weekdays, area), days, response)
    return PlanPreview.of(protocol.id, start, plan)


def get_enrollment(db: Session, clinic_id: str | None, enrollment_id: str) -> Enrollment:
    """Return the enrollment; raise NotFound if missing or another clinic's."""
    enrollment = db.get(Enrollment, enrollment_id)
    if enrollment is None or (clinic_id is not None and enrollment.clinic_id != clinic_id):
        raise NotFound("enrollment", enrollment_id)
    return enrollment


def enrollments_of(db: Session, patient_id: str) -> list[Enrollment]:
    """Return the patient's enrollments, oldest first."""
    return list(
        db.exec(
            select(Enrollment)
            .where(Enrollment.patient_id == patient_id)
            .order_by(col(Enrollment.id))
        )
    )
