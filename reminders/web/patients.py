"""The pages a nurse works from: today, the patients, one patient, enrolling."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from reminders.api.deps import NowDep, RuntimeDep, Transactions, TransactionsDep
from reminders.errors import Conflict, InvalidInput, NotFound
from reminders.models import (
    AbsenceCreate,
    EnrollmentCreate,
    HoldDecisionCreate,
    PatientCreate,
    PatientUpdate,
    PauseRequest,
    StaffMember,
)
from reminders.protocols import CONTRAINDICATIONS
from reminders.runtime import Runtime
from reminders.services import (
    absences,
    clinic_views,
    course_status,
    enrollments,
    holds,
    patients,
)
from reminders.services.holds import HoldDecision
from reminders.services.patients import PatientDefaults
from reminders.timing import local_today
from reminders.web.auth import CheckedForm, StaffDep, actor_of
from reminders.web.charts_of import adherence_svg, outcome_svg, week_bars
from reminders.web.forms import REFUSALS, field_errors, given, refusal
from reminders.web.render import page, redirect

router = APIRouter(prefix="/app", include_in_schema=False)
EDITABLE = ("name", "email", "timezone", "reminder_time", "locale", "external_id")
STATUS_OF_ACTION = {"pause": "paused", "resume": "active", "withdraw": "withdrawn"}


@router.get("/")
def today(
    request: Request, member: StaffDep, rt: RuntimeDep, tx: TransactionsDep, now: NowDep
) -> Response:
    with tx.read() as db:
        today = clinic_views.sessions_today(db, member.clinic_id, now)
        escalations = clinic_views.inbox(db, member.clinic_id, "open", None, 10)
        risky = clinic_views.at_risk(db, member.clinic_id)
    return page(request, rt, "today", today=today, inbox=escalations, at_risk=risky)


@router.get("/patients")
def patient_list(
    request: Request, member: StaffDep, rt: RuntimeDep, tx: TransactionsDep,
    q: str | None = None, after: str | None = None,
) -> Response:  # fmt: skip
    """Most at risk first; the search box asks again as you type (htmx: only the rows)."""
    search = (q or "").strip()[:200] or None
    try:
        with tx.read() as db:
            found = clinic_views.patients_by_risk(db, member.clinic_id, search, after)
    except InvalidInput:
        return redirect(request, rt, "/app/patients")
    template = "patient_rows" if request.headers.get("HX-Request") else "patients"
    return page(request, rt, template, found=found, q=search or "")


@router.post("/patients")
async def add_patient(
    request: Request,
    form: CheckedForm,
    member: StaffDep,
    rt: RuntimeDep,
    tx: TransactionsDep,
    now: NowDep,
) -> Response:
    """Add a patient, then enroll them."""
    wanted = given(form, *PatientCreate.model_fields)
    try:
        facts = PatientCreate.model_validate(wanted)
        async with tx.write() as db:
            created = patients.add_patient(
                db, member.clinic_id, facts, now,
                defaults=PatientDefaults.of(rt.settings),
            )  # fmt: skip
    except ValidationError as exc:
        return page(request, rt, "patient_new", 422, errors=field_errors(exc), form=form)
    except (InvalidInput, Conflict) as exc:
        field = exc.field if isinstance(exc, InvalidInput) else "external_id"
        return page(request, rt, "patient_new", 422, errors={field: str(exc)}, form=form)
    return redirect(request, rt, f"/app/enroll?patient={created.id}")


@router.get("/patients/new")
def new_patient(request: Request, _member: StaffDep, rt: RuntimeDep) -> Response:
    return page(request, rt, "patient_new", errors={}, form={})


@router.get("/patients/{patient_id}")
def show_patient(
    patient_id: str, request: Request, member: StaffDep, rt: RuntimeDep, tx: TransactionsDep,
    now: NowDep,
) -> Response:  # fmt: skip
    return patient_page(patient_id, request, member, rt, tx, now)


def patient_page(
    patient_id: str, request: Request, member: StaffMember, rt: Runtime, tx: Transactions,
    now: datetime, errors: dict[str, str] | None = None,
    form: Mapping[str, str] | None = None,
) -> Response:  # fmt: skip
    with tx.read() as db:
        patient = patients.get_patient(db, member.clinic_id, patient_id)
        record = clinic_views.patient_record(db, patient, now)
        away = absences.list_absences(db, patient)
    today = local_today(now, patient.timezone)
    return page(
        request, rt, "patient", 422 if errors else 200, record=record, today=today,
        absences=away, errors=errors or {}, form=form or {},
        adherence_chart=adherence_svg(record), weeks=week_bars(record),
        outcome_charts={c.enrollment.id: outcome_svg(c, rt.protocols) for c in record.courses},
        planned_weeks=max(1, rt.settings.horizon_days // 7),
        protocol_names={p.id: p.name for p in rt.protocols.values()},
    )  # fmt: skip


@router.post("/patients/{patient_id}")
async def edit_patient(
    patient_id: str, request: Request, form: CheckedForm, member: StaffDep, rt: RuntimeDep,
    tx: TransactionsDep, now: NowDep,
) -> Response:  # fmt: skip
    """Change the patient's details; a blank email or external id clears it."""
    wanted: dict[str, Any] = {name: form.get(name, "").strip() for name in EDITABLE}
    for optional in ("email", "external_id"):
        wanted[optional] = wanted[optional] or None
    try:
        change = PatientUpdate.model_validate(wanted)
        async with tx.write() as db:
            patients.update_patient(
                db, rt, member.clinic_id, patient_id, change, now, member.email,
                actor=actor_of(member),
            )  # fmt: skip
    except ValidationError as exc:
        errors = field_errors(exc)
    except InvalidInput as exc:
        errors = {exc.field: exc.message}
    except Conflict as exc:
        errors = {"external_id": str(exc)}
    else:
        return redirect(request, rt, f"/app/patients/{patient_id}")
    return patient_page(patient_id, request, member, rt, tx, now, errors=errors, form=form)


