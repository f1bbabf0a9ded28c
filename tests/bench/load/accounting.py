"""The accounting: the clients' own tally against the database, to the cent."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from tests.bench.load.client import Client, Known
from tests.bench.load.world import Seeded

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
