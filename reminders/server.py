"""Running the service: the scheduler, and with it (for `serve`) the HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import logging.config
import os
import signal
import socket
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from reminders.api import create_app
from reminders.dispatcher import Dispatcher, build_senders
from reminders.logs import logging_config
from reminders.runtime import Runtime
from reminders.scheduler import build_scheduler, stop_scheduler
from reminders.settings import Settings, load_settings

log = logging.getLogger("reminders")


def freeze_startup_heap() -> int:
    """Take what is alive once the service has started out of the garbage collector's
    view, and return how many objects that is. Modules, classes, validators and the
    mapped schema live as long as the process; what is made later is collected as ever.

    A full collection walks every tracked object, and what importing FastAPI,
    SQLAlchemy and our models leaves is most of them: each full collection would stall
    every request in flight while it walks objects that can never be garbage.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def listening_socket(host: str, port: int) -> socket.socket:
    """Return a TCP socket bound to `host`:`port`, as uvicorn would make it itself; raise
    OSError if that address is taken or not this machine's.

    The protocol comes from `getaddrinfo` with the rest: asyncio turns Nagle's algorithm
    off only on accepted sockets whose protocol says TCP, and with it on, the second write
    of an answer on a kept-alive connection waits for the client's delayed ACK."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except OSError:
        listener.close()
        raise
    return listener


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that sends each write at once, whatever socket the
    connection came from (a listener made elsewhere may not say it is TCP)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        connection = transport.get_extra_info("socket")
        if connection is not None and connection.family in (socket.AF_INET, socket.AF_INET6):
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def service_app(rt: Runtime, *, with_api: bool) -> FastAPI:
    """Return the app that runs the scheduler in its lifespan: the whole API (`serve`),
    or only /healthz, /readyz and /metrics (`worker`)."""
    settings = rt.settings
    dispatcher = Dispatcher(rt, build_senders(rt))
    scheduler, dispatch, beats = build_scheduler(rt, dispatcher)
    email = (
        f"Maildir {settings.maildir}"
        if settings.email_backend == "maildir"
        else f"SMTP {settings.smtp_host}:{settings.smtp_port}"
    )
    log.info("email goes to %s; database %s", email, rt.engine.url.render_as_string())

    def start() -> None:
        scheduler.start()
        log.info("%d objects alive at start left out of garbage collection", freeze_startup_heap())

    def scheduler_problems() -> list[str]:
        if not scheduler.running:
            return ["the scheduler is not running"]
        return [f"the {job} job has shown no life for too long" for job in beats.stuck()]

    return create_app(
        rt,
        on_start=start,
        on_stop=lambda: stop_scheduler(scheduler, dispatch),
        scheduler_problems=scheduler_problems,
        wake=dispatch.wake,
        operations_only=not with_api,
    )


def run_server(rt: Runtime, *, with_api: bool) -> None:
    """Serve `service_app` under uvicorn until SIGINT or SIGTERM, on `http_port`
    (`serve`) or `worker_port` (`worker`).

    The port is bound first: a port already taken stops the service before its
    scheduler has touched the database (raises OSError)."""
    settings = rt.settings
    port = settings.http_port if with_api else settings.worker_port
    listener = listening_socket(settings.http_host, port)
    log_config = logging_config(settings.log_format)
    logging.config.dictConfig(log_config)
    app = service_app(rt, with_api=with_api)
    what = "API" if with_api else "worker (health and metrics)"
    log.info("%s on http://%s:%d", what, settings.http_host, port)
    # httptools parses HTTP in C, with less server time per request than h11.
    config = uvicorn.Config(app, http=NoDelayHttpToolsProtocol, log_config=log_config)
    # uvicorn raises the signal it stopped on again once it has shut down: after a
    # clean shutdown, SIGINT and SIGTERM both end the process with status 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[listener])


def development_app() -> FastAPI:
    """`serve --reload`: the app for uvicorn's reloader, which imports it afresh in a
    new process after every change (settings come from the environment there)."""
    return service_app(Runtime.from_settings(load_settings()), with_api=True)


def run_reloading(settings: Settings) -> None:
    """Serve `development_app`, restarting it whenever the package or the config
    changes. For development: one process, the reloader's own."""
    os.environ["REMINDERS_HTTP_HOST"] = settings.http_host
    os.environ["REMINDERS_HTTP_PORT"] = str(settings.http_port)
    log_config = logging_config(settings.log_format)
    uvicorn.run(
        "reminders.server:development_app",
        factory=True,
        reload=True,
        reload_dirs=[str(Path(__file__).parent), str(settings.config_dir)],
        host=settings.http_host,
        port=settings.http_port,
        http=NoDelayHttpToolsProtocol,
        log_config=log_config,
    )
