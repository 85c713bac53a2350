"""The patient's calendar feed (`/c/{token}.ics`, the token is the key, as for the
patient pages) and, for the clinic, its link and its revocation."""

from __future__ import annotations

from fastapi import APIRouter, Response

from reminders import calendar
from reminders.api.deps import ClinicDep, NowDep, RuntimeDep, TransactionsDep
from reminders.api.routes.pages import PRIVATE
from reminders.models import CalendarFeedPublic
from reminders.services import calendar_feed, patients

router = APIRouter(tags=["calendar feed"])
# As the patient pages, with no-store kept: the feed is health data behind a token in
# the URL, a calendar keeps its own copy anyway and polls only every few hours
# (`calendar.REFRESH_EVERY`), and a revoked link must stop at once, not when a cached
# copy runs out.
FEED_HEADERS = {**PRIVATE, "Content-Disposition": 'inline; filename="sessions.ics"'}


@router.get(
    "/c/{token}.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {"schema": {"type": "string"}}}}},
)
def calendar_feed_of_link(token: str, tx: TransactionsDep, rt: RuntimeDep, now: NowDep) -> Response:
    """The patient's sessions as an iCalendar feed to subscribe to. An unknown or
    revoked link, or an erased patient's, answers 404 with nothing to tell them apart."""
    with tx.read() as db:
        body = calendar_feed.feed_of_token(db, rt, token, now)
    if body is None:
        return Response(status_code=404, headers=PRIVATE)
    return Response(body, media_type=calendar.MEDIA_TYPE, headers=FEED_HEADERS)


@router.get("/v1/patients/{patient_id}/calendar", tags=["patients"])
async def patient_calendar_link(
    patient_id: str, clinic: ClinicDep, rt: RuntimeDep, tx: TransactionsDep, now: NowDep
) -> CalendarFeedPublic:
    """The patient's calendar feed link, to give to the patient (messages carry it).
    Its token is stored the first time it is asked for, hence a write."""
    async with tx.write() as db:
        patient = patients.get_patient(db, clinic.id, patient_id)
        return CalendarFeedPublic(url=calendar_feed.feed_link(db, rt, patient, now))


@router.post("/v1/patients/{patient_id}/calendar/revoke", tags=["patients"])
async def revoke_calendar_link(
    patient_id: str, clinic: ClinicDep, rt: RuntimeDep, tx: TransactionsDep, now: NowDep
) -> CalendarFeedPublic:
    """Stop the patient's calendar feed link from working (it was shared, or the phone
    lost) and return the new one; messages carry the new one from now on."""
    async with tx.write() as db:
        patient = patients.get_patient(db, clinic.id, patient_id)
        return CalendarFeedPublic(url=calendar_feed.revoke_feed(db, rt, patient, now))
