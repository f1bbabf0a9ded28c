"""Statistics, and one data center's billing system: it pushes new batches, repeats and
reuses keys, polls and voids, and keeps its own account of what it expects."""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from tests.bench.load.world import (
    CENT,
    NEW,
    POLL,
    RARE_ACTIONS,
    RATE_DOMESTIC,
    RATE_OTHER,
    REPEAT,
    REUSED,
    SHANGHAI,
    UNKNOWN_VOUCHER,
    VOID,
    LoadConfig,
    Seeded,
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