@router.post("/enrollments/{enrollment_id}/hold-decision")
async def decide_hold(
    enrollment_id: str, request: Request, form: CheckedForm, member: StaffDep,
    rt: RuntimeDep, tx: TransactionsDep, now: NowDep,
) -> Response:  # fmt: skip
    """A clinician's decision on a plan held after a side effect."""
    with tx.read() as db:
        patient_id = enrollments.get_enrollment(db, member.clinic_id, enrollment_id).patient_id
    try:
        wanted = HoldDecisionCreate.model_validate(given(form, "decision", "by", "note", "until"))
        answer = HoldDecision.of(wanted)
        async with tx.write() as db:
            holds.decide_hold(
                db, rt, member.clinic_id, enrollment_id, answer, now, actor=actor_of(member)
            )
    except REFUSALS as exc:
        errors = {"hold": refusal(exc)}
        return patient_page(patient_id, request, member, rt, tx, now, errors=errors, form=form)
    return redirect(request, rt, f"/app/patients/{patient_id}")


@router.post("/enrollments/{enrollment_id}/{action}")
async def change_enrollment(
    enrollment_id: str, action: str, request: Request, form: CheckedForm, member: StaffDep,
    rt: RuntimeDep, tx: TransactionsDep, now: NowDep,
) -> Response:  # fmt: skip
    """Pause (optionally until a date), resume or withdraw."""
    status = STATUS_OF_ACTION.get(action)
    if status is None:
        raise NotFound("action", action)
    with tx.read() as db:
        patient_id = enrollments.get_enrollment(db, member.clinic_id, enrollment_id).patient_id
    try:
        pause = PauseRequest.model_validate(given(form, "until", "reason"))
        async with tx.write() as db:
            course_status.set_status(
                db, rt, member.clinic_id, enrollment_id, status, now,
                until=pause.until, reason=pause.reason, actor=actor_of(member),
            )  # fmt: skip
    except REFUSALS as exc:
        errors = {"action": refusal(exc)}
        return patient_page(patient_id, request, member, rt, tx, now, errors=errors)
    return redirect(request, rt, f"/app/patients/{patient_id}")


