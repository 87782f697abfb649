"""``/metrics``: the dashboard's figures in Prometheus text format.

A custom collector reads Redis at scrape time (prometheus-client's documented way to export
state kept elsewhere), so the figures are as fresh as the scrape and a dashboard restart
loses nothing. Its own registry keeps the process's default metrics out of it.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from dashboard import queries


class BulktagCollector:
    def __init__(self, conn: redis.Redis, trackers: queries.Trackers) -> None:
        self._conn = conn
        self._trackers = trackers

    def collect(self) -> Iterator[Metric]:
        conn = self._conn
        depth = GaugeMetricFamily(
            "bulktag_queue_depth", "Jobs waiting in the queue", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "bulktag_queue_oldest_job_age_seconds",
            "How long the job at the head of the queue has waited",
            labels=["queue"],
        )
        registry = GaugeMetricFamily(
            "bulktag_queue_registry_jobs",
            "Jobs in the queue's RQ registries",
            labels=["queue", "registry"],
        )
        for q in queries.queues(conn):
            depth.add_metric([q.name], q.depth)
            age.add_metric([q.name], q.oldest_age_s or 0.0)
            for name in ("started", "failed", "scheduled", "deferred"):
                registry.add_metric([q.name, name], getattr(q, name))
        yield from (depth, age, registry)

        outcomes = GaugeMetricFamily(
            "bulktag_campaign_outcomes",
            "Resources with a final outcome, per campaign and status (a retry lowers it)",
            labels=["campaign", "status"],
        )
        resources = GaugeMetricFamily(
            "bulktag_campaign_resources", "Resources in the campaign", labels=["campaign"]
        )
        for doc in queries.campaign_list(conn, self._trackers):
            resources.add_metric([doc["campaign_id"]], doc["resources"])
            for status, n in doc["by_status"].items():
                outcomes.add_metric([doc["campaign_id"], status], n)
        yield from (resources, outcomes)

        labels = ["provider", "location"]
        calls = CounterMetricFamily(
            "bulktag_provider_calls", "Provider calls granted by the shared limiter", labels=labels
        )
        throttles = CounterMetricFamily(
            "bulktag_provider_throttled", "Throttling answers from the provider", labels=labels
        )
        configured = GaugeMetricFamily(
            "bulktag_limiter_configured_rate", "Configured calls per second", labels=labels
        )
        rate = GaugeMetricFamily(
            "bulktag_limiter_rate", "Current adaptive calls per second", labels=labels
        )
        for row in queries.limits(conn, self._trackers):
            where = [row["provider"], row["location"]]
            calls.add_metric(where, row["calls_total"])
            throttles.add_metric(where, row["throttles_total"])
            configured.add_metric(where, row["configured"])
            rate.add_metric(where, row["rate"])
        yield from (calls, throttles, configured, rate)

        workers = GaugeMetricFamily("bulktag_workers", "RQ workers by state", labels=["state"])
        states: dict[str, int] = {"busy": 0, "idle": 0}
        for w in queries.workers(conn):
            states[w["state"]] = states.get(w["state"], 0) + 1
        for state, n in sorted(states.items()):
            workers.add_metric([state], n)
        yield workers


def registry_for(conn: redis.Redis, trackers: queries.Trackers) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BulktagCollector(conn, trackers))
    return registry
