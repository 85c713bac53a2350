"""The API docs render in a real browser that can reach nothing but the app."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.browser.conftest import screenshot


def test_swagger_ui_shows_the_routes_with_no_internet(
    live_url: str, offline_page: tuple[Page, list[str]]
) -> None:
    page, elsewhere = offline_page
    page.goto(f"{live_url}/docs")
    page.get_by_text("/v1/patients", exact=True).first.wait_for(timeout=15_000)
    assert page.locator(".opblock").count() > 20
    assert elsewhere == []
    screenshot(page, "api-docs")


def test_redoc_shows_the_api_with_no_internet(
    live_url: str, offline_page: tuple[Page, list[str]]
) -> None:
    page, elsewhere = offline_page
    page.goto(f"{live_url}/redoc")
    page.get_by_text("Treatment reminders and adherence for iontophoresis clinics.").wait_for(
        timeout=15_000
    )
    assert elsewhere == []
    screenshot(page, "api-redoc")
