"""Health, readiness and metrics for the operator."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from reminders.api.deps import NowDep, RuntimeDep, TransactionsDep
from reminders.services.metrics import metrics_text

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
def readyz(request: Request, rt: RuntimeDep) -> JSONResponse:
    """The database answers and the scheduler runs (503 otherwise)."""
    checks: dict[str, bool] = {}
    try:
        with rt.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        checks["database"] = True
    except sa.exc.SQLAlchemyError:
        checks["database"] = False
    running = getattr(request.app.state, "scheduler_running", None)
    checks["scheduler"] = bool(running and running())
    ready = all(checks.values())
    return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(tx: TransactionsDep, now: NowDep) -> PlainTextResponse:
    """Prometheus text: deliveries by state and channel, dispatch lag, sessions."""
    with tx.read() as db:
        text = metrics_text(db, now)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")
