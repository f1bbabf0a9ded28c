"""Faults survived (issue #16 item 5), the data center's side, split out of
test_faults.py: a feed that hangs, trickles, floods or sends garbage is cut at its
bounds, in bounded memory, and is unhealthy until it is good again."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
import tracemalloc
import zlib
from decimal import Decimal
from types import SimpleNamespace

import httpx
import pytest

from compute.models import DataCenter, SyncRun, UsageBatch
from compute.sync import FeedError, SyncPolicy, _Deadline, _fetch, feed_sync
from tests.compute.conftest import record
from tests.compute.faults import assert_charged_once

# --- 4. A data center's feed that hangs, returns garbage or floods ----------------------------

STREAM_CAP = 256 * 1024 * 1024  # what the "endless" answers send at most, then stop
TRICKLE_FOR = 15.0  # seconds a trickling answer goes on, then it ends (as garbage)


class FeedHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FeedServer

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests += 1
        # A client that gives up (as the bounded one does) breaks the connection.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            getattr(self, f"answer_{self.server.mode}")()

    def _headers(self, **fields: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        for name, value in fields.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.server.sent += len(data)

    def answer_good(self) -> None:
        body = json.dumps(self.server.page).encode()
        self._headers(Content_Length=str(len(body)))
        self.wfile.write(body)

    def answer_gzipped(self) -> None:
        body = zlib.compress(json.dumps(self.server.page).encode(), wbits=31)
        self._headers(Content_Length=str(len(body)), Content_Encoding="gzip")
        self.wfile.write(body)

    def answer_hang(self) -> None:
        self.server.stopped.wait(30)  # far beyond any timeout of the client

    def answer_garbage(self) -> None:
        body = b"<html><body>502 Bad Gateway, or so</body></html>"
        self._headers(Content_Length=str(len(body)))
        self.wfile.write(body)

    def answer_huge(self) -> None:
        self._headers(Content_Length=str(10 * 1024**3))  # 10 GiB announced
        block = b"[" * 65536
        while self.server.sent < STREAM_CAP and not self.server.stopped.is_set():
            self.wfile.write(block)
            self.server.sent += len(block)

    def answer_endless(self) -> None:
        self._headers(Transfer_Encoding="chunked")
        block = b" " * 65536
        while self.server.sent < STREAM_CAP and not self.server.stopped.is_set():
            self._chunk(block)
        self.wfile.write(b"0\r\n\r\n")

    def answer_bomb(self) -> None:
        # gzip of endless zeros: ~1 kB on the wire per MiB unpacked.
        self._headers(Transfer_Encoding="chunked", Content_Encoding="gzip")
        packer, zeros = zlib.compressobj(9, zlib.DEFLATED, 31), bytes(1024 * 1024)
        unpacked = 0
        while unpacked < 10 * 1024**3 and not self.server.stopped.is_set():
            self._chunk(packer.compress(zeros) + packer.flush(zlib.Z_SYNC_FLUSH))
            unpacked += len(zeros)
        self.wfile.write(b"0\r\n\r\n")

    def answer_trickle(self) -> None:
        # A byte every 0.1 s: no single read ever times out.
        self._headers(Transfer_Encoding="chunked")
        ends = time.monotonic() + TRICKLE_FOR
        while time.monotonic() < ends and not self.server.stopped.wait(0.1):
            self._chunk(b" ")
        self.wfile.write(b"0\r\n\r\n")

    def answer_slow_headers(self) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        ends = time.monotonic() + TRICKLE_FOR
        while time.monotonic() < ends and not self.server.stopped.wait(0.1):
            self.wfile.write(b"X: y\r\n")
        self.wfile.write(b"Content-Length: 0\r\n\r\n")


class FeedServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FeedHandler)
        self.mode = "good"
        self.page: dict = {"records": [], "next_cursor": "end", "has_more": False}
        self.requests = 0
        self.sent = 0
        self.stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/feed"


@pytest.fixture
def feed_server():
    server = FeedServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.stopped.set()
    server.shutdown()
    server.server_close()


# Small bounds so that each fault ends fast: 0.5 s per read, 1.5 s per page, 1 MiB.
BOUNDED = SyncPolicy(
    page_size=10,
    timeout=0.5,
    page_deadline=1.5,
    max_page_bytes=1024 * 1024,
    attempts=2,
    backoff=0.01,
)


def fetch_once(
    server: FeedServer, policy: SyncPolicy = BOUNDED
) -> tuple[dict | Exception, float, int]:
    """One page fetched by compute.sync, in a thread so that an unbounded fetch fails the
    test instead of hanging it; (page or error, seconds, peak bytes allocated)."""
    dc = SimpleNamespace(feed_url=server.url, feed_token="t")
    result: list = []

    def run() -> None:
        with httpx.Client() as client:
            try:
                result.append(_fetch(client, dc, "", policy, _Deadline()))
            except Exception as error:  # reported to the test
                result.append(error)

    tracemalloc.start()
    started = time.monotonic()
    try:
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(timeout=10)
        took = time.monotonic() - started
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result, f"the fetch was still running after {took:.0f} s"
    return result[0], took, peak


def test_a_page_announced_larger_than_the_limit_is_refused_before_its_body(feed_server):
    feed_server.mode = "huge"
    error, took, peak = fetch_once(feed_server)
    assert isinstance(error, FeedError), error
    assert "larger than 1048576 bytes (Content-Length 10737418240)" in str(error)
    assert took < 1.0
    assert peak < 4 * 1024 * 1024


@pytest.mark.parametrize("mode", ["endless", "bomb"])
def test_an_endless_body_is_cut_at_the_size_limit_in_bounded_memory(feed_server, mode):
    feed_server.mode = mode
    error, took, peak = fetch_once(feed_server)
    assert isinstance(error, FeedError), error
    assert str(error) == "the page is larger than 1048576 bytes"
    assert took < 1.5
    # The page limit plus the join of its parts, and httpx's chunks: never the stream.
    assert peak < 8 * 1024 * 1024, peak


@pytest.mark.parametrize("mode", ["trickle", "slow_headers"])
def test_a_page_trickled_just_fast_enough_for_each_read_is_cut_at_its_deadline(feed_server, mode):
    feed_server.mode = mode
    error, took, _peak = fetch_once(feed_server)
    assert isinstance(error, FeedError), error
    assert str(error) == "the page took longer than 1.5 s"
    assert 1.4 < took < 2.5


@pytest.mark.parametrize("mode", ["good", "gzipped"])
def test_a_page_within_the_bounds_is_read_plain_or_gzipped(feed_server, mode):
    feed_server.mode = mode
    feed_server.page = {"records": [{"amount": 1.5}], "next_cursor": "c2", "has_more": True}
    page, _took, _peak = fetch_once(feed_server)
    assert page == {"records": [{"amount": Decimal("1.5")}], "next_cursor": "c2", "has_more": True}


def test_the_page_size_limit_comes_from_the_settings(settings):
    assert SyncPolicy().max_page_bytes == 20 * 1024 * 1024
    settings.FEED_MAX_PAGE_BYTES = 1234
    settings.FEED_SYNC = {"timeout": 3.0, "page_deadline": 9.0}
    policy = SyncPolicy.from_settings()
    assert (policy.max_page_bytes, policy.timeout, policy.page_deadline) == (1234, 3.0, 9.0)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_feed_that_hangs_floods_or_sends_garbage_is_unhealthy_until_it_is_good_again(
    ledger_world, feed_server, eager_tasks
):
    w = ledger_world
    DataCenter.objects.filter(pk=w.dc.pk).update(feed_url=feed_server.url, feed_token="t")
    faults = {
        "hang": "ReadTimeout",
        "garbage": "not valid JSON",
        "huge": "larger than 1048576 bytes",
        "endless": "larger than 1048576 bytes",
        "bomb": "larger than 1048576 bytes",
        "trickle": "took longer than 1.5 s",
    }
    for mode, reason in faults.items():
        feed_server.mode = mode
        started = time.monotonic()
        run = feed_sync(data_center_id=w.dc.pk, policy=BOUNDED)
        took = time.monotonic() - started
        # Two attempts of at most 1.5 s each (and a little for the backoff).
        assert took < 4.0, (mode, took)
        assert (run.outcome, run.pages) == ("failed", 0), mode
        assert reason in run.error, (mode, run.error)
        dc = DataCenter.objects.get(pk=w.dc.pk)
        assert (dc.feed_healthy, dc.feed_cursor) == (False, ""), mode
        assert reason in dc.feed_error, (mode, dc.feed_error)
    assert not UsageBatch.objects.exists()

    feed_server.mode = "good"
    records = [record(i, w.voucher.code, amount="10.00") for i in range(8)]
    feed_server.page = {"records": records, "next_cursor": "c1", "has_more": False}
    run = feed_sync(data_center_id=w.dc.pk, policy=BOUNDED)
    assert (run.outcome, run.pages, run.records) == ("ok", 1, 8)
    dc = DataCenter.objects.get(pk=w.dc.pk)
    assert (dc.feed_healthy, dc.feed_error, dc.feed_cursor) == (True, "", "c1")
    assert SyncRun.objects.filter(outcome="failed").count() == len(faults)
    assert_charged_once(w, [r["record_id"] for r in records])
