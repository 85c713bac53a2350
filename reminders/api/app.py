"""FastAPI application factory. Routes are thin: they call services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from reminders.runtime import Runtime


def create_app(
    rt: Runtime,
    *,
    on_start: Callable[[], None] | None = None,
    on_stop: Callable[[], None] | None = None,
    scheduler_running: Callable[[], bool] | None = None,
) -> FastAPI:
    """Return the application. `on_start`/`on_stop` run in its lifespan (the server
    starts the scheduler there); `scheduler_running` feeds /readyz."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if on_start:
            on_start()
        try:
            yield
        finally:
            if on_stop:
                on_stop()

    app = FastAPI(title="reminders", version="0.1.0", lifespan=lifespan)
    app.state.runtime = rt

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], response_model=None)
    def readyz() -> Any:
        """The database answers and the scheduler runs."""
        checks: dict[str, bool] = {}
        try:
            with rt.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
            checks["database"] = True
        except sa.exc.SQLAlchemyError:
            checks["database"] = False
        checks["scheduler"] = scheduler_running() if scheduler_running else False
        ready = all(checks.values())
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)

    return app
