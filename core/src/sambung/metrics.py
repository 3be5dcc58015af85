"""Prometheus series of the daemon, in one registry that the admin listener will serve."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

WEBHOOK_REQUESTS = Counter(
    "sambung_webhook_requests",
    "Webhook requests by connector and answer.",
    ["source_system", "outcome"],
    registry=REGISTRY,
)
WEBHOOK_SECONDS = Histogram(
    "sambung_webhook_duration_seconds",
    "Time from a webhook's body being read to its answer (commit included).",
    ["source_system"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
RECORDS_INGESTED = Counter(
    "sambung_records_ingested",
    "Records upserted, by connector, channel and what the upsert did.",
    ["source_system", "channel", "outcome"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "sambung_dead_letters",
    "New dead-letter entries by stage.",
    ["stage", "source_system"],
    registry=REGISTRY,
)


@lru_cache(maxsize=4096)
def child(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, cached: it sits on the per-request path, labels repeat."""
    return metric.labels(*labels)


# -- the seed's series, kept under their names so existing dashboards keep working -----------
SYNC_TOTAL = Counter(
    "integration_sync",
    "Syncs (one webhook, one poll run, one file) by connector and status (success, failure,"
    " needs_reauth).",
    ["source_system", "status"],
    registry=REGISTRY,
)
SYNC_SECONDS = Histogram(
    "integration_sync_duration_seconds",
    "Duration of one sync (one webhook, one poll run, one file), retries and commits included.",
    ["source_system"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 120.0, 300.0),
    registry=REGISTRY,
)

# -- polling ---------------------------------------------------------------------------------
POLL_LAG_SECONDS = Histogram(
    "sambung_poll_lag_seconds",
    "From a record's change time at the vendor to its commit here.",
    ["source_system"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
    registry=REGISTRY,
)

# -- the outbox ------------------------------------------------------------------------------
DELIVERIES = Counter(
    "sambung_deliveries",
    "Delivery attempts by sink and result (delivered, retry, rejected, dead, gone, paused).",
    ["sink", "result"],
    registry=REGISTRY,
)
OUTBOX_PENDING = Gauge(
    "sambung_outbox_pending",
    "Outbox rows waiting for delivery, by sink.",
    ["sink"],
    registry=REGISTRY,
)
OUTBOX_OLDEST_AGE = Gauge(
    "sambung_outbox_oldest_pending_age_seconds",
    "Age of the oldest outbox row still waiting for delivery, by sink (0 when none).",
    ["sink"],
    registry=REGISTRY,
)
SINK_DISABLED = Gauge(
    "sambung_sink_disabled",
    "1 while a sink is disabled (its receiver answered 410 Gone), else 0.",
    ["sink"],
    registry=REGISTRY,
)
SINK_PAUSED_UNTIL = Gauge(
    "sambung_sink_paused_until_seconds",
    "Unix time until which a sink is paused (a destination's quota is used up), else 0.",
    ["sink"],
    registry=REGISTRY,
)
