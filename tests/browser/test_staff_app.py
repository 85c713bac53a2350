"""The staff web app in a real Chromium: the journeys a nurse and an admin take, with
axe-core run on every page and screenshots of each."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import uvicorn
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect
from sqlmodel import Session, select
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from reminders.api.app import create_app
from reminders.dispatcher import Dispatcher, build_senders
from reminders.models import AuditEvent, Patient, StaffMember, WebhookEndpoint
from reminders.runtime import Runtime
from reminders.services import events, staff
from reminders.settings import Settings
from tests.browser.conftest import screenshot
from tests.conftest import enroll_patient, make_clinic, make_patient
from tests.servers import SmtpRecorder, free_port

PASSWORD = "correct horse battery staple"
_axe = Axe()


@pytest.fixture
def app_url(settings: Settings, smtp: SmtpRecorder, rt: Runtime) -> Iterator[str]:
    """The app on a loopback port, with links in emails pointing at it."""
    port = free_port()
    settings.base_url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(
        uvicorn.Config(create_app(rt, scheduler_problems=lambda: []), host="127.0.0.1",
                       port=port, log_level="warning")
    )  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield settings.base_url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    yield context.new_page()
    context.close()


def send_emails(rt: Runtime) -> None:
    """Send what is due, in a thread of its own: Playwright's loop runs in this one."""
    sending = threading.Thread(
        target=lambda: Dispatcher(rt, build_senders(rt), worker="test").dispatch()
    )
    sending.start()
    sending.join(timeout=30)


def accessible(page: Page, name: str) -> None:
    """axe-core finds no serious or critical violation; the page is screenshotted."""
    results = _axe.run(page)
    bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert bad == [], [(v["id"], v["nodes"][0]["html"]) for v in bad]
    screenshot(page, f"app-{name}")


def member(db: Session, rt: Runtime, clinic_id: str, email: str, role: str = "admin") -> str:
    """A staff member with a password; returns their id."""
    now = datetime.now(UTC)
    added = staff.add_member(db, clinic_id, email, role, None, now)
    added.password_hash = staff.hash_password(PASSWORD)
    db.add(added)
    db.commit()
    return added.id


def log_in(page: Page, url: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{url}/app/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_a_new_admin_sets_up_logs_in_enrolls_and_handles_an_escalation(
    app_url: str, page: Page, db: Session, rt: Runtime
) -> None:
    clinic_id = make_clinic(db)
    now = datetime.now(UTC)
    admin = staff.add_member(db, clinic_id, "Admin@North.example", "admin", None, now)
    link = staff.setup_link(db, rt, admin, now)
    db.commit()
    page.goto(link)
    accessible(page, "setup")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("The same again").fill(PASSWORD)
    page.get_by_role("button", name="Save and log in").click()
    expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()
    accessible(page, "today")

    page.get_by_role("link", name="Patients").click()
    accessible(page, "patients")
    page.get_by_role("link", name="Add a patient").click()
    accessible(page, "patient-new")
    page.get_by_label("Name").fill("Ann Example")
    page.get_by_label("Email").fill("ann@example.org")
    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_role("button", name="Add and go on to enroll").click()

    expect(page.get_by_role("heading", name="Enroll Ann Example")).to_be_visible()
    page.get_by_label("Protocol", exact=True).select_option("tap-water-hyperhidrosis")
    expect(page.get_by_role("heading", name="The plan, if every session is done")).to_be_visible()
    page.get_by_label("Body area", exact=True).select_option("palms")
    assert page.locator("ol.plan li").count() > 5
    accessible(page, "enroll")
    for radio in page.get_by_role("radio", name="No").all():
        radio.check()
    page.locator("input[name='screening.pregnancy'][value='yes']").check()
    page.get_by_role("button", name="Enroll", exact=True).click()
    expect(page.locator(".error", has_text="override_reason")).to_be_visible()
    page.get_by_label("If any answer is yes").fill("Obstetrician agreed, hands only")
    page.get_by_role("button", name="Enroll", exact=True).click()

    expect(page.get_by_role("heading", name="Ann Example", exact=True)).to_be_visible()
    expect(page.locator("svg.chart").first).to_be_visible()
    expect(page.get_by_text("Planned, next").first).to_be_visible()
    accessible(page, "patient")

    patient = db.exec(select(Patient).where(Patient.name == "Ann Example")).one()
    events.escalate(db, patient, "side_effect", "burn reported", datetime.now(UTC))
    db.commit()
    page.get_by_role("link", name="Escalations").click()
    accessible(page, "escalations")
    page.get_by_label("Note (what you did)").fill("Called her; fine now")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_text("Nothing open")).to_be_visible()

    page.get_by_role("link", name="Settings").click()
    accessible(page, "settings")
    expect(page.get_by_text("escalation.acknowledge")).to_be_visible()
    expect(page.get_by_text("screening.override")).to_be_visible()
    page.get_by_role("link", name="Protocols").click()
    accessible(page, "protocols")
    page.get_by_role("link", name=re.compile("Tap water", re.I)).first.click()
    accessible(page, "protocol")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in", exact=True)).to_be_visible()
    accessible(page, "login")
    page.goto(f"{app_url}/app/patients")
    expect(page.get_by_role("heading", name="Log in", exact=True)).to_be_visible()
    page.get_by_role("link", name="Forgot your password?").click()
    accessible(page, "forgot")
    page.get_by_label("Your email").fill("admin@north.example")
    page.get_by_role("button", name="Email me a link").click()
    accessible(page, "forgot-sent")
    page.goto(link)
    expect(page.get_by_role("heading", name="This link no longer works")).to_be_visible()
    accessible(page, "link-expired")


