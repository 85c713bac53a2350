"""The patient's pages behind the links in a reminder: no account, the token is the key.

GET only shows (mail scanners follow links); POST changes. Plain HTML, no JavaScript.
Each page speaks the patient's language and names their clinic; a page that knows no
patient (an expired link) speaks the browser's language.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from gettext import NullTranslations
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from reminders import timing
from reminders.api.deps import FormDep, NowDep, RuntimeDep, TransactionsDep
from reminders.errors import Conflict, CourseEnded, InvalidInput
from reminders.i18n import Formats, templates, translator
from reminders.locales import DEFAULT, N_, from_accept_language, resolve
from reminders.messages import session_length
from reminders.models import Clinic, Enrollment, Patient, SessionReport
from reminders.outcomes import SideEffect
from reminders.runtime import Runtime
from reminders.safety import over_treatment
from reminders.services import absences, patients, reminding, sessions
from reminders.services.absences import MAX_ABSENCE_DAYS, AbsenceRefusal
from reminders.services.protocol_versions import protocol_of
from reminders.states import EnrollmentStatus, SessionStatus
from reminders.stores import session_store
from reminders.stores.session_store import SessionRow
from reminders.timing import zone
from reminders.tokens import calendar_link, find_token

router = APIRouter(tags=["patient pages"])
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


@dataclass(frozen=True, slots=True)
class Reader:
    """Whom a page speaks to: their language, and the clinic that looks after them."""

    locale: str
    clinic: str | None = None
    phone: str | None = None
    calendar: str | None = None

    @classmethod
    def of(cls, db: Session, rt: Runtime, patient: Patient, now: datetime) -> Reader:
        clinic = db.get(Clinic, patient.clinic_id)
        assert clinic is not None  # foreign key
        locale = resolve(patient.locale) or DEFAULT
        # Every message the patient got stored this link's token (and so does revoking
        # the feed): a page reached from one can show it without writing.
        calendar, _row = calendar_link(
            rt.secret_key, rt.settings.base_url, patient.id, patient.calendar_generation, now
        )
        return cls(locale, clinic.display_name or clinic.name, clinic.phone, calendar)

    @classmethod
    def unknown(cls, request: Request) -> Reader:
        return cls(from_accept_language(request.headers.get("accept-language")))

    @property
    def t(self) -> NullTranslations:
        return translator(self.locale)

    def day(self, value: date) -> str:
        return Formats(self.locale).day(value)

    def page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = (
            templates(self.locale)
            .get_template(f"pages/{template}.html")
            .render(
                locale=self.locale,
                clinic=self.clinic,
                phone=self.phone,
                calendar=self.calendar,
                **context,
            )
        )
        headers = {**PRIVATE, "Content-Language": self.locale}
        return HTMLResponse(html, status_code=status, headers=headers)

    def message(self, title: str, *lines: str, status: int = 200) -> HTMLResponse:
        """A page of a title and lines, each a catalog message already translated."""
        return self.page("message", status, title=title, lines=lines)

    def done(self, title: str, line: str, following: date | None) -> HTMLResponse:
        """What was recorded, and the next session if one is planned."""
        lines = [line]
        if following:
            lines.append(
                self.t.gettext("Your next session: %(day)s.") % {"day": self.day(following)}
            )
        return self.message(title, *lines)

    def held(self, title: str, line: str) -> HTMLResponse:
        """What was recorded, and what to do now that the plan is held: no next session."""
        t = self.t
        severe = (
            t.gettext("If it is severe, call %(clinic)s: %(phone)s.")
            % {"clinic": self.clinic, "phone": self.phone}
            if self.phone
            else t.gettext("If it is severe, call your clinic.")
        )
        return self.message(
            title,
            line,
            t.gettext("Do not treat this area again until your clinic has contacted you."),
            severe,
            t.gettext("Your clinic has been told."),
        )

    def expired(self) -> HTMLResponse:
        return self.message(
            self.t.gettext("This link has expired"),
            self.t.gettext(
                "The link is no longer valid. Your next reminder will bring a fresh one."
            ),
            status=404,
        )


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


def _next_session(db: Session, enrollment_id: str, after: date) -> date | None:
    return _after_recording(db, enrollment_id, after, None)[0]


def _after_recording(
    db: Session, enrollment_id: str, day: date, max_per_week: int | None
) -> tuple[date | None, bool]:
    """The next planned session after `day`, and whether the sessions done in the week
    to `day` are more than `max_per_week` (`safety.over_treatment`)."""
    rows = session_store.of_enrollment(db, enrollment_id)
    upcoming = [
        r.local_date for r in rows if r.status == SessionStatus.PLANNED and r.local_date > day
    ]
    done = [r.local_date for r in rows if r.status == SessionStatus.CONFIRMED]
    over = max_per_week is not None and over_treatment(done, day, max_per_week)
    return (min(upcoming) if upcoming else None), over


@router.get("/s/{token}", response_class=HTMLResponse)
def session_page(
    token: str, request: Request, tx: TransactionsDep, rt: RuntimeDep, now: NowDep
) -> HTMLResponse:
    """The session with buttons to confirm, skip or snooze. Changes nothing."""
    with tx.read() as db:
        found = _session_for(db, token, now)
        if found is None:
            return Reader.unknown(request).expired()
        session, enrollment, patient = found
        reader = Reader.of(db, rt, patient, now)
        protocol = protocol_of(db, rt, enrollment)
        today = timing.local_today(now, session.timezone)
        choices, preselected = sessions.link_days(
            session.local_date, session.status in sessions.OPEN, today
        )
        following = _next_session(db, enrollment.id, session.local_date)
        return reader.page(
            "session",
            title=reader.t.gettext("Your treatment session"),
            session=session,
            day=reader.day(session.local_date),
            choices=[(d.isoformat(), reader.day(d), d == today) for d in choices],
            preselected=preselected.isoformat(),
            length=session_length(reader.t, session.minutes, enrollment.body_area),
            tips=protocol.tips_in(reader.locale) if protocol else (),
            scale=protocol.scale if protocol else None,
            side_effects=SIDE_EFFECT_CHOICES,
            action=request.query_params.get("action"),
            base=f"/s/{token}",
            next_day=reader.day(following) if following else None,
            held=enrollment.status == EnrollmentStatus.HELD,
        )


@router.post("/s/{token}/confirm", response_class=HTMLResponse)
async def confirm_from_link(
    token: str,
    request: Request,
    form: FormDep,
    tx: TransactionsDep,
    rt: RuntimeDep,
    now: NowDep,
) -> HTMLResponse:
    """Record the session on the day the patient says: the link's date or today (an
    extra session if none is planned today). Refused, with the reason, when that day's
    session is already recorded."""
    reader = Reader.unknown(request)
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
        return reader.message(
            reader.t.gettext("Please check what you entered"),
            reader.t.gettext(
                "Choose an answer from the lists, give the current as a number of mA (0 to"
                " 30), and the day as one of those offered."
            ),
            status=422,
        )
    try:
        async with tx.write() as db:
            found = _session_for(db, token, now)
            if found is None:
                return reader.expired()
            session, enrollment, patient = found
            reader = Reader.of(db, rt, patient, now)
            done = sessions.confirm_from_link(db, rt, session, day, report, now)
            protocol = protocol_of(db, rt, enrollment)
            cap = protocol.max_per_week if protocol else None
            following, over = _after_recording(db, enrollment.id, done.local_date, cap)
            held = enrollment.status == EnrollmentStatus.HELD
    except (Conflict, InvalidInput) as refused:
        if isinstance(refused, CourseEnded):
            return reader.message(
                reader.t.gettext("Nothing was recorded"),
                reader.t.gettext("Your treatment course has ended: please contact your clinic."),
                status=409,
            )
        return reader.message(
            reader.t.gettext("Nothing was recorded"),
            _reason(reader, refused),
            reader.t.gettext(
                "If you have done another session, use the link in your latest reminder."
            ),
            status=409 if isinstance(refused, Conflict) else 422,
        )
    recorded = reader.t.gettext("Your session on %(day)s is recorded. Thank you!")
    if held:
        return reader.held(
            reader.t.gettext("Thank you for telling us"),
            recorded % {"day": reader.day(done.local_date)},
        )
    if over:
        return reader.message(
            reader.t.gettext("Recorded: please keep to your plan"),
            recorded % {"day": reader.day(done.local_date)},
            reader.t.gettext(
                "That is more sessions this week than your plan allows. More is not better: "
                "it can irritate or burn the skin. Please keep to the days in your plan; "
                "your clinic has been told."
            ),
        )
    return reader.done(
        reader.t.gettext("Thank you"), recorded % {"day": reader.day(done.local_date)}, following
    )


@router.get("/s/{token}/problem", response_class=HTMLResponse)
def problem_page(
    token: str, request: Request, tx: TransactionsDep, rt: RuntimeDep, now: NowDep
) -> HTMLResponse:
    """A form to tell the clinic of a problem after this session, at any time the link
    works. Changes nothing."""
    with tx.read() as db:
        found = _session_for(db, token, now)
        if found is None:
            return Reader.unknown(request).expired()
        session, _enrollment, patient = found
        reader = Reader.of(db, rt, patient, now)
        return reader.page(
            "problem",
            title=reader.t.gettext("A problem after your session"),
            day=reader.day(session.local_date),
            ask_done=session.status != SessionStatus.CONFIRMED and not session.at_clinic,
            side_effects=SIDE_EFFECT_CHOICES[1:],
            base=f"/s/{token}",
        )


@router.post("/s/{token}/problem", response_class=HTMLResponse)
async def report_problem(
    token: str,
    request: Request,
    form: FormDep,
    tx: TransactionsDep,
    rt: RuntimeDep,
    now: NowDep,
) -> HTMLResponse:
    """Record the problem on the link's own session and tell the clinic; the plan is
    held when the side effect calls for it. Never makes or cancels a session."""
    reader = Reader.unknown(request)
    answer = form.get("did_it")
    did_it = {"yes": True, "no": False}.get(answer or "")
    try:
        async with tx.write() as db:
            found = _session_for(db, token, now)
            if found is None:
                return reader.expired()
            session, enrollment, patient = found
            reader = Reader.of(db, rt, patient, now)
            stored, alerted = sessions.report_problem(
                db, rt, session, form.get("side_effect") or "", form.get("note"), did_it, now
            )
            held = enrollment.status == EnrollmentStatus.HELD
    except (Conflict, InvalidInput) as refused:
        field = refused.field if isinstance(refused, InvalidInput) else ""
        return reader.message(
            reader.t.gettext("Nothing was recorded"),
            reader.t.gettext(_PROBLEM_REFUSALS.get(field, N_("Please check what you entered."))),
            status=409 if isinstance(refused, Conflict) else 422,
        )
    noted = reader.t.gettext("What you told us about your session on %(day)s is recorded.") % {
        "day": reader.day(stored.local_date)
    }
    if held:
        return reader.held(reader.t.gettext("Thank you for telling us"), noted)
    told = (
        reader.t.gettext("Your clinic has been told.")
        if alerted
        else reader.t.gettext("Your clinic sees it with your session.")
    )
    return reader.message(reader.t.gettext("Thank you for telling us"), noted, told)


# Why a problem report was refused, by the field the service names.
_PROBLEM_REFUSALS = {
    "side_effect": N_("Choose what happened from the list."),
    "did_it": N_("Tell us whether you did this session."),
    "side_effect_note": N_("What you wrote is too long: please shorten it."),
    "session": N_("This session is planned for a later day."),
}


SIDE_EFFECT_CHOICES = (
    ("", N_("Nothing to report")),
    (SideEffect.DRYNESS, N_("Dry skin")),
    (SideEffect.REDNESS, N_("Redness or irritation")),
    (SideEffect.BLISTERING, N_("Blisters")),
    (SideEffect.BURN, N_("A burn")),
    (SideEffect.OTHER, N_("Something else (say what below)")),
)


# Why a report from the page was refused, by the field the service names; the page
# offers nothing else to get wrong.
_REPORT_REFUSALS = {
    "day": N_("Choose one of the days offered."),
    "outcome": N_("Choose an answer from the list."),
    "hdss": N_("Choose an answer from the list."),
    "session": N_("This session is planned for a later day: confirm it on that day."),
}


def _reason(reader: Reader, refused: Conflict | InvalidInput) -> str:
    """Why a report was refused: a session already recorded (or moved by a re-plan) on
    that day, or the field the service named."""
    if isinstance(refused, Conflict):
        return reader.t.gettext("That day's session is already recorded, or no longer planned.")
    known = _REPORT_REFUSALS.get(refused.field, N_("Please check what you entered."))
    return reader.t.gettext(known)


@router.post("/s/{token}/skip", response_class=HTMLResponse)
async def skip_from_link(
    token: str,
    request: Request,
    form: FormDep,
    tx: TransactionsDep,
    rt: RuntimeDep,
    now: NowDep,
) -> HTMLResponse:
    """Record that the session will not be done; the plan finds the next possible day."""
    reader = Reader.unknown(request)
    reason = (form.get("reason") or "").strip()[:500] or None
    try:
        async with tx.write() as db:
            found = _session_for(db, token, now)
            if found is None:
                return reader.expired()
            session, enrollment, patient = found
            reader = Reader.of(db, rt, patient, now)
            sessions.skip_session(db, rt, None, session.id, reason, now)
            following = _next_session(db, enrollment.id, session.local_date)
    except (Conflict, InvalidInput) as exc:
        if isinstance(exc, InvalidInput) and exc.field == "reason":
            return reader.message(
                reader.t.gettext("Please check what you entered"),
                reader.t.gettext(
                    "The reason may be any text, on one or more lines, without control characters."
                ),
                status=422,
            )
        return reader.message(
            reader.t.gettext("Nothing to skip"),
            reader.t.gettext("This session is already recorded or no longer planned."),
            status=409,
        )
    return reader.done(
        reader.t.gettext("Session skipped"),
        reader.t.gettext("No problem: the session is skipped."),
        following,
    )


@router.post("/s/{token}/away", response_class=HTMLResponse)
async def away_from_link(
    token: str,
    request: Request,
    form: FormDep,
    tx: TransactionsDep,
    rt: RuntimeDep,
    now: NowDep,
) -> HTMLResponse:
    """The patient is away: nothing is planned or reminded between the two dates."""
    reader = Reader.unknown(request)
    check_dates = reader.t.gettext("Please check the dates")
    try:
        first = date.fromisoformat(form.get("from", ""))
        last = date.fromisoformat(form.get("to", ""))
    except ValueError:
        return reader.message(
            check_dates,
            reader.t.gettext("Give the first and the last day you are away."),
            status=422,
        )
    try:
        async with tx.write() as db:
            found = _session_for(db, token, now)
            if found is None:
                return reader.expired()
            _session, enrollment, patient = found
            reader = Reader.of(db, rt, patient, now)
            absences.add_absence(db, rt, patient, first, last, None, "patient", now)
            following = _next_session(db, enrollment.id, last)
    except InvalidInput as refused:
        return reader.message(check_dates, _away_refusal(reader, refused), status=422)
    away = reader.t.gettext("No sessions and no reminders from %(first)s to %(last)s.")
    return reader.done(
        reader.t.gettext("Have a good time"),
        away % {"first": reader.day(first), "last": reader.day(last)},
        following,
    )


# Why `absences.add_absence` refuses dates, as the patient reads it.
_AWAY_REFUSALS: dict[str, str] = {
    AbsenceRefusal.ENDS_BEFORE_START: N_("The last day must not be before the first."),
    AbsenceRefusal.ENDED: N_("The last day is in the past."),
    AbsenceRefusal.STARTED: N_("The first day must be today or later."),
}


def _away_refusal(reader: Reader, refused: InvalidInput) -> str:
    known = _AWAY_REFUSALS.get(refused.message)
    if known is not None:
        return reader.t.gettext(known)
    too_long = reader.t.gettext(
        "An absence lasts at most %(days)d days; for longer, ask your clinic to pause"
        " your treatment."
    )
    return too_long % {"days": MAX_ABSENCE_DAYS}


@router.post("/s/{token}/snooze", response_class=HTMLResponse)
async def snooze_from_link(
    token: str, request: Request, tx: TransactionsDep, rt: RuntimeDep, now: NowDep
) -> HTMLResponse:
    """Remind again later today, if quiet hours and the day leave time."""
    async with tx.write() as db:
        found = _session_for(db, token, now)
        if found is None:
            return Reader.unknown(request).expired()
        session, _enrollment, patient = found
        reader = Reader.of(db, rt, patient, now)
        if session.status != SessionStatus.PLANNED:
            return reader.message(
                reader.t.gettext("Nothing to remind"),
                reader.t.gettext("This session is already recorded or no longer planned."),
            )
        when = reminding.snooze(db, rt.settings, session, patient, now)
        local = when.astimezone(zone(session.timezone)) if when else None
    if local is None:
        return reader.message(
            reader.t.gettext("Too late for today"),
            reader.t.gettext("There is no time left today for another reminder."),
        )
    again = reader.t.gettext("We'll remind you again at %(time)s.")
    return reader.message(
        reader.t.gettext("We'll remind you"),
        again % {"time": Formats(reader.locale).time(local.time())},
    )


@router.get("/u/{token}", response_class=HTMLResponse)
def unsubscribe_page(
    token: str, request: Request, tx: TransactionsDep, rt: RuntimeDep, now: NowDep
) -> HTMLResponse:
    """Ask the patient to confirm; only the POST unsubscribes."""
    with tx.read() as db:
        row = find_token(db, token, "unsubscribe", now)
        patient = db.get(Patient, row.patient_id) if row else None
        if patient is None:
            return Reader.unknown(request).expired()
        reader = Reader.of(db, rt, patient, now)
    return reader.page("unsubscribe", title=reader.t.gettext("Stop treatment reminders"))


@router.post("/u/{token}", response_class=HTMLResponse)
async def unsubscribe(
    token: str, request: Request, tx: TransactionsDep, rt: RuntimeDep, now: NowDep
) -> HTMLResponse:
    """One-click unsubscribe (RFC 8058): no more messages, and the clinic is told."""
    async with tx.write() as db:
        row = find_token(db, token, "unsubscribe", now)
        patient = db.get(Patient, row.patient_id) if row else None
        if patient is None:
            return Reader.unknown(request).expired()
        reader = Reader.of(db, rt, patient, now)
        patients.unsubscribe(db, patient, now)
    return reader.message(
        reader.t.gettext("Reminders stopped"),
        reader.t.gettext("You will get no more reminders. Your clinic has been told."),
    )
