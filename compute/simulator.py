"""A reference data center, served over real HTTP: `manage.py run_datacenter_sim`.

It plays a state-run data center's billing system:
- it holds redemptions (given to it, or learned from the portal's API with its key) and
  generates realistic usage for their vouchers (`compute.simulation`);
- it serves the pull feed of docs/api.md — `GET /feed?cursor=&limit=` with a bearer token,
  answering `{"records", "redemptions", "next_cursor", "has_more"}` — where the cursor is
  an opaque offset into its append-only log of records;
- it can push the same records to the portal like a real client;
- it injects faults on request, for the tests and for curious operators:
  `latency`, `http500`, `http503`, `timeout`, `malformed`, `repeat` (records repeated
  across pages), `out_of_order` (a page's records shuffled), `mutate` (a record that was
  already sent comes again with another amount), `inflate` (a record generated next
  bills an impossible number of cards for its hours, at the usual price per card-hour:
  what the portal's capacity check is for). `POST /control` with
  `{"fault": …, "count": n, "seconds": s}` arms one; `{"generate": n}` adds records.

Nothing here touches the portal's database: it is a separate party.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from compute.simulation import usage_records

FAULTS = {
    "latency",
    "http500",
    "http503",
    "timeout",
    "malformed",
    "repeat",
    "out_of_order",
    "mutate",
    "inflate",
}
# Cards an inflated record claims: more than any demo data center declares (compute.
# integrity.demo), so its hours cannot have run.
INFLATED_CARDS = 50_000


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    if not cursor:
        return 0
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        offset = int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("bad cursor") from exc
    if kind != "o" or offset < 0:
        raise ValueError("bad cursor")
    return offset


@dataclass
class Fault:
    kind: str
    count: int = 1
    seconds: float = 0.0


@dataclass
class DataCenterSimulator:
    """The simulator's state; thread-safe, so the HTTP server can serve it concurrently."""

    slug: str
    token: str
    seed: int = 0
    vouchers: list[str] = field(default_factory=list)
    log: list[dict] = field(default_factory=list)
    redemption_changes: list[dict] = field(default_factory=list)
    valid_from: dict[str, Any] = field(default_factory=dict)  # voucher code -> datetime
    faults: list[Fault] = field(default_factory=list)
    requests: int = 0
    # Webhooks from the portal (compute.webhooks): the endpoint's secret, the events
    # received by id (a second copy changes nothing), and how many were refused.
    webhook_secret: str = ""
    webhook_events: dict[str, dict] = field(default_factory=dict)
    webhook_copies: int = 0
    webhook_refused: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.lock = threading.Lock()

    # --- what the data center knows ----------------------------------------------------

    def receive_webhook(self, signature: str, body: bytes) -> int:
        """What a careful receiver does: check the signature (compute.webhooks.signing,
        the recipe of docs/api.md), then act on each event id once. Returns the HTTP
        status to answer."""
        from compute.webhooks.signing import signature_verify

        with self.lock:
            if not self.webhook_secret or not signature_verify(
                self.webhook_secret, signature, body
            ):
                self.webhook_refused += 1
                return 400
            try:
                event = json.loads(body)
                event_id = str(event["id"])
            except (ValueError, KeyError, TypeError):
                self.webhook_refused += 1
                return 400
            if event_id in self.webhook_events:
                self.webhook_copies += 1  # seen: nothing to do again
            else:
                self.webhook_events[event_id] = event
            return 200

    def hold(self, voucher: str) -> None:
        with self.lock:
            if voucher not in self.vouchers:
                self.vouchers.append(voucher)

    def answer_redemption(self, redemption_id: int, status: str, contract_ref: str = "") -> None:
        """Accept, reject or close a redemption; the change goes out with the next page."""
        with self.lock:
            self.redemption_changes.append(
                {"id": redemption_id, "status": status, "contract_ref": contract_ref}
            )

    def generate(self, count: int) -> list[dict]:
        with self.lock:
            if not self.vouchers:
                return []
            records = usage_records(
                rng=self.rng,
                prefix=f"{self.slug}-sim{self.seed}-{len(self.log):07d}",
                vouchers=self.vouchers,
                count=count,
                not_before=self.valid_from,
            )
            if records and self._take_fault({"inflate"}) is not None:
                records[0] = inflated(records[0])
            self.log.extend(records)
            return records

    def arm(self, kind: str, count: int = 1, seconds: float = 0.0) -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {sorted(FAULTS)}")
        with self.lock:
            self.faults.append(Fault(kind, count, seconds))

    def _take_fault(self, kinds: set[str]) -> Fault | None:
        for fault in self.faults:
            if fault.kind in kinds and fault.count > 0:
                fault.count -= 1
                if fault.count == 0:
                    self.faults.remove(fault)
                return fault
        return None

    # --- the feed ----------------------------------------------------------------------

    def feed_page(self, cursor: str, limit: int) -> tuple[int, dict | str, float]:
        """(status, body, delay) for one feed request; body is a str when malformed."""
        with self.lock:
            self.requests += 1
            delay = 0.0
            slow = self._take_fault({"latency", "timeout"})
            if slow is not None:
                delay = slow.seconds or (30.0 if slow.kind == "timeout" else 1.0)
            failure = self._take_fault({"http500", "http503"})
            if failure is not None:
                code = 500 if failure.kind == "http500" else 503
                return code, {"error": f"simulated {code}"}, delay
            if self._take_fault({"malformed"}) is not None:
                return 200, '{"records": [ {"record_id": "broken"', delay
            try:
                offset = decode_cursor(cursor)
            except ValueError:
                return 400, {"error": "bad cursor"}, delay
            limit = max(1, min(limit, 1000))
            records = [dict(r) for r in self.log[offset : offset + limit]]
            end = offset + len(records)
            if offset > 0 and self._take_fault({"repeat"}) is not None:
                # The last records of the previous page come again.
                records = [dict(r) for r in self.log[max(0, offset - 3) : offset]] + records
            if self._take_fault({"out_of_order"}) is not None:
                self.rng.shuffle(records)
            if offset > 0 and self._take_fault({"mutate"}) is not None:
                changed = dict(self.log[offset - 1])
                changed["amount"] = f"{float(changed['amount']) + 1:.2f}"
                records.append(changed)
            changes, self.redemption_changes = self.redemption_changes, []
            body = {
                "records": records,
                "redemptions": changes,
                "next_cursor": encode_cursor(end),
                "has_more": end < len(self.log),
            }
            return 200, body, delay

    # --- pushing ------------------------------------------------------------------------

    def push(self, portal_url: str, key: str, records: list[dict]) -> dict:
        import httpx

        response = httpx.post(
            f"{portal_url.rstrip('/')}/api/v1/usage/batches",
            json={"records": records},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        return {"status": response.status_code, "body": response.json()}


def inflated(record: dict) -> dict:
    """The same job billed on INFLATED_CARDS cards for one hour, at the same price per
    card-hour: a bill for hours that never ran."""
    ended = datetime.fromisoformat(record["ended_at"])
    price = Decimal(record["amount"]) / Decimal(record["quantity"])
    quantity = Decimal(INFLATED_CARDS)
    return {
        **record,
        "record_id": record["record_id"] + "-x",
        "started_at": (ended - timedelta(hours=1)).isoformat(timespec="seconds"),
        "quantity": f"{quantity:.3f}",
        "amount": str((quantity * price).quantize(Decimal("0.01"), ROUND_HALF_UP)),
    }


def _handler(sim: DataCenterSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "SuanliDataCenterSimulator/1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet by default
            return

        def _send(self, status: int, body: dict | str) -> None:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            # The client may have given up (a timeout fault).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

        def _authorized(self) -> bool:
            if self.headers.get("Authorization", "") != f"Bearer {sim.token}":
                self._send(401, {"error": "unauthenticated"})
                return False
            return True

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/feed":
                return self._send(404, {"error": "not found"})
            if not self._authorized():
                return None
            query = parse_qs(url.query)
            try:
                limit = int(query.get("limit", ["500"])[0])
            except ValueError:
                return self._send(400, {"error": "bad limit"})
            status, body, delay = sim.feed_page(query.get("cursor", [""])[0], limit)
            if delay:
                time.sleep(delay)
            return self._send(status, body)

        def do_POST(self) -> None:
            if urlsplit(self.path).path == "/webhooks":
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, 1 << 20))
                status = sim.receive_webhook(self.headers.get("Suanli-Signature", ""), body)
                return self._send(status, {"ok": status == 200})
            if urlsplit(self.path).path != "/control":
                return self._send(404, {"error": "not found"})
            if not self._authorized():
                return None
            try:
                length = int(self.headers.get("Content-Length") or 0)
                command = json.loads(self.rfile.read(min(length, 65536)) or b"{}")
                if "fault" in command:
                    sim.arm(
                        command["fault"],
                        int(command.get("count", 1)),
                        float(command.get("seconds", 0)),
                    )
                if "hold" in command:
                    sim.hold(str(command["hold"]))
                generated = sim.generate(int(command.get("generate", 0) or 0))
            except (ValueError, TypeError, KeyError) as error:
                return self._send(400, {"error": str(error)})
            return self._send(200, {"generated": len(generated), "log": len(sim.log)})

    return Handler


def serve(sim: DataCenterSimulator, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Start serving in a background thread; returns the server (`server_address`)."""
    server = ThreadingHTTPServer((host, port), _handler(sim))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
