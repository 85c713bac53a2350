"""The clinic staff's web app, under /app: server-rendered pages (Jinja2, with htmx for
the parts that change in place) over the same services as the API. Staff log in with
a password; `auth` says who is asking and guards every form against forgery."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from reminders.errors import Conflict, InvalidInput, NotFound
from reminders.services.staff import LoginThrottle
from reminders.web import account, clinic, patients
from reminders.web.auth import LoginRequired
from reminders.web.render import page

PREFIX = "/app"
STATIC_URL = "/static/app"


def _in_app(request: Request) -> bool:
    return request.url.path == PREFIX or request.url.path.startswith(PREFIX + "/")


def install(app: FastAPI) -> None:
    """Add the app's routes, its static files, and its answers to errors (pages, where
    the API answers JSON)."""
    app.state.login_throttle = LoginThrottle()
    for module in (patients, clinic, account):
        app.include_router(module.router)
    app.mount(STATIC_URL, StaticFiles(packages=[("reminders", "static/app")]), name="app-static")

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        return RedirectResponse(PREFIX + "/", status_code=303)

    # Errors raised under /app answer with a page; elsewhere the API's answer stands.
    kinds = (NotFound, InvalidInput, Conflict, HTTPException, RequestValidationError)
    for kind in (*kinds, ValidationError):
        api_answer = app.exception_handlers.get(kind) or app.exception_handlers[Exception]
        app.add_exception_handler(kind, partial(_answer, api_answer))

    @app.exception_handler(LoginRequired)
    async def login_first(request: Request, _exc: LoginRequired) -> Response:
        if request.headers.get("HX-Request"):
            return Response(status_code=204, headers={"HX-Redirect": PREFIX + "/login"})
        return RedirectResponse(PREFIX + "/login", status_code=303)


ApiAnswer = Callable[[Request, Any], Response | Awaitable[Response]]


async def _answer(api_answer: ApiAnswer, request: Request, exc: Exception) -> Response:
    """The app's page for an error a route raised; outside the app, the API's answer."""
    if not _in_app(request):
        answer = api_answer(request, exc)
        return await answer if inspect.isawaitable(answer) else answer
    rt = request.app.state.runtime
    if isinstance(exc, NotFound):
        return page(request, rt, "error", 404, title="Not found", text="There is no such page.")
    if isinstance(exc, HTTPException):
        title = "Not found" if exc.status_code == 404 else "Refused"
        return page(request, rt, "error", exc.status_code, title=title, text=str(exc.detail))
    if isinstance(exc, ValidationError | RequestValidationError):
        fields = ", ".join(str(e["loc"][-1]) + ": " + e["msg"] for e in exc.errors() if e["loc"])
        return page(request, rt, "error", 422, title="Not done", text=fields or "bad input")
    if isinstance(exc, Conflict):
        return page(request, rt, "error", 409, title="Not done", text=str(exc))
    return page(request, rt, "error", 422, title="Not done", text=str(exc))
