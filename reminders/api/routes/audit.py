"""The clinic's audit log: every change a person made, through the API or the web app."""

from __future__ import annotations

from fastapi import APIRouter

from reminders.api.deps import ClinicDep, TransactionsDep
from reminders.api.paging import Cursor, Limit, PageOut
from reminders.models import AuditEventPublic
from reminders.services import reading

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get("/audit-log")
def audit_log(
    clinic: ClinicDep, tx: TransactionsDep, cursor: Cursor = None, limit: Limit = 50
) -> PageOut[AuditEventPublic]:
    """Who enrolled, overrode a screening, paused, resumed, withdrew, acknowledged, or
    changed endpoints or staff, and when; newest first."""
    with tx.read() as db:
        page = reading.audit_log(db, clinic.id, cursor, limit)
        items = [AuditEventPublic.of(e) for e in page.items]
    return PageOut(items=items, next_cursor=page.next_cursor)
