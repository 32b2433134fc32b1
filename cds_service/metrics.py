"""Prometheus metrics, correct under gunicorn with several workers.

``dip-cds serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` to a fresh temp dir before this module is
imported, so every worker writes its samples there and ``/metrics`` aggregates all workers.
In-process (tests, ``flask run``) the default registry is used.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

if os.environ.get(MULTIPROC_ENV):
    # prometheus_client picks its value class when first imported; another module may have
    # imported it before ``dip-cds serve`` set the directory, so pick again (file-backed values).
    from prometheus_client import values as _values

    _values.ValueClass = _values.get_value_class()

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Counter("dip_cds_requests_total", "CDS Hooks HTTP requests", ["service", "endpoint", "status"])
LATENCY = Histogram(
    "dip_cds_request_seconds",
    "Request latency per service",
    ["service", "endpoint"],
    buckets=_LATENCY_BUCKETS,
)
PREFETCH = Counter("dip_cds_prefetch_fetches_total", "Prefetch fetches from the FHIR server", ["outcome"])
PREFETCH_LATENCY = Histogram(
    "dip_cds_prefetch_fetch_seconds", "Latency of prefetch fetches", ["outcome"], buckets=_LATENCY_BUCKETS
)
CARDS = Counter("dip_cds_cards_total", "Cards returned", ["service", "indicator"])
INVALID_CARDS = Counter(
    "dip_cds_invalid_cards_total", "Cards dropped because a handler built them wrong", ["service"]
)
AUTH_FAILURES = Counter("dip_cds_auth_failures_total", "Rejected JWTs", ["reason"])
EVENT_FAILURES = Counter(
    "dip_cds_event_subscriber_failures_total", "Event subscribers that raised", ["event", "plugin"]
)
FEEDBACK = Counter("dip_cds_feedback_total", "Feedback items received", ["service", "outcome", "stored"])


def observe_request(service: str, endpoint: str, status: int, seconds: float) -> None:
    REQUESTS.labels(service, endpoint, str(status)).inc()
    LATENCY.labels(service, endpoint).observe(seconds)


def observe_prefetch(outcome: str, seconds: float) -> None:
    PREFETCH.labels(outcome).inc()
    PREFETCH_LATENCY.labels(outcome).observe(seconds)


def observe_cards(service: str, cards: list[dict]) -> None:
    for card in cards:
        CARDS.labels(service, str(card.get("indicator", "unknown"))).inc()


def exposition() -> tuple[bytes, str]:
    """The text exposition of all metrics (aggregated across workers in multiprocess mode)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """gunicorn ``child_exit`` hook: drop a dead worker's live gauges."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
