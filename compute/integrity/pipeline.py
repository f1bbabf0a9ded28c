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
# company's card-hours under the program so far (the rollup, this batch included).
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


def batch_check(
    *,
    batch_id: int,
    data_center_id: int,
    occurrences: Sequence[Occurrence],
    plans: Sequence[Plan],
    final: Sequence[Plan],
    usage_record_ids: Sequence[int | None],
    terms: dict[int, ChargeTerms],
) -> int:
    """Check a batch's accepted records, after its charges and rollups are written, in
    its transaction. Returns how many findings were raised."""
    accepted = [k for k, outcome in enumerate(final) if outcome.outcome == ACCEPTED]
    if not accepted:
        return 0
    programs = {terms[plans[k].voucher_id].program_id for k in accepted}
    checks = program_checks(programs)
    if not checks:
        return 0
    flags: list[Flag] = []
    planned_vouchers: set[int] = set()
    for k in accepted:
        voucher_id = plans[k].voucher_id
        program_checks_ = checks.get(terms[voucher_id].program_id)
        if program_checks_ is None:
            continue
        if program_checks_.check_plan:
            planned_vouchers.add(voucher_id)
        band = program_checks_.bands.get(occurrences[k].record.resource)
        if band is None:
            continue
        record = occurrences[k].record
        # Floats first (a tenth of Decimal's cost): clearly inside by a margin far above
        # their rounding error is inside; anything near an edge is decided exactly.
        quantity_f, amount_f = float(record.quantity), float(record.amount)
        if band[3] * quantity_f < amount_f < band[4] * quantity_f:
            continue
        quantity, amount = Decimal(record.quantity), Decimal(record.amount)
        if quantity > 0 and not band[0] * quantity <= amount <= band[1] * quantity:
            unit = (amount / quantity).quantize(Decimal("0.01"), ROUND_HALF_UP)
            flags.append(
                Flag(
                    voucher_id,
                    FindingRule.PRICE_BAND,
                    k,
                    {"unit_price": str(unit), "reference": str(band[2])},
                )
            )
    cities: dict[int, tuple[int, int]] = {}
    if planned_vouchers:
        flags.extend(
            _plan_flags(planned_vouchers, accepted, occurrences, plans, checks, terms, cities)
        )
    if not flags:
        return 0
    return _raise(
        batch_id, data_center_id, flags, occurrences, usage_record_ids, terms, checks, cities
    )


def _plan_flags(
    vouchers: set[int],
    accepted: list[int],
    occurrences: Sequence[Occurrence],
    plans: Sequence[Plan],
    checks: dict[int, ProgramChecks],
    terms: dict[int, ChargeTerms],
    cities: dict[int, tuple[int, int]],
) -> list[Flag]:
    with connection.cursor() as cursor:
        cursor.execute(_PLANS, [sql_list(sorted(vouchers))])
        rows = cursor.fetchall()
    if not rows:
        return []
    models: dict[int, set[str]] = {}
    beyond: dict[int, dict] = {}
    for voucher_id, city_id, company_id, accelerators, hours, used in rows:
        cities[voucher_id] = (city_id, company_id)
        models[voucher_id] = set(accelerators)
        if hours is None:
            continue
        margin = checks[terms[voucher_id].program_id].margin
        limit = hours * (100 + margin) / 100
        if used > limit:
            beyond[voucher_id] = {
                "card_hours": str(used),
                "plan": str(hours),
                "margin": str(margin),
            }
    flags = []
    for k in accepted:
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
