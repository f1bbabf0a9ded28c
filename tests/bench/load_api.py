"""Load test of the data-center API: many data centers' billing systems at once, behind
the production server, and the accounting checked to the cent afterwards.

Seeds a database of its own (a city, a program, N vouchers each with an active
redemption at every one of several data centers, one API key per data center), starts
gunicorn (gthread workers) and Celery worker processes, and runs C concurrent clients
for S seconds over real HTTP. Each client is one billing system of one data center: it
pushes batches of usage records and mixes in what real clients do — exact repeats of
earlier batches (same Idempotency-Key and bytes: the first batch must come back),
records sent again in new batches (duplicates), a record_id sent again with other
content (conflicts), voids of records it had accepted, invalid records, records for
vouchers it may not charge — and polls its batches until they are done. From the
results it reads it keeps its own tally, per voucher, of what it expects charged, and
checks every record's outcome against what it sent.

After the push phase it waits until every batch is done, then prints accepted records/s,
p50/p99 latency per endpoint and the HTTP statuses, and checks the accounting: per
voucher, the count and covered sum of accepted (not voided) records in the database
equal the clients' tallies; every record is stored exactly as the clients saw it
accepted or voided and no other; no balance below zero; balance = face value − covered
sum; each redemption's covered_total matches its records; `ledger_verify` is clean.
Exits non-zero if the accounting does not balance, any request got a 5xx, a transport
error or a status the client did not expect, or a batch did not finish.

    make load                      # 60 s, 50 clients (DATABASE_URL / REDIS_URL optional)
    .venv/bin/python tests/bench/load_api.py --seconds 20 --clients 10

Uses DATABASE_URL's server with a database of its own (`<name>_load`, recreated), and
REDIS_URL for the broker and the rate limits (a queue of its own). The API rate limit is
lifted for the run (`API_RATE_LIMIT`): 50 clients of a few data centers would otherwise
be measuring 429s. tests/compute/test_load_short.py runs it for 10 s in the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from portal.audit import SYSTEM

ROOT = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")
CENT = Decimal("0.01")
RATE_DOMESTIC = Decimal("0.30")
RATE_OTHER = Decimal("0.20")
LARGE_FACE = Decimal("1000000.00")
# One voucher in ten is small, so vouchers run out under load (covered amounts partial
# or zero) and voids bring them back: the paths where balances are easiest to get wrong.
SMALL_FACE = Decimal("300.00")
UNKNOWN_VOUCHER = "ZZ-26-0000-0000"

# Endpoints as the latency table names them.
NEW = "POST /usage/batches (new)"
REPEAT = "POST /usage/batches (repeat)"
REUSED = "POST /usage/batches (key reused)"
POLL = "GET /usage/batches/{id}"
VOID = "POST /usage/records/{id}/void"
ENDPOINTS = (NEW, REPEAT, REUSED, POLL, VOID)
# What a client does besides pushing new batches, and how often (the rest: new batches).
RARE_ACTIONS = (
    ("repeat", 0.08),  # an earlier batch again, same key and bytes: 200, the first batch
    ("reuse", 0.02),  # an earlier key with another body: 409
    ("void", 0.16),  # void a record it saw accepted: 200
    ("void again", 0.02),  # void a void record: 409
    ("void unknown", 0.01),  # void a record_id never sent: 404
)


@dataclass
class LoadConfig:
    seconds: float = 60
    clients: int = 50
    data_centers: int = 5
    vouchers: int = 1000
    web_workers: int = 3
    web_threads: int = 4
    # One more than the cores, as the benchmark found best (docs/performance.md).
    celery_workers: int = (os.cpu_count() or 1) + 1
    max_batch: int = 100  # records per new batch: 1 to this
    max_pending: int = 3  # batches a client has in flight before it waits for them
    drain_timeout: float = 300  # after the push phase, the most to wait for the batches
    seed: int = 16


# --- the database ---------------------------------------------------------------------------


@dataclass
class Seeded:
    data_centers: list[tuple[int, str, str]]  # (id, slug, raw API key)
    codes: list[str]  # vouchers redeemed at every data center
    unredeemed: list[str]  # vouchers of the city redeemed nowhere: not_authorized
    valid_from: date
    program_id: int


def seed(config: LoadConfig) -> Seeded:
    """A city, a program, the vouchers and their redemptions, the data centers and a
    key each, through the same services the portal uses (bulk rows where no service
    exists: redemptions are accepted by the data center in real life)."""
    from compute.models import DataCenter, Redemption, RedemptionStatus, Registration
    from compute.services import api_key_issue
    from portal.models import City
    from vouchers.ledger import voucher_issue
    from vouchers.models import Company, Program

    small = max(1, config.vouchers // 10)
    city = City.objects.create(slug="load", code="LD", name_zh="负载市", name_en="Load")
    program = Program.objects.create(
        city=city,
        slug="load",
        name_zh="负载测试",
        name_en="Load test",
        status="open",
        budget=LARGE_FACE * (config.vouchers + 10),
        award_min=Decimal("1"),
        award_max=LARGE_FACE,
        rate_domestic=RATE_DOMESTIC,
        rate_other=RATE_OTHER,
    )
    company = Company.objects.create(legal_name="负载测试公司", credit_code="91110000000000016X")
    # Valid since 60 days ago (a year from then): usage ending in the last 30 days is
    # inside the validity, and nothing need end in the future.
    valid_from = datetime.now(SHANGHAI).date() - timedelta(days=60)
    vouchers = [
        voucher_issue(
            program=program,
            company=company,
            amount=SMALL_FACE if i < small else LARGE_FACE,
            actor=SYSTEM,
            valid_from=valid_from,
        )
        for i in range(config.vouchers + 3)
    ]
    redeemed, unredeemed = vouchers[: config.vouchers], vouchers[config.vouchers :]
    data_centers = []
    for n in range(config.data_centers):
        dc = DataCenter.objects.create(
            slug=f"load-{n}",
            name_zh=f"负载{n}",
            name_en=f"Load {n}",
            operator="load",
            hub="guizhou",
            cluster="load",
        )
        dc.programs.add(program)
        Registration.objects.create(city=city, data_center=dc, starts_on=valid_from)
        Redemption.objects.bulk_create(
            Redemption(
                voucher=v, data_center=dc, contract_ref=f"L-{n}", status=RedemptionStatus.ACTIVE
            )
            for v in redeemed
        )
        _key, raw = api_key_issue(data_center=dc, actor=SYSTEM)
        data_centers.append((dc.pk, dc.slug, raw))
    return Seeded(
        data_centers=data_centers,
        codes=[v.code for v in redeemed],
        unredeemed=[v.code for v in unredeemed],
        valid_from=valid_from,
        program_id=program.pk,
    )


# --- statistics -----------------------------------------------------------------------------


@dataclass
class Stats:
    """Every request's latency and status, per endpoint. The clients share one event
    loop, so no lock is needed."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter = field(default_factory=Counter)  # (endpoint, status)
    unexpected: Counter = field(default_factory=Counter)  # (endpoint, status)
    transport: Counter = field(default_factory=Counter)  # (endpoint, exception name)
    examples: list[str] = field(default_factory=list)  # unexpected answers, in full

    def note(self, endpoint: str, status: int, seconds: float, expected: bool, detail: str):
        self.latencies[endpoint].append(seconds)
        self.statuses[endpoint, status] += 1
        if not expected:
            self.unexpected[endpoint, status] += 1
            if len(self.examples) < 20:
                self.examples.append(detail)

    @property
    def server_errors(self) -> int:
        return sum(n for (_e, status), n in self.statuses.items() if status >= 500)


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]


