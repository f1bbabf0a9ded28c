"""Pulling usage from data centers' feeds (docs/api.md, "The feed a data center offers").

A run pages through the feed from the stored cursor. Each page is stored as a usage batch
(source `pull`) — the same pipeline as pushed batches, so the `(data center, record_id)`
key makes a record pulled twice, or both pulled and pushed, count once — and the cursor
advances in the same transaction as the page is stored: a crash between pages loses
nothing and repeats nothing. Network errors, timeouts, 5xx and malformed pages are
retried with exponential backoff and jitter; after the limit the data center is marked
unhealthy (shown to its operators and the city's staff) until a run succeeds.

A feed is another party's server, so nothing it does may hold a worker or its memory:
each page has a total deadline (`SyncPolicy.page_deadline`, enforced by cutting the
connection, whatever the server trickles) and a size limit (`FEED_MAX_PAGE_BYTES`,
counted as the body is read and after decompression, never trusting Content-Length).

Two runs for one data center never overlap: a run holds a PostgreSQL session advisory
lock for its data center, and a second one records itself as skipped.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
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
from portal.audit import SYSTEM
from portal.errors import DomainError
from portal.locks import FEED_SYNC

_LOCK_NAMESPACE = FEED_SYNC  # registered in portal.locks


class FeedError(Exception):
    """A page could not be fetched or understood (retryable)."""


# A page of 500 records is ~150 kB; anything near this is not a feed page.
MAX_PAGE_BYTES = 20 * 1024 * 1024
# What a non-200 answer may contribute to the error shown to people.
_ERROR_BODY_BYTES = 200


@dataclass(frozen=True)
class SyncPolicy:
    page_size: int = 500
    timeout: float = 10.0  # per connect and per read (httpx's timeouts)
    # Per page attempt, from connecting to the last byte. With `attempts` and `backoff`
    # it bounds a run stuck on one page: 5 x 30 s + 15 s, within the task's time limit.
    page_deadline: float = 30.0
    max_page_bytes: int = MAX_PAGE_BYTES  # the body as decoded (gzip counts unpacked)
    attempts: int = 5  # per page, before the run fails and the data center is unhealthy
    backoff: float = 1.0  # seconds; doubled per attempt, with full jitter
    max_pages: int = 1000  # per run; the next run continues from the cursor

    @classmethod
    def from_settings(cls) -> SyncPolicy:
        values = {"max_page_bytes": getattr(settings, "FEED_MAX_PAGE_BYTES", MAX_PAGE_BYTES)}
        values.update(getattr(settings, "FEED_SYNC", {}))
        return cls(**values)


def _cut(sock: socket.socket) -> None:
    # The base class's method, also for a TLS socket: only the connection is shut down
    # (waking a read blocked on it in another thread); SSLSocket.shutdown would also
    # drop the TLS state that read is using. Closed meanwhile: nothing to cut.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Deadline:
    """A hard bound on each page's fetch. httpx's timeout bounds every connect and read,
    not their sum: a server that sends a byte just often enough (headers or body) would
    hold the page for ever. At the deadline every connection the client opened is shut
    down, which ends a read blocked on it; the fetch then fails like any broken
    connection. Sockets are learnt from httpcore's `trace` extension; one `_Deadline`
    per client, since its connections are kept alive from page to page."""

    def __init__(self) -> None:
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._generation = 0  # a timer of an earlier page, firing late, cuts nothing
        self.expired = False

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if not event.endswith(("connect_tcp.complete", "start_tls.complete")):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:
            return
        with self._lock:
            # A socket wrapped for TLS is detached (fileno -1); its TLS socket follows.
            self._sockets = [s for s in self._sockets if s.fileno() != -1]
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _cut(sock)

    def _expire(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _cut(sock)

    @contextmanager
    def within(self, seconds: float) -> Iterator[None]:
        with self._lock:
            self._generation += 1
            self.expired = False
            timer = threading.Timer(seconds, self._expire, args=(self._generation,))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            with self._lock:
                self._generation += 1


def _read_bounded(response: httpx.Response, limit: int, deadline: _Deadline) -> bytes:
    """The body as decoded, failing as soon as it exceeds `limit` bytes. Read raw and
    decompressed here, with a cap on each step's output: httpx would inflate a whole
    received chunk at once (a gzip bomb turns 64 kB into 64 MB)."""
    length = response.headers.get("Content-Length", "").strip()
    if length.isdigit() and int(length) > limit:
        raise FeedError(f"the page is larger than {limit} bytes (Content-Length {length})")
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        decoder = None
    elif encoding in ("gzip", "x-gzip", "deflate"):
        decoder = zlib.decompressobj(wbits=32 + zlib.MAX_WBITS)  # gzip or zlib header
    else:
        raise FeedError(f"the page has an unsupported Content-Encoding {encoding!r}")
    parts: list[bytes] = []
    size = 0
    try:
        for raw in response.iter_raw():
            # At most one byte over the limit: a smaller output means the input is used up.
            part = decoder.decompress(raw, limit - size + 1) if decoder else raw
            size += len(part)
            if size > limit:
                raise FeedError(f"the page is larger than {limit} bytes")
            if deadline.expired:
                break  # the read that follows fails; this says why
            parts.append(part)
    except zlib.error as error:
        raise FeedError(f"the page is not valid {encoding}: {error}") from error
    return b"".join(parts)


def _error_detail(response: httpx.Response) -> str:
    """The start of a refusal's body, for people to read (not all of it: it may be huge)."""
    if response.headers.get("Content-Encoding", "identity").strip().lower() not in (
        "",
        "identity",
    ):
        return "(compressed body)"
    prefix = b""
    for raw in response.iter_raw():
        prefix += raw
        if len(prefix) >= _ERROR_BODY_BYTES:
            break
    return prefix[:_ERROR_BODY_BYTES].decode("utf-8", "replace")


