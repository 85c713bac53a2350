"""The patient's pages behind the links in a reminder: no account, the token is the key.

GET only shows (mail scanners follow links); POST changes. Plain HTML, no JavaScript.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlmodel import Session

from reminders.api.deps import NowDep, RuntimeDep, TransactionsDep
from reminders.errors import Conflict, InvalidInput
from reminders.models import Enrollment, Patient, SessionReport
from reminders.outcomes import SideEffect
from reminders.services import absences, enrollments, patients, reminding, sessions
from reminders.services.protocol_versions import protocol_of
from reminders.states import SessionStatus
from reminders.stores import session_store
from reminders.stores.session_store import SessionRow
from reminders.timing import zone
from reminders.tokens import find_token

router = APIRouter(tags=["patient pages"])
# As messages' templates: not looked up on disk again at every render.
_pages = Environment(
    loader=PackageLoader("reminders", "templates"),
    autoescape=select_autoescape(),
    auto_reload=False,
)
# The token is in the URL: keep it out of Referer headers, caches and search engines.
# The forms act on the patient's behalf: no other site may frame them (clickjacking),
# and browsers take the page only as the HTML it says it is.
PRIVATE = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}


def _page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _pages.get_template(f"pages/{template}.html").render(**context)
    return HTMLResponse(html, status_code=status, headers=PRIVATE)


def _message(title: str, *lines: str, status: int = 200) -> HTMLResponse:
    return _page("message", status, title=title, lines=lines)


def _done(title: str, line: str, following: str | None) -> HTMLResponse:
    lines = [line] + ([f"Your next session: {following}."] if following else [])
    return _message(title, *lines)


def _expired() -> HTMLResponse:
    return _message(
        "This link has expired",
        "The link is no longer valid. Your next reminder will bring a fresh one.",
        status=404,
    )


def _day(value: date) -> str:
    return f"{value:%A} {value.day} {value:%B}"


async def form_fields(request: Request) -> dict[str, str]:
    """The posted form (application/x-www-form-urlencoded), first value of each field."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {key: values[0] for key, values in parse_qs(body).items()}


FormDep = Annotated[dict[str, str], Depends(form_fields)]
_Found = tuple[SessionRow, Enrollment, Patient]


def _session_for(db: Session, token: str, now: Any) -> _Found | None:
    row = find_token(db, token, "session", now)
    if row is None or row.session_id is None:
        return None
    session = session_store.get(db, row.session_id)
    enrollment = db.get(Enrollment, session.enrollment_id) if session else None
    patient = db.get(Patient, row.patient_id)
    if session is None or enrollment is None or patient is None:
        return None
    if enrollment.patient_id != patient.id:
        return None
    return session, enrollment, patient


def _next_session(db: Session, enrollment_id: str, after: date) -> str | None:
    upcoming = [
        r.local_date
        for r in session_store.of_enrollment(db, enrollment_id)
        if r.status == SessionStatus.PLANNED and r.local_date > after
    ]
    return _day(min(upcoming)) if upcoming else None


@router.get("/s/{token}", response_class=HTMLResponse)
def session_page(
    token: str, request: Request, tx: TransactionsDep, rt: RuntimeDep, now: NowDep
) -> HTMLResponse:
    """The session with buttons to confirm, skip or snooze. Changes nothing."""
    with tx.read() as db:
        found = _session_for(db, token, now)
        if found is None:
            return _expired()
        session, enrollment, _patient = found
        protocol = protocol_of(db, rt, enrollment)
        today = enrollments.local_today(now, session.timezone)
        choices, preselected = sessions.link_days(
            session.local_date, session.status in sessions.OPEN, today
        )
        return _page(
            "session",
            title="Your treatment session",
            session=session,
            day=_day(session.local_date),
            choices=[(d.isoformat(), _day(d), d == today) for d in choices],
            preselected=preselected.isoformat(),
            body_area=enrollment.body_area,
            tips=protocol.tips if protocol else (),
            scale=protocol.scale if protocol else None,
            side_effects=SIDE_EFFECT_CHOICES,
            action=request.query_params.get("action"),
            base=f"/s/{token}",
            next_day=_next_session(db, enrollment.id, session.local_date),
        )


@router.post("/s/{token}/confirm", response_class=HTMLResponse)
async def confirm_from_link(
    token: str, form: FormDep, tx: TransactionsDep, rt: RuntimeDep, now: NowDep
) -> HTMLResponse:
    """Record the session on the day the patient says: the link's date or today (an
    extra session if none is planned today). Refused, with the reason, when that day's
    session is already recorded."""
    try:
        report = SessionReport(
            hdss=int(form["hdss"]) if form.get("hdss") else None,
            outcome=form.get("outcome") or None,
            side_effect=form.get("side_effect") or None,
            side_effect_note=form.get("side_effect_note") or None,
            current_ma=float(form["current_ma"].replace(",", "."))
            if form.get("current_ma")
            else None,
        )
        day = date.fromisoformat(form["day"]) if form.get("day") else None
    except ValueError:
        return _message(
            "Please check what you entered",
            "Choose an answer from the lists, give the current as a number of mA (0 to 30),"
            " and the day as one of those offered.",
            status=422,
        )
    try:
        async with tx.write() as db:
            found = _session_for(db, token, now)
            if found is None:
                return _expired()
            session, enrollment, _patient = found
            done = sessions.confirm_from_link(db, rt, session, day, report, now)
            following = _next_session(db, enrollment.id, done.local_date)
    except (Conflict, InvalidInput) as refused:
        return _message(
            "Nothing was recorded",
            f"{_reason(refused)}.",
            "If you have done another session, use the link in your latest reminder.",
            status=409 if isinstance(refused, Conflict) else 422,
        )
    return _done(
        "Thank you", f"Your session on {_day(done.local_date)} is recorded. Thank you!", following
    )


