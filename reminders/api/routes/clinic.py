"""The calling clinic: who it is, how patients reach it, and when it gives appointments."""

from __future__ import annotations

from fastapi import APIRouter, status

from reminders.api.deps import CallerDep, ClinicDep, NowDep, RuntimeDep, TransactionsDep
from reminders.api.paging import Cursor, Limit, PageOut, page_after
from reminders.fields import Day
from reminders.models import ClinicChange, ClinicPublic, ClosedDateCreate, ClosedDatePublic
from reminders.services import clinic_days, clinics

router = APIRouter(prefix="/v1", tags=["clinic"])


@router.get("/clinic")
async def who_am_i(clinic: ClinicDep, tx: TransactionsDep) -> ClinicPublic:
    """The calling clinic: a cheap way for an integrator to check its key. Read afresh:
    the key's holder is remembered for a second, a change to the clinic may be newer.
    One row by its key, read on the event loop: a worker thread would cost more than
    the read."""
    with tx.read() as db:
        return clinics.public_view(db, clinic.id)


@router.patch("/clinic")
async def change_clinic(
    body: ClinicChange, caller: CallerDep, rt: RuntimeDep, tx: TransactionsDep, now: NowDep
) -> ClinicPublic:
    """Set how patients see and reach the clinic (display name, reply-to, phone), and its
    zone and open weekdays; appointments are re-planned onto those."""
    async with tx.write() as db:
        changed = clinic_days.change_clinic(
            db, rt, caller.clinic.id, body, now, actor=caller.actor()
        )
        return ClinicPublic.of(changed)


@router.get("/clinic/closed-dates")
def list_closed_dates(
    clinic: ClinicDep, tx: TransactionsDep, cursor: Cursor = None, limit: Limit = 50
) -> PageOut[ClosedDatePublic]:
    """Days the clinic is closed, earliest first."""
    with tx.read() as db:
        rows = clinic_days.closed_dates(db, clinic.id)
    items = [ClosedDatePublic(day=r.local_date, reason=r.reason) for r in rows]
    return page_after(items, cursor, limit, key=lambda closed: closed.day.isoformat())


@router.post("/clinic/closed-dates", status_code=status.HTTP_201_CREATED)
async def close_on(
    body: ClosedDateCreate, caller: CallerDep, rt: RuntimeDep, tx: TransactionsDep, now: NowDep
) -> ClosedDatePublic:
    """The clinic is closed that day: no appointment is planned on it."""
    async with tx.write() as db:
        clinic_days.close_on(
            db, rt, caller.clinic.id, body.day, body.reason, now, actor=caller.actor()
        )
    return ClosedDatePublic(day=body.day, reason=body.reason)


@router.delete("/clinic/closed-dates/{day}", status_code=status.HTTP_204_NO_CONTENT)
async def reopen_on(
    day: Day, caller: CallerDep, rt: RuntimeDep, tx: TransactionsDep, now: NowDep
) -> None:
    """The clinic opens that day after all."""
    async with tx.write() as db:
        clinic_days.reopen_on(db, rt, caller.clinic.id, day, now, actor=caller.actor())
