"""The protocol library and plan previews."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from reminders.api.deps import ClinicDep, NowDep, RuntimeDep
from reminders.api.paging import Cursor, Limit, PageOut, page_after
from reminders.errors import InvalidInput, NotFound
from reminders.fields import Day
from reminders.models import PlanPreview
from reminders.planner import AssumedResponse
from reminders.protocols import Protocol
from reminders.services import enrollments
from reminders.weekdays import parse_weekdays

router = APIRouter(prefix="/v1", tags=["protocols"])


class ProtocolSummary(BaseModel):
    """A protocol in the list."""

    id: str
    name: str
    condition: str
    description: str
    phases: list[str]


def _protocol(rt: Any, protocol_id: str) -> Protocol:
    protocol: Protocol | None = rt.protocols.get(protocol_id)
    if protocol is None:
        raise NotFound("protocol", protocol_id)
    return protocol


@router.get("/protocols")
def list_protocols(
    _clinic: ClinicDep, rt: RuntimeDep, cursor: Cursor = None, limit: Limit = 50
) -> PageOut[ProtocolSummary]:
    """Installed protocols."""
    summaries = [
        ProtocolSummary(
            id=p.id,
            name=p.name,
            condition=p.condition,
            description=p.description,
            phases=[phase.name for phase in p.phases],
        )
        for p in sorted(rt.protocols.values(), key=lambda p: p.id)
    ]
    return page_after(summaries, cursor, limit)


@router.get("/protocols/{protocol_id}")
def get_protocol(protocol_id: str, _clinic: ClinicDep, rt: RuntimeDep) -> Protocol:
    """A protocol in full: phases, caps, minutes, contraindications, tips, sources."""
    return _protocol(rt, protocol_id)


@router.get("/protocols/{protocol_id}/preview")
def preview_plan(
    protocol_id: str,
    _clinic: ClinicDep,
    rt: RuntimeDep,
    now: NowDep,
    start: Day,
    dry_after: Annotated[int | None, Query(ge=1, le=100)] = None,
    never_dry: bool = False,
    relapse_at: Annotated[list[int] | None, Query(max_length=20)] = None,
    weekdays: Annotated[str | None, Query(max_length=27, examples=["mon,wed,fri"])] = None,
    body_area: Annotated[str | None, Query(max_length=50)] = None,
    days: Annotated[int, Query(ge=1, le=730)] = 182,
) -> PlanPreview:
    """The plan from `start`, assuming full adherence and, with `dry_after`, that the
    patient reports being dry (HDSS 1) from that session on; `relapse_at` sessions
    report a relapse (HDSS 4); `never_dry` describes a non-responder."""
    allowed = None if weekdays is None else parse_weekdays(weekdays.split(","), "weekdays")
    relapses = frozenset(relapse_at or ())
    if any(n < 1 for n in relapses):
        raise InvalidInput("relapse_at", "session numbers start at 1")
    response = AssumedResponse(dry_after, never_dry, relapses)
    return enrollments.plan_preview(
        rt, protocol_id, start, now, body_area=body_area, weekdays=allowed,
        response=response, days=days,
    )  # fmt: skip
