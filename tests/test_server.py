"""Running the service: what `serve` and `worker` do as they start."""

from __future__ import annotations

import gc
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from reminders.server import NoDelayHttpToolsProtocol, freeze_startup_heap, listening_socket
from tests.servers import free_port


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


async def _hello(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


@contextmanager
def _uvicorn(
    sockets: list[socket.socket] | None = None, **options: Any
) -> Iterator[uvicorn.Server]:
    """uvicorn serving `_hello` in a thread: on `sockets`, or on a socket of its own."""
    config = uvicorn.Config(_hello, log_config=None, lifespan="off", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(timeout=30)


OPTIONS = [
    (socket.SOL_SOCKET, socket.SO_REUSEADDR), (socket.SOL_SOCKET, socket.SO_REUSEPORT),
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE), (socket.IPPROTO_TCP, socket.TCP_NODELAY),
]  # fmt: skip


def _shape(listener: Any) -> tuple[Any, ...]:
    options = tuple(listener.getsockopt(level, name) for level, name in OPTIONS)
    return (listener.family, listener.type, listener.proto, options)


def test_serves_listener_is_tcp_and_made_as_uvicorn_makes_its_own() -> None:
    ours = listening_socket("127.0.0.1", free_port())
    try:
        assert ours.proto == socket.IPPROTO_TCP
        with _uvicorn(host="127.0.0.1", port=free_port(), http="httptools") as server:
            (theirs,) = server.servers[0].sockets
            assert _shape(ours) == _shape(theirs)
    finally:
        ours.close()


def test_an_accepted_connection_sends_each_write_at_once_whatever_made_the_listener() -> None:
    # A listener that does not say it is TCP (protocol 0), as some socket makers leave it:
    # asyncio would leave Nagle's algorithm on for what it accepts.
    bare = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    bare.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    bare.bind(("127.0.0.1", free_port()))
    port = bare.getsockname()[1]
    with (
        _uvicorn([bare], http=NoDelayHttpToolsProtocol) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        assert client.get("/").text == "hello"
        (connection,) = server.server_state.connections
        accepted = connection.transport.get_extra_info("socket")
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
