"""Running the service: what `serve` and `worker` do as they start."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from reminders.server import freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def unfrozen_after() -> Iterator[None]:
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen_after")
def test_start_leaves_what_is_alive_out_of_later_collections() -> None:
    alive = _Node()
    frozen = freeze_startup_heap()
    assert frozen > 0
    assert not any(obj is alive for obj in gc.get_objects())


@pytest.mark.usefixtures("unfrozen_after")
def test_cycles_made_after_start_are_still_collected() -> None:
    freeze_startup_heap()
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    gone = weakref.ref(first)
    del first, second
    gc.collect()
    assert gone() is None
