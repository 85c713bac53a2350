"""Enrollments and sessions."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from reminders.api.deps import CallerDep, ClinicDep, NowDep, RuntimeDep, TransactionsDep
from reminders.api.paging import Cursor, Limit, PageOut, page_after
from reminders.fields import Day
from reminders.models import (
    EnrollmentPublic,
    HoldDecisionCreate,
    PauseRequest,
    ReviewDecisionCreate,
    SessionPublic,
    SessionReport,
    SkipRequest,
)
from reminders.services import course_status, holds, reading, sessions
from reminders.services.holds import HoldDecision

router = APIRouter(prefix="/v1", tags=["enrollments"])
STATUS_FOR = {"resume": "active", "withdraw": "withdrawn"}


@router.get("/enrollments/{enrollment_id}")
def get_enrollment(
    enrollment_id: str, clinic: ClinicDep, rt: RuntimeDep, tx: TransactionsDep, now: NowDep
) -> EnrollmentPublic:
    """Phase, upcoming sessions and adherence."""
    with tx.read() as db:
        return reading.enrollment_view(db, clinic.id, enrollment_id, now, rt.protocols)


@router.post("/enrollments/{enrollment_id}/pause")
async def pause_enrollment(
    enrollment_id: str,
    caller: CallerDep,
    rt: RuntimeDep,
    tx: TransactionsDep,
    now: NowDep,
    body: PauseRequest | None = None,
) -> EnrollmentPublic:
    """Pause: no sessions, reminders, misses or lapses; with `until`, it resumes by itself
    on that local date."""
    wanted = body or PauseRequest()
    async with tx.write() as db:
        clinic_id = caller.clinic.id
        course_status.set_status(
            db, rt, clinic_id, enrollment_id, "paused", now,
            until=wanted.until, reason=wanted.reason, actor=caller.actor(),
        )  # fmt: skip
        return reading.enrollment_view(db, clinic_id, enrollment_id, now, rt.protocols)


@router.post("/enrollments/{enrollment_id}/review")
async def decide_review(
    enrollment_id: str,
    body: ReviewDecisionCreate,
    caller: CallerDep,
    rt: RuntimeDep,
    tx: TransactionsDep,
    now: NowDep,
) -> EnrollmentPublic:
    """Answer an open review (a patient who has not responded): continue the phase for
    another block, move on to the next phase, or end the course. 409 when none is open."""
    async with tx.write() as db:
        clinic_id, by = caller.clinic.id, caller.on_behalf_of(body.by)
        course_status.decide_review(
            db, rt, clinic_id, enrollment_id, body.decision, now, decided_by=by, note=body.note
        )
        return reading.enrollment_view(db, clinic_id, enrollment_id, now, rt.protocols)


@router.post("/enrollments/{enrollment_id}/hold-decision")
async def decide_hold(
    enrollment_id: str,
    body: HoldDecisionCreate,
    caller: CallerDep,
    rt: RuntimeDep,
    tx: TransactionsDep,
    now: NowDep,
) -> EnrollmentPublic:
    """Answer a plan held after a side effect: continue, pause until a day, or end the
    course. Settles the side-effect escalations; 409 when the plan is not held."""
    answer = HoldDecision.of(body)
    async with tx.write() as db:
        clinic_id = caller.clinic.id
        holds.decide_hold(
            db, rt, clinic_id, enrollment_id, answer, now, actor=caller.actor(body.by)
        )
        return reading.enrollment_view(db, clinic_id, enrollment_id, now, rt.protocols)


@router.post("/enrollments/{enrollment_id}/protocol-version")
async def move_to_current_protocol(
    enrollment_id: str, clinic: ClinicDep, rt: RuntimeDep, tx: TransactionsDep, now: NowDep
) -> EnrollmentPublic:
    """Move the enrollment to the installed version of its protocol and re-plan by it.
    An enrollment keeps the version it was enrolled on until this is called."""
    async with tx.write() as db:
        course_status.move_to_current_protocol(db, rt, clinic.id, enrollment_id, now)
        return reading.enrollment_view(db, clinic.id, enrollment_id, now, rt.protocols)


@router.post("/enrollments/{enrollment_id}/{action}")
async def change_enrollment(
    enrollment_id: str,
    action: Literal["resume", "withdraw"],
    caller: CallerDep,
    rt: RuntimeDep,
    tx: TransactionsDep,
    now: NowDep,
) -> EnrollmentPublic:
    """Resume (plan again from today; nothing of the pause counts) or withdraw."""
    async with tx.write() as db:
        clinic_id, status = caller.clinic.id, STATUS_FOR[action]
        course_status.set_status(
            db, rt, clinic_id, enrollment_id, status, now, actor=caller.actor()
        )
        return reading.enrollment_view(db, clinic_id, enrollment_id, now, rt.protocols)


@router.get("/enrollments/{enrollment_id}/sessions")
def list_sessions(
    enrollment_id: str,
    clinic: ClinicDep,
    tx: TransactionsDep,
    start: Annotated[Day | None, Query(alias="from")] = None,
    end: Annotated[Day | None, Query(alias="to")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> PageOut[SessionPublic]:
    """Sessions between two local dates (inclusive), oldest first."""
    with tx.read() as db:
        rows = reading.sessions_between(db, clinic.id, enrollment_id, start, end)
    items = [SessionPublic.of(r) for r in rows]
    return page_after(items, cursor, limit, key=lambda s: f"{s.date.isoformat()}.{s.id}")


@router.post("/sessions/{session_id}/confirm", tags=["sessions"])
async def confirm(
    session_id: str,
    clinic: ClinicDep,
    rt: RuntimeDep,
    tx: TransactionsDep,
    now: NowDep,
    body: SessionReport | None = None,
) -> SessionPublic:
    """Record a session as done (e.g. in the clinic), with what was measured; re-plans.
    Confirming twice changes nothing."""
    async with tx.write() as db:
        session, _ = sessions.confirm_session(
            db, rt, clinic.id, session_id, body or SessionReport(), now
        )
        return SessionPublic.of(session)


@router.post("/sessions/{session_id}/skip", tags=["sessions"])
async def skip(
    session_id: str,
    clinic: ClinicDep,
    rt: RuntimeDep,
    tx: TransactionsDep,
    now: NowDep,
    body: SkipRequest | None = None,
) -> SessionPublic:
    """Record that a session will not be done; re-plans."""
    async with tx.write() as db:
        reason = body.reason if body else None
        session, _ = sessions.skip_session(db, rt, clinic.id, session_id, reason, now)
        return SessionPublic.of(session)
