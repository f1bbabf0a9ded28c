"""Pulling usage from data centers' feeds (docs/api.md, "The feed a data center offers").

A run pages through the feed from the stored cursor. Each page is stored as a usage batch
(source `pull`) — the same pipeline as pushed batches, so the `(data center, record_id)`
key makes a record pulled twice, or both pulled and pushed, count once — and the cursor
advances in the same transaction as the page is stored: a crash between pages loses
nothing and repeats nothing. Network errors, timeouts, 5xx and malformed pages are
retried with exponential backoff and jitter; after the limit the data center is marked
unhealthy (shown to its operators and the city's staff) until a run succeeds.

Two runs for one data center never overlap: a run holds a PostgreSQL session advisory
lock for its data center, and a second one records itself as skipped.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from compute.ingest import MAX_RECORDS, BatchBody, usage_batch_receive
from compute.models import (
    BatchSource,
    DataCenter,
    Redemption,
    RedemptionStatus,
    SyncOutcome,
    SyncRun,
)
from compute.services import redemption_accept, redemption_close, redemption_reject
from portal.errors import DomainError

_LOCK_NAMESPACE = 0x5A3


class FeedError(Exception):
    """A page could not be fetched or understood (retryable)."""


@dataclass(frozen=True)
class SyncPolicy:
    page_size: int = 500
    timeout: float = 10.0
    attempts: int = 5  # per page, before the run fails and the data center is unhealthy
    backoff: float = 1.0  # seconds; doubled per attempt, with full jitter
    max_pages: int = 1000  # per run; the next run continues from the cursor

    @classmethod
    def from_settings(cls) -> SyncPolicy:
        return cls(**getattr(settings, "FEED_SYNC", {}))


def _fetch(client: httpx.Client, dc: DataCenter, cursor: str, policy: SyncPolicy) -> dict:
    try:
        response = client.get(
            dc.feed_url,
            params={"cursor": cursor, "limit": policy.page_size},
            headers={"Authorization": f"Bearer {dc.feed_token}"},
            timeout=policy.timeout,
        )
    except httpx.HTTPError as error:
        raise FeedError(f"{type(error).__name__}: {error}") from error
    if response.status_code >= 500:
        raise FeedError(f"HTTP {response.status_code}")
    if response.status_code != 200:
        raise FeedError(f"HTTP {response.status_code}: {response.text[:200]}")
    try:
        # Exact decimals, never floats: the records' numbers are money.
        page = json.loads(response.content, parse_float=Decimal)
    except (ValueError, RecursionError) as error:
        raise FeedError("the page is not valid JSON") from error
    if (
        not isinstance(page, dict)
        or not isinstance(page.get("records", []), list)
        or not isinstance(page.get("redemptions", []), list)
        or not isinstance(page.get("next_cursor"), str)
        or not isinstance(page.get("has_more"), bool)
        or len(page.get("records", [])) > MAX_RECORDS
    ):
        raise FeedError("the page does not have the feed's shape")
    return page


def _fetch_with_retries(
    client: httpx.Client, dc: DataCenter, cursor: str, policy: SyncPolicy, rng: random.Random
) -> dict:
    for attempt in range(policy.attempts):
        try:
            return _fetch(client, dc, cursor, policy)
        except FeedError:
            if attempt + 1 == policy.attempts:
                raise
            # Exponential backoff with full jitter: many workers do not retry in step.
            time.sleep(rng.uniform(0, policy.backoff * 2**attempt))
    raise AssertionError("unreachable")


def _apply_redemption_changes(dc: DataCenter, changes: list[Any]) -> None:
    actions = {
        "active": lambda r, c: redemption_accept(
            redemption=r, data_center=dc, contract_ref=c.get("contract_ref") or ""
        ),
        "rejected": lambda r, c: redemption_reject(
            redemption=r, data_center=dc, reason=c.get("reason") or "rejected in the feed"
        ),
        "closed": lambda r, c: redemption_close(redemption=r, actor=None, reason="closed in feed"),
    }
    for change in changes:
        if not isinstance(change, dict) or change.get("status") not in actions:
            continue
        redemption = Redemption.objects.filter(data_center=dc, pk=change.get("id")).first()
        if redemption is None or redemption.status == change["status"]:
            continue  # unknown (or another data center's) id, or already applied
        if change["status"] == "closed" and redemption.status != RedemptionStatus.ACTIVE:
            continue
        try:
            actions[change["status"]](redemption, change)
        except DomainError:
            continue  # e.g. accepting one the company cancelled meanwhile


def _store_page(dc: DataCenter, page: dict) -> int:
    """Store one page and advance the cursor, atomically."""
    with transaction.atomic():
        _apply_redemption_changes(dc, page.get("redemptions", []))
        records = page.get("records", [])
        if records:
            # Records seen before (a page fetched again, a record both pushed and
            # pulled) are found by the batch's apply as duplicates, never charged twice.
            usage_batch_receive(
                data_center=dc, body=BatchBody.of_records(records), source=BatchSource.PULL
            )
        DataCenter.objects.filter(pk=dc.pk).update(feed_cursor=page["next_cursor"])
    dc.feed_cursor = page["next_cursor"]
    return len(records)


def feed_sync(*, data_center_id: int, policy: SyncPolicy | None = None) -> SyncRun:
    """One sync run of one data center's feed."""
    policy = policy or SyncPolicy.from_settings()
    dc = DataCenter.objects.get(pk=data_center_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_NAMESPACE, dc.pk])
        locked = cursor.fetchone()[0]
    if not locked:
        return SyncRun.objects.create(
            data_center=dc, outcome=SyncOutcome.SKIPPED, finished_at=timezone.now()
        )
    try:
        return _run(dc, policy)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_NAMESPACE, dc.pk])


def _run(dc: DataCenter, policy: SyncPolicy) -> SyncRun:
    run = SyncRun.objects.create(data_center=dc)
    rng = random.Random()  # noqa: S311 - jitter, not a secret
    try:
        with httpx.Client() as client:
            while run.pages < policy.max_pages:
                cursor = dc.feed_cursor
                page = _fetch_with_retries(client, dc, cursor, policy, rng)
                run.records += _store_page(dc, page)
                run.pages += 1
                SyncRun.objects.filter(pk=run.pk).update(pages=run.pages, records=run.records)
                if not page["has_more"]:
                    break
    except FeedError as error:
        run.outcome, run.error = SyncOutcome.FAILED, str(error)[:2000]
        DataCenter.objects.filter(pk=dc.pk).update(
            feed_healthy=False, feed_error=str(error)[:500], feed_checked_at=timezone.now()
        )
    else:
        run.outcome = SyncOutcome.OK
        DataCenter.objects.filter(pk=dc.pk).update(
            feed_healthy=True, feed_error="", feed_checked_at=timezone.now()
        )
    run.finished_at = timezone.now()
    run.save(update_fields=["outcome", "error", "finished_at", "pages", "records"])
    return run


def data_centers_to_sync() -> list[int]:
    return list(
        DataCenter.objects.filter(is_active=True, registrations__status="active")
        .exclude(feed_url="")
        .distinct()
        .values_list("pk", flat=True)
    )
