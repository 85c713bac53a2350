"""Faults on the way out, each against a real server on loopback: whatever happens,
nothing is lost and each delivery id is sent until it is acknowledged, then never again."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import datetime

from freezegun import freeze_time
from sqlmodel import Session

from reminders.dispatcher import EMAILS_WAITING_BATCHES, Dispatcher, build_senders
from reminders.runtime import Runtime
from reminders.services import webhooks
from reminders.states import DeliveryState
from reminders.stores import outbox
from reminders.stores.outbox import DeliveryRow
from tests.conftest import SETUP, at, make_clinic, weekly_patients
from tests.servers import CLOSE_MID_RESPONSE, SmtpRecorder, WebhookReceiver, free_port

NINE = at("2026-12-07 09:00")


def dispatch(rt: Runtime, moment: datetime) -> None:
    with freeze_time(moment):
        Dispatcher(rt, build_senders(rt), worker="test").dispatch()


def reminders(db: Session) -> list[DeliveryRow]:
    return outbox.matching(db, kind="reminder")


def webhook_reminder(db: Session, rt: Runtime, receiver: WebhookReceiver) -> None:
    clinic = make_clinic(db)
    webhooks.add_endpoint(db, rt.settings, clinic, receiver.url, SETUP)
    db.commit()
    weekly_patients(db, rt, clinic, 1, channel="webhook")


def email_reminders(db: Session, rt: Runtime, count: int, reminder_time: str = "09:00") -> None:
    weekly_patients(db, rt, make_clinic(db), count, reminder_time)


def test_receiver_hanging_past_the_timeout_is_retried_with_the_same_id(
    db: Session, rt: Runtime, receiver: WebhookReceiver
) -> None:
    rt.settings.webhook_timeout_s = 0.5
    webhook_reminder(db, rt, receiver)
    receiver.delay_s = 1.5
    dispatch(rt, NINE)
    (reminder,) = reminders(db)
    assert (reminder.state, reminder.last_error) == (DeliveryState.PENDING, "timed out")
    receiver.delay_s = 0
    dispatch(rt, at("2026-12-07 09:00:10"))
    assert reminders(db)[0].state == DeliveryState.SENT
    time.sleep(1.2)  # let the first, slow answer finish on the receiver's side
    assert [r.headers["webhook-id"] for r in receiver.received] == [reminder.id, reminder.id]


def test_receiver_closing_mid_response_is_retried(
    db: Session, rt: Runtime, receiver: WebhookReceiver
) -> None:
    webhook_reminder(db, rt, receiver)
    receiver.script.append((CLOSE_MID_RESPONSE, {}))
    dispatch(rt, NINE)
    (reminder,) = reminders(db)
    assert reminder.state == DeliveryState.PENDING
    assert reminder.last_error is not None and "ClientPayloadError" in reminder.last_error
    dispatch(rt, at("2026-12-07 09:00:10"))
    assert reminders(db)[0].state == DeliveryState.SENT
    assert receiver.unique_ids() == {reminder.id}


def test_smtp_refusing_connections_loses_nothing(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    email_reminders(db, rt, 3)
    working_port = rt.settings.smtp_port
    rt.settings.smtp_port = free_port()  # nobody listens there
    dispatch(rt, NINE)
    assert {r.state for r in reminders(db)} == {DeliveryState.PENDING}
    rt.settings.smtp_port = working_port
    dispatch(rt, at("2026-12-07 09:00:10"))
    assert {r.state for r in reminders(db)} == {DeliveryState.SENT}
    ids = sorted(m["Message-ID"] for m in smtp.messages)
    assert len(ids) == len(set(ids)) == 3


def test_smtp_421_closing_retries_the_rest_of_the_batch(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    email_reminders(db, rt, 3)
    smtp.replies.append("421 4.3.2 service shutting down, closing connection")
    dispatch(rt, NINE)
    states = sorted(r.state for r in reminders(db))
    assert states == ["pending", "pending", "pending"]
    assert smtp.messages == []
    dispatch(rt, at("2026-12-07 09:00:10"))
    assert {r.state for r in reminders(db)} == {DeliveryState.SENT}
    assert len({m["Message-ID"] for m in smtp.messages}) == len(smtp.messages) == 3


def test_smtp_550_fails_only_that_message(db: Session, rt: Runtime, smtp: SmtpRecorder) -> None:
    email_reminders(db, rt, 3)
    smtp.replies.append("550 5.1.1 mailbox unavailable")
    dispatch(rt, NINE)
    dispatch(rt, at("2026-12-07 10:00"))
    assert sorted(r.state for r in reminders(db)) == [
        DeliveryState.FAILED,
        DeliveryState.SENT,
        DeliveryState.SENT,
    ]
    assert len(smtp.messages) == 2


def test_sqlite_locked_for_seconds_by_another_process_delays_but_loses_nothing(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    email_reminders(db, rt, 3)
    path = rt.engine.url.database
    assert path is not None
    locked = threading.Event()

    def hold_the_write_lock() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(2)
        other.execute("COMMIT")
        other.close()

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    locked.wait(5)
    started = time.monotonic()
    dispatch(rt, NINE)
    waited = time.monotonic() - started
    holder.join()
    assert waited >= 1.5, "the dispatcher waited for the lock"
    assert {r.state for r in reminders(db)} == {DeliveryState.SENT}
    assert len(smtp.messages) == 3


def test_a_slow_mail_server_holds_up_neither_webhooks_nor_the_emails_behind(
    db: Session, rt: Runtime, smtp: SmtpRecorder, receiver: WebhookReceiver
) -> None:
    rt.settings.dispatch_batch_size = 2
    rt.settings.smtp_connections = 1
    # Due first: more emails than one batch out and the waiting room hold.
    emails = 2 + EMAILS_WAITING_BATCHES * 2 + 4
    email_reminders(db, rt, emails, reminder_time="08:59")
    webhook_reminder(db, rt, receiver)
    smtp.delay_s = 0.2
    dispatch(rt, NINE)
    rows = reminders(db)
    assert {(r.channel, r.state, r.attempts) for r in rows} == {
        ("email", "sent", 1),
        ("webhook", "sent", 1),
    }, "every email went in the same run, claimed once; none was put off"
    assert len(smtp.messages) == emails
    (hook,) = receiver.received
    assert hook.at < smtp.accepted_at[-1], "the webhook due after them did not wait for them"


def test_a_backlog_of_webhooks_holds_up_no_email_due_behind_it(
    db: Session, rt: Runtime, smtp: SmtpRecorder, receiver: WebhookReceiver
) -> None:
    rt.settings.dispatch_batch_size = 2
    rt.settings.webhook_concurrency = 2
    receiver.delay_s = 0.1
    clinic = make_clinic(db)
    webhooks.add_endpoint(db, rt.settings, clinic, receiver.url, SETUP)
    db.commit()
    # Due first, and more than the run holds at once.
    weekly_patients(db, rt, clinic, 30, reminder_time="08:59", channel="webhook")
    email_reminders(db, rt, 2)
    dispatch(rt, NINE)
    assert {(r.state, r.attempts) for r in reminders(db)} == {(DeliveryState.SENT, 1)}
    fifth_webhook = sorted(r.at for r in receiver.received)[4]
    assert smtp.accepted_at[-1] < fifth_webhook, "the emails went beside the webhooks"


def test_stopping_hands_back_the_emails_waiting_for_the_mail_server(
    db: Session, rt: Runtime, smtp: SmtpRecorder
) -> None:
    rt.settings.dispatch_batch_size = 2
    rt.settings.smtp_connections = 1
    email_reminders(db, rt, 2 + EMAILS_WAITING_BATCHES * 2)
    smtp.delay_s = 0.3
    dispatcher = Dispatcher(rt.with_clock(lambda: NINE), build_senders(rt), worker="test")
    run = threading.Thread(target=dispatcher.dispatch)
    run.start()
    time.sleep(0.45)  # the first batch is out, the rest waits for it
    dispatcher.stop()
    run.join(timeout=10)
    assert not run.is_alive()
    rows = reminders(db)
    sent = [r for r in rows if r.state == DeliveryState.SENT]
    assert len(sent) == len(smtp.messages) == 2, "the batch out was finished and recorded"
    waiting = [r for r in rows if r.state != DeliveryState.SENT]
    assert {(r.state, r.attempts, r.last_error) for r in waiting} == {
        ("pending", 0, "dispatcher stopped")
    }
