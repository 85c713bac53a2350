"""Health, readiness and metrics for the operator (served by `serve` and by `worker`)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Header, HTTPException, Request, status
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from reminders.api.deps import RuntimeDep
from reminders.db.engine import cannot_write, mark_alive, session_scope
from reminders.metrics import REGISTRY
from reminders.services.metrics import TableGauges

router = APIRouter(tags=["operations"])
log = logging.getLogger(__name__)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=None,
    responses={503: {"description": "Not ready: the checks that failed are false."}},
)
def readyz(request: Request, rt: RuntimeDep) -> JSONResponse:
    """The database answers and takes writes, and the scheduler's jobs run (503 with
    what is wrong otherwise)."""
    problems: list[str] = []
    checks = {"database": True, "database_writable": True, "scheduler": True}
    try:
        with session_scope(rt.engine) as db:
            mark_alive(db, "readyz", rt.clock())
    except sa.exc.DBAPIError as exc:
        unwritable = cannot_write(exc)
        checks["database_writable" if unwritable else "database"] = False
        problems.append(
            "the database cannot be written" if unwritable else "the database did not answer"
        )
    scheduler: Callable[[], list[str]] | None = request.app.state.scheduler_problems
    stuck = ["the scheduler is not running"] if scheduler is None else scheduler()
    if stuck:
        checks["scheduler"] = False
        problems += stuck
    ready = all(checks.values())
    if not ready:
        log.warning("not ready: %s", "; ".join(problems))
    return JSONResponse(
        {"ready": ready, **checks, "problems": problems}, status_code=200 if ready else 503
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format."},
        401: {"description": "`metrics_token` is set and the request does not carry it."},
    },
)
def metrics(
    rt: RuntimeDep, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> Response:
    """Counters of deliveries, histograms of lateness, send and request durations,
    gauges of the outbox, sessions and enrollments, and the process's own metrics."""
    token = rt.settings.metrics_token
    if token is not None and not hmac.compare_digest(
        (authorization or "").encode(), f"Bearer {token}".encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "this /metrics needs Authorization: Bearer <metrics_token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    tables = CollectorRegistry()
    tables.register(TableGauges(rt.engine, rt.clock))
    body = generate_latest(REGISTRY) + generate_latest(tables)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
