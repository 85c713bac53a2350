"""The API's documentation pages, `/docs` (Swagger UI) and `/redoc`, served with their
scripts and styles from the package (`reminders/static/docs`): a clinic's network often
cannot reach a CDN, and the pages should not tell one who reads the clinic's API docs."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(__file__).resolve().parent.parent.parent / "static" / "docs"
ASSETS_URL = "/static/docs"
# The pages load nothing from elsewhere, even what their scripts would fetch on their own
# (Redoc's footer logo): Swagger UI starts from an inline script, and both style
# themselves inline and Redoc runs a worker from a blob.
POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline';"
    " img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:;"
    " frame-ancestors 'none'"
)
router = APIRouter(include_in_schema=False)


def assets() -> StaticFiles:
    """The documentation's assets, to mount at `ASSETS_URL`."""
    return StaticFiles(directory=ASSETS)


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    return _kept_home(
        get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="reminders API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
        )
    )


@router.get("/redoc")
def redoc() -> HTMLResponse:
    return _kept_home(
        get_redoc_html(
            openapi_url="/openapi.json",
            title="reminders API",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
            with_google_fonts=False,
        )
    )


def _kept_home(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = POLICY
    return page
