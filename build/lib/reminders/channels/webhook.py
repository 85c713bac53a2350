"""Webhooks after the Standard Webhooks spec: signed with HMAC-SHA256, sent with aiohttp
from the dispatcher's event loop.

Headers: `webhook-id` (the delivery's id, the same on every attempt), `webhook-timestamp`
(seconds) and `webhook-signature` (`v1,<base64>` for each active secret, space-separated
while a secret is being rotated).

What one receiver can do to us is bounded:
- an attempt (resolve, connect, send, the whole reply) has one deadline, `timeout_s`;
- at most `REPLY_LIMIT` bytes of the reply are read, then the connection is dropped;
- redirects are not followed (a 3xx is a failed attempt);
- the host is resolved once, off the event loop, every address is checked, and the
  connection goes to a checked address (TLS still verified against the host name);
- a destination (scheme, host, port) may have `SLOW_SLOTS` requests out at first and one
  more with each reply within `SLOW_AFTER_S`, up to all the sending slots; a request
  out longer than that gives its sending slot back, and its destination drops to
  `SLOW_SLOTS` requests out in all, so a dribbling or black-holing receiver holds a
  few sockets and none of the slots the other destinations send with.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import secrets
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import lru_cache
from types import TracebackType

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from reminders import __version__
from reminders.channels.addresses import networks, refusal
from reminders.decisions import Outcome
from reminders.errors import InvalidInput

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
RETRY_AFTER_STATUSES = frozenset({429, 502, 503, 504})
# Never wait longer than a day because a receiver said so.
MAX_RETRY_AFTER_S = 86_400.0
# Replies are read only to keep the connection reusable; nothing in them is used.
REPLY_LIMIT = 64 * 1024
# A request outstanding this long marks its destination slow.
SLOW_AFTER_S = 2.0
# What a slow or new destination may have out at once.
SLOW_SLOTS = 4
# Messages a slow destination may keep waiting for its slots; more are handed back to
# the outbox for `SLOW_DEFER_S`, so they hold no memory or claims meanwhile.
SLOW_QUEUE = 4 * SLOW_SLOTS
SLOW_DEFER_S = 60.0
# A resolved and checked answer is used for this long (the connection goes to it).
RESOLVE_TTL_S = 30.0

Resolver = Callable[[str], list[str]]


USER_AGENT = f"reminders/{__version__}"


def new_webhook_secret() -> str:
    """Return a new `whsec_` secret: 32 random bytes, base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@lru_cache(maxsize=1024)
def _key_of(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """Return `v1,<base64 HMAC-SHA256 of id.timestamp.body>` for one `whsec_` secret."""
    key = _key_of(secret)
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    """Whether a request carries a valid Standard Webhooks signature by `secret` (what
    a receiver checks; the timestamp's age is the receiver's own policy)."""
    try:
        timestamp = int(headers.get("webhook-timestamp", ""))
        expected = signature(secret, headers.get("webhook-id", ""), timestamp, body)
    except ValueError:
        return False
    given = headers.get("webhook-signature", "").split()
    return any(hmac.compare_digest(one, expected) for one in given)


def system_resolve(host: str) -> list[str]:
    """Return every address the system resolver gives for `host` (blocking)."""
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None)})


def _outcome_of(task: asyncio.Task[Outcome]) -> Outcome:
    """The attempt's outcome; a bug in it (an error no receiver explains) is retried
    later like a failed connection, so the run still accounts for the message."""
    if task.cancelled():
        return Outcome("retry", "attempt cancelled")
    error = task.exception()
    if error is None:
        return task.result()
    log.error("webhook attempt failed unexpectedly", exc_info=error)
    return Outcome("retry", f"internal error: {type(error).__name__}")


