"""`Idempotency-Key` on POST: a client that retries after a timeout gets the first
answer again instead of a second patient, enrollment or confirmation.

The first request with a key reserves it; its answer (below 500) is kept for
`KEEP_FOR` and replayed to the same caller sending the same key and the same request.
The same key with a different request is a client bug: 422. While the first is still
running, a second answers 409.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reminders.api.deps import ApiKeys
from reminders.api.errors import UNWRITABLE
from reminders.db.engine import WriteTurns, cannot_write, session_scope
from reminders.models import IdempotentRequest
from reminders.runtime import Runtime
from reminders.services.api_keys import Caller
from reminders.services.retention import IDEMPOTENCY_WINDOW

HEADER = b"idempotency-key"
KEEP_FOR = IDEMPOTENCY_WINDOW
ABANDONED_AFTER = timedelta(minutes=5)
KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,200}")
# Answers that hold a secret shown only once (a new API key, an endpoint's signing
# secret) are not kept: a retry is told so instead.
SECRET_ANSWERS = re.compile(r"/v1/(api-keys|webhook-endpoints(/[^/]+/rotate-secret)?)")
SECRET_NOT_KEPT = (
    "the first request with this Idempotency-Key succeeded, and its answer held a secret"
    " that is shown only once and not kept: list what it created instead"
)


class Idempotency:
    """ASGI middleware applying `Idempotency-Key` to every POST under /v1/ sent with a
    valid API key (without one the app answers 401, and nothing is kept). Answers are
    kept per key, so a revoked key replays nothing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", ())) if scope["type"] == "http" else {}
        key = headers.get(HEADER)
        if key is None or scope["method"] != "POST" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        text = key.decode("latin-1")
        if not KEY_PATTERN.fullmatch(text):
            await _answer(send, 422, {"detail": [_header_error("1 to 200 printable characters")]})
            return
        state = scope["app"].state
        caller = await _caller(state.api_keys, headers.get(b"authorization", b""))
        if caller is None:
            await self.app(scope, receive, send)
            return
        body, receive = await _buffered(receive)
        request = _digest(scope["path"].encode(), scope.get("query_string", b""), body)
        runtime: Runtime = state.runtime
        turns: WriteTurns = state.write_turns
        try:
            async with turns:
                with session_scope(runtime.engine) as db:
                    earlier = _reserve(db, caller.key_id, text, request, runtime.clock())
        except sa.exc.DBAPIError as exc:
            if not cannot_write(exc):
                raise
            await _answer(send, 503, {"detail": UNWRITABLE}, retry_after=True)
            return
        if earlier is not None:
            await _replay(send, earlier, request)
            return
        answer = _Recorder(send, keeps_body=not SECRET_ANSWERS.fullmatch(scope["path"]))
        try:
            await self.app(scope, receive, answer)
        finally:
            with contextlib.suppress(sa.exc.DBAPIError):  # the key then stays reserved
                async with turns:
                    with session_scope(runtime.engine) as db:
                        _settle(db, caller.key_id, text, answer)


def _digest(path: bytes, query: bytes, body: bytes) -> str:
    """What makes two requests the same: path, query and the body's JSON value (a
    client that serialises the same body again, spaced differently, sends the same)."""
    with contextlib.suppress(ValueError):  # not JSON: the bytes are what was sent
        body = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(b"\0".join((path, query, body))).hexdigest()


async def _caller(keys: ApiKeys, authorization: bytes) -> Caller | None:
    scheme, _, secret = authorization.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not secret:
        return None
    return await keys.caller(secret.strip())


def _header_error(message: str) -> dict[str, Any]:
    return {"loc": ["header", "Idempotency-Key"], "msg": message, "type": "value_error"}


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole body (BodyGuard has limited its size) and return it with a
    `receive` that hands it to the app again."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    given = False

    async def again() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return body, again


def _reserve(
    db: Session, caller: str, key: str, request: str, now: datetime
) -> IdempotentRequest | None:
    """Reserve the key for this request; return the earlier request holding it, if
    one does (an expired one is forgotten, and so is one that never finished: its
    process stopped)."""
    earlier = db.get(IdempotentRequest, (caller, key))
    if earlier is not None and not _forgotten(earlier, now):
        return earlier
    if earlier is not None:
        db.delete(earlier)
        db.flush()
    try:
        with db.begin_nested():
            db.add(IdempotentRequest(scope=caller, key=key, request_digest=request, created_at=now))
    except sa.exc.IntegrityError:  # another process reserved it just now
        return db.get(IdempotentRequest, (caller, key))
    return None


def _forgotten(earlier: IdempotentRequest, now: datetime) -> bool:
    unfinished = earlier.status is None and earlier.created_at < now - ABANDONED_AFTER
    return unfinished or earlier.created_at < now - KEEP_FOR


async def _replay(send: Send, earlier: IdempotentRequest, request: str) -> None:
    if earlier.request_digest != request:
        problem = "was used with a different request; use a new key for a new request"
        await _answer(send, 422, {"detail": [_header_error(problem)]})
    elif earlier.status is None:
        await _answer(send, 409, {"detail": "a request with this Idempotency-Key is in progress"})
    elif earlier.body is None:
        await _answer(send, 409, {"detail": SECRET_NOT_KEPT})
    else:
        kind = earlier.content_type or "application/json"
        replayed = [(b"idempotent-replayed", b"true")]
        await _send(send, earlier.status, earlier.body.encode(), kind, replayed)


class _Recorder:
    """Passes the app's answer on, keeping a copy."""

    def __init__(self, send: Send, *, keeps_body: bool) -> None:
        self.send = send
        self.keeps_body = keeps_body
        self.status: int | None = None
        self.content_type = "application/json"
        self.chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            for name, value in message.get("headers", ()):
                if name.lower() == b"content-type":
                    self.content_type = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))
        await self.send(message)


def _settle(db: Session, caller: str, key: str, answer: _Recorder) -> None:
    """Keep the answer for replay; a failure (no answer, or 5xx) frees the key so the
    client's retry runs again."""
    found = sa.and_(col(IdempotentRequest.scope) == caller, col(IdempotentRequest.key) == key)
    if answer.status is None or answer.status >= 500:
        db.execute(sa.delete(IdempotentRequest).where(found))
        return
    db.execute(
        sa.update(IdempotentRequest)
        .where(found)
        .values(
            status=answer.status,
            content_type=answer.content_type[:100],
            body=b"".join(answer.chunks).decode("utf-8", "replace") if answer.keeps_body else None,
        )
    )


async def _answer(
    send: Send, status: int, content: dict[str, Any], *, retry_after: bool = False
) -> None:
    extra = [(b"retry-after", b"30")] if retry_after else []
    body = json.dumps(content).encode()
    await _send(send, status, body, "application/json", extra)


async def _send(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
