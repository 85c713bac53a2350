"""The escalation inbox: what the clinic must look at, and acknowledging it."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from reminders.api.deps import CallerDep, ClinicDep, NowDep, RuntimeDep, TransactionsDep
from reminders.api.paging import Cursor, Limit, PageOut
from reminders.models import Acknowledgement, EscalationPublic
from reminders.services import escalations, patients

router = APIRouter(prefix="/v1", tags=["escalations"])


@router.get("/escalations")
def list_escalations(
    clinic: ClinicDep,
    tx: TransactionsDep,
    state: Annotated[Literal["open", "acknowledged"] | None, Query()] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> PageOut[EscalationPublic]:
    """The clinic's escalations, newest first (missed sessions, lapses, no response,
    side effects, unsubscribes, undeliverable messages)."""
    with tx.read() as db:
        page = escalations.list_escalations(db, clinic.id, state, cursor, limit)
        external = patients.external_ids(db, {e.patient_id for e in page.items if e.patient_id})
        items = [EscalationPublic.of(e, external.get(e.patient_id or "")) for e in page.items]
        return PageOut(items=items, next_cursor=page.next_cursor)


@router.post("/escalations/{escalation_id}/acknowledge")
async def acknowledge(
    escalation_id: str,
    body: Acknowledgement,
    caller: CallerDep,
    rt: RuntimeDep,
    tx: TransactionsDep,
    now: NowDep,
) -> EscalationPublic:
    """Say who looked at an escalation. Acknowledging a lapse returns the patient's
    reminders to the plan's pace. 409 when already acknowledged."""
    async with tx.write() as db:
        by = caller.on_behalf_of(body.by)
        done = escalations.acknowledge(
            db, rt, caller.clinic.id, escalation_id, by, body.note, now, actor=caller.actor(body.by)
        )
        external = patients.external_ids(db, {done.patient_id} if done.patient_id else set())
        return EscalationPublic.of(done, external.get(done.patient_id or ""))