@lru_cache(maxsize=4096)
def _host_of(url: str, allow_http: bool) -> str:
    """Return the URL's host, or raise InvalidInput('url', ...) for a URL that may not
    receive webhooks whatever it resolves to."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InvalidInput("url", f"not a URL: {exc}") from None
    if parsed.scheme not in ("https", "http") or not parsed.host:
        raise InvalidInput("url", "must be an absolute https URL")
    if parsed.scheme == "http" and not allow_http:
        raise InvalidInput("url", "must use https (the operator has not allowed http)")
    if parsed.userinfo:
        raise InvalidInput("url", "must not carry a user name or password")
    if any(c.isspace() for c in url) or re.search(r"%(?![0-9A-Fa-f]{2})", url):
        raise InvalidInput("url", "has a space or a % not followed by two hex digits")
    try:
        # What the sender parses it with: a URL it cannot take must fail here.
        URL(url).port  # noqa: B018 - parsing checks the port range
    except ValueError as exc:
        raise InvalidInput("url", f"not a URL: {exc}") from None
    return parsed.host


def _is_ip(host: str) -> bool:
    try:
        refusal(host)
    except ValueError:
        return False
    return True


def checked_addresses(
    host: str, allowed_hosts: Sequence[str], resolve: Resolver = system_resolve
) -> list[str]:
    """Resolve `host` and return its addresses if every one may receive webhooks; raise
    InvalidInput('url', ...) otherwise. Blocking: call it off the event loop."""
    if _is_ip(host):
        addresses = [host]
    else:
        try:
            addresses = resolve(host)
        except OSError:
            raise InvalidInput("url", f"host {host!r} does not resolve") from None
        if not addresses:
            raise InvalidInput("url", f"host {host!r} does not resolve")
    if host in allowed_hosts:
        return addresses
    allowed = networks(allowed_hosts)
    for address in addresses:
        problem = refusal(address, allowed)
        if problem is not None:
            raise InvalidInput("url", f"host {host!r} resolves to a {problem}")
    return addresses


def check_url(
    url: str,
    *,
    allow_http: bool,
    allowed_hosts: Sequence[str],
    resolve: Resolver = system_resolve,
) -> None:
    """Raise InvalidInput('url', ...) unless the URL may receive webhooks.

    https only unless http is allowed; a host that resolves to a private, loopback,
    link-local or otherwise non-public address (IPv6 forms carrying one included) is
    refused unless the host, or a network containing the address, is allowlisted.
    Blocking (it resolves the host): call it off the event loop.
    """
    host = _host_of(url, allow_http)
    if host not in allowed_hosts:  # an allowlisted name need not resolve yet
        checked_addresses(host, allowed_hosts, resolve)


@dataclass(frozen=True, slots=True)
class WebhookMessage:
    """One signed POST: the delivery id, where it goes, its secrets, JSON body and the
    attempt's timestamp (Unix seconds, from the dispatcher's clock)."""

    delivery_id: str
    url: str
    secrets: tuple[str, ...]
    body: bytes
    timestamp: int


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER_S)


def outcome_of(status: int, headers: Mapping[str, str]) -> Outcome:
    """Return what an HTTP answer means for the delivery: only 2xx is success."""
    if 200 <= status < 300:
        return Outcome("sent")
    if status == 410:
        return Outcome("gone", "HTTP 410 Gone: endpoint disabled")
    if 300 <= status < 400:
        return Outcome("retry", f"HTTP {status} (redirects are not followed)")
    retry_after = (
        _retry_after(headers.get("retry-after")) if status in RETRY_AFTER_STATUSES else None
    )
    return Outcome("retry", f"HTTP {status}", retry_after)


def signed_headers(message: WebhookMessage) -> dict[str, str]:
    """Return the Standard Webhooks headers for one message."""
    signatures = " ".join(
        signature(secret, message.delivery_id, message.timestamp, message.body)
        for secret in message.secrets
    )
    return {
        "content-type": "application/json",
        "webhook-id": message.delivery_id,
        "webhook-timestamp": str(message.timestamp),
        "webhook-signature": signatures,
    }


class CheckedAddresses:
    """Each host resolved once (in a thread) and checked; the answer is kept for
    `RESOLVE_TTL_S`, and the connection is made only to an address in it, so DNS that
    changes its answer between the check and the connect cannot steer us elsewhere."""

    def __init__(self, resolve: Resolver, allowed_hosts: Sequence[str]) -> None:
        self.resolve = resolve
        self.allowed_hosts = tuple(allowed_hosts)
        self._answers: dict[str, tuple[float, list[str] | InvalidInput]] = {}
        # Look-ups under way: the first requests to a host all wait for the same one.
        self._looking_up: dict[str, asyncio.Task[list[str] | InvalidInput]] = {}

    def forget_look_ups(self) -> None:
        """Drop look-ups under way (they belonged to an event loop that has ended)."""
        self._looking_up.clear()

    async def get(self, host: str) -> list[str]:
        """Return the checked addresses of `host`; raise InvalidInput if refused."""
        loop = asyncio.get_running_loop()
        cached = self._answers.get(host)
        if cached is None or cached[0] < loop.time():
            look_up = self._looking_up.get(host)
            if look_up is None:
                look_up = self._looking_up[host] = loop.create_task(self._look_up(host))
                look_up.add_done_callback(lambda _: self._looking_up.pop(host, None))
            # Shielded: one request's deadline must not cancel the others' look-up.
            answer = await asyncio.shield(look_up)
            cached = (loop.time() + RESOLVE_TTL_S, answer)
            self._answers[host] = cached
        if isinstance(cached[1], InvalidInput):
            raise cached[1]
        return cached[1]

    async def _look_up(self, host: str) -> list[str] | InvalidInput:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                None, checked_addresses, host, self.allowed_hosts, self.resolve
            )
        except InvalidInput as exc:
            return exc


class _CheckedResolver(AbstractResolver):
    """aiohttp's resolver: hands the connector only addresses `CheckedAddresses` passed."""

    def __init__(self, addresses: CheckedAddresses) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            found = await self.addresses.get(host)
        except InvalidInput as exc:
            raise OSError(exc.message) from None
        results: list[ResolveResult] = []
        for address in found:
            kind = socket.AF_INET6 if ":" in address else socket.AF_INET
            if family not in (socket.AF_UNSPEC, kind):
                continue
            results.append(
                {
                    "hostname": host,
                    "host": address,
                    "port": port,
                    "family": kind,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            )
        return results

    async def close(self) -> None:
        """Nothing to close."""


@lru_cache(maxsize=4096)
def _destination_of(url: str) -> tuple[str, str, int]:
    parsed = URL(url)
    return (parsed.scheme, parsed.host or "", parsed.port or 0)


@lru_cache(maxsize=4096)
def _parsed(url: str) -> URL:
    # aiohttp parses a URL given as text on every request.
    return URL(url)


@dataclass
class _Job:
    message: WebhookMessage
    future: asyncio.Future[Outcome]


@dataclass
class Destination:
    """One scheme, host and port: its queue and what it has out."""

    key: tuple[str, str, int]
    limit: int = SLOW_SLOTS
    fast: int = 0  # requests out for less than SLOW_AFTER_S (each holds a sending slot)
    slow: int = 0  # requests out for longer (they hold only this destination's allowance)
    queue: deque[_Job] = field(default_factory=deque)

    def may_start(self) -> bool:
        """True if another request may go to this destination now."""
        return self.fast + self.slow < self.limit


class WebhookSender:
    """Posts signed webhooks from the running event loop: `submit` hands over a message
    and returns a future that holds its outcome as soon as it is known. Use as an
    `async with` block (it owns one aiohttp session, closed at the end).

    Up to `concurrency` requests hold sending slots at once; see the module docstring
    for how destinations share them.
    """

    def __init__(
        self,
        *,
        timeout_s: float = 15.0,
        allow_http: bool = False,
        allowed_hosts: Sequence[str] = (),
        concurrency: int = 64,
        resolve: Resolver = system_resolve,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """`tls`: the context certificates are verified with (default: the system's
        trusted authorities; tests pass one that trusts their own)."""
        self.tls = tls
        self.timeout_s = timeout_s
        self.allow_http = allow_http
        self.concurrency = concurrency
        self.addresses = CheckedAddresses(resolve, allowed_hosts)
        self.destinations: dict[tuple[str, str, int], Destination] = {}
        self._waiting: dict[tuple[str, str, int], Destination] = {}
        self._busy = 0  # sending slots held
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> WebhookSender:
        # What a destination learned (its limit) outlives the block; what was queued or
        # out belonged to the block's event loop, which has ended.
        for destination in self.destinations.values():
            destination.queue.clear()
            destination.fast = destination.slow = 0
        self._waiting.clear()
        self._busy = 0
        self.addresses.forget_look_ups()
        connector = aiohttp.TCPConnector(
            resolver=_CheckedResolver(self.addresses),
            # Every new connection asks the checked resolver; its answers are cached there.
            use_dns_cache=False,
            limit=0,  # the slots above limit what is out
            # Verified against the URL's host name, whichever checked address it reached.
            ssl=self.tls if self.tls is not None else True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": USER_AGENT},
            # Replies are capped and dropped: decompressing them would be wasted work
            # (and a small compressed reply can expand to gigabytes).
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def submit(self, message: WebhookMessage) -> asyncio.Future[Outcome]:
        """Queue a message; the future's result is its outcome (it never fails)."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        try:
            key = _destination_of(message.url)
        except ValueError as exc:  # a stored URL the current checks would refuse
            future.set_result(Outcome("failed", f"invalid webhook URL: {exc}"))
            return future
        destination = self.destinations.get(key)
        if destination is None:
            destination = self.destinations[key] = Destination(key)
        destination.queue.append(_Job(message, future))
        self._waiting[key] = destination
        self._pump()
        self._hand_back_excess(destination)
        return future

    def hand_back_queued(self) -> None:
        """Resolve every message not yet started as deferred, to be tried again at once
        (by this process or another): the dispatcher is stopping."""
        for destination in self._waiting.values():
            while destination.queue:
                job = destination.queue.popleft()
                job.future.set_result(Outcome("deferred", "dispatcher stopped", 0.0))
        self._waiting.clear()

    @staticmethod
    def _hand_back_excess(destination: Destination) -> None:
        """Resolve what a slow destination cannot send soon as deferred, newest first."""
        if destination.slow == 0:
            return
        while len(destination.queue) > SLOW_QUEUE:
            job = destination.queue.pop()
            job.future.set_result(
                Outcome("deferred", "waiting: the endpoint is answering slowly", SLOW_DEFER_S)
            )

    def backlog(self) -> int:
        """Messages waiting for a slot at destinations free to take more: what the
        dispatcher should keep topped up. Slow destinations' queues do not count, so
        they cannot stop it from claiming other clinics' work."""
        return sum(len(d.queue) for d in self._waiting.values() if d.slow == 0)

    def _pump(self) -> None:
        """Start what the slots allow, one destination after another in turn."""
        started = True
        while started and self._busy < self.concurrency and self._waiting:
            started = False
            for key, destination in list(self._waiting.items()):
                if self._busy >= self.concurrency:
                    return
                if destination.may_start():
                    self._start(destination, destination.queue.popleft())
                    started = True
                if not destination.queue:
                    del self._waiting[key]

    def _start(self, destination: Destination, job: _Job) -> None:
        loop = asyncio.get_running_loop()
        destination.fast += 1
        self._busy += 1
        slow = False
        started = loop.time()

        def became_slow() -> None:
            nonlocal slow
            slow = True
            destination.fast -= 1
            destination.slow += 1
            destination.limit = SLOW_SLOTS
            self._busy -= 1
            self._hand_back_excess(destination)
            self._pump()

        timer = loop.call_later(SLOW_AFTER_S, became_slow)

        def finished(task: asyncio.Task[Outcome]) -> None:
            timer.cancel()
            if slow:
                destination.slow -= 1
            else:
                destination.fast -= 1
                self._busy -= 1
                if loop.time() - started < SLOW_AFTER_S and destination.slow == 0:
                    destination.limit = min(destination.limit + 1, self.concurrency)
            if not job.future.done():
                job.future.set_result(_outcome_of(task))
            self._pump()

        task = loop.create_task(self._attempt(job.message))
        task.add_done_callback(finished)

    async def _attempt(self, message: WebhookMessage) -> Outcome:
        """One attempt under one deadline; a receiver's doing is an outcome (anything
        else is a bug, which `_outcome_of` still turns into one)."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._post(message)
        except InvalidInput as exc:
            return Outcome("failed", exc.message)
        except TimeoutError:
            return Outcome("retry", "timed out")
        except (aiohttp.ClientError, OSError) as exc:
            return Outcome("retry", f"{type(exc).__name__}: {exc}")

    async def _post(self, message: WebhookMessage) -> Outcome:
        host = _host_of(message.url, self.allow_http)
        # Checked here so a refusal fails the message rather than retrying it; the
        # connector's resolver then reads the same checked answer.
        await self.addresses.get(host)
        assert self._session is not None, "use WebhookSender in `async with`"
        async with self._session.post(
            _parsed(message.url),
            data=message.body,
            headers=signed_headers(message),
            allow_redirects=False,
        ) as response:
            read = 0
            while read < REPLY_LIMIT:
                chunk = await response.content.read(min(REPLY_LIMIT - read, 16384))
                if not chunk:
                    break
                read += len(chunk)
            else:
                if not response.content.at_eof():
                    response.close()  # the rest is not worth reading; drop the connection
            return outcome_of(response.status, response.headers)