@router.post("/patients/{patient_id}/absences")
async def add_absence(
    patient_id: str, request: Request, form: CheckedForm, member: StaffDep, rt: RuntimeDep,
    tx: TransactionsDep, now: NowDep,
) -> Response:  # fmt: skip
    try:
        away = AbsenceCreate.model_validate(
            {"from": form.get("first"), "to": form.get("last"), **given(form, "reason")}
        )
        async with tx.write() as db:
            patient = patients.get_patient(db, member.clinic_id, patient_id)
            absences.add_absence(
                db, rt, patient, away.first, away.last, away.reason, "clinic", now,
                actor=actor_of(member),
            )  # fmt: skip
    except REFUSALS as exc:
        errors = {"action": refusal(exc)}
        return patient_page(patient_id, request, member, rt, tx, now, errors=errors)
    return redirect(request, rt, f"/app/patients/{patient_id}")


def _enroll_context(rt: Runtime, form: Mapping[str, str], now: datetime) -> dict[str, Any]:
    """The enroll form as it stands: the protocol chosen, its plan from the start date
    (or why there is none yet), and the answers given so far."""
    protocol = rt.protocols.get(form.get("protocol", ""))
    plan, error = None, None
    try:
        start = date.fromisoformat(form.get("start_date", ""))
        plan = enrollments.plan_preview(
            rt, form.get("protocol", ""), start, now, body_area=form.get("body_area") or None,
            days=84,
        )  # fmt: skip
    except ValueError:
        error = "Choose a start date."
    except (InvalidInput, NotFound) as exc:
        error = str(exc) if protocol else "Choose a protocol."
    return {
        "protocols": sorted(rt.protocols.values(), key=lambda p: p.name),
        "protocol": protocol,
        "contraindications": CONTRAINDICATIONS,
        "form": dict(form),
        "plan": plan,
        "error": error,
    }


@router.get("/enroll")
def enroll_form(
    request: Request, member: StaffDep, rt: RuntimeDep, tx: TransactionsDep, now: NowDep,
    patient: str | None = None,
) -> Response:  # fmt: skip
    with tx.read() as db:
        chosen = patients.get_patient(db, member.clinic_id, patient) if patient else None
    form = {"start_date": str(now.date() + timedelta(days=1))}
    context = _enroll_context(rt, form, now)
    return page(request, rt, "enroll", patient=chosen, errors={}, **context)


@router.get("/enroll/preview")
def enroll_preview(request: Request, _member: StaffDep, rt: RuntimeDep, now: NowDep) -> Response:
    """The plan and screening as the form stands (htmx swaps them in)."""
    context = _enroll_context(rt, request.query_params, now)
    return page(request, rt, "plan_preview", errors={}, **context)


@router.post("/enroll")
async def enroll(
    request: Request, form: CheckedForm, member: StaffDep, rt: RuntimeDep, tx: TransactionsDep,
    now: NowDep,
) -> Response:  # fmt: skip
    """Enroll from the form: every contraindication answered; a yes needs a reason."""
    protocol = rt.protocols.get(form.get("protocol", ""))
    screening = {
        c: form.get(f"screening.{c}") == "yes"
        for c in (protocol.contraindications if protocol else ())
        if form.get(f"screening.{c}") in ("yes", "no")
    }
    wanted = {
        "protocol": form.get("protocol", ""),
        "start_date": form.get("start_date", ""),
        "body_area": form.get("body_area") or None,
        "screening": screening,
        "override_reason": form.get("override_reason") or None,
        "welcome": True,
    }
    patient_id = form.get("patient", "")
    try:
        request_body = EnrollmentCreate.model_validate(wanted)
        async with tx.write() as db:
            patients.get_patient(db, member.clinic_id, patient_id)
            enrollments.enroll(
                db, rt, member.clinic_id, patient_id, request_body, now, actor=actor_of(member)
            )
    except ValidationError as exc:
        errors = field_errors(exc)
    except InvalidInput as exc:
        errors = {exc.field.split(".")[0]: exc.message}
    except Conflict as exc:
        errors = {"form": str(exc)}
    else:
        return redirect(request, rt, f"/app/patients/{patient_id}")
    with tx.read() as db:
        chosen = patients.get_patient(db, member.clinic_id, patient_id)
    context = _enroll_context(rt, form, now)
    return page(request, rt, "enroll", 422, patient=chosen, errors=errors, **context)
