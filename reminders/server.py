"""Running the service: the scheduler, and with it (for `serve`) the HTTP API."""

from __future__ import annotations

import contextlib
import gc
import logging
import logging.config
import signal
import socket
import threading

import uvicorn

from reminders.api import create_app
from reminders.dispatcher import Dispatcher, build_senders
from reminders.logs import logging_config
from reminders.runtime import Runtime
from reminders.scheduler import build_scheduler, stop_scheduler

log = logging.getLogger("reminders")


def freeze_startup_heap() -> int:
    """Take what is alive once the service has started out of the garbage collector's
    view, and return how many objects that is. Modules, classes, validators and the
    mapped schema live as long as the process; what is made later is collected as ever.

    A full collection walks every tracked object: the ~130,000 that importing FastAPI,
    SQLAlchemy and our models leaves took 50-90 ms of CPU, a stall for every request in
    flight every 10-25 s under the api benchmark's load. Frozen, a full collection takes
    3-5 ms (both timed with `gc.callbacks` in `serve`).
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def listening_socket(host: str, port: int) -> socket.socket:
    """Return a socket bound to `host`:`port`; raise OSError if that address is taken
    or not this machine's."""
    family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    listener = socket.socket(family, kind)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except OSError:
        listener.close()
        raise
    return listener


def run_server(rt: Runtime, *, with_api: bool) -> None:
    """Run until SIGINT or SIGTERM: the scheduler, plus uvicorn when `with_api`.

    With the API, the port is bound first: a port already taken stops the service
    before its scheduler has touched the database (raises OSError)."""
    settings = rt.settings
    listener = listening_socket(settings.http_host, settings.http_port) if with_api else None
    log_config = logging_config(settings.log_format)
    logging.config.dictConfig(log_config)
    dispatcher = Dispatcher(rt, build_senders(rt))
    scheduler, dispatch = build_scheduler(rt, dispatcher)
    email = (
        f"Maildir {settings.maildir}"
        if settings.email_backend == "maildir"
        else f"SMTP {settings.smtp_host}:{settings.smtp_port}"
    )
    log.info("email goes to %s; database %s", email, rt.engine.url.render_as_string())

    def start() -> None:
        scheduler.start()
        log.info("%d objects alive at start left out of garbage collection", freeze_startup_heap())

    if listener is not None:
        app = create_app(
            rt,
            on_start=start,
            on_stop=lambda: stop_scheduler(scheduler, dispatch),
            scheduler_running=lambda: bool(scheduler.running),
            wake=dispatch.wake,
        )
        log.info("API on http://%s:%d", settings.http_host, settings.http_port)
        # httptools parses HTTP in C: an eighth less server time per confirmation than
        # the pure-Python h11 (scripts/bench api).
        config = uvicorn.Config(app, http="httptools", log_config=log_config)
        # uvicorn raises the SIGINT it stopped on again once it has shut down.
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(config).run(sockets=[listener])
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    start()
    log.info("worker running (Ctrl-C stops)")
    stop.wait()
    stop_scheduler(scheduler, dispatch)
    log.info("worker stopped")
