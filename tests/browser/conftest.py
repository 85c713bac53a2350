"""Pages in a real browser: Debian's Chromium driven by Playwright, against the app
served by uvicorn on a port of the test's own. Without a Chromium the tests skip with
the reason; CI (REMINDERS_REQUIRE_BROWSER=1) fails instead."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from reminders.api import create_app
from reminders.runtime import Runtime
from tests.servers import free_port

REQUIRE_BROWSER = os.environ.get("REMINDERS_REQUIRE_BROWSER") == "1"
SCREENSHOTS = Path(__file__).resolve().parent.parent.parent / "var" / "screenshots"
# Both sizes the pages must work at: a laptop and a phone.
VIEWPORTS = {"1280x800": (1280, 800), "390x844": (390, 844)}


def _chromium() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if found is None:
        reason = "no Chromium (scripts/test installs Debian's chromium package)"
        if REQUIRE_BROWSER:
            pytest.fail(reason)
        pytest.skip(reason)
    return found


# Per module: Playwright's sync API holds an event loop in the main thread while it
# runs, where later tests start their own with asyncio.run.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = _chromium()
    with sync_playwright() as playwright:
        # Playwright's own browser download cannot work here: Debian's Chromium instead.
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def live_url(rt: Runtime) -> Iterator[str]:
    """The app served on 127.0.0.1 by uvicorn in a thread, stopped after the test."""
    port = free_port()
    app = create_app(rt, scheduler_problems=lambda: [])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the app did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def offline_page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A page that can reach 127.0.0.1 only, as on a clinic network without internet;
    the list holds every request it tried to make elsewhere."""
    context = browser.new_context()
    elsewhere: list[str] = []

    def only_loopback(route: object) -> None:
        request = route.request  # type: ignore[attr-defined]
        if request.url.startswith(("http://127.0.0.1", "data:", "blob:")):
            route.continue_()  # type: ignore[attr-defined]
        else:
            elsewhere.append(request.url)
            route.abort()  # type: ignore[attr-defined]

    context.route("**/*", only_loopback)
    yield context.new_page(), elsewhere
    context.close()


def screenshot(page: Page, name: str) -> None:
    """Save the page at both viewports under var/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for size, (width, height) in VIEWPORTS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=SCREENSHOTS / f"{name}-{size}.png", full_page=False)
