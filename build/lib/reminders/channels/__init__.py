"""Channels: how a rendered message leaves. None raises for a delivery problem; each
reports one `Outcome` per message.

Two shapes, one per kind of channel:
- `Sender`: a blocking batch (email over SMTP or into a Maildir), run in a thread;
  its outcomes come back together, in order.
- `StreamingSender`: sends from the dispatcher's event loop (webhooks); `submit`
  returns a future per message that completes as soon as that message's outcome is
  known, so one slow receiver holds up no other message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol, Self, TypeVar

from reminders.decisions import Outcome

M_contra = TypeVar("M_contra", contravariant=True)


class Sender(Protocol[M_contra]):
    """A channel that sends a batch at a time, blocking."""

    def send(self, messages: Sequence[M_contra]) -> list[Outcome]:
        """Send a batch; return one outcome per message, in order."""
        ...


class StreamingSender(Protocol[M_contra]):
    """A channel that sends from the running event loop, inside `async with`."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def submit(self, message: M_contra) -> asyncio.Future[Outcome]:
        """Queue one message; the future holds its outcome (it never fails)."""
        ...

    def backlog(self) -> int:
        """Messages queued that could start as soon as a slot frees."""
        ...

    def hand_back_queued(self) -> None:
        """Resolve every message not yet started as deferred (the dispatcher stops)."""
        ...
