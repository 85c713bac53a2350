"""FastAPI application factory. Routes are thin: they call services."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reminders import __version__, web
from reminders.api.contract import install_contract
from reminders.api.deps import ApiKeys
from reminders.api.errors import BodyGuard, install_error_handlers
from reminders.api.idempotency import Idempotency
from reminders.api.routes import (
    api_keys,
    audit,
    calendar,
    clinic,
    docs,
    enrollments,
    escalations,
    ops,
    pages,
    patients,
    protocols,
    webhooks,
)
from reminders.db.engine import WriteTurns
from reminders.metrics import REQUEST_SECONDS
from reminders.runtime import Runtime

_TOKEN_PATH = re.compile(r"/(s|u|c|app/setup|app/reset)/[A-Za-z0-9_\-]{16,}")
_QUERY = re.compile(r"\?[^\s\"]*")
TIMING = b"server-timing"


def _redacted(text: str) -> str:
    return _QUERY.sub("?…", _TOKEN_PATH.sub(r"/\1/…", text))


class RedactLinkTokens(logging.Filter):
    """Patient link tokens travel in URL paths (so do staff setup and reset links), and
    a careless client may put a key or a name in a query string; access logs get `/s/…`
    (`/u/…`, `/c/….ics`, `/app/setup/…`) and `?…` instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(_redacted(a) if isinstance(a, str) else a for a in record.args)
        record.msg = _redacted(str(record.msg))
        return True


class MeasureRequests:
    """Times every HTTP request into `metrics.REQUEST_SECONDS`, by route template (a
    patient's link token never becomes a label), and tells the client how long the
    server took to answer (`Server-Timing: app;dur=<ms>`), as browsers' tools show."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                took_ms = (time.perf_counter() - started) * 1000
                headers = [
                    *message.get("headers", ()),
                    (TIMING, b"app;dur=%.1f" % took_ms),
                ]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUEST_SECONDS.labels(route, scope["method"], str(status)).observe(
                time.perf_counter() - started
            )


def create_app(
    rt: Runtime,
    *,
    on_start: Callable[[], None] | None = None,
    on_stop: Callable[[], None] | None = None,
    scheduler_problems: Callable[[], list[str]] | None = None,
    wake: Callable[[], None] | None = None,
    operations_only: bool = False,
) -> FastAPI:
    """Return the application. `on_start`/`on_stop` run in its lifespan (the server
    starts the scheduler there); `scheduler_problems` feeds /readyz; `wake` is called
    after a write so new deliveries leave without waiting for the next tick.
    `operations_only` serves /healthz, /readyz and /metrics alone (a `worker`)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if on_start:
            on_start()
        try:
            yield
        finally:
            if on_stop:
                on_stop()

    app = FastAPI(
        title="reminders",
        version=__version__,
        description="Treatment reminders and adherence for iontophoresis clinics.",
        lifespan=lifespan,
        # Served by `routes.docs` with their assets from the package, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = rt
    app.state.api_keys = ApiKeys(rt)
    app.state.write_turns = WriteTurns()
    app.state.scheduler_problems = scheduler_problems
    app.state.wake = wake
    install_error_handlers(app)
    install_contract(app)
    modules = (
        clinic,
        api_keys,
        patients,
        enrollments,
        escalations,
        protocols,
        webhooks,
        audit,
        pages,
        calendar,
    )
    for module in (ops,) if operations_only else (ops, *modules, docs):
        app.include_router(module.router)
    if not operations_only:
        app.mount(docs.ASSETS_URL, docs.assets(), name="docs-assets")
        web.install(app)
    # The last added runs first: bodies are size-checked before anything keeps them.
    app.add_middleware(Idempotency)
    app.add_middleware(BodyGuard, limit=rt.settings.max_body_bytes)
    app.add_middleware(MeasureRequests)
    logging.getLogger("uvicorn.access").addFilter(RedactLinkTokens())
    return app
