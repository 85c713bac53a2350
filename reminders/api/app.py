"""FastAPI application factory. Routes are thin: they call services."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from reminders import __version__
from reminders.api.deps import ApiKeys, WriteTurns
from reminders.api.errors import BodyGuard, install_error_handlers
from reminders.api.routes import (
    clinic,
    enrollments,
    escalations,
    ops,
    pages,
    patients,
    protocols,
    webhooks,
)
from reminders.runtime import Runtime

_TOKEN_PATH = re.compile(r"/(s|u)/[A-Za-z0-9_\-]{16,}")
_QUERY = re.compile(r"\?[^\s\"]*")


def _redacted(text: str) -> str:
    return _QUERY.sub("?…", _TOKEN_PATH.sub(r"/\1/…", text))


class RedactLinkTokens(logging.Filter):
    """Patient link tokens travel in URL paths, and a careless client may put a key or
    a name in a query string; access logs get `/s/…` and `?…` instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(_redacted(a) if isinstance(a, str) else a for a in record.args)
        record.msg = _redacted(str(record.msg))
        return True


def create_app(
    rt: Runtime,
    *,
    on_start: Callable[[], None] | None = None,
    on_stop: Callable[[], None] | None = None,
    scheduler_running: Callable[[], bool] | None = None,
    wake: Callable[[], None] | None = None,
) -> FastAPI:
    """Return the application. `on_start`/`on_stop` run in its lifespan (the server
    starts the scheduler there); `scheduler_running` feeds /readyz; `wake` is called
    after a write so new deliveries leave without waiting for the next tick."""

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
    )
    app.state.runtime = rt
    app.state.api_keys = ApiKeys(rt)
    app.state.write_turns = WriteTurns()
    app.state.scheduler_running = scheduler_running
    app.state.wake = wake
    install_error_handlers(app)
    for module in (clinic, patients, enrollments, escalations, protocols, webhooks, ops, pages):
        app.include_router(module.router)
    app.add_middleware(BodyGuard, limit=rt.settings.max_body_bytes)
    logging.getLogger("uvicorn.access").addFilter(RedactLinkTokens())
    return app
