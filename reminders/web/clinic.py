"""The clinic's pages: escalations, webhook endpoints, protocols, settings (admins)."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.responses import Response

from reminders.api.deps import NowDep, RuntimeDep, Transactions, TransactionsDep
from reminders.errors import Conflict, InvalidInput, NotFound
from reminders.models import Acknowledgement, ClinicChange, ClosedDateCreate
from reminders.protocols import CONTRAINDICATIONS
from reminders.runtime import Runtime
from reminders.services import (
    clinic_days,
    clinic_views,
    clinics,
    enrollments,
    escalations,
    reading,
    staff,
    webhooks,
)
from reminders.services.staff import LinkPurpose
from reminders.web.auth import AdminDep, CheckedForm, StaffDep, actor_of
from reminders.web.forms import field_errors, given
from reminders.web.render import page, redirect
from reminders.weekdays import WEEKDAY_NAMES as WEEKDAYS

router = APIRouter(prefix="/app", include_in_schema=False)


@router.get("/escalations")
def escalation_inbox(
    request: Request, member: StaffDep, rt: RuntimeDep, tx: TransactionsDep,
    state: str = "open", after: str | None = None,
) -> Response:  # fmt: skip
    wanted = state if state in ("open", "acknowledged") else "open"
    with tx.read() as db:
        found = clinic_views.inbox(db, member.clinic_id, wanted, after, 50)
    return page(request, rt, "escalations", inbox=found, state=wanted)


@router.post("/escalations/{escalation_id}/acknowledge")
async def acknowledge(
    escalation_id: str, request: Request, form: CheckedForm, member: StaffDep, rt: RuntimeDep,
    tx: TransactionsDep, now: NowDep,
) -> Response:  # fmt: skip
    if not form.get("note", "").strip():
        raise InvalidInput("note", "say what you did about it")
    seen = Acknowledgement.model_validate({"by": member.email, **given(form, "note")})
    try:
        async with tx.write() as db:
            escalations.acknowledge(
                db, rt, member.clinic_id, escalation_id, seen.by, seen.note, now,
                actor=actor_of(member),
            )  # fmt: skip
    except Conflict:
        pass  # someone else acknowledged it meanwhile: the list shows by whom
    return redirect(request, rt, "/app/escalations")


@router.get("/endpoints")
def endpoint_list(
    request: Request, member: StaffDep, rt: RuntimeDep, tx: TransactionsDep
) -> Response:
    return _endpoints(request, member.clinic_id, rt, tx)


def _endpoints(
    request: Request,
    clinic_id: str,
    rt: Runtime,
    tx: Transactions,
    status: int = 200,
    **context: Any,
) -> Response:
    with tx.read() as db:
        found = reading.list_endpoints(db, clinic_id)
        hooks = reading.list_deliveries(db, clinic_id, None, None, 20, "webhook").items
    context = {"secret": None, "errors": {}, "form": {}, **context}
    return page(request, rt, "endpoints", status, endpoints=found, deliveries=hooks, **context)


@router.post("/endpoints")
async def add_endpoint(
    request: Request, form: CheckedForm, member: StaffDep, rt: RuntimeDep, tx: TransactionsDep,
    now: NowDep,
) -> Response:  # fmt: skip
    """Add an endpoint; its secret is shown on this answer only."""
    url = form.get("url", "").strip()
    try:
        await run_in_threadpool(webhooks.check_endpoint_url, rt.settings, url)
        async with tx.write() as db:
            endpoint = webhooks.add_endpoint(
                db, rt.settings, member.clinic_id, url, now, form.get("events") or "*",
                url_checked=True, actor=actor_of(member),
            )  # fmt: skip
    except InvalidInput as exc:
        errors = {exc.field: exc.message}
        return _endpoints(request, member.clinic_id, rt, tx, 422, errors=errors, form=form)
    return _endpoints(request, member.clinic_id, rt, tx, secret=(endpoint.url, endpoint.secret))


@router.post("/endpoints/{endpoint_id}/rotate")
async def rotate_endpoint(
    endpoint_id: str, request: Request, _form: CheckedForm, member: StaffDep, rt: RuntimeDep,
    tx: TransactionsDep, now: NowDep,
) -> Response:  # fmt: skip
    async with tx.write() as db:
        endpoint = webhooks.rotate_secret(
            db, member.clinic_id, endpoint_id, now, actor=actor_of(member)
        )
    return _endpoints(request, member.clinic_id, rt, tx, secret=(endpoint.url, endpoint.secret))


@router.post("/endpoints/{endpoint_id}/delete")
async def delete_endpoint(
    endpoint_id: str, request: Request, _form: CheckedForm, member: StaffDep, rt: RuntimeDep,
    tx: TransactionsDep, now: NowDep,
) -> Response:  # fmt: skip
    try:
        async with tx.write() as db:
            webhooks.delete_endpoint(db, member.clinic_id, endpoint_id, now, actor=actor_of(member))
    except Conflict as refused:
        errors = {"delete": f"Not deleted: {refused}"}
        return _endpoints(request, member.clinic_id, rt, tx, 409, errors=errors)
    return redirect(request, rt, "/app/endpoints")


@router.get("/protocols")
def protocol_list(request: Request, _member: StaffDep, rt: RuntimeDep) -> Response:
    found = sorted(rt.protocols.values(), key=lambda p: p.name)
    return page(request, rt, "protocols", protocols=found)


@router.get("/protocols/{protocol_id}")
def protocol_page(
    protocol_id: str, request: Request, _member: StaffDep, rt: RuntimeDep, now: NowDep
) -> Response:
    protocol = rt.protocols.get(protocol_id)
    if protocol is None:
        raise NotFound("protocol", protocol_id)
    plan = enrollments.plan_preview(rt, protocol.id, now.date(), now, days=182)
    return page(
        request, rt, "protocol", protocol=protocol, plan=plan, contraindications=CONTRAINDICATIONS
    )


# Settings (admins)


def _settings(
    request: Request,
    clinic_id: str,
    rt: Runtime,
    tx: Transactions,
    status: int = 200,
    **context: Any,
) -> Response:
    with tx.read() as db:
        clinic = clinics.get_clinic(db, clinic_id)
        closed = clinic_days.closed_dates(db, clinic_id)
        members = staff.members_of(db, clinic_id)
        log = reading.audit_log(db, clinic_id, None, 50)
    context = {"errors": {}, "notice": None, **context}
    return page(
        request, rt, "settings", status, clinic=clinic, closed=closed, members=members,
        log=log, weekdays=WEEKDAYS,
    **context)  # fmt: skip


@router.get("/settings")
def settings_page(
    request: Request, member: AdminDep, rt: RuntimeDep, tx: TransactionsDep
) -> Response:
    return _settings(request, member.clinic_id, rt, tx)


@router.post("/settings/clinic")
async def change_clinic(
    request: Request, form: CheckedForm, member: AdminDep, rt: RuntimeDep, tx: TransactionsDep,
    now: NowDep,
) -> Response:  # fmt: skip
    """Name, alert email, identity (a blank field clears it) and hours."""
    actor = actor_of(member)
    wanted: dict[str, Any] = {
        name: form.get(name, "").strip() or None for name in ("display_name", "reply_to", "phone")
    }
    wanted["open_weekdays"] = [d for d in WEEKDAYS if form.get(f"open.{d}")]
    if form.get("digest"):
        wanted["digest"] = form["digest"]
    if form.get("timezone", "").strip():
        wanted["timezone"] = form["timezone"].strip()
    try:
        change = ClinicChange.model_validate(wanted)
        async with tx.write() as db:
            clinics.set_contact(
                db, member.clinic_id, form.get("name", ""), form.get("alert_email", "").strip(),
                now, actor=actor,
            )  # fmt: skip
            clinic_days.change_clinic(db, rt, member.clinic_id, change, now, actor=actor)
    except ValidationError as exc:
        return _settings(request, member.clinic_id, rt, tx, 422, errors=field_errors(exc))
    except InvalidInput as exc:
        return _settings(request, member.clinic_id, rt, tx, 422, errors={exc.field: exc.message})
    return redirect(request, rt, "/app/settings")


@router.post("/settings/closed")
async def close_on(
    request: Request, form: CheckedForm, member: AdminDep, rt: RuntimeDep, tx: TransactionsDep,
    now: NowDep,
) -> Response:  # fmt: skip
    try:
        closed = ClosedDateCreate.model_validate({"date": form.get("day"), **given(form, "reason")})
    except ValidationError as exc:
        errors = {"day": "; ".join(field_errors(exc).values())}
        return _settings(request, member.clinic_id, rt, tx, 422, errors=errors)
    async with tx.write() as db:
        clinic_days.close_on(
            db, rt, member.clinic_id, closed.day, closed.reason, now, actor=actor_of(member)
        )
    return redirect(request, rt, "/app/settings")


@router.post("/settings/closed/{day}/reopen")
async def reopen_on(
    day: date, request: Request, _form: CheckedForm, member: AdminDep, rt: RuntimeDep,
    tx: TransactionsDep, now: NowDep,
) -> Response:  # fmt: skip
    async with tx.write() as db:
        clinic_days.reopen_on(db, rt, member.clinic_id, day, now, actor=actor_of(member))
    return redirect(request, rt, "/app/settings")


@router.post("/settings/staff")
async def invite(
    request: Request, form: CheckedForm, member: AdminDep, rt: RuntimeDep, tx: TransactionsDep,
    now: NowDep,
) -> Response:  # fmt: skip
    """Add a staff member and email them their setup link."""
    try:
        async with tx.write() as db:
            added = staff.add_member(
                db, member.clinic_id, form.get("email", ""), form.get("role", ""),
                actor_of(member), now,
            )  # fmt: skip
            staff.email_link(db, rt, added, LinkPurpose.SETUP, now)
    except InvalidInput as exc:
        return _settings(request, member.clinic_id, rt, tx, 422, errors={exc.field: exc.message})
    except Conflict as exc:
        return _settings(request, member.clinic_id, rt, tx, 409, errors={"email": str(exc)})
    notice = f"Invitation sent to {added.email}."
    return _settings(request, member.clinic_id, rt, tx, notice=notice)


@router.post("/settings/staff/{staff_id}")
async def change_member(
    staff_id: str, request: Request, form: CheckedForm, member: AdminDep, rt: RuntimeDep,
    tx: TransactionsDep, now: NowDep,
) -> Response:  # fmt: skip
    """Change a member's role, or disable or enable them."""
    actor = actor_of(member)
    try:
        async with tx.write() as db:
            if form.get("role"):
                staff.set_role(db, member.clinic_id, staff_id, form["role"], actor, now)
            if form.get("enabled") in ("yes", "no"):
                enabled = form["enabled"] == "yes"
                staff.set_enabled(db, member.clinic_id, staff_id, enabled, actor, now)
    except (InvalidInput, Conflict) as exc:
        return _settings(request, member.clinic_id, rt, tx, 409, errors={"staff": str(exc)})
    return redirect(request, rt, "/app/settings")
