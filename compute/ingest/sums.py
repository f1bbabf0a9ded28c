"""The sums a batch adds to the dashboards' rollups (compute/rollups.py), from what
applying it holds in memory: cheaper than reading the records back, since PostgreSQL
would look up each record's voucher for its program and time zone (measured in
docs/performance.md, Rollups)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

from compute.ingest.check import Staged
from compute.ingest.plan import Outcome, Plan
from compute.rollups import Usage
from vouchers.ledger import ChargeTerms


def _plus(earlier: Usage | None, usage: Usage) -> Usage:
    if earlier is None:
        return usage
    return Usage(
        earlier.records + usage.records,
        earlier.quantity + usage.quantity,
        earlier.amount + usage.amount,
        earlier.covered + usage.covered,
    )


def usage_sums(
    staged: Staged, plans: list[Plan], final: list[Plan], terms: dict[int, ChargeTerms]
) -> tuple[dict[tuple[int, date, bool], Usage], dict[tuple[int, int], Usage]]:
    """The accepted records' usage per (program, day in the city's time, domestic) and
    per (program, company), from what applying the batch holds in memory: `final` is each
    first occurrence's outcome as settled (its covered amount), `plans` names the
    voucher. A few rows whatever the batch's size, so the statement that adds them is
    cheap. It runs for every record of every batch: the loop over records only sorts
    their values into groups; the days are worked out once per quarter hour of each
    time zone (every UTC offset in use is a multiple of 15 minutes) and the sums once
    per group, by C-level `sum(map(Decimal, …))`."""
    # Each record goes to its group through a key it carries (voucher, end as sent,
    # chip origin): a dict probe, without reading the voucher's terms or working out a
    # day. A key's group is found once, on its first record.
    groups: dict[tuple[int, int, date, bool], tuple[list[str], list[str], list[Decimal]]] = {}
    group_of: dict[tuple[int, str, bool], tuple[list[str], list[str], list[Decimal]]] = {}
    days: dict[tuple[str, int], date] = {}
    accepted = Outcome.ACCEPTED
    for occurrence, planned, outcome in zip(staged.first_occurrences, plans, final, strict=True):
        covered = outcome[1]
        if outcome[0] != accepted or covered is None:
            continue
        record = occurrence[1]
        key = (planned[2], record[3], record[5])  # voucher_id, ended_at, domestic
        group = group_of.get(key)
        if group is None:
            voucher = terms[planned.voucher_id]
            ended = record.ended
            quarter = (voucher.timezone, int(ended.timestamp()) // 900)
            day = days.get(quarter)
            if day is None:
                day = days[quarter] = ended.astimezone(ZoneInfo(voucher.timezone)).date()
            sums_key = (voucher.program_id, voucher.company_id, day, record.domestic)
            group = groups.get(sums_key)
            if group is None:
                group = groups[sums_key] = ([], [], [])
            group_of[key] = group
        group[0].append(record[6])  # quantity
        group[1].append(record[7])  # amount
        group[2].append(covered)
    by_day: dict[tuple[int, date, bool], Usage] = {}
    by_company: dict[tuple[int, int], Usage] = {}
    for (program_id, company_id, day, domestic), (quantities, amounts, covereds) in groups.items():
        usage = Usage(
            len(covereds),
            sum(map(Decimal, quantities), Decimal(0)),
            sum(map(Decimal, amounts), Decimal(0)),
            sum(covereds, Decimal(0)),
        )
        day_key = (program_id, day, domestic)
        by_day[day_key] = _plus(by_day.get(day_key), usage)
        company_key = (program_id, company_id)
        by_company[company_key] = _plus(by_company.get(company_key), usage)
    return by_day, by_company
