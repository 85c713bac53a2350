"""The dispatcher: claims due deliveries, has them prepared (`preparing.py`: still worth
sending? render, sign, link tokens), hands them to their channel and records each
result as it comes in.

One run is an event loop. Sending happens there, outside any transaction (webhooks on
the loop itself, email batches in a thread); the database work (claim and prepare,
record, extend leases) happens one step at a time in a thread beside it, so it overlaps
with sending. The run claims more while sends are still out, as long as the channels'
queues have room, records results as they arrive, and keeps the leases of everything
it holds alive; a receiver that takes its time delays only its own messages. The run
ends when nothing is due and nothing is out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any, NamedTuple, TypeVar

from reminders.channels import Sender, StreamingSender
from reminders.channels.email import email_sender
from reminders.channels.webhook import Resolver, WebhookMessage, WebhookSender, system_resolve
from reminders.db.engine import session_scope
from reminders.decisions import Outcome, address_cut_off, result_values, undeliverable_cause
from reminders.metrics import DELIVERIES, LATENESS, SEND_SECONDS
from reminders.models import Patient, WebhookEndpoint
from reminders.preparing import BatchRows, PreparedDelivery, Preparer
from reminders.runtime import Runtime
from reminders.services import reachability
from reminders.services.events import escalate
from reminders.services.reminding import alert_clinic
from reminders.services.webhooks import disable_endpoint
from reminders.states import EscalationReason
from reminders.stores import outbox
from reminders.stores.outbox import DeliveryRow
from reminders.tokens import store_tokens

WEBHOOK_SEND_SECONDS = SEND_SECONDS.labels("webhook")
EMAIL_SEND_SECONDS = SEND_SECONDS.labels("email")
log = logging.getLogger(__name__)
T = TypeVar("T")

# While sends are out, how often the run looks for work that has fallen due since.
POLL_S = 0.25
CHANNELS = ("webhook", "email")
# Claimed deliveries held at once (waiting for a slot, or out), in batches; the last
# look may add a batch of each channel beyond it.
HELD_BATCHES = 10
# Emails waiting for the mail thread, in batches, beyond which the run claims no more
# emails until the mail server catches up (other channels' work is still claimed).
EMAILS_WAITING_BATCHES = 4


@dataclass(frozen=True)
class Senders:
    """One sender per channel."""

    email: Sender[EmailMessage]
    webhook: StreamingSender[WebhookMessage]


def build_senders(
    rt: Runtime, resolve: Resolver = system_resolve, tls: ssl.SSLContext | None = None
) -> Senders:
    """Return the senders the settings configure (`resolve`: how webhook hosts are
    looked up; `tls`: what webhook certificates are verified with; both for tests)."""
    settings = rt.settings
    return Senders(
        email=email_sender(settings),
        webhook=WebhookSender(
            timeout_s=settings.webhook_timeout_s,
            concurrency=settings.webhook_concurrency,
            allow_http=settings.webhook_allow_http,
            allowed_hosts=settings.webhook_allowed_hosts,
            resolve=resolve,
            tls=tls,
        ),
    )


class DeliveryResult(NamedTuple):
    """A delivery's outcome (None: prepare ended it, its values say how) and when it
    came in."""

    item: PreparedDelivery
    outcome: Outcome | None
    at: datetime


@dataclass
class Dispatcher:
    """Sends what is due. Safe to run in any number of processes at once."""

    rt: Runtime
    senders: Senders
    worker: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    rand: Callable[[], float] = random.random

    # Called whenever a run records results or ends: the scheduler's sign of life.
    on_progress: Callable[[], None] = lambda: None

    _stopping: threading.Event = field(default_factory=threading.Event, init=False)

    def dispatch(self) -> int:
        """Send until nothing is due and nothing is out; return how many deliveries were
        handled."""
        try:
            # Most runs (a wake after any write) find nothing due: a read tells, without
            # a run's event loop, threads and HTTP client.
            with session_scope(self.rt.engine, write=False) as db:
                if not outbox.any_due(db, self.rt.clock()):
                    return 0
            return asyncio.run(self._run())
        finally:
            self.on_progress()

    def stop(self) -> None:
        """Make the run under way, and any later one, claim nothing more: what waits for
        a sending slot or for the mail thread goes back to the outbox; what is out (the
        webhooks sent, the email batch being sent) is awaited (at most the webhook or
        SMTP timeout) and recorded. For shutdown."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        """True once `stop` was called."""
        return self._stopping.is_set()

    def next_due(self) -> datetime | None:
        """Return when the next pending delivery falls due, or None."""
        with session_scope(self.rt.engine, write=False) as db:
            return outbox.next_due(db)

    async def _run(self) -> int:
        with (
            ThreadPoolExecutor(1, thread_name_prefix="dispatch-db") as database,
            ThreadPoolExecutor(1, thread_name_prefix="dispatch-email") as mail,
        ):
            async with self.senders.webhook:
                return await _Run(self, database, mail).until_idle()

    # The database steps, each one transaction, run in the run's database thread.

    def claim_and_prepare(self, limit: int, channels: Collection[str]) -> list[PreparedDelivery]:
        """Claim up to `limit` due deliveries of each of `channels` and prepare them.

        Each channel is claimed on its own so that one channel's backlog (thousands of
        webhooks due at one instant) does not keep another's messages waiting behind
        it: each goes at its own pace from the start."""
        now = self.rt.clock()
        # Most looks find nothing due; reading first spares the API a wait for the
        # write lock the claim would take.
        with session_scope(self.rt.engine, write=False) as db:
            if not outbox.any_due(db, now, channels):
                return []
        lease = timedelta(seconds=self.rt.settings.lease_s)
        with session_scope(self.rt.engine) as db:
            claimed = [
                delivery
                for channel in channels
                for delivery in outbox.claim(db, self.worker, now, limit, lease, [channel])
            ]
        if not claimed:
            return []
        preparer = Preparer(self.rt)
        with session_scope(self.rt.engine) as db:
            rows = BatchRows.read(db, claimed)
            prepared = [preparer.prepare(rows, delivery, now) for delivery in claimed]
            store_tokens(db, rows.tokens)
        return prepared

    def extend_leases(self, ids: list[str]) -> None:
        """Keep the claims on `ids` for another lease."""
        until = self.rt.clock() + timedelta(seconds=self.rt.settings.lease_s)
        with session_scope(self.rt.engine) as db:
            outbox.extend_leases(db, ids, self.worker, until)

    def record(self, results: list[DeliveryResult]) -> None:
        """Record a round of results in one transaction."""
        self.on_progress()
        with session_scope(self.rt.engine) as db:
            sent = [r for r in results if r.outcome is not None and r.outcome.status == "sent"]
            outbox.finish_sent(db, self.worker, [(r.item.delivery.id, r.at) for r in sent])
            for result in sent:
                _log_result(result.item.delivery, "sent", result.at)
            for result in results:
                if result.outcome is None or result.outcome.status != "sent":
                    self._record_one(db, result)
            cut_off = [
                r.item.delivery.patient_id
                for r in results
                if address_cut_off(r.item.delivery.audience, r.outcome)
            ]
            if cut_off:
                self._addresses_refused(db, cut_off, results[-1].at)
            self._endpoint_health(db, results)

    def _record_one(self, db: Any, result: DeliveryResult) -> None:
        item, outcome, now = result
        delivery = item.delivery
        if outcome is None:
            assert item.values is not None
            values = item.values
        else:
            values = result_values(delivery.attempts, delivery.expires_at, outcome, now, self.rand)
        if not outbox.finish(db, delivery.id, self.worker, values):
            return  # another worker took the row over after our lease ran out
        _log_result(delivery, values["state"], now)
        webhook = delivery.channel == "webhook"
        endpoint = db.get(WebhookEndpoint, delivery.target) if webhook else None
        if outcome is not None and outcome.status == "gone" and endpoint is not None:
            disable_endpoint(db, self.rt.settings, endpoint, "answered 410 Gone", now)
        # An endpoint failing as a whole is reported once, when it is disabled.
        told = endpoint is not None and (endpoint.failing_since is not None or not endpoint.enabled)
        error = values.get("last_error")
        cause = undeliverable_cause(delivery.kind, delivery.channel, values["state"], error, told)
        if cause is not None:
            self._tell_clinic(db, delivery, cause, now)

    def _addresses_refused(self, db: Any, patient_ids: list[str | None], now: datetime) -> None:
        """A mail server refused these patients' addresses for good: until they change,
        no reminder can reach them (`services.reachability`), worked out for the round's
        patients at once, so the clinic gets one email for them."""
        newly = []
        for patient_id in sorted({p for p in patient_ids if p is not None}):
            patient = db.get(Patient, patient_id)
            if patient is None or not patient.email or patient.email_refused == patient.email:
                continue
            patient.email_refused = patient.email
            newly.append(patient)
        reachability.refresh(db, self.rt.settings, newly, now)

    def _tell_clinic(self, db: Any, delivery: DeliveryRow, cause: str, now: datetime) -> None:
        """Tell the clinic that messages cannot be delivered, once per cause while its
        escalation is open. The stored text names the cause, not the error: a mail
        server's error often quotes the patient's address."""
        detail = (
            f"messages could not be delivered ({cause}); the first was delivery "
            f"{delivery.id} ({delivery.kind} by {delivery.channel}, {delivery.attempts} "
            "attempt(s)). Others failing for the same reason are listed under "
            "/v1/deliveries with their errors."
        )
        once = f"undeliverable|{delivery.clinic_id}|{cause}"
        patient = db.get(Patient, delivery.patient_id) if delivery.patient_id else None
        if patient is not None:
            escalate(db, patient, EscalationReason.UNDELIVERABLE, detail, now, once=once)
        else:
            alert_clinic(db, delivery.clinic_id, "Messages could not be delivered", detail, now)

    def _endpoint_health(self, db: Any, results: list[DeliveryResult]) -> None:
        """An endpoint that answered anything well this round is healthy again; one that
        only failed is failing since its first failure, and after
        `endpoint_disable_after_h` of that it is disabled and the clinic told, once."""
        healthy: dict[str, bool] = {}
        for item, outcome, _ in results:
            if item.endpoint_id is None or outcome is None:
                continue
            if outcome.status in ("gone", "deferred"):
                continue
            ok = outcome.status == "sent"
            healthy[item.endpoint_id] = healthy.get(item.endpoint_id, False) or ok
        if not healthy:
            return
        now = results[-1].at
        limit = timedelta(hours=self.rt.settings.endpoint_disable_after_h)
        for endpoint_id, ok in healthy.items():
            endpoint = db.get(WebhookEndpoint, endpoint_id)
            if endpoint is None or not endpoint.enabled:
                continue
            if ok:
                if endpoint.failing_since is None:
                    continue
                endpoint.failing_since = None
            elif endpoint.failing_since is None:
                endpoint.failing_since = now
            elif now - endpoint.failing_since >= limit:
                since = endpoint.failing_since.isoformat(timespec="minutes")
                disable_endpoint(db, self.rt.settings, endpoint, f"failing since {since}", now)
                continue
            db.add(endpoint)


def _log_result(delivery: DeliveryRow, state: str, now: datetime) -> None:
    """One line per result, ids and times only: no patient data goes to the log; and
    the result counted for /metrics."""
    lateness = (now - delivery.due_at).total_seconds()
    DELIVERIES.labels(delivery.channel, delivery.kind, state).inc()
    if state == "sent":
        LATENESS.labels(delivery.channel).observe(max(lateness, 0.0))
    log.info(
        "delivery %s channel=%s kind=%s state=%s attempt=%d lateness=%.3fs",
        delivery.id,
        delivery.channel,
        delivery.kind,
        state,
        delivery.attempts,
        lateness,
    )


class _Run:
    """One dispatcher run: the deliveries it holds and the results not yet recorded."""

    def __init__(
        self, dispatcher: Dispatcher, database: ThreadPoolExecutor, mail: ThreadPoolExecutor
    ) -> None:
        self.dispatcher = dispatcher
        self.database = database
        self.mail = mail
        self.loop = asyncio.get_running_loop()
        settings = dispatcher.rt.settings
        self.batch = settings.dispatch_batch_size
        self.lease_s = settings.lease_s
        self.held: dict[str, PreparedDelivery] = {}  # claimed and not yet recorded
        self.arrived: list[DeliveryResult] = []
        self.news = asyncio.Event()
        self.emails: list[PreparedDelivery] = []  # waiting for the mail thread
        self.mailing: asyncio.Task[None] | None = None
        self.handled = 0

    async def until_idle(self) -> int:
        """Claim, send and record until nothing is due and nothing is out."""
        # When each channel is next looked at: at once after a full batch, else after
        # POLL_S (a channel's empty look must not hold up the other's next claim).
        next_look = dict.fromkeys(CHANNELS, self.loop.time())
        next_renewal = self.loop.time() + self.lease_s / 3
        # Whether each channel's last look found less than a full batch: the run ends
        # only once every channel has, and nothing is out.
        quiet = dict.fromkeys(CHANNELS, False)
        while True:
            more_due = False
            if self.dispatcher.stopping:
                self.dispatcher.senders.webhook.hand_back_queued()
                self._hand_back_emails()
            elif channels := self._channels_to_look_at(next_look):
                limit = min(self.batch, self.batch * HELD_BATCHES - len(self.held))
                prepared = await self._in_database(
                    self.dispatcher.claim_and_prepare, limit, channels
                )
                self._hand_over(prepared)
                claimed = Counter(item.delivery.channel for item in prepared)
                for channel in channels:
                    full = claimed[channel] >= limit
                    more_due, quiet[channel] = more_due or full, not full
                    next_look[channel] = self.loop.time() + (0.0 if full else POLL_S)
            if self.arrived:
                results, self.arrived = self.arrived, []
                await self._in_database(self.dispatcher.record, results)
                for result in results:
                    del self.held[result.item.delivery.id]
                self.handled += len(results)
            if self.held and self.loop.time() >= next_renewal:
                await self._in_database(self.dispatcher.extend_leases, list(self.held))
                next_renewal = self.loop.time() + self.lease_s / 3
            idle = not self.held and not self.arrived
            if idle and (all(quiet.values()) or self.dispatcher.stopping):
                return self.handled
            if not (room := self._channels_with_room()):
                await self._wait(POLL_S)  # a result frees room
            elif not more_due:
                soonest = min(next_look[channel] for channel in room)
                await self._wait(max(soonest - self.loop.time(), 0.0))

    def _channels_to_look_at(self, next_look: dict[str, float]) -> list[str]:
        now = self.loop.time()
        return [c for c in self._channels_with_room() if now >= next_look[c]]

    def _channels_with_room(self) -> list[str]:
        """The channels whose queues can take another batch. A channel that is behind
        leaves its work in the outbox, where it does not fill the run's claims."""
        if len(self.held) >= self.batch * HELD_BATCHES:
            return []
        room = {
            "webhook": self.dispatcher.senders.webhook.backlog() < self.batch,
            "email": len(self.emails) < EMAILS_WAITING_BATCHES * self.batch,
        }
        return [channel for channel in CHANNELS if room[channel]]

    async def _wait(self, timeout: float) -> None:
        """Wait until a result comes in or `timeout` passes."""
        if self.arrived:
            return
        self.news.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.news.wait()

    def _hand_over(self, prepared: list[PreparedDelivery]) -> None:
        emails: list[PreparedDelivery] = []
        for item in prepared:
            self.held[item.delivery.id] = item
            if item.message is None:
                self._arrive(item, None)
            elif isinstance(item.message, EmailMessage):
                emails.append(item)
            else:
                self._send_webhook(item, item.message)
        if emails:
            self.emails.extend(emails)
            if self.mailing is None:
                self.mailing = self.loop.create_task(self._send_emails())

    def _hand_back_emails(self) -> None:
        """Resolve the emails still waiting for the mail thread as deferred: they go
        back to the outbox, to be sent by the next run."""
        waiting, self.emails = self.emails, []
        stopped = Outcome("deferred", "dispatcher stopped", 0.0)
        for item in waiting:
            self._arrive(item, stopped)

    def _send_webhook(self, item: PreparedDelivery, message: WebhookMessage) -> None:
        future = self.dispatcher.senders.webhook.submit(message)
        started = time.perf_counter()

        def arrived(done: asyncio.Future[Outcome]) -> None:
            WEBHOOK_SEND_SECONDS.observe(time.perf_counter() - started)
            self._arrive(item, done.result())

        future.add_done_callback(arrived)

    async def _send_emails(self) -> None:
        """Send what waits, a batch at a time: what arrived while one batch was out goes
        in the next, over one connection, rather than a connection per claim."""
        sender = self.dispatcher.senders.email
        try:
            while self.emails:
                items, self.emails = self.emails[: self.batch], self.emails[self.batch :]
                messages = [m for item in items if isinstance(m := item.message, EmailMessage)]
                started = time.perf_counter()
                try:
                    outcomes = await self.loop.run_in_executor(self.mail, sender.send, messages)
                    share = (time.perf_counter() - started) / max(len(messages), 1)
                    for _ in messages:
                        EMAIL_SEND_SECONDS.observe(share)
                    if len(outcomes) != len(items):
                        raise RuntimeError(f"{len(outcomes)} outcomes for {len(items)} emails")
                except Exception as exc:
                    # Senders report problems as outcomes; this is a bug, and the run
                    # must still account for every message it holds.
                    log.exception("email sender failed")
                    failed = Outcome("retry", f"internal error: {type(exc).__name__}")
                    outcomes = [failed] * len(items)
                for item, outcome in zip(items, outcomes, strict=True):
                    self._arrive(item, outcome)
        finally:
            self.mailing = None

    def _arrive(self, item: PreparedDelivery, outcome: Outcome | None) -> None:
        self.arrived.append(DeliveryResult(item, outcome, self.dispatcher.rt.clock()))
        self.news.set()

    async def _in_database(self, step: Callable[..., T], *args: Any) -> T:
        return await self.loop.run_in_executor(self.database, step, *args)