def test_five_wrong_passwords_lock_the_account_and_tell_its_owner(
    app_url: str, page: Page, db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    clinic_id = make_clinic(db)
    member(db, rt, clinic_id, "nurse@north.example", role="clinician")
    for _ in range(5):
        log_in(page, app_url, "nurse@north.example", "not the password")
    expect(page.get_by_role("alert")).to_contain_text("Wrong email or password")
    log_in(page, app_url, "nurse@north.example")  # the right one, but locked
    expect(page.get_by_role("alert")).to_contain_text("Wrong email or password")
    log_in(page, app_url, "nobody@north.example", "not the password")  # no account: alike
    expect(page.get_by_role("alert")).to_contain_text("Wrong email or password")
    send_emails(rt)
    (notice,) = smtp.messages
    assert notice["To"] == "nurse@north.example"
    assert "locked" in notice["Subject"]


def test_an_invited_clinician_sets_a_password_from_the_email(
    app_url: str, browser: Browser, page: Page, db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    clinic_id = make_clinic(db)
    member(db, rt, clinic_id, "admin@north.example")
    log_in(page, app_url, "admin@north.example")
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Email", exact=True).fill("new.nurse@north.example")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_role("status")).to_contain_text("Invitation sent")
    send_emails(rt)
    (invite,) = smtp.messages
    link = re.search(r"http://\S+/app/setup/\S+", invite.get_content()).group(0)  # type: ignore[union-attr]
    other = browser.new_context().new_page()
    other.goto(link)
    other.get_by_label("Password", exact=True).fill(PASSWORD)
    other.get_by_label("The same again").fill(PASSWORD)
    other.get_by_role("button", name="Save and log in").click()
    expect(other.get_by_role("heading", name="Today", exact=True)).to_be_visible()
    expect(other.get_by_role("link", name="Settings")).to_have_count(0)
    response = other.goto(f"{app_url}/app/settings")
    assert response is not None and response.status == 404
    other.goto(link)
    expect(other.get_by_role("heading", name="This link no longer works")).to_be_visible()


def test_an_endpoint_is_added_and_rotated_and_its_secret_shown_once(
    app_url: str, page: Page, db: Session, rt: Runtime
) -> None:
    clinic_id = make_clinic(db)
    member(db, rt, clinic_id, "admin@north.example")
    log_in(page, app_url, "admin@north.example")
    page.get_by_role("link", name="Webhooks").click()
    page.get_by_label("URL").fill("http://127.0.0.1:9/hook")
    page.get_by_role("button", name="Add endpoint").click()
    first = page.locator("#new-secret").inner_text()
    assert first.startswith("whsec_")
    accessible(page, "endpoints")
    page.get_by_role("link", name="Webhooks").click()
    expect(page.locator("#new-secret")).to_have_count(0)
    page.get_by_role("button", name=re.compile("Rotate the secret")).click()
    second = page.locator("#new-secret").inner_text()
    assert second.startswith("whsec_") and second != first


def test_a_form_posted_from_another_origin_is_refused(
    app_url: str, page: Page, db: Session, rt: Runtime
) -> None:
    clinic_id = make_clinic(db)
    member(db, rt, clinic_id, "admin@north.example")
    log_in(page, app_url, "admin@north.example")
    expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()
    forged = f"""<form method=post action="{app_url}/app/endpoints">
      <input name=url value="http://127.0.0.1:9/evil"></form>
      <script>document.forms[0].submit()</script>"""
    port = free_port()
    site = Starlette(routes=[Route("/", lambda _r: HTMLResponse(forged))])
    server = uvicorn.Server(uvicorn.Config(site, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        with page.expect_response(f"{app_url}/app/endpoints") as answer:
            page.goto(f"http://localhost:{port}/")
        assert answer.value.status == 403
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    db.expire_all()
    assert db.exec(select(WebhookEndpoint)).all() == []


def test_another_clinics_staff_get_404_for_this_clinics_patient(
    app_url: str, page: Page, db: Session, rt: Runtime
) -> None:
    north, south = make_clinic(db), make_clinic(db, "South Clinic")
    patient_id = make_patient(db, north)
    member(db, rt, south, "nurse@south.example", role="clinician")
    log_in(page, app_url, "nurse@south.example")
    expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()
    response = page.goto(f"{app_url}/app/patients/{patient_id}")
    assert response is not None and response.status == 404
    accessible(page, "not-found")


def test_the_enroll_form_works_by_keyboard_alone(
    app_url: str, page: Page, db: Session, rt: Runtime
) -> None:
    clinic_id = make_clinic(db)
    patient_id = make_patient(db, clinic_id)
    member(db, rt, clinic_id, "nurse@north.example", role="clinician")
    log_in(page, app_url, "nurse@north.example")
    expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()
    page.goto(f"{app_url}/app/enroll?patient={patient_id}")
    for _ in range(30):  # from the top of the page: skip link, menu, log out, …
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "protocol":
            break
    page.keyboard.press("ArrowDown")  # the first protocol
    page.keyboard.press("Tab")
    expect(page.get_by_role("heading", name="The plan, if every session is done")).to_be_visible()
    for _ in range(120):
        focused = page.evaluate("document.activeElement.name || ''")
        if focused.startswith("screening."):
            page.keyboard.press("Space")  # "No" comes first in each question
            page.keyboard.press("Tab")
        elif focused == "override_reason":
            page.keyboard.press("Tab")
        elif focused == "body_area" and not page.evaluate("document.activeElement.value"):
            page.keyboard.press("ArrowDown")  # the first area; the preview is drawn again
            expect(page.locator("#body_area")).not_to_have_value("")
            # The answers below are in the part drawn again: give them after it.
            page.wait_for_load_state("networkidle")
            expect(page.locator("#body_area")).to_be_focused()
        elif page.evaluate("document.activeElement.textContent") == "Enroll":
            page.keyboard.press("Enter")
            break
        else:
            page.keyboard.press("Tab")
    expect(page.get_by_text("Planned, next").first).to_be_visible()
    db.expire_all()
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "enroll")).one()
    assert db.exec(select(StaffMember)).one().email == "nurse@north.example"


def _zone_near_noon() -> str:
    offset = 12 - datetime.now(UTC).hour
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def _reminded_patient(db: Session, rt: Runtime, smtp: SmtpRecorder) -> tuple[str, str]:
    """A clinic with a nurse, and a patient reminded an hour ago of today's session;
    return the patient's id and the session link from their reminder email."""
    clinic_id = make_clinic(db)
    member(db, rt, clinic_id, "nurse@north.example", role="clinician")
    zone = _zone_near_noon()
    local_now = datetime.now(ZoneInfo(zone))
    reminder_at = (local_now - timedelta(hours=1)).strftime("%H:%M")
    patient_id = make_patient(db, clinic_id, timezone=zone, reminder_time=reminder_at)
    every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    enroll_patient(
        db, rt, clinic_id, patient_id, local_now.date().isoformat(), datetime.now(UTC),
        weekdays=every_day,
    )  # fmt: skip
    send_emails(rt)
    reminders = [m for m in smtp.messages if "/s/" in m.get_body(("plain",)).get_content()]  # type: ignore[union-attr]
    link = re.search(r"https?://\S+/s/[\w-]+", reminders[0].get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert link is not None
    return patient_id, link.group(0)


def test_a_patient_confirms_from_the_emailed_link_and_the_patient_page_shows_it(
    app_url: str, browser: Browser, page: Page, db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    patient_id, link = _reminded_patient(db, rt, smtp)
    patient_page = browser.new_context().new_page()
    patient_page.goto(link)
    patient_page.get_by_role("button", name="Confirm the session").click()
    expect(patient_page.locator("h1")).to_be_visible()

    log_in(page, app_url, "nurse@north.example")
    page.goto(f"{app_url}/app/patients/{patient_id}")
    expect(page.locator("td .status.confirmed").first).to_be_visible()
    patient_page.context.close()


def test_a_burn_from_the_problem_page_holds_the_plan_and_the_nurse_decides_on_it(
    app_url: str, browser: Browser, page: Page, db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    patient_id, link = _reminded_patient(db, rt, smtp)
    patient_page = browser.new_context().new_page()
    patient_page.goto(f"{link}/problem")
    screenshot(patient_page, "patient-problem")
    patient_page.get_by_label("Yes").check()
    patient_page.get_by_label("What happened?").select_option("burn")
    patient_page.get_by_role("button", name="Tell my clinic").click()
    expect(patient_page.get_by_text("Do not treat this area again")).to_be_visible()
    screenshot(patient_page, "patient-problem-held")
    patient_page.goto(link)
    expect(patient_page.get_by_text("Your plan is on hold")).to_be_visible()
    screenshot(patient_page, "patient-session-held")
    patient_page.context.close()

    log_in(page, app_url, "nurse@north.example")
    page.goto(f"{app_url}/app/patients/{patient_id}")
    expect(page.get_by_text("Held after a side effect.")).to_be_visible()
    page.locator(".hold").scroll_into_view_if_needed()
    accessible(page, "patient-held")
    page.get_by_label("Continue from the next allowed day").check()
    page.get_by_label("Decided by").fill("Dr Weiss")
    page.get_by_role("button", name="Record the decision").click()
    expect(page.locator("h2", has_text=": active")).to_be_visible()