def _fetch(
    client: httpx.Client, dc: DataCenter, cursor: str, policy: SyncPolicy, deadline: _Deadline
) -> dict:
    try:
        with (
            deadline.within(policy.page_deadline),
            client.stream(
                "GET",
                dc.feed_url,
                params={"cursor": cursor, "limit": policy.page_size},
                headers={"Authorization": f"Bearer {dc.feed_token}", "Accept-Encoding": "gzip"},
                timeout=min(policy.timeout, policy.page_deadline),
                extensions={"trace": deadline.trace},
            ) as response,
        ):
            if response.status_code >= 500:
                raise FeedError(f"HTTP {response.status_code}")
            if response.status_code != 200:
                raise FeedError(f"HTTP {response.status_code}: {_error_detail(response)}")
            content = _read_bounded(response, policy.max_page_bytes, deadline)
            if deadline.expired:
                raise FeedError(f"the page took longer than {policy.page_deadline:g} s")
    except httpx.HTTPError as error:
        if deadline.expired:
            raise FeedError(f"the page took longer than {policy.page_deadline:g} s") from error
        raise FeedError(f"{type(error).__name__}: {error}") from error
    try:
        # Exact decimals, never floats: the records' numbers are money.
        page = json.loads(content, parse_float=Decimal)
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
    client: httpx.Client,
    dc: DataCenter,
    cursor: str,
    policy: SyncPolicy,
    rng: random.Random,
    deadline: _Deadline,
) -> dict:
    for attempt in range(policy.attempts):
        try:
            return _fetch(client, dc, cursor, policy, deadline)
        except FeedError:
            if attempt + 1 == policy.attempts:
                raise
            # Exponential backoff with full jitter: many workers do not retry in step.
            time.sleep(rng.uniform(0, policy.backoff * 2**attempt))
    raise AssertionError("unreachable")


def _apply_redemption_changes(dc: DataCenter, changes: list[Any]) -> None:
    actions = {
        "active": lambda r, c: redemption_accept(
            redemption=r, data_center=dc, contract_ref=c.get("contract_ref") or "", actor=SYSTEM
        ),
        "rejected": lambda r, c: redemption_reject(
            redemption=r,
            data_center=dc,
            reason=c.get("reason") or "rejected in the feed",
            actor=SYSTEM,
        ),
        "closed": lambda r, c: redemption_close(
            redemption=r, actor=SYSTEM, reason="closed in feed"
        ),
    }
    for change in changes:
        if not isinstance(change, dict) or change.get("status") not in actions:
            continue
        redemption = Redemption.objects.filter(data_center=dc, pk=change.get("id")).first()  # type: ignore[misc]
        if redemption is None or redemption.status == change["status"]:
            continue  # unknown (or another data center's) id, or already applied
        if change["status"] == "closed" and redemption.status != RedemptionStatus.ACTIVE:
            continue
        try:
            actions[change["status"]](redemption, change)
        except DomainError:
            continue  # e.g. accepting one the company cancelled meanwhile


def _store_page(dc: DataCenter, page: dict) -> int:
    """Store one page and advance the cursor.

    Each redemption change commits on its own first: its transition writes its city's
    audit event, after which nothing may be locked in that transaction (portal/locks.py;
    one transaction for the page took redemption → audit lock → the next redemption,
    of another city perhaps, → … → the data center row). Changes are idempotent (one
    already applied is skipped), so a page fetched again after a crash applies only
    what is missing; its records and the cursor then go in together, atomically."""
    _apply_redemption_changes(dc, page.get("redemptions", []))
    with transaction.atomic():
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
        # One per client: it cuts the client's connections, kept alive across pages.
        deadline = _Deadline()
        with httpx.Client() as client:
            while run.pages < policy.max_pages:
                cursor = dc.feed_cursor
                page = _fetch_with_retries(client, dc, cursor, policy, rng, deadline)
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
