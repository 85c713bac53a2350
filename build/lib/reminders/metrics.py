"""What the service counts as it works, for /metrics (Prometheus).

Counters and histograms live in this process's `REGISTRY`, next to the process's own
metrics; gauges of what the tables hold are read at each scrape
(`services.metrics.TableGauges`).
"""

from __future__ import annotations

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
)

REGISTRY = CollectorRegistry()
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

DELIVERIES = Counter(
    "reminders_deliveries",
    "Delivery attempts recorded, by channel, kind and the state they left the delivery in.",
    ["channel", "kind", "result"],
    registry=REGISTRY,
)
LATENESS = Histogram(
    "reminders_delivery_lateness_seconds",
    "How long after it was due a delivery was sent.",
    ["channel"],
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 6 * 3600),
    registry=REGISTRY,
)
SEND_SECONDS = Histogram(
    "reminders_send_duration_seconds",
    "Time a channel took to send one message (an email's share of its batch).",
    ["channel"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 30),
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "reminders_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
    registry=REGISTRY,
)