SIDE_EFFECT_CHOICES = (
    ("", "Nothing to report"),
    (SideEffect.DRYNESS, "Dry skin"),
    (SideEffect.REDNESS, "Redness or irritation"),
    (SideEffect.BLISTERING, "Blisters"),
    (SideEffect.BURN, "A burn"),
    (SideEffect.OTHER, "Something else (say what below)"),
)


def _reason(refused: Conflict | InvalidInput) -> str:
    text = str(refused)
    return text[:1].upper() + text[1:]


@router.post("/s/{token}/skip", response_class=HTMLResponse)
async def skip_from_link(
    token: str, form: FormDep, tx: TransactionsDep, rt: RuntimeDep, now: NowDep
) -> HTMLResponse:
    """Record that the session will not be done; the plan finds the next possible day."""
    reason = (form.get("reason") or "").strip()[:500] or None
    try:
        async with tx.write() as db:
            found = _session_for(db, token, now)
            if found is None:
                return _expired()
            session, enrollment, _patient = found
            sessions.skip_session(db, rt, None, session.id, reason, now)
            following = _next_session(db, enrollment.id, session.local_date)
    except (Conflict, InvalidInput) as exc:
        if isinstance(exc, InvalidInput) and exc.field == "reason":
            return _message(
                "Please check what you entered",
                "The reason may be any text, on one or more lines, without control characters.",
                status=422,
            )
        return _message(
            "Nothing to skip", "This session is already recorded or no longer planned.", status=409
        )
    return _done("Session skipped", "No problem: the session is skipped.", following)


@router.post("/s/{token}/away", response_class=HTMLResponse)
async def away_from_link(
    token: str, form: FormDep, tx: TransactionsDep, rt: RuntimeDep, now: NowDep
) -> HTMLResponse:
    """The patient is away: nothing is planned or reminded between the two dates."""
    try:
        first = date.fromisoformat(form.get("from", ""))
        last = date.fromisoformat(form.get("to", ""))
    except ValueError:
        return _message(
            "Please check the dates", "Give the first and the last day you are away.", status=422
        )
    try:
        async with tx.write() as db:
            found = _session_for(db, token, now)
            if found is None:
                return _expired()
            _session, enrollment, patient = found
            absences.add_absence(db, rt, patient, first, last, None, "patient", now)
            following = _next_session(db, enrollment.id, last)
    except InvalidInput as refused:
        return _message("Please check the dates", f"{_reason(refused)}.", status=422)
    return _done(
        "Have a good time",
        f"No sessions and no reminders from {_day(first)} to {_day(last)}.",
        following,
    )


@router.post("/s/{token}/snooze", response_class=HTMLResponse)
async def snooze_from_link(
    token: str, tx: TransactionsDep, rt: RuntimeDep, now: NowDep
) -> HTMLResponse:
    """Remind again later today, if quiet hours and the day leave time."""
    async with tx.write() as db:
        found = _session_for(db, token, now)
        if found is None:
            return _expired()
        session, _enrollment, patient = found
        if session.status != SessionStatus.PLANNED:
            return _message(
                "Nothing to remind", "This session is already recorded or no longer planned."
            )
        when = reminding.snooze(db, rt.settings, session, patient, now)
        local = when.astimezone(zone(session.timezone)) if when else None
    if local is None:
        return _message("Too late for today", "There is no time left today for another reminder.")
    return _message("We'll remind you", f"We'll remind you again at {local:%H:%M}.")


@router.get("/u/{token}", response_class=HTMLResponse)
def unsubscribe_page(token: str, tx: TransactionsDep, now: NowDep) -> HTMLResponse:
    """Ask the patient to confirm; only the POST unsubscribes."""
    with tx.read() as db:
        if find_token(db, token, "unsubscribe", now) is None:
            return _expired()
    return _page("unsubscribe", title="Stop treatment reminders")


@router.post("/u/{token}", response_class=HTMLResponse)
async def unsubscribe(token: str, tx: TransactionsDep, now: NowDep) -> HTMLResponse:
    """One-click unsubscribe (RFC 8058): no more messages, and the clinic is told."""
    async with tx.write() as db:
        row = find_token(db, token, "unsubscribe", now)
        if row is None:
            return _expired()
        patient = db.get(Patient, row.patient_id)
        assert patient is not None  # foreign key
        patients.unsubscribe(db, patient, now)
    return _message(
        "Reminders stopped",
        "You will get no more reminders. Your clinic has been told.",
    )
