"""Logging in and out, and setting a password from a setup or reset link."""

from __future__ import annotations

import asyncio
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from reminders.api.deps import NowDep, RuntimeDep, Transactions, TransactionsDep
from reminders.errors import InvalidInput
from reminders.runtime import Runtime
from reminders.services import staff
from reminders.services.staff import LOGIN_LASTS, LinkPurpose, LoginRefused, LoginThrottle
from reminders.web.auth import LOGIN_COOKIE, CheckedForm, set_cookie
from reminders.web.render import page, redirect

router = APIRouter(prefix="/app", include_in_schema=False)
# The same answer for an unknown address, a wrong password and a locked account.
WRONG = (
    "Wrong email or password. After five wrong passwords in a row an account is locked"
    " for 15 minutes, and its owner is told by email."
)


@router.get("/login")
def login_form(request: Request, rt: RuntimeDep) -> Response:
    return page(request, rt, "login", email="", error=None)


@router.post("/login")
async def log_in(
    request: Request, form: CheckedForm, rt: RuntimeDep, tx: TransactionsDep, now: NowDep
) -> Response:
    """Check the password off the event loop, then record the attempt in a write turn."""
    email, password = form.get("email", "").strip(), form.get("password", "")
    with tx.read() as db:
        member = staff.find_by_email(db, email)
        stored = member.password_hash if member else None
    matches = await run_in_threadpool(staff.password_matches, stored, password)
    async with tx.write() as db:
        outcome = staff.log_in(db, email, matches, now)
    throttle: LoginThrottle = request.app.state.login_throttle
    if isinstance(outcome, LoginRefused):
        await asyncio.sleep(throttle.failed(email, now))
        return page(request, rt, "login", status=401, email=email, error=WRONG)
    throttle.forget(email)
    _member, secret = outcome
    response = redirect(request, rt, "/app/")
    set_cookie(response, rt, LOGIN_COOKIE, secret, int(LOGIN_LASTS.total_seconds()))
    return response


@router.post("/logout")
async def log_out(
    request: Request, _form: CheckedForm, rt: RuntimeDep, tx: TransactionsDep, now: NowDep
) -> Response:
    secret = request.cookies.get(LOGIN_COOKIE)
    if secret:
        async with tx.write() as db:
            staff.log_out(db, secret, now)
    response = redirect(request, rt, "/app/login")
    response.delete_cookie(LOGIN_COOKIE, path="/app")
    return response


@router.get("/forgot")
def forgot_form(request: Request, rt: RuntimeDep) -> Response:
    return page(request, rt, "forgot", sent=False)


@router.post("/forgot")
async def forgot(
    request: Request, form: CheckedForm, rt: RuntimeDep, tx: TransactionsDep, now: NowDep
) -> Response:
    """Always the same answer, whether or not the address has an account."""
    async with tx.write() as db:
        staff.request_reset(db, rt, form.get("email", ""), now)
    return page(request, rt, "forgot", sent=True)


@router.get("/setup/{token}")
def setup_form(
    token: str, request: Request, rt: RuntimeDep, tx: TransactionsDep, now: NowDep
) -> Response:
    return _password_form(LinkPurpose.SETUP, token, request, rt, tx, now)


@router.get("/reset/{token}")
def reset_form(
    token: str, request: Request, rt: RuntimeDep, tx: TransactionsDep, now: NowDep
) -> Response:
    return _password_form(LinkPurpose.RESET, token, request, rt, tx, now)


@router.post("/setup/{token}")
async def set_first_password(
    token: str, request: Request, form: CheckedForm, rt: RuntimeDep, tx: TransactionsDep,
    now: NowDep,
) -> Response:  # fmt: skip
    return await _set_password(LinkPurpose.SETUP, token, request, form, rt, tx, now)


@router.post("/reset/{token}")
async def set_new_password(
    token: str, request: Request, form: CheckedForm, rt: RuntimeDep, tx: TransactionsDep,
    now: NowDep,
) -> Response:  # fmt: skip
    return await _set_password(LinkPurpose.RESET, token, request, form, rt, tx, now)


def _password_form(
    purpose: LinkPurpose, token: str, request: Request, rt: Runtime, tx: Transactions,
    now: datetime,
) -> Response:  # fmt: skip
    with tx.read() as db:
        member = staff.member_of_link(db, purpose, token, now)
    if member is None:
        return page(request, rt, "link_expired", status=404)
    return page(request, rt, "password", purpose=purpose, email=member.email, error=None)


async def _set_password(
    purpose: LinkPurpose, token: str, request: Request, form: dict[str, str], rt: Runtime,
    tx: Transactions, now: datetime,
) -> Response:  # fmt: skip
    """Set the password and log in."""
    with tx.read() as db:
        member = staff.member_of_link(db, purpose, token, now)
    if member is None:
        return page(request, rt, "link_expired", status=404)
    password = form.get("password", "")
    error = None
    if password != form.get("repeat", ""):
        error = "The two passwords are not the same."
    else:
        try:
            hashed = await run_in_threadpool(staff.hash_password, password)
        except InvalidInput as exc:
            error = f"Password {exc.message}."
    if error:
        context = {"purpose": purpose, "email": member.email, "error": error}
        return page(request, rt, "password", status=422, **context)
    async with tx.write() as db:
        member = staff.set_password(db, purpose, token, hashed, now)
        secret = staff.start_login(db, member, now)
    response = redirect(request, rt, "/app/")
    set_cookie(response, rt, LOGIN_COOKIE, secret, int(LOGIN_LASTS.total_seconds()))
    return response
