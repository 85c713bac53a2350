"""Running the service: wires the runtime to the scheduler and (optionally) the HTTP API."""

from __future__ import annotations

import signal
import threading

from reminders.runtime import Runtime


def run_server(runtime: Runtime, *, with_api: bool) -> None:
    """Run until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print("reminders: database ready; delivery is not built yet, idling (Ctrl-C stops)")
    stop.wait()
    print("reminders: stopped")
