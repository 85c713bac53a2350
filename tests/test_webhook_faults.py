"""A receiver at fault harms only its own messages. Each case runs a real bad receiver
(black hole, dribbler, flood, redirect, rebinding or non-public DNS) for one clinic,
and another clinic's reminder due at the same time must arrive while the bad one is
still in flight. Time bounds are generous; the tight figures are the benchmark's."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time
from sqlmodel import Session, select
from standardwebhooks import Webhook

from reminders.channels.webhook import SLOW_DEFER_S, SLOW_QUEUE, SLOW_SLOTS, Resolver
from reminders.dispatcher import Dispatcher, build_senders
from reminders.models import Delivery, Escalation, WebhookEndpoint
from reminders.runtime import Runtime
from reminders.services import webhooks
from reminders.states import DeliveryState
from reminders.stores import outbox
from tests.conftest import SETUP, at, make_clinic, weekly_patients
from tests.servers import (
    WebhookReceiver,
    black_hole,
    certificates,
    dribble,
    flood,
    raw_server,
    webhook_receiver,
)

NINE = at("2026-12-07 09:00")
TIMEOUT_S = 4.0


def clinic_with_reminders(
    db: Session, rt: Runtime, name: str, url: str, patients: int = 1
) -> tuple[str, list[str]]:
    """A clinic whose endpoint is `url` and whose patients' reminders fall due at 09:00
    UTC; return the endpoint's secret and the reminders' ids."""
    clinic = make_clinic(db, name)
    # Registered as if its DNS had been fine then: these tests are about sending.
    endpoint = webhooks.add_endpoint(db, rt.settings, clinic, url, SETUP, url_checked=True)
    db.commit()
    weekly_patients(db, rt, clinic, patients, channel="webhook")
    ids = db.exec(
        select(Delivery.id).where(Delivery.clinic_id == clinic, Delivery.kind == "reminder")
    ).all()
    return endpoint.secret, list(ids)


def moving_clock(start: datetime) -> Callable[[], datetime]:
    """A clock that starts at `start` and runs at real speed."""
    began = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - began)


class Run:
    """A dispatcher run in a thread, timed."""

    def __init__(
        self,
        rt: Runtime,
        resolve: Resolver | None = None,
        clock: Callable[[], datetime] = lambda: NINE,
    ) -> None:
        # The clock stands still unless a test needs work to fall due during the run,
        # so retries (5 s later) do not fall due and lengthen it.
        senders = build_senders(rt, resolve) if resolve else build_senders(rt)
        self.dispatcher = Dispatcher(rt.with_clock(clock), senders, worker="test")
        self.started = time.time()
        self.ended = 0.0
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        self.dispatcher.dispatch()
        self.ended = time.time()

    def join(self) -> float:
        """Wait for the run; return how long it took."""
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        return self.ended - self.started


def state(db: Session, delivery_id: str) -> Delivery:
    db.expire_all()
    found = db.get(Delivery, delivery_id)
    assert found is not None
    return found


def arrived_at(receiver: WebhookReceiver, secret: str) -> float:
    """When the good receiver got its one webhook, after checking its signature."""
    (request,) = receiver.received
    with freeze_time(NINE):  # the dispatcher's clock reads 09:00 or a little later
        Webhook(secret).verify(request.body, request.headers)
    return request.at


@pytest.fixture
def settings_for_faults(rt: Runtime) -> Runtime:
    rt.settings.webhook_timeout_s = TIMEOUT_S
    rt.settings.webhook_allowed_hosts = ["127.0.0.1"]
    return rt


def test_a_black_hole_holds_up_no_other_clinic(
    db: Session, settings_for_faults: Runtime, receiver: WebhookReceiver
) -> None:
    rt = settings_for_faults
    with raw_server(black_hole) as hole:
        _, (bad,) = clinic_with_reminders(db, rt, "Hole Clinic", hole.url)
        secret, (good,) = clinic_with_reminders(db, rt, "North Clinic", receiver.url)
        run = Run(rt)
        took = run.join()
    # Bounds against the timeout, not the machine's speed: the default timeout is 15 s.
    assert arrived_at(receiver, secret) - run.started < TIMEOUT_S, "delivered while it hung"
    assert took >= TIMEOUT_S - 0.1, "the black hole's attempt was still out"
    assert took < TIMEOUT_S + 8, "and ended at its deadline"
    assert (state(db, bad).state, state(db, bad).last_error) == (DeliveryState.PENDING, "timed out")
    assert state(db, good).state == DeliveryState.SENT


def test_a_black_hole_gets_a_few_sockets_while_another_clinic_gets_the_rest(
    db: Session, settings_for_faults: Runtime, receiver: WebhookReceiver
) -> None:
    rt = settings_for_faults
    rt.settings.webhook_concurrency = 8
    with raw_server(black_hole) as hole:
        clinic_with_reminders(db, rt, "Hole Clinic", hole.url, patients=SLOW_SLOTS + 2)
        _, good = clinic_with_reminders(db, rt, "North Clinic", receiver.url, patients=12)
        run = Run(rt)
        run.join()
        first_round = [c for c in hole.connections if c.opened_at < run.started + TIMEOUT_S - 1]
    assert len(first_round) == SLOW_SLOTS, "a destination that never answers keeps a few slots"
    assert len(hole.connections) == SLOW_SLOTS + 2, "and the rest goes as those time out"
    assert {state(db, g).state for g in good} == {DeliveryState.SENT}
    assert max(r.at for r in receiver.received) - run.started < 2.5


def test_a_dribbling_receiver_is_cut_off_and_work_due_meanwhile_goes_out(
    db: Session, settings_for_faults: Runtime, receiver: WebhookReceiver
) -> None:
    rt = settings_for_faults
    with raw_server(dribble) as dribbler:
        _, (bad,) = clinic_with_reminders(db, rt, "Slow Clinic", dribbler.url)
        secret, (good,) = clinic_with_reminders(db, rt, "North Clinic", receiver.url)
        # The other clinic's reminder falls due 2 s after the dribbler's went out.
        later = NINE + timedelta(seconds=2)
        row = state(db, good)
        row.due_at = row.next_attempt_at = later
        db.add(row)
        db.commit()
        at_nine = time.time()  # when the moving clock reads NINE
        run = Run(rt, clock=moving_clock(NINE))
        took = run.join()
    delay = arrived_at(receiver, secret) - at_nine
    assert 2.0 <= delay < TIMEOUT_S, "claimed and sent while the dribbler was still out"
    assert TIMEOUT_S - 0.1 <= took < TIMEOUT_S + 8, "the dribbler's attempt ended at its deadline"
    assert (state(db, bad).state, state(db, bad).last_error) == (DeliveryState.PENDING, "timed out")
    assert state(db, good).state == DeliveryState.SENT


def test_a_huge_reply_is_read_to_64_kib_and_dropped(
    db: Session, settings_for_faults: Runtime, receiver: WebhookReceiver
) -> None:
    rt = settings_for_faults
    with raw_server(flood) as flooder:
        _, (bad,) = clinic_with_reminders(db, rt, "Flood Clinic", flooder.url)
        secret, (good,) = clinic_with_reminders(db, rt, "North Clinic", receiver.url)
        run = Run(rt)
        took = run.join()
        time.sleep(0.2)  # let the flooder notice the hang-up
        (connection,) = flooder.connections
    # The status stands; the rest of the reply is not worth reading.
    assert state(db, bad).state == DeliveryState.SENT
    assert connection.closed_at is not None, "we hung up"
    assert connection.bytes_sent < 32 << 20, "after reading little of 300 MiB"
    assert took < TIMEOUT_S
    assert arrived_at(receiver, secret) - run.started < TIMEOUT_S
    assert state(db, good).state == DeliveryState.SENT


def test_a_redirect_is_not_followed(
    db: Session, settings_for_faults: Runtime, receiver: WebhookReceiver
) -> None:
    rt = settings_for_faults
    with webhook_receiver() as redirecting, webhook_receiver() as elsewhere:
        redirecting.script.append((302, {"Location": elsewhere.url}))
        _, (bad,) = clinic_with_reminders(db, rt, "Moved Clinic", redirecting.url)
        secret, (good,) = clinic_with_reminders(db, rt, "North Clinic", receiver.url)
        Run(rt).join()
        assert elsewhere.received == []
    failed = state(db, bad)
    assert failed.state == DeliveryState.PENDING
    assert failed.last_error == "HTTP 302 (redirects are not followed)"
    arrived_at(receiver, secret)
    assert state(db, good).state == DeliveryState.SENT


def test_dns_that_changes_its_answer_after_the_check_is_not_followed(
    db: Session, settings_for_faults: Runtime, receiver: WebhookReceiver
) -> None:
    rt = settings_for_faults
    port = receiver.url.split(":")[2].split("/")[0]
    asked: list[str] = []

    def rebinding(host: str) -> list[str]:
        # First a permitted address, then the metadata service's.
        asked.append(host)
        return ["127.0.0.1"] if len(asked) == 1 else ["169.254.169.254"]

    _, ids = clinic_with_reminders(
        db, rt, "North Clinic", f"http://hooks.north.test:{port}/hooks", patients=5
    )
    Run(rt, rebinding).join()
    assert asked == ["hooks.north.test"], "resolved once; the connections used that answer"
    assert len(receiver.unique_ids()) == 5
    assert {state(db, i).state for i in ids} == {DeliveryState.SENT}


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b:1::a00:1",  # local-use NAT64 of 10.0.0.1
        "::a9fe:a9fe",  # IPv4-compatible form of 169.254.169.254
        "::ffff:127.0.0.2",  # IPv4-mapped
        "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
        "fec0::1",  # site-local
    ],
)
def test_ipv6_forms_of_private_addresses_are_refused_when_sending(
    db: Session, settings_for_faults: Runtime, receiver: WebhookReceiver, address: str
) -> None:
    rt = settings_for_faults
    by_name = {"hooks.bad.test": [address], "127.0.0.1": ["127.0.0.1"]}
    _, (bad,) = clinic_with_reminders(db, rt, "Bad Clinic", "http://hooks.bad.test/hooks")
    secret, (good,) = clinic_with_reminders(db, rt, "North Clinic", receiver.url)
    Run(rt, lambda host: by_name[host]).join()
    refused = state(db, bad)
    assert refused.state == DeliveryState.FAILED
    assert refused.last_error is not None and "non-public address" in refused.last_error
    arrived_at(receiver, secret)
    assert state(db, good).state == DeliveryState.SENT
    # The clinic hears of it once: an escalation in its inbox (and its alert email,
    # where it has an address).
    (alert,) = db.exec(select(Escalation).where(Escalation.reason == "undeliverable")).all()
    assert "non-public address" in alert.detail


def test_an_endpoint_stored_with_an_unusable_url_fails_its_messages_alone(
    db: Session, settings_for_faults: Runtime, receiver: WebhookReceiver
) -> None:
    rt = settings_for_faults
    _, (bad,) = clinic_with_reminders(db, rt, "Bad Clinic", "http://127.0.0.1:8/hooks")
    endpoint = db.exec(select(WebhookEndpoint).where(WebhookEndpoint.url.contains(":8/"))).one()  # type: ignore[attr-defined]
    endpoint.url = "http://127.0.0.1:99999/hooks"  # stored before URLs were checked so
    db.add(endpoint)
    db.commit()
    secret, (good,) = clinic_with_reminders(db, rt, "North Clinic", receiver.url)
    Run(rt).join()
    refused = state(db, bad)
    assert (refused.state, refused.last_error) == (
        "failed", "invalid webhook URL: Port out of range 0-65535",
    )  # fmt: skip
    arrived_at(receiver, secret)
    assert state(db, good).state == DeliveryState.SENT


def test_what_a_slow_destination_cannot_send_soon_goes_back_to_the_outbox(
    db: Session, settings_for_faults: Runtime
) -> None:
    rt = settings_for_faults
    rt.settings.webhook_timeout_s = 2.5
    extra = 5
    with raw_server(black_hole) as hole:
        _, ids = clinic_with_reminders(
            db, rt, "Hole Clinic", hole.url, patients=SLOW_SLOTS + SLOW_QUEUE + extra
        )
        Run(rt).join()
    rows = [state(db, i) for i in ids]
    handed_back = [r for r in rows if r.attempts == 0]
    assert len(handed_back) == extra
    for row in handed_back:
        assert row.state == DeliveryState.PENDING
        assert row.last_error == "waiting: the endpoint is answering slowly"
        assert row.next_attempt_at >= NINE + timedelta(seconds=SLOW_DEFER_S)
    tried = [r for r in rows if r.attempts > 0]
    assert len(tried) == SLOW_SLOTS + SLOW_QUEUE
    assert {r.state for r in tried} == {DeliveryState.PENDING}


def test_the_clinic_hears_once_of_a_cause_however_many_messages_it_stops(
    db: Session, settings_for_faults: Runtime
) -> None:
    rt = settings_for_faults
    _, ids = clinic_with_reminders(db, rt, "Bad Clinic", "http://hooks.bad.test/hooks", 3)
    private = lambda host: ["10.0.0.7"]  # noqa: E731
    Run(rt, private).join()
    # Later the same day another message fails for the same cause.
    clinic = state(db, ids[0]).clinic_id
    weekly_patients(db, rt, clinic, 1, channel="webhook", enrolled_at="2026-12-07 08:30")
    Run(rt, private).join()
    reminders = outbox.matching(db, kind="reminder")
    assert [r.state for r in reminders] == [DeliveryState.FAILED] * 4
    (alert,) = db.exec(select(Escalation).where(Escalation.reason == "undeliverable")).all()
    assert "host 'hooks.bad.test' resolves to a non-public address 10.0.0.7" in alert.detail
    events = outbox.matching(db, kind="patient.escalation")
    assert len(events) == 1, "and one event to the clinic's endpoint"
    assert b'"reason": "undeliverable"' in events[0].payload.encode()


def test_each_result_is_logged_once_with_ids_and_times_and_no_patient_data(
    db: Session, settings_for_faults: Runtime, receiver: WebhookReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    rt = settings_for_faults
    caplog.set_level(logging.INFO, logger="reminders.dispatcher")
    receiver.script.append((500, {}))
    _, (north,) = clinic_with_reminders(db, rt, "North Clinic", receiver.url)
    _, (south,) = clinic_with_reminders(db, rt, "South Clinic", receiver.url)
    Run(rt).join()
    # Both go out at once: the one the receiver answered first got the 500.
    failing = receiver.received[0].headers["webhook-id"]
    (fine,) = {north, south} - {failing}
    lines = [r.getMessage() for r in caplog.records if r.name == "reminders.dispatcher"]
    assert len(lines) == 2
    by_id = {line.split()[1]: line for line in lines}
    pattern = r"delivery \w+ channel=webhook kind=reminder state={} attempt=1 lateness=0\.000s"
    assert re.fullmatch(pattern.format("pending"), by_id[failing])
    assert re.fullmatch(pattern.format("sent"), by_id[fine])
    assert not any("patient" in line for line in lines)


def test_stopping_hands_back_what_waits_and_awaits_only_what_is_out(
    db: Session, settings_for_faults: Runtime
) -> None:
    rt = settings_for_faults
    with raw_server(black_hole) as hole:
        _, ids = clinic_with_reminders(db, rt, "Hole Clinic", hole.url, patients=SLOW_SLOTS + 3)
        run = Run(rt)
        time.sleep(0.5)
        run.dispatcher.stop()
        took = run.join()
    assert took < TIMEOUT_S + 8, "the run waited only for the requests out"
    rows = [state(db, i) for i in ids]
    assert sorted(r.attempts for r in rows) == [0] * 3 + [1] * SLOW_SLOTS
    assert {r.state for r in rows} == {DeliveryState.PENDING}
    handed_back = [r for r in rows if r.attempts == 0]
    assert {r.last_error for r in handed_back} == {"dispatcher stopped"}


@pytest.mark.parametrize(
    ("certified", "delivered"), [("hooks.north.test", True), ("other.test", False)]
)
def test_tls_is_verified_against_the_host_name_at_the_checked_address(
    db: Session, settings_for_faults: Runtime, tmp_path: Path, certified: str, delivered: bool
) -> None:
    rt = settings_for_faults
    tls = certificates(tmp_path, certified)
    with webhook_receiver(tls.server_context()) as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        secret, (reminder,) = clinic_with_reminders(
            db, rt, "North Clinic", f"https://hooks.north.test:{port}/hooks"
        )
        senders = build_senders(rt, lambda host: ["127.0.0.1"], tls.client_context())
        Dispatcher(rt.with_clock(lambda: NINE), senders, worker="test").dispatch()
        sent = state(db, reminder)
        if delivered:
            assert sent.state == DeliveryState.SENT
            arrived_at(receiver, secret)
        else:
            assert sent.state == DeliveryState.PENDING
            assert sent.last_error is not None and "certificate" in sent.last_error.lower()
            assert receiver.received == []
