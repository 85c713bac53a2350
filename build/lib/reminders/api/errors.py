"""How errors become answers: every one is `{"detail": ...}` naming the field where
there is one; bodies have a size limit and must be JSON where JSON is expected."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reminders.db.engine import cannot_write
from reminders.errors import Conflict, Gone, InvalidInput, NotFound

logger = logging.getLogger(__name__)
UNWRITABLE = "the database cannot be written right now; nothing was recorded"


def _field_error(field: str, message: str, where: str = "body") -> list[dict[str, Any]]:
    return [{"loc": [where, *field.split(".")], "msg": message, "type": "value_error"}]


def install_error_handlers(app: FastAPI) -> None:
    """Map service errors: NotFound 404, InvalidInput 422, Conflict 409, Gone 410; a
    database that cannot be written 503; anything else a 500 in the same shape, its
    details only in the log."""

    @app.exception_handler(Exception)
    async def internal(_request: Request, _exc: Exception) -> JSONResponse:
        # Starlette logs the exception after this answer is sent.
        return JSONResponse({"detail": "internal error"}, status_code=500)

    @app.exception_handler(NotFound)
    async def not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(InvalidInput)
    async def invalid(request: Request, exc: InvalidInput) -> JSONResponse:
        # Services name the field, not where it came from: a query parameter's name
        # is in the request's query.
        where = "query" if exc.field in request.query_params else "body"
        detail = _field_error(exc.field, exc.message, where)
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(Conflict)
    async def conflict(_request: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(Gone)
    async def gone(_request: Request, exc: Gone) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=410)

    @app.exception_handler(sa.exc.DBAPIError)
    async def unwritable(_request: Request, exc: sa.exc.DBAPIError) -> JSONResponse:
        if not cannot_write(exc):
            raise exc
        logger.error("the database cannot be written: %s", type(exc.orig).__name__)
        return JSONResponse(
            {"detail": UNWRITABLE},
            status_code=503,
            headers={"Retry-After": "30"},
        )

    @app.exception_handler(RequestValidationError)
    async def validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # The submitted values are left out: they may hold names and emails.
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)


class BodyGuard:
    """Refuses bodies over `limit` bytes (413) and non-JSON bodies to the JSON API (415),
    before anything reads them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _reply(send, 413, f"request body over {self.limit} bytes")
            return
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        has_body = length not in (None, "0") or "transfer-encoding" in headers
        if scope["path"].startswith("/v1/") and has_body and kind != "application/json":
            await _reply(send, 415, "content-type must be application/json")
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _reply(send, 413, f"request body over {self.limit} bytes")


class _TooLarge(Exception):
    pass


async def _reply(send: Send, status: int, detail: str) -> None:
    body = JSONResponse({"detail": detail}, status_code=status).body
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
