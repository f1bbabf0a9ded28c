"""The cheap checks, inside usage ingestion (issue #19): a record's unit price against
its program's band, its accelerator against the approved compute plan, and the
company's card-hours under the program against the plan plus a margin.

Set-wise, as the rest of the pipeline: one query reads the programs' rules and bands
(nothing more happens when a batch's programs have none), the band is compared in
Python over the records already in memory, and the plan check reads each voucher's
plan and the company's running total from the usage rollups (`CompanyUsage`, kept in
the same transaction, so it already counts this batch) by one more query. What is
flagged is raised as findings; if the program holds flagged charges, one UPDATE marks
the records held (charged, so not spendable; not settled until cleared).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, NamedTuple

from django.db import connection

from compute.integrity.models import FindingRule, Severity
from compute.integrity.services import FindingDraft, findings_raise
from portal.db import sql_list
from vouchers.ledger import ChargeTerms

if TYPE_CHECKING:  # compute.ingest calls this module: no import back at run time
    from compute.ingest.check import Occurrence
    from compute.ingest.plan import Plan

ACCEPTED = "accepted"  # compute.ingest.plan.Outcome.ACCEPTED (a StrEnum)

# The evidence names at most this many records with their figures (the finding has all).
EVIDENCE_RECORDS = 50


class ProgramChecks(NamedTuple):
    check_plan: bool
    margin: Decimal  # percent over the plan's card-hours before it is flagged
    hold: bool
    # accelerator: (low, high, reference, and low and high as floats, narrowed by 1e-9)
    bands: dict[str, tuple[Decimal, Decimal, Decimal, float, float]]


_PROGRAM_CHECKS = """
SELECT p.id, r.check_plan, r.plan_margin_percent, r.hold_charges,
       b.accelerator, b.reference_price, b.tolerance_percent
FROM unnest(string_to_array(%s, E'\\n')::bigint[]) AS p(id)
LEFT JOIN compute_integrityrules r ON r.program_id = p.id
LEFT JOIN compute_priceband b ON b.program_id = p.id
WHERE r.id IS NOT NULL OR b.id IS NOT NULL
"""

# Per voucher of a program that checks plans: the accelerators of its application's
# plan, the plan's card-hours over the company's vouchers in the program, and the
# company's card-hours under the program so far (the rollup, before this batch).
# Each (program, company) is summed once, however many of its vouchers the batch names.
_PLANS = """
WITH v AS (
    SELECT id, city_id, company_id, program_id, application_id FROM vouchers_voucher
    WHERE id = ANY(string_to_array(%s, E'\\n')::bigint[]) AND application_id IS NOT NULL
),
models AS (
    SELECT c.application_id, array_agg(DISTINCT c.accelerator) AS accelerators
    FROM vouchers_computeplanrow c WHERE c.application_id IN (SELECT application_id FROM v)
    GROUP BY 1
),
owners AS (SELECT DISTINCT program_id, company_id FROM v),
plans AS (
    SELECT o.program_id, o.company_id, sum(c.hours) AS hours
    FROM owners o
    JOIN vouchers_voucher w ON w.program_id = o.program_id AND w.company_id = o.company_id
    JOIN vouchers_computeplanrow c ON c.application_id = w.application_id
    GROUP BY 1, 2
)
SELECT v.id, v.city_id, v.company_id, coalesce(m.accelerators, '{}'), p.hours,
       coalesce(cu.quantity, 0)
FROM v
LEFT JOIN models m ON m.application_id = v.application_id
LEFT JOIN plans p ON p.program_id = v.program_id AND p.company_id = v.company_id
LEFT JOIN compute_companyusage cu
       ON cu.program_id = v.program_id AND cu.company_id = v.company_id
