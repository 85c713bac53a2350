"""How the app's pages are rendered and sent: one template environment, the logged-in
member and the form token in every page, and headers that keep pages private."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import pass_context
from jinja2.runtime import Context
from starlette.responses import Response

from reminders.i18n import templates
from reminders.runtime import Runtime
from reminders.timing import zone
from reminders.web.auth import FORM_COOKIE, csrf_token, form_cookie, set_cookie

# Scripts and styles only from the app itself (htmx and the stylesheet are served by
# it); SVG charts are inline markup, not scripts. No other site may frame a page.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex",
}
NAV = (
    ("today", "Today", "/app/"),
    ("patients", "Patients", "/app/patients"),
    ("enroll", "Enroll", "/app/enroll"),
    ("escalations", "Escalations", "/app/escalations"),
    ("endpoints", "Webhooks", "/app/endpoints"),
    ("protocols", "Protocols", "/app/protocols"),
)


def _day(value: date | None) -> str:
    return value.strftime("%a %d %b %Y") if value else "—"


@pass_context
def _instant(context: Context, value: datetime | None) -> str:
    """An instant in the clinic's zone (the page's `zone`), with the zone's abbreviation."""
    if value is None:
        return "—"
    return value.astimezone(zone(context.get("zone") or "UTC")).strftime("%Y-%m-%d %H:%M %Z")


def _percent(value: float | None) -> str:
    return f"{value:.0%}" if value is not None else "—"


_ENV = templates("en")
_ENV.filters.update(day=_day, instant=_instant, percent=_percent)


def page(
    request: Request, rt: Runtime, template: str, status: int = 200, **context: Any
) -> Response:
    """Render `app/<template>.html` with the member (if any) and the form token."""
    html = _ENV.get_template(f"app/{template}.html").render(
        member=getattr(request.state, "member", None),
        zone=getattr(request.state, "zone", "UTC"),
        csrf=csrf_token(rt, form_cookie(request)),
        nav=NAV,
        path=request.url.path,
        **context,
    )
    return finish(request, rt, HTMLResponse(html, status_code=status))


def finish(request: Request, rt: Runtime, response: Response) -> Response:
    """Add the private headers, and the form cookie if this request made one."""
    response.headers.update(HEADERS)
    new_cookie = getattr(request.state, "new_form_cookie", None)
    if new_cookie:
        set_cookie(response, rt, FORM_COOKIE, new_cookie, max_age=24 * 3600)
    return response


def redirect(request: Request, rt: Runtime, to: str) -> Response:
    """Send the browser to `to` after a form (303: it follows with a GET); an htmx
    request is told to go there as a whole page."""
    if request.headers.get("HX-Request"):
        return finish(request, rt, Response(status_code=204, headers={"HX-Redirect": to}))
    return finish(request, rt, RedirectResponse(to, status_code=303))