# --- one data center's billing system -------------------------------------------------------


@dataclass
class Known:
    """A record this client saw accepted, as it sent it."""

    record: dict
    covered: Decimal
    voided: bool = False


@dataclass
class Sent:
    """One record of a batch and what the client expects back for it."""

    kind: str  # fresh | duplicate | conflict | invalid | unknown_voucher | not_authorized
    # | outside_validity | repeat_duplicate | repeat_conflict (in-batch repeats)
    record_id: str | None
    record: dict | None = None  # fresh records, to remember once accepted
    covered: Decimal | None = None  # duplicates: the covered amount that must come back
    first: int | None = None  # in-batch repeats: the position of the first occurrence


@dataclass
class Pending:
    batch_id: int
    sent: list[Sent]
    next_poll: float
    interval: float = 0.2


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _share(record: dict) -> Decimal:
    rate = RATE_DOMESTIC if record["domestic"] else RATE_OTHER
    return (Decimal(record["amount"]) * rate).quantize(CENT, ROUND_HALF_UP)


class Client:
    def __init__(
        self,
        index: int,
        dc: tuple[int, str, str],
        seeded: Seeded,
        config: LoadConfig,
        stats: Stats,
        base_url: str,
        run: str,
    ):
        import httpx

        self.index = index
        self.dc_id, self.dc_slug, key = dc
        self.seeded = seeded
        self.config = config
        self.stats = stats
        self.rng = random.Random(config.seed * 1000 + index)
        self.prefix = f"{run}-c{index:02d}"
        self.seq = 0
        self.http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {key}", "Accept-Language": "en"},
            timeout=120,
            limits=httpx.Limits(max_connections=1),  # one connection, as one system has
        )
        self.known: dict[str, Known] = {}
        self.known_ids: list[str] = []  # for random choice
        self.voidable: list[str] = []  # known and not voided
        self.voided: list[str] = []
        self.posted: list[tuple[str, bytes, int]] = []  # (Idempotency-Key, body, batch id)
        self.pending: dict[int, Pending] = {}
        self.tally: dict[str, list] = defaultdict(lambda: [0, Decimal(0)])  # code: [n, sum]
        self.sent_kinds: Counter = Counter()
        self.problems: list[str] = []
        self.untried = {action for action, _share in RARE_ACTIONS}
        self.accepted = 0

    # HTTP ------------------------------------------------------------------------------

    async def request(
        self, endpoint, method, url, *, body=None, headers=None, expect=(200,), on_retry=()
    ):
        """One request, retried (same bytes, same key) after a transport error, a 5xx
        or a 429, as api.md tells clients to. Every attempt is counted; a status not in
        `expect` (nor, on a retry, in `on_retry`) is an unexpected answer. Returns
        (response or None, whether it was retried)."""
        import httpx

        if body is not None:
            headers = {"Content-Type": "application/json", **(headers or {})}
        for attempt in range(4):
            start = time.perf_counter()
            try:
                response = await self.http.request(method, url, content=body, headers=headers)
            except httpx.TransportError as exc:
                self.stats.transport[endpoint, type(exc).__name__] += 1
                if len(self.stats.examples) < 20:
                    self.stats.examples.append(f"{method} {url}: {type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5 * 2**attempt)
                continue
            seconds = time.perf_counter() - start
            status = response.status_code
            ok = status in expect or (attempt > 0 and status in on_retry)
            detail = ""
            if not ok:
                sent = (body or b"")[:600].decode(errors="replace")
                detail = (
                    f"{method} {url} [{self.dc_slug}] {headers or ''} {sent!r} -> "
                    f"{status} {response.text[:600]!r}"
                )
            self.stats.note(endpoint, status, seconds, ok, detail)
            if status >= 500 or status == 429:
                wait = float(response.headers.get("Retry-After", 0) or 0) if status == 429 else 0
                await asyncio.sleep(max(wait, 0.5 * 2**attempt))
                continue
            return response, attempt > 0
        return None, True

    # records ---------------------------------------------------------------------------

    def _record_id(self) -> str:
        self.seq += 1
        return f"{self.prefix}-{self.seq:07d}"

    def _usage(self, record_id: str, voucher: str, ended: datetime | None = None) -> dict:
        rng = self.rng
        if ended is None:
            # Ended between 10 minutes and 30 days ago: never in the future, always
            # inside the vouchers' validity (from 60 days ago).
            ended = datetime.now(UTC) - timedelta(seconds=rng.randint(600, 30 * 86400))
        started = ended - timedelta(seconds=rng.randint(1800, 12 * 3600))
        zone = UTC if rng.random() < 0.05 else SHANGHAI  # some clients speak UTC
        domestic = rng.random() < 0.7
        return {
            "record_id": record_id,
            "voucher": voucher,
            "started_at": started.astimezone(zone).isoformat(timespec="seconds"),
            "ended_at": ended.astimezone(zone).isoformat(timespec="seconds"),
            "resource": "Ascend 910B" if domestic else "NVIDIA H20",
            "domestic": domestic,
            "quantity": f"{rng.randint(1, 200_000) / 1000:.3f}",
            "amount": _money(rng.randint(0, 200_000)),
        }

    def _fresh(self) -> tuple[dict, Sent]:
        record = self._usage(self._record_id(), self.rng.choice(self.seeded.codes))
        return record, Sent("fresh", record["record_id"], record=record)

    def _invalid(self) -> dict:
        """A record the worker must reject `invalid`, one way or another."""
        record = self._usage(self._record_id(), self.rng.choice(self.seeded.codes))
        way = self.rng.randrange(10)
        if way == 0:
            record["quantity"] = "0.000"
        elif way == 1:
            record["started_at"], record["ended_at"] = record["ended_at"], record["started_at"]
        elif way == 2:  # ends two days after it is reported
            end = datetime.now(SHANGHAI) + timedelta(days=2)
            record["started_at"] = (end - timedelta(hours=3)).isoformat(timespec="seconds")
            record["ended_at"] = end.isoformat(timespec="seconds")
        elif way == 3:
            record["amount"] = "12.345"
        elif way == 4:
            record["note"] = "not a field"
        elif way == 5:
            record["record_id"] = f"bad id {self.seq}"
        elif way == 6:
            del record["resource"]
        elif way == 7:
            record["amount"] = float("nan")  # json.dumps writes NaN, as some encoders do
        elif way == 8:
            record["ended_at"] = record["ended_at"][:19]  # no offset
        else:
            record["domestic"] = "yes"
        return record

    def _batch(self) -> tuple[list[dict], list[Sent]]:
        rng = self.rng
        size = rng.randint(1, self.config.max_batch)
        records: list[dict] = []
        sent: list[Sent] = []
        clean = rng.random() < 0.4  # only fresh records: the API's common, fast path
        # A known record at most once a batch: sent as a duplicate after a conflict in
        # the same batch, it would be an in-batch repeat with other content (conflict).
        taken: set[str] = set()

        def known_one() -> Known | None:
            record_id = rng.choice(self.known_ids) if self.known_ids else None
            if record_id is None or record_id in taken:
                return None
            taken.add(record_id)
            return self.known[record_id]

        for _ in range(size):
            roll = 0.0 if clean else rng.random()
            fresh_here = [i for i in range(len(sent)) if sent[i].kind == "fresh"][-20:]
            if roll < 0.66:
                record, s = self._fresh()
            elif roll < 0.76 and (known := known_one()):  # sent again as it was
                record = known.record
                s = Sent("duplicate", record["record_id"], covered=known.covered)
            elif roll < 0.81 and (known := known_one()):  # sent again with other content
                record = {**known.record, "amount": _money(rng.randint(200_001, 300_000))}
                s = Sent("conflict", record["record_id"])
            elif roll < 0.87:
                record = self._invalid()
                s = Sent("invalid", record.get("record_id"))
            elif roll < 0.89:
                record = self._usage(self._record_id(), UNKNOWN_VOUCHER)
                s = Sent("unknown_voucher", record["record_id"])
            elif roll < 0.91:
                record = self._usage(self._record_id(), rng.choice(self.seeded.unredeemed))
                s = Sent("not_authorized", record["record_id"])
            elif roll < 0.93:
                before = datetime.combine(
                    self.seeded.valid_from - timedelta(days=3), datetime.min.time(), SHANGHAI
                )
                record = self._usage(self._record_id(), rng.choice(self.seeded.codes), before)
                s = Sent("outside_validity", record["record_id"])
            elif roll < 0.97 and fresh_here:  # the same record twice in one batch
                first = rng.choice(fresh_here)
                record = records[first]
                s = Sent("repeat_duplicate", record["record_id"], first=first)
            elif fresh_here:  # twice in one batch, the second time other content
                first = rng.choice(fresh_here)
                record = {**records[first], "quantity": "999.999"}
                s = Sent("repeat_conflict", record["record_id"], first=first)
            else:
                record, s = self._fresh()
            records.append(record)
            sent.append(s)
        return records, sent

    # actions ---------------------------------------------------------------------------

    def _possible(self, action: str) -> bool:
        if action in ("repeat", "reuse"):
            return bool(self.posted)
        if action == "void":
            return bool(self.voidable)
        if action == "void again":
            return bool(self.voided)
        return True

    async def act(self) -> None:
        # Each rare action once as soon as it can be done, then by chance: a short run
        # (the test's) exercises them all.
        for action in sorted(self.untried):
            if self._possible(action):
                self.untried.discard(action)
                return await self.rare(action)
        roll = self.rng.random()
        for action, share in RARE_ACTIONS:
            if roll < share:
                if self._possible(action):
                    return await self.rare(action)
                break
            roll -= share
        await self.new_batch()

    async def rare(self, action: str) -> None:
        if action == "repeat":
            await self.repeat_batch()
        elif action == "reuse":
            await self.reuse_key()
        else:
            await self.void(again=action == "void again", unknown=action == "void unknown")

    async def new_batch(self) -> None:
        records, sent = self._batch()
        body = json.dumps({"records": records}).encode()
        key = f"{self.prefix}-batch-{self.seq}-{len(self.posted)}"
        response, _retried = await self.request(
            NEW,
            "POST",
            "/api/v1/usage/batches",
            body=body,
            headers={"Idempotency-Key": key},
            expect=(202,),
            # A retry after a lost answer may find the batch the first attempt created.
            on_retry=(200,),
        )
        if response is None or response.status_code not in (200, 202):
            self.problems.append(f"batch {key} of {len(records)} records was never stored")
            return
        batch_id = response.json()["id"]
        self.sent_kinds.update(s.kind for s in sent)
        self.posted.append((key, body, batch_id))
        self.pending[batch_id] = Pending(batch_id, sent, time.monotonic() + 0.2)

    async def repeat_batch(self) -> None:
        key, body, batch_id = self.rng.choice(self.posted)
        response, _r = await self.request(
            REPEAT, "POST", "/api/v1/usage/batches", body=body, headers={"Idempotency-Key": key}
        )
        if response is not None and response.status_code == 200:
            got = response.json().get("id")
            if got != batch_id:
                self.problems.append(f"repeat of batch {batch_id} ({key}) returned batch {got}")

    async def reuse_key(self) -> None:
        key, _body, _id = self.rng.choice(self.posted)
        body = json.dumps({"records": [self._fresh()[0]]}).encode()  # never stored
        response, _r = await self.request(
            REUSED,
            "POST",
            "/api/v1/usage/batches",
            body=body,
            headers={"Idempotency-Key": key},
            expect=(409,),
        )
        if response is not None and response.status_code == 409:
            code = response.json().get("error", {}).get("code")
            if code != "conflict":
                self.problems.append(f"key {key} reused: 409 with code {code!r}")

    async def void(self, *, again: bool = False, unknown: bool = False) -> None:
        reason = json.dumps({"reason": f"load test, client {self.index}"}).encode()
        if unknown:
            record_id = f"{self.prefix}-never-sent-{self.rng.randrange(10**6)}"
            await self.request(
                VOID, "POST", f"/api/v1/usage/records/{record_id}/void", body=reason, expect=(404,)
            )
            return
        if again:
            record_id = self.rng.choice(self.voided)
            await self.request(
                VOID, "POST", f"/api/v1/usage/records/{record_id}/void", body=reason, expect=(409,)
            )
            return
        i = self.rng.randrange(len(self.voidable))
        record_id = self.voidable[i]
        self.voidable[i] = self.voidable[-1]
        self.voidable.pop()
        response, retried = await self.request(
            VOID,
            "POST",
            f"/api/v1/usage/records/{record_id}/void",
            body=reason,
            on_retry=(409,),  # after a lost answer, the record may be void already
        )
        if response is None:
            self.problems.append(f"void of {record_id}: no answer")
            return
        done = response.status_code == 200 or (retried and response.status_code == 409)
        if not done:
            self.voidable.append(record_id)
            return
        known = self.known[record_id]
        if response.status_code == 200:
            out = response.json()
            if out.get("status") != "void" or Decimal(out["covered_amount"]) != known.covered:
                self.problems.append(f"void of {record_id} answered {out}")
        known.voided = True
        self.voided.append(record_id)
        tally = self.tally[known.record["voucher"]]
        tally[0] -= 1
        tally[1] -= known.covered

    # polling ---------------------------------------------------------------------------

    async def poll_due(self) -> bool:
        now = time.monotonic()
        due = [p for p in self.pending.values() if p.next_poll <= now]
        for p in due:
            response, _r = await self.request(POLL, "GET", f"/api/v1/usage/batches/{p.batch_id}")
            if response is None or response.status_code != 200:
                p.next_poll = time.monotonic() + p.interval
                continue
            batch = response.json()
            if batch["status"] in ("done", "failed"):
                del self.pending[p.batch_id]
                self.settle(p, batch)
            else:
                p.interval = min(p.interval * 1.5, 2.0)
                p.next_poll = time.monotonic() + p.interval
        return bool(due)

    def next_due(self) -> float:
        return min(p.next_poll for p in self.pending.values())

    def settle(self, pending: Pending, batch: dict) -> None:
        """Check each record's outcome against what was sent, and tally the accepted."""
        where = f"batch {pending.batch_id} [{self.dc_slug}]"
        if batch["status"] != "done":
            self.problems.append(f"{where} {batch['status']}: {batch.get('failure_reason')!r}")
            return
        results = batch["results"]
        if len(results) != len(pending.sent):
            self.problems.append(f"{where}: {len(results)} results for {len(pending.sent)}")
            return
        counts = Counter(r["status"] for r in results)
        if batch["counts"] != {k: counts[k] for k in ("accepted", "duplicate", "rejected")}:
            self.problems.append(f"{where}: counts {batch['counts']} but results {counts}")
        for i, (s, r) in enumerate(zip(pending.sent, results, strict=True)):
            status, code = r["status"], (r["error"] or {}).get("code")
            covered = None if r["covered_amount"] is None else Decimal(r["covered_amount"])
            if s.kind == "fresh":
                ok = status == "accepted" and covered is not None
                ok = ok and Decimal(0) <= covered <= _share(s.record)
            elif s.kind == "duplicate":
                ok = status == "duplicate" and covered == s.covered
            elif s.kind == "repeat_duplicate":
                first = results[s.first]
                ok = status == "duplicate" and first["status"] == "accepted"
                ok = ok and r["covered_amount"] == first["covered_amount"]
            elif s.kind in ("conflict", "repeat_conflict"):
                ok = status == "rejected" and code == "conflict"
            else:  # invalid, unknown_voucher, not_authorized, outside_validity
                ok = status == "rejected" and code == s.kind
            if s.kind != "invalid" and r["record_id"] != s.record_id:
                ok = False
            if not ok:
                self.problems.append(
                    f"{where} record {i} ({s.record_id}): sent as {s.kind}"
                    f"{'' if s.covered is None else f' (covered {s.covered})'}, got {r}"
                )
                continue
            if s.kind == "fresh":
                self.known[s.record_id] = Known(s.record, covered)
                self.known_ids.append(s.record_id)
                self.voidable.append(s.record_id)
                tally = self.tally[s.record["voucher"]]
                tally[0] += 1
                tally[1] += covered
                self.accepted += 1

    # the run ---------------------------------------------------------------------------

    async def run(self, push_until: float, drain_until: float) -> None:
        try:
            while time.monotonic() < push_until:
                if await self.poll_due():
                    continue
                if len(self.pending) >= self.config.max_pending:
                    wait = min(self.next_due(), push_until) - time.monotonic()
                    await asyncio.sleep(max(0.005, wait))
                    continue
                await self.act()
            while self.pending and time.monotonic() < drain_until:
                if not await self.poll_due():
                    await asyncio.sleep(max(0.005, self.next_due() - time.monotonic()))
            for batch_id in self.pending:
                self.problems.append(f"batch {batch_id} [{self.dc_slug}] not done in time")
        finally:
            await self.http.aclose()


# --- the accounting -------------------------------------------------------------------------


def check_accounting(clients: list[Client], seeded: Seeded) -> list[str]:
    """The database against what the clients saw, record by record and voucher by
    voucher, and the ledger against itself."""
    from django.db.models import Count, Q, Sum

    from compute.models import BatchStatus, Redemption, UsageBatch, UsageRecord
    from vouchers.ledger import ledger_verify
    from vouchers.models import Voucher

    problems: list[str] = []
    dc_ids = [dc for dc, _slug, _key in seeded.data_centers]
    expected: dict[tuple[int, str], Known] = {}
    tally: dict[str, list] = defaultdict(lambda: [0, Decimal(0)])
    for c in clients:
        for record_id, known in c.known.items():
            expected[c.dc_id, record_id] = known
        for code, (n, covered) in c.tally.items():
            tally[code][0] += n
            tally[code][1] += covered

    # Record by record: stored exactly once, as accepted or voided, for what they saw.
    rows = UsageRecord.objects.filter(data_center_id__in=dc_ids).values_list(
        "data_center_id", "record_id", "voucher__code", "status", "covered_amount"
    )
    seen = set()
    for dc_id, record_id, code, status, covered in rows.iterator():
        known = expected.get((dc_id, record_id))
        seen.add((dc_id, record_id))
        if known is None:
            problems.append(
                f"record {record_id} (data center #{dc_id}) is stored ({status}, voucher "
                f"{code}, covered {covered}) but no client saw it accepted"
            )
            continue
        want = "void" if known.voided else "accepted"
        if (code, status, covered) != (known.record["voucher"], want, known.covered):
            problems.append(
                f"record {record_id}: stored {code} {status} covered {covered}, the client "
                f"saw {known.record['voucher']} {want} covered {known.covered}"
            )
    for dc_id, record_id in expected.keys() - seen:
        problems.append(f"record {record_id} (data center #{dc_id}) was accepted, not stored")

    # Voucher by voucher: the tallies, the balances.
    stored = {
        row["voucher__code"]: (row["n"], row["covered"])
        for row in UsageRecord.objects.filter(status="accepted")
        .values("voucher__code")
        .annotate(n=Count("id"), covered=Sum("covered_amount"))
    }
    for code, face, balance in Voucher.objects.filter(program_id=seeded.program_id).values_list(
        "code", "face_value", "balance"
    ):
        n, covered = stored.get(code, (0, Decimal(0)))
        want_n, want_covered = tally.get(code, (0, Decimal(0)))
        if (n, covered) != (want_n, want_covered):
            problems.append(
                f"voucher {code}: {n} records covering {covered} in the database, the "
                f"clients' tally {want_n} covering {want_covered}"
            )
        if balance < 0:
            problems.append(f"voucher {code}: balance {balance} below zero")
        if balance != face - covered:
            problems.append(
                f"voucher {code}: balance {balance} but face value {face} − covered {covered}"
                f" = {face - covered}"
            )

    # Redemption by redemption: covered_total is what its records still cover.
    redemptions = Redemption.objects.filter(data_center_id__in=dc_ids).annotate(
        live=Sum("usage_records__covered_amount", filter=Q(usage_records__status="accepted"))
    )
    for r in redemptions.values("id", "covered_total", "live"):
        if r["covered_total"] != (r["live"] or Decimal(0)):
            problems.append(
                f"redemption #{r['id']}: covered_total {r['covered_total']}, its accepted "
                f"records cover {r['live'] or 0}"
            )

    created = sum(len(c.posted) for c in clients)
    batches = UsageBatch.objects.filter(data_center_id__in=dc_ids)
    if batches.count() != created:
        problems.append(f"{batches.count()} batches stored, the clients created {created}")
    for batch_id, status in batches.exclude(status=BatchStatus.DONE).values_list("id", "status"):
        problems.append(f"batch {batch_id} is {status}")

    problems.extend(f"verify_ledger: {m.describe()}" for m in ledger_verify())
    return problems


# --- processes ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    """Stop a process started in a session of its own, with its children."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Report:
    config: LoadConfig
    seconds_push: float = 0
    seconds_total: float = 0  # push phase start until the last batch was done
    seconds_seed: float = 0
    accepted: int = 0
    records_sent: int = 0
    batches: int = 0
    sent_kinds: Counter = field(default_factory=Counter)
    stats: Stats = field(default_factory=Stats)
    problems: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    load: tuple[float, float] = (0.0, 0.0)  # the machine's 1-minute load average
    logs: dict[str, str] = field(default_factory=dict)
    log_dir: str = ""

    @property
    def server_errors(self) -> int:
        return self.stats.server_errors

    @property
    def ok(self) -> bool:
        s = self.stats
        return not (self.problems or s.server_errors or s.unexpected or s.transport)

    def render(self) -> str:
        c, s = self.config, self.stats
        requests = sum(s.statuses.values())
        try:
            commit = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
        except OSError:
            commit = "?"
        lines = [
            f"load test {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, "
            f"{platform.node()} ({os.cpu_count()} cores)",
            f"{c.clients} clients of {c.data_centers} data centers, {c.vouchers} vouchers; "
            f"gunicorn {c.web_workers} workers × {c.web_threads} threads, "
            f"{c.celery_workers} Celery worker processes (seeded in {self.seconds_seed:.1f} s)",
            f"push {self.seconds_push:.1f} s, every batch done after {self.seconds_total:.1f} s;"
            f" {requests:,} requests ({requests / max(self.seconds_total, 1e-9):,.0f}/s)",
            f"{self.batches:,} batches, {self.records_sent:,} records sent "
            f"({self.records_sent / max(self.seconds_total, 1e-9):,.0f}/s): "
            + ", ".join(f"{k} {n:,}" for k, n in self.sent_kinds.most_common()),
            f"accepted records: {self.accepted:,} = "
            f"{self.accepted / max(self.seconds_total, 1e-9):,.0f} records/s "
            f"(until every batch was done)",
            "",
            f"{'latency, ms':<34}{'requests':>9}{'p50':>9}{'p99':>9}{'max':>9}",
        ]
        for endpoint in ENDPOINTS:
            values = s.latencies.get(endpoint)
            if values:
                lines.append(
                    f"{endpoint:<34}{len(values):>9,}{percentile(values, 50) * 1000:>9.1f}"
                    f"{percentile(values, 99) * 1000:>9.1f}{max(values) * 1000:>9.1f}"
                )
        by_status = Counter()
        for (_e, status), n in s.statuses.items():
            by_status[status] += n
        lines += [
            "",
            "HTTP statuses: " + ", ".join(f"{k} ×{n:,}" for k, n in sorted(by_status.items())),
            "errors (4xx/5xx) by endpoint: "
            + (
                ", ".join(
                    f"{e} {st} ×{n:,}"
                    + (f" ({s.unexpected[e, st]} unexpected)" if s.unexpected[e, st] else "")
                    for (e, st), n in sorted(s.statuses.items())
                    if st >= 400
                )
                or "none"
            ),
            f"5xx: {s.server_errors}; unexpected statuses: {sum(s.unexpected.values())}; "
            f"transport errors: {sum(s.transport.values())}",
        ]
        if self.cpu:
            lines.append(
                "CPU seconds (postgres: all of the server's databases): "
                + ", ".join(f"{k} {v:.1f}" for k, v in self.cpu.items())
                + f"; load average {self.load[0]:.1f} before, {self.load[1]:.1f} after"
            )
        lines.append("")
        for example in s.examples:
            lines.append(f"  unexpected: {example}")
        for (endpoint, name), n in s.transport.items():
            lines.append(f"  transport error: {endpoint} {name} ×{n}")
        if self.problems:
            lines.append(f"ACCOUNTING DOES NOT BALANCE: {len(self.problems)} problems")
            lines += [f"  - {p}" for p in self.problems[:50]]
        else:
            lines.append(
                "accounting balanced: every record accounted for once, per-voucher tallies "
                "= database, balances = face − covered, none below zero, verify_ledger clean"
            )
        if not self.ok:
            for name, text in self.logs.items():
                if text:
                    lines += ["", f"--- last lines of the {name} log ---", text]
            lines.append(f"(the logs in full: {self.log_dir})")
        lines.append("RESULT: " + ("OK" if self.ok else "FAILED"))
        return "\n".join(lines)


def run_load(config: LoadConfig, *, database_url: str, redis_url: str) -> Report:
    """Seed the database Django is connected to (which `database_url` must name, for the
    server and the worker), run the load, check the accounting. Django must be set up."""
    from portal.celery import app as celery_app
    from tests.bench.bench_ingestion import _cpu_split

    # Django's logging configuration would print a line per request of the clients.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    report = Report(config)
    start = time.perf_counter()
    seeded = seed(config)
    report.seconds_seed = time.perf_counter() - start

    run = uuid.uuid4().hex[:6]
    queue = f"load-{run}"
    logs = Path(tempfile.mkdtemp(prefix="suanli-load-"))
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_QUEUE": queue,
        "CACHE_KEY_PREFIX": queue,
        "API_RATE_LIMIT": "10000000/min",
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "load-test-only-" + uuid.uuid4().hex,
        "AUDIT_CHAIN_KEY": "load-test-only-audit-chain-key",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
    }
    port = _free_port()
    web_log, worker_log = logs / "gunicorn.log", logs / "celery.log"
    web_command = [sys.executable, "-m", "gunicorn", "portal.wsgi", "--bind", f"127.0.0.1:{port}"]
    web_command += ["--workers", str(config.web_workers), "--threads", str(config.web_threads)]
    web_command += ["--worker-class", "gthread", "--timeout", "120", "--graceful-timeout", "20"]
    web_command += ["--log-level", "warning"]
    worker_command = [sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", queue]
    worker_command += ["-n", f"{queue}@%h", "-c", str(config.celery_workers), "-l", "WARNING"]
    worker_command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    with web_log.open("wb") as web_out, worker_log.open("wb") as worker_out:
        # Sessions of their own: each is stopped with its children (gunicorn's workers,
        # Celery's pool), and only those.
        web = subprocess.Popen(
            web_command,
            cwd=ROOT,
            env=env,
            stdout=web_out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = subprocess.Popen(
            worker_command,
            cwd=ROOT,
            env=env,
            stdout=worker_out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        try:
            _wait_ready(port, seeded.data_centers[0][2], web, worker, queue, celery_app)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc} (logs in {logs})") from exc
        clients = [
            Client(
                i,
                seeded.data_centers[i % len(seeded.data_centers)],
                seeded,
                config,
                report.stats,
                f"http://127.0.0.1:{port}",
                run,
            )
            for i in range(config.clients)
        ]
        cpu_before = _cpu_split(web.pid, worker.pid)
        clients_cpu = time.process_time()
        load_before = os.getloadavg()[0]
        started = time.perf_counter()

        async def all_clients() -> None:
            now = time.monotonic()
            push_until = now + config.seconds
            drain_until = push_until + config.drain_timeout
            await asyncio.gather(*(c.run(push_until, drain_until) for c in clients))

        asyncio.run(all_clients())
        report.seconds_total = time.perf_counter() - started
        report.seconds_push = min(config.seconds, report.seconds_total)
        clients_cpu = time.process_time() - clients_cpu
        cpu_after = _cpu_split(web.pid, worker.pid)
        # Not "other": on a shared machine, processes that ended during the run take
        # their time with them (it came out negative).
        report.cpu = {k: cpu_after[k] - cpu_before[k] for k in ("web", "worker", "postgres")}
        report.cpu["clients"] = clients_cpu
        report.cpu["idle"] = cpu_after["idle"] - cpu_before["idle"]
        report.load = (load_before, os.getloadavg()[0])
    finally:
        _stop(web)
        _stop(worker)
    report.logs = {"gunicorn": _tail(web_log), "celery": _tail(worker_log)}
    report.log_dir = str(logs)
    for c in clients:
        report.accepted += c.accepted
        report.batches += len(c.posted)
        report.sent_kinds.update(c.sent_kinds)
        report.problems += c.problems
    report.records_sent = sum(report.sent_kinds.values())
    report.problems += check_accounting(clients, seeded)
    if report.ok:  # a failed run keeps its logs, and says where
        shutil.rmtree(logs, ignore_errors=True)
    return report


def _wait_ready(port, raw_key, web, worker, queue, celery_app) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while True:
        if web.poll() is not None or worker.poll() is not None:
            raise RuntimeError("gunicorn or the Celery worker exited at start")
        if time.monotonic() > deadline:
            raise RuntimeError("gunicorn or the Celery worker did not start within 60 s")
        try:
            response = httpx.get(
                f"http://127.0.0.1:{port}/api/v1/redemptions?limit=1",
                headers={"Authorization": f"Bearer {raw_key}"},
                timeout=5,
            )
            if response.status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    name = f"{queue}@{socket.gethostname()}"
    while not celery_app.control.ping(destination=[name], timeout=0.5):
        if worker.poll() is not None:
            raise RuntimeError("the Celery worker exited at start")
        if time.monotonic() > deadline:
            raise RuntimeError("the Celery worker did not answer within 60 s")


# --- the command ----------------------------------------------------------------------------


def _load_url() -> str:
    url = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/suanli"
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "_load"))


def _recreate(url: str) -> None:
    import psycopg

    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def main(argv: list[str] | None = None) -> int:
    defaults = LoadConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, help_text in [
        ("seconds", "how long the clients push"),
        ("clients", "concurrent data-center clients"),
        ("data_centers", "data centers the clients are spread over (one API key each)"),
        ("vouchers", "vouchers, each redeemed at every data center"),
        ("web_workers", "gunicorn worker processes"),
        ("web_threads", "threads per gunicorn worker"),
        ("celery_workers", "Celery worker processes"),
        ("max_batch", "the most records in one batch"),
        ("max_pending", "batches a client has in flight before it waits"),
        ("drain_timeout", "seconds to wait for the batches after the push"),
        ("seed", "seed of the clients' random choices"),
    ]:
        default = getattr(defaults, name)
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=type(default),
            default=default,
            help=f"{help_text} (default {default})",
        )
    config = LoadConfig(**vars(parser.parse_args(argv)))

    url = _load_url()
    _recreate(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    report = run_load(config, database_url=url, redis_url=settings.REDIS_URL)
    print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