"""


def program_checks(program_ids: set[int]) -> dict[int, ProgramChecks]:
    """The rules and bands of the programs that have any, by program id."""
    found: dict[int, ProgramChecks] = {}
    with connection.cursor() as cursor:
        cursor.execute(_PROGRAM_CHECKS, [sql_list(sorted(program_ids))])
        for program_id, check_plan, margin, hold, accelerator, price, tolerance in cursor:
            checks = found.get(program_id)
            if checks is None:
                checks = found[program_id] = ProgramChecks(
                    bool(check_plan), margin or Decimal(0), bool(hold), {}
                )
            if accelerator is not None:
                low = price * (100 - tolerance) / 100
                high = price * (100 + tolerance) / 100
                checks.bands[accelerator] = (
                    low,
                    high,
                    price,
                    float(low) * (1 + 1e-9),
                    float(high) * (1 - 1e-9),
                )
    return found


class Flag(NamedTuple):
    voucher_id: int
    rule: str
    k: int  # index among the first occurrences
    detail: dict


@dataclass(slots=True)
class Flagged:
    """What `batch_flags` found before the locks, for `batch_raise` after the charges."""

    flags: list[Flag]
    checks: dict[int, ProgramChecks]
    cities: dict[int, tuple[int, int]]


def batch_flags(
    *,
    occurrences: Sequence[Occurrence],
    plans: Sequence[Plan],
    terms: dict[int, ChargeTerms],
) -> Flagged | None:
    """Check the records planned as accepted, before any lock (so that workers do it in
    parallel, as they plan): the bands in Python, the plans by one query. The company's
    card-hours are the rollup's (before this batch) plus this batch's planned ones.
    None when nothing is flagged (almost always)."""
    accepted = [k for k, planned in enumerate(plans) if planned.outcome == ACCEPTED]
    if not accepted:
        return None
    checks = program_checks({terms[plans[k].voucher_id].program_id for k in accepted})
    if not checks:
        return None
    # Per voucher, not per record: its program's bands and whether it checks plans.
    bands_of: dict[int, dict] = {}
    planned_vouchers: set[int] = set()
    for voucher_id, voucher in terms.items():
        found = checks.get(voucher.program_id)
        if found is not None:
            if found.bands:
                bands_of[voucher_id] = found.bands
            if found.check_plan:
                planned_vouchers.add(voucher_id)
    flags: list[Flag] = []
    for k in accepted:
        voucher_id = plans[k].voucher_id
        bands = bands_of.get(voucher_id)
        if bands is None:
            continue
        record = occurrences[k].record
        band = bands.get(record.resource)
        if band is None:
            continue
        # Floats first (a tenth of Decimal's cost): clearly inside by a margin far above
        # their rounding error is inside; anything near an edge is decided exactly.
        quantity_f, amount_f = float(record.quantity), float(record.amount)
        if band[3] * quantity_f < amount_f < band[4] * quantity_f:
            continue
        quantity, amount = Decimal(record.quantity), Decimal(record.amount)
        if quantity > 0 and not band[0] * quantity <= amount <= band[1] * quantity:
            unit = (amount / quantity).quantize(Decimal("0.01"), ROUND_HALF_UP)
            detail = {"unit_price": str(unit), "reference": str(band[2])}
            flags.append(Flag(voucher_id, FindingRule.PRICE_BAND, k, detail))
    cities: dict[int, tuple[int, int]] = {}
    planned = [k for k in accepted if plans[k].voucher_id in planned_vouchers]
    if planned:
        flags.extend(_plan_flags(planned, occurrences, plans, checks, terms, cities))
    return Flagged(flags, checks, cities) if flags else None


def batch_raise(
    flagged: Flagged | None,
    *,
    batch_id: int,
    data_center_id: int,
    occurrences: Sequence[Occurrence],
    final: Sequence[Plan],
    usage_record_ids: Sequence[int | None],
    terms: dict[int, ChargeTerms],
) -> int:
    """After the charges, in the batch's transaction: raise the findings of the flagged
    records that were accepted in the end (and hold them, if their program says so).
    Returns how many findings were raised."""
    if flagged is None:
        return 0
    flags = [f for f in flagged.flags if final[f.k].outcome == ACCEPTED]
    if not flags:
        return 0
    return _raise(
        batch_id,
        data_center_id,
        flags,
        occurrences,
        usage_record_ids,
        terms,
        flagged.checks,
        flagged.cities,
    )


def _plan_flags(
    planned: list[int],
    occurrences: Sequence[Occurrence],
    plans: Sequence[Plan],
    checks: dict[int, ProgramChecks],
    terms: dict[int, ChargeTerms],
    cities: dict[int, tuple[int, int]],
) -> list[Flag]:
    vouchers = {plans[k].voucher_id for k in planned}
    with connection.cursor() as cursor:
        cursor.execute(_PLANS, [sql_list(sorted(vouchers))])
        rows = cursor.fetchall()
    if not rows:
        return []
    # This batch's card-hours per (program, company): the rollup does not have them yet.
    # Summed as text and converted once per group, as the rollups do (exact, cheap).
    texts: dict[tuple[int, int], list[str]] = defaultdict(list)
    for k in planned:
        voucher = terms[plans[k].voucher_id]
        texts[(voucher.program_id, voucher.company_id)].append(occurrences[k].record.quantity)
    batch_hours = {key: sum(map(Decimal, q), Decimal(0)) for key, q in texts.items()}
    models: dict[int, set[str]] = {}
    beyond: dict[int, dict] = {}
    for voucher_id, city_id, company_id, accelerators, hours, used_before in rows:
        cities[voucher_id] = (city_id, company_id)
        models[voucher_id] = set(accelerators)
        if hours is None:
            continue
        program_id = terms[voucher_id].program_id
        used = used_before + batch_hours.get((program_id, company_id), Decimal(0))
        margin = checks[program_id].margin
        limit = hours * (100 + margin) / 100
        if used > limit:
            beyond[voucher_id] = {
                "card_hours": str(used),
                "plan": str(hours),
                "margin": str(margin),
            }
    flags = []
    for k in planned:
        voucher_id = plans[k].voucher_id
        if voucher_id not in models:
            continue
        resource = occurrences[k].record.resource
        if resource not in models[voucher_id]:
            flags.append(Flag(voucher_id, FindingRule.PLAN_MODEL, k, {"accelerator": resource}))
        if voucher_id in beyond:
            flags.append(Flag(voucher_id, FindingRule.PLAN_HOURS, k, beyond[voucher_id]))
    return flags


def _raise(
    batch_id: int,
    data_center_id: int,
    flags: list[Flag],
    occurrences: Sequence[Occurrence],
    usage_record_ids: Sequence[int | None],
    terms: dict[int, ChargeTerms],
    checks: dict[int, ProgramChecks],
    cities: dict[int, tuple[int, int]],
) -> int:
    """One finding per voucher and rule of the batch; the held records by one UPDATE."""
    missing = {f.voucher_id for f in flags} - cities.keys()
    if missing:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, city_id, company_id FROM vouchers_voucher"
                " WHERE id = ANY(string_to_array(%s, E'\\n')::bigint[])",
                [sql_list(sorted(missing))],
            )
            for voucher_id, city_id, company_id in cursor:
                cities[voucher_id] = (city_id, company_id)
    grouped: dict[tuple[int, str], list[Flag]] = defaultdict(list)
    for flag in flags:
        grouped[(flag.voucher_id, flag.rule)].append(flag)
    drafts: list[FindingDraft] = []
    held: list[int] = []
    for (voucher_id, rule), group in grouped.items():
        hold = checks[terms[voucher_id].program_id].hold
        record_ids = [usage_record_ids[f.k] for f in group]
        ids = [r for r in record_ids if r is not None]
        if hold:
            held.extend(ids)
        evidence: dict = {
            "batch": batch_id,
            "records": [
                {
                    "record_id": occurrences[f.k].record.record_id,
                    "accelerator": occurrences[f.k].record.resource,
                    "quantity": occurrences[f.k].record.quantity,
                    "amount": occurrences[f.k].record.amount,
                    **f.detail,
                }
                for f in group[:EVIDENCE_RECORDS]
            ],
        }
        if rule == FindingRule.PLAN_HOURS:
            evidence.update(group[0].detail)
        city_id, company_id = cities[voucher_id]
        drafts.append(
            FindingDraft(
                city_id=city_id,
                data_center_id=data_center_id,
                rule=rule,
                severity=Severity.MEDIUM,
                key=f"batch {batch_id} voucher {voucher_id}",
                evidence=evidence,
                voucher_id=voucher_id,
                company_id=company_id,
                record_ids=ids,
                holds=hold,
            )
        )
    if held:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE compute_usagerecord SET held = true"
                " WHERE id = ANY(string_to_array(%s, E'\\n')::bigint[])",
                [sql_list(sorted(set(held)))],
            )
    return len(findings_raise(drafts))
