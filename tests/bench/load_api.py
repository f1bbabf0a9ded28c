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
import sys
from pathlib import Path

# Run as a script (make load) the repository is not on the path yet.
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.bench.harness import bench_django  # noqa: E402
from tests.bench.load.runner import run_load  # noqa: E402
from tests.bench.load.world import (  # noqa: E402  (tests/compute/test_load_short.py)
    NEW,
    POLL,
    REPEAT,
    REUSED,
    VOID,
    LoadConfig,
)

__all__ = ["NEW", "POLL", "REPEAT", "REUSED", "VOID", "LoadConfig", "main", "run_load"]


# --- the command ----------------------------------------------------------------------------


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

    url = bench_django("_load")
    from django.conf import settings

    report = run_load(config, database_url=url, redis_url=settings.REDIS_URL)
    print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
