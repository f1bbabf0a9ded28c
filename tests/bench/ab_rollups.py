"""What the dashboards' rollups cost on the ingestion path, as an A/B in one process.

Run after `make bench` (it reuses that database, `<name>_bench`, and its 1,000
vouchers): batches of 5,000 of the benchmark's records are applied alternately with the
rollups on and switched off (`rollups_add_batch` and `usage_sums` replaced by no-ops),
so the machine's drift hits both sides alike; prints the median milliseconds a batch of
each side, the time of the two parts, and the difference. It asserts nothing.

    .venv/bin/python tests/bench/ab_rollups.py          # AB_ROUNDS=12 by default
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = int(os.environ.get("AB_ROUNDS", "12"))


def main() -> None:
    sys.path.insert(0, str(ROOT))  # as a script, the repository is not on the path
    from tests.bench.harness import batch_stored, bench_reused

    codes = bench_reused()
    from compute.ingest import apply as usage
    from compute.ingest import usage_batch_apply

    tag = f"ab-{time.time_ns()}"
    add, sums = usage.rollups_add_batch, usage.usage_sums
    spent: dict[str, list[float]] = {"sums": [], "statement": []}

    def timed_add(**kwargs):
        start = time.perf_counter()
        add(**kwargs)
        spent["statement"].append(1000 * (time.perf_counter() - start))

    def timed_sums(*args):
        start = time.perf_counter()
        result = sums(*args)
        spent["sums"].append(1000 * (time.perf_counter() - start))
        return result

    times: dict[str, list[float]] = {"on": [], "off": []}
    for r in range(ROUNDS):
        for side in ("on", "off") if r % 2 == 0 else ("off", "on"):
            batch_id = batch_stored(codes, 5000, prefix=f"{tag}-{r}-{side}")
            if side == "on":
                usage.rollups_add_batch, usage.usage_sums = timed_add, timed_sums
            else:
                usage.rollups_add_batch = lambda **kwargs: None
                usage.usage_sums = lambda *args: ({}, {})
            start = time.perf_counter()
            usage_batch_apply(batch_id=batch_id)
            times[side].append(1000 * (time.perf_counter() - start))
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    print(f"rollups on:  median {on:.0f} ms a batch of 5,000 ({ROUNDS} batches)")
    print(f"rollups off: median {off:.0f} ms a batch of 5,000 ({ROUNDS} batches)")
    print(
        f"of which summing {statistics.median(spent['sums']):.1f} ms, "
        f"the statement {statistics.median(spent['statement']):.1f} ms; "
        f"difference {100 * (on / off - 1):+.1f}%"
    )


if __name__ == "__main__":
    main()
