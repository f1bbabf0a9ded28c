"""Reads, as `make bench` (tests/bench/bench.py) measures them, on the running gunicorn.

- The data centers' voucher look-up (`GET /api/v1/vouchers/{code}`) under 32 concurrent
  kept-alive connections, beside `GET /api/v1/ping` (same key, same throttle, nothing
  read) on the same server: requests/s of each, in alternating rounds, and the ratio.
  The client is a minimal asyncio HTTP/1.1 client, so that the load generator takes as
  little as it can of the two cores it shares with the server.
- The review queue of a `seed_scale` city beside a trivial page (the profile), one
  connection, with bench_dashboards.py's sessions and timing.
"""

from __future__ import annotations

import asyncio
import statistics
import time


async def _connection(
    port: int, paths: list[str], headers: str, until: float, tally: dict, offset: int
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    try:
        while time.perf_counter() < until:
            path = paths[i % len(paths)]
            i += 1
            start = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            length = next(
                int(line.split(":", 1)[1])
                for line in lines
                if line.lower().startswith("content-length:")
            )
            await reader.readexactly(length)
            tally["latencies"].append(time.perf_counter() - start)
            tally["statuses"][status] = tally["statuses"].get(status, 0) + 1
            if any(line.lower() == "connection: close" for line in lines):
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


def _hammer(port: int, paths: list[str], key: str, connections: int, seconds: float) -> dict:
    tally: dict = {"latencies": [], "statuses": {}}
    headers = f"Authorization: Bearer {key}\r\n"

    async def run() -> None:
        until = time.perf_counter() + seconds
        await asyncio.gather(
            *(_connection(port, paths, headers, until, tally, c * 7) for c in range(connections))
        )

    start = time.perf_counter()
    asyncio.run(run())
    elapsed = time.perf_counter() - start
    latencies = sorted(tally["latencies"])
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "statuses": tally["statuses"],
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else None,
    }


def api_reads(port: int, key: str, codes: list[str], *, seconds: float, rounds: int = 2) -> dict:
    """Requests/s of the voucher look-up and of the ping, `rounds` alternating rounds of
    `seconds` each under 32 connections (after a warm-up of both)."""
    connections = 32
    endpoints = {
        "ping": ["/api/v1/ping"],
        "voucher_lookup": [f"/api/v1/vouchers/{code}" for code in codes],
    }
    for paths in endpoints.values():  # warm every server thread's connection and caches
        _hammer(port, paths, key, connections, 1.0)
    found: dict[str, list[dict]] = {name: [] for name in endpoints}
    for _ in range(rounds):
        for name, paths in endpoints.items():
            found[name].append(_hammer(port, paths, key, connections, seconds))
    out: dict = {"connections": connections, "rounds": rounds, "seconds_per_round": seconds}
    for name, runs in found.items():
        requests = sum(r["requests"] for r in runs)
        statuses: dict[int, int] = {}
        for r in runs:
            for status, n in r["statuses"].items():
                statuses[status] = statuses.get(status, 0) + n
        out[name] = {
            "requests": requests,
            "requests_per_s": round(requests / sum(r["seconds"] for r in runs), 1),
            "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 1),
            "p99_ms": round(max(r["p99_ms"] for r in runs), 1),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
        }
    out["voucher_vs_ping"] = round(
        out["voucher_lookup"]["requests_per_s"] / out["ping"]["requests_per_s"], 3
    )
    print(
        f"  voucher look-up {out['voucher_lookup']['requests_per_s']:,.0f} req/s, ping "
        f"{out['ping']['requests_per_s']:,.0f} req/s (32 connections): "
        f"ratio {out['voucher_vs_ping']:.2f}",
        flush=True,
    )
    return out


def seed_queue_city(scale: list[int]):
    """A `seed_scale` city (applications, vouchers, records) in the benchmark's database."""
    from compute.scale import seed_scale

    applications, vouchers, records = scale
    return seed_scale(
        city_slug="scale", applications=applications, vouchers=vouchers, records=records
    )


def queue_reads(port: int, result, requests: int) -> dict:
    """Median and p95 ms of the review queue and of the profile page (the trivial page
    bench_dashboards.py compares with), `requests` each over one connection."""
    from django.urls import reverse

    from tests.bench.bench_dashboards import _p95, _sessions, _time

    cookies = _sessions(result)
    pages = {
        "trivial_page": reverse("portal:profile"),
        "review_queue": reverse("vouchers:queue", kwargs={"city_slug": result.city.slug}),
    }
    out: dict = {
        "city": {
            "applications": result.applications,
            "vouchers": result.vouchers,
            "records": result.records,
        },
        "requests": requests,
    }
    for name, path in pages.items():
        status, times = _time(port, path, cookies["manager"], requests)
        out[name] = {
            "path": path,
            "status": status,
            "median_ms": round(statistics.median(times), 1),
            "p95_ms": round(_p95(times), 1),
        }
    out["queue_vs_trivial"] = round(
        out["trivial_page"]["median_ms"] / out["review_queue"]["median_ms"], 3
    )
    print(
        f"  review queue {out['review_queue']['median_ms']:.1f} ms median, profile page "
        f"{out['trivial_page']['median_ms']:.1f} ms: the queue at "
        f"{out['queue_vs_trivial']:.2f} of the trivial page's speed",
        flush=True,
    )
    return out
