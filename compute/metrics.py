"""Compute's Prometheus metrics (exposed by portal.metrics at /metrics).

Counted where the work commits, so a batch applied twice (a redelivered task) or a
transaction rolled back counts nothing: records and batches in `usage_batch_apply`
and `usage_batch_fail`, sync runs by the sync's task. States (a feed's health, pending
batches, open discrepancies) are read from the database when scraped, so every web
process shows the same answer whichever worker changed them."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection
from django.db.models import Count
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from compute.models import BATCH_PENDING, DataCenter, Discrepancy, UsageBatch

RECORDS = Counter(
    "suanli_usage_records_total",
    "Usage records in applied batches, by result and rejection code.",
    ["status", "code"],
)
BATCHES = Counter("suanli_usage_batches_total", "Usage batches that ended, by status.", ["status"])
BATCH_APPLY_SECONDS = Histogram(
    "suanli_usage_batch_apply_seconds",
    "Time to apply one usage batch (its transaction, commit included).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
SYNC_RUNS = Counter("suanli_feed_sync_runs_total", "Feed sync runs, by outcome.", ["outcome"])


def batch_applied(batch: UsageBatch, *, seconds: float) -> None:
    """After an application committed: its records by result, rejections by code."""
    BATCH_APPLY_SECONDS.observe(seconds)
    BATCHES.labels(batch.status).inc()
    if batch.accepted:
        RECORDS.labels("accepted", "").inc(batch.accepted)
    if batch.duplicate:
        RECORDS.labels("duplicate", "").inc(batch.duplicate)
    if batch.rejected:
        # Counted by PostgreSQL from the stored results (only for batches with
        # rejections): no 600 kB of JSON through Python.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT r -> 'error' ->> 'code', count(*) FROM compute_usagebatch b,"
                " jsonb_array_elements(b.results_json::jsonb) r"
                " WHERE b.id = %s AND r ->> 'status' = 'rejected' GROUP BY 1",
                [batch.pk],
            )
            for code, count in cursor.fetchall():
                RECORDS.labels("rejected", code or "unknown").inc(count)


def batch_failed() -> None:
    BATCHES.labels("failed").inc()


def sync_run_ended(outcome: str) -> None:
    SYNC_RUNS.labels(outcome).inc()


class ComputeCollector:
    """Read from the database at each scrape (a few small queries, on indexes):

    - `suanli_feed_healthy{data_center}`: 1 while the data center's last sync succeeded,
      0 after one failed; for active data centers that offer a feed;
    - `suanli_usage_batches_pending` and `suanli_usage_batch_oldest_pending_seconds`:
      batches queued or processing and how long the oldest has waited (the partial
      index of pending batches) — a stuck queue shows here whatever Redis says;
    - `suanli_discrepancies_open{kind}`: what the nightly reconciliation found and is
      not yet resolved.
    """

    def collect(self) -> Iterable[Metric]:
        yield self._feeds()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)"
                " FROM compute_usagebatch WHERE status IN (%s, %s)",
                list(BATCH_PENDING),
            )
            pending, oldest = cursor.fetchone()
        yield GaugeMetricFamily(
            "suanli_usage_batches_pending", "Usage batches queued or processing.", value=pending
        )
        yield GaugeMetricFamily(
            "suanli_usage_batch_oldest_pending_seconds",
            "Age of the oldest usage batch still queued or processing.",
            value=float(oldest),
        )
        open_ = GaugeMetricFamily(
            "suanli_discrepancies_open",
            "Reconciliation discrepancies not resolved, by kind.",
            labels=["kind"],
        )
        rows = (
            Discrepancy.objects.filter(resolved_at__isnull=True)
            .values_list("kind")
            .annotate(n=Count("id"))
            .order_by("kind")
        )
        for kind, n in rows:
            open_.add_metric([kind], n)
        yield open_

    @staticmethod
    def _feeds() -> Metric:
        family = GaugeMetricFamily(
            "suanli_feed_healthy",
            "Whether a data center's feed synced at its last run (1) or failed (0).",
            labels=["data_center"],
        )
        rows = (
            DataCenter.objects.filter(is_active=True)
            .exclude(feed_url="")
            .order_by("slug")
            .values_list("slug", "feed_healthy")
        )
        for slug, healthy in rows:
            family.add_metric([slug], 1 if healthy else 0)
        return family


def metrics_register() -> None:
    from portal.metrics import scrape_collector_add

    scrape_collector_add(ComputeCollector())
