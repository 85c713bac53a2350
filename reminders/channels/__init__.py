"""Channels: how a rendered message leaves. Each sender takes a batch of its own message
type and returns one `Outcome` per message, in order; none raises for a delivery
problem."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from reminders.outbox import Outcome

M_contra = TypeVar("M_contra", contravariant=True)


class Sender(Protocol[M_contra]):
    """The one interface every channel implements."""

    def send(self, messages: Sequence[M_contra]) -> list[Outcome]:
        """Send a batch; return one outcome per message, in order."""
        ...
