"""Who is using the app, and proof that a form came from the app itself.

A login is a server-side row (`services.staff`); the cookie holds its secret, HttpOnly
and SameSite=Lax, Secure behind https. Every POST carries a CSRF token: an HMAC of the
cookie it travels with (the login's, or before logging in a random one of its own), so
only a page the app served to this browser can have it. A POST whose Origin is another
site's is refused before that.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from reminders.api.deps import FormDep, NowDep, RuntimeDep
from reminders.db.engine import session_scope
from reminders.models import StaffMember
from reminders.runtime import Runtime
from reminders.services import clinics, staff
from reminders.services.audit import Actor
from reminders.services.staff import Role

LOGIN_COOKIE = "reminders_staff"
FORM_COOKIE = "reminders_form"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


class LoginRequired(Exception):
    """The page needs a logged-in staff member; the app answers with the login page."""


def csrf_token(rt: Runtime, cookie: str) -> str:
    """The token that forms served with this cookie carry."""
    return hmac.new(rt.secret_key, f"csrf:{cookie}".encode(), hashlib.sha256).hexdigest()


def form_cookie(request: Request) -> str:
    """The browser's cookie that a form's token is made from: its login's, or the
    anonymous one (made now if it has none; `set_cookies` sends it)."""
    cookie = request.cookies.get(LOGIN_COOKIE) or request.cookies.get(FORM_COOKIE)
    if not cookie:
        cookie = request.state.new_form_cookie = secrets.token_urlsafe(32)
    return cookie


def secure(rt: Runtime) -> bool:
    return rt.settings.base_url.startswith("https://")


def set_cookie(response: Response, rt: Runtime, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, httponly=True, samesite="lax", secure=secure(rt), path="/app"
    )


def _same_origin(request: Request, rt: Runtime) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    own = {f"{request.url.scheme}://{request.url.netloc}", _origin_of(rt.settings.base_url)}
    return origin in own


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def checked_form(request: Request, form: FormDep, rt: RuntimeDep) -> dict[str, str]:
    """The posted form, once its Origin and CSRF token show it came from this app in
    this browser; 403 otherwise."""
    cookie = request.cookies.get(LOGIN_COOKIE) or request.cookies.get(FORM_COOKIE)
    sent = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not _same_origin(request, rt) or not cookie:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "form refused: not sent from this app")
    if not hmac.compare_digest(sent, csrf_token(rt, cookie)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "form refused: not sent from this app")
    return form


CheckedForm = Annotated[dict[str, str], Depends(checked_form)]


def _member_of(rt: Runtime, secret: str, now: datetime) -> tuple[StaffMember, str] | None:
    """The member holding this login, and their clinic's zone (UTC if it has none)."""
    with session_scope(rt.engine, write=False) as db:
        member = staff.member_of_login(db, secret, now)
        if member is None:
            return None
        return member, clinics.get_clinic(db, member.clinic_id).timezone or "UTC"


async def current_member(request: Request, rt: RuntimeDep, now: NowDep) -> StaffMember:
    """The logged-in staff member; LoginRequired otherwise. Pages show times in the
    member's clinic's zone."""
    secret = request.cookies.get(LOGIN_COOKIE)
    found = await run_in_threadpool(_member_of, rt, secret, now) if secret else None
    if found is None:
        raise LoginRequired
    request.state.member, request.state.zone = found
    return found[0]


StaffDep = Annotated[StaffMember, Depends(current_member)]


async def current_admin(member: StaffDep) -> StaffMember:
    """The logged-in member if an admin; 404 for anyone else (as for another clinic's)."""
    if member.role != Role.ADMIN:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "There is no such page.")
    return member


AdminDep = Annotated[StaffMember, Depends(current_admin)]


def actor_of(member: StaffMember) -> Actor:
    """How the audit log names what `member` changes."""
    return Actor.staff(member.id, member.email)
