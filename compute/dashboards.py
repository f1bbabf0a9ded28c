"""The dashboards' figures: plain selectors over the usage rollups (compute/rollups.py)
and small tables, each a fixed number of queries however many usage records there are.
The pages, their JSON endpoints and the exports read them, so every view of a figure is
the same number. Money is `Decimal`, exact to the fen; nothing here is float.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Sum
from django.db.models.functions import Trunc
from django.utils import timezone

from compute.models import (
    CompanyUsage,
    DataCenter,
    IngestDay,
    ProgramUsageDay,
    Registration,
    RegistrationStatus,
    Settlement,
    SettlementStatus,
    SyncRun,
)
from portal.models import City
from vouchers.models import (
    ApplicationState,
    Company,
    Program,
    ProgramStateCount,
    Voucher,
)
from vouchers.selectors import application_state_counts, application_state_tally

ZERO = Decimal("0.00")
PERIODS = ("day", "week", "month")
RUN_RATE_DAYS = 30  # the "current rate" of a burn-down: the last 30 days' usage
# Awards by size band: lower edges in yuan (the last band is open above).
AWARD_BANDS = (0, 100_000, 300_000, 500_000, 1_000_000, 2_000_000, 5_000_000)


def period_or_default(value: str | None, default: str = "week") -> str:
    return value if value in PERIODS else default


def _money(value) -> Decimal:
    return Decimal(value or 0).quantize(Decimal("0.01"))


# --- program --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """A program's money. committed: vouchers issued (face value); spent: what usage
    charged them, less reversals; returned: what expiry and revocation gave back;
    left: budget − committed + returned (= budget − allocated), less what awards awaiting
    acceptance hold reserved."""

    budget: Decimal
    committed: Decimal
    spent: Decimal
    returned: Decimal
    left: Decimal


def program_budget_get(*, program: Program, committed: Decimal | None = None) -> Budget:
    """Two queries: the vouchers' face values (or `committed`, their sum, when the
    caller has it: the award bands' totals) and the program's daily usage rollup (a
    few thousand rows). `allocated` (issued less returned) is kept under the program's
    lock and checked against the ledger by verify_ledger."""
    if committed is None:
        committed = Voucher.objects.filter(program=program).aggregate(s=Sum("face_value"))["s"]
    committed = _money(committed)
    spent = _money(ProgramUsageDay.objects.filter(program=program).aggregate(s=Sum("covered"))["s"])
    allocated = program.allocated
    return Budget(
        budget=program.budget,
        committed=committed,
        spent=spent,
        returned=committed - allocated,
        left=_left(program),
    )


def _left(program: Program) -> Decimal:
    return program.budget - program.allocated - program.reserved


def program_budget_list(*, city: City) -> list[tuple[Program, Budget]]:
    """Every program of the city with its money (as `program_budget_get`), in three
    queries whatever the number of programs."""
    programs = list(Program.objects.filter(city=city).order_by("-created_at", "slug"))
    committed = dict(
        Voucher.objects.filter(city=city)
        .values_list("program_id")
        .annotate(s=Sum("face_value"))
        .values_list("program_id", "s")
    )
    spent = dict(
        ProgramUsageDay.objects.filter(program__city=city)
        .values_list("program_id")
        .annotate(s=Sum("covered"))
        .values_list("program_id", "s")
    )
    result = []
    for p in programs:
        c = _money(committed.get(p.pk))
        result.append(
            (
                p,
                Budget(
                    budget=p.budget,
                    committed=c,
                    spent=_money(spent.get(p.pk)),
                    returned=c - p.allocated,
                    left=_left(p),
                ),
            )
        )
    return result


def application_funnel_list(
    *, program: Program, counts: dict[str, int] | None = None
) -> list[tuple[str, str, int]]:
    """(state, label, count) for every application state, in the workflow's order, from
    the state counts PostgreSQL keeps (`ProgramStateCount`; `counts` if read already)."""
    if counts is None:
        counts = application_state_counts(program=program)
    return [
        (state.value, str(state.label), counts.get(state.value, 0)) for state in ApplicationState
    ]


@dataclass(frozen=True)
class Band:
    low: int
    high: int | None  # None: open above
    vouchers: int
    total: Decimal


def award_band_list(*, program: Program) -> list[Band]:
    """The program's vouchers by face value, in AWARD_BANDS, in one query: one pass of
    the vouchers grouped by `width_bucket` (a FILTERed count and sum per band cost a
    pass of comparisons each)."""
    edges = list(AWARD_BANDS)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT width_bucket(face_value, %s::numeric[]), count(*), sum(face_value)"
            " FROM vouchers_voucher WHERE program_id = %s GROUP BY 1",
            [edges, program.pk],
        )
        found = {bucket: (n, total) for bucket, n, total in cursor.fetchall()}
    bands = []
    for k, low in enumerate(edges):
        n, total = found.get(k + 1, (0, None))  # bucket k + 1: edges[k] <= value < edges[k + 1]
        bands.append(Band(low, edges[k + 1] if k + 1 < len(edges) else None, n, _money(total)))
    return bands


@dataclass
class UsageSeries:
    """Usage summed per period: covered amount by data center and by chip origin."""

    periods: list[date] = field(default_factory=list)
    data_centers: list[DataCenter] = field(default_factory=list)
    by_data_center: dict[int, list[Decimal]] = field(default_factory=dict)
    domestic: list[Decimal] = field(default_factory=list)
    other: list[Decimal] = field(default_factory=list)
    records: list[int] = field(default_factory=list)
    total: list[Decimal] = field(default_factory=list)


def program_usage_series(*, program: Program, period: str) -> UsageSeries:
    """The program's usage per day, week or month (in its city's time), from the
    program's daily rollup; two queries (the rollup, the data centers' names)."""
    rows = list(
        ProgramUsageDay.objects.filter(program=program, records__gt=0)
        .annotate(bucket=Trunc("day", period_or_default(period)))
        .values_list("bucket", "data_center_id", "domestic")
        .annotate(covered=Sum("covered"), records=Sum("records"))
        .order_by("bucket")
    )
    return _usage_series(rows)


def _usage_series(rows: list[tuple]) -> UsageSeries:
    series = UsageSeries()
    periods = sorted({r[0] for r in rows})
    index = {p: k for k, p in enumerate(periods)}
    dc_ids = sorted({r[1] for r in rows})
    series.periods = periods
    series.data_centers = list(DataCenter.objects.filter(pk__in=dc_ids).order_by("slug"))
    n = len(periods)
    series.by_data_center = {dc.pk: [ZERO] * n for dc in series.data_centers}
    series.domestic, series.other = [ZERO] * n, [ZERO] * n
    series.records, series.total = [0] * n, [ZERO] * n
    for bucket, dc_id, domestic, covered, records in rows:
        k = index[bucket]
        covered = _money(covered)
        if dc_id in series.by_data_center:
            series.by_data_center[dc_id][k] += covered
        (series.domestic if domestic else series.other)[k] += covered
        series.records[k] += records
        series.total[k] += covered
    return series


@dataclass(frozen=True)
class CompanySpend:
    company: Company
    records: int
    covered: Decimal


def top_company_list(*, program: Program, limit: int = 10) -> list[CompanySpend]:
    """The companies whose vouchers of this program covered most, from the company
    rollup (one row per company), in one query."""
    order = ("-covered", "company_id")
    # The top rows first, then their companies: joined before the limit, PostgreSQL
    # looked up every company of the program (20,000 at scale) to keep ten.
    top = CompanyUsage.objects.filter(program=program, covered__gt=0).order_by(*order)
    rows = (
        CompanyUsage.objects.filter(pk__in=top.values("pk")[:limit])
        .select_related("company")
        .order_by(*order)
    )
    return [CompanySpend(r.company, r.records, _money(r.covered)) for r in rows]


@dataclass(frozen=True)
class DecisionTimes:
    decided: int
    median_days: Decimal | None
    p90_days: Decimal | None


# A cached figure outlives no change of the applications; this bounds it should the
# change counter ever repeat (a database restored from a backup).
DECISION_TIMES_TTL = 3600


def decision_time_get(*, program: Program, changes: int | None = None) -> DecisionTimes:
    """Days from submission to decision of the program's decided applications: median
    and 90th percentile (continuous), computed by PostgreSQL over all of them, and
    cached under the program's change counter (`ProgramStateCount.changes`, which moves
    with every change of an application's state, submission or decision time): the
    percentiles are read again only after such a change. The counter is read in the
    same statement as the percentiles, so a figure is never filed under an older one.
    `changes`: the counter if read already (`application_state_tally`)."""
    if changes is None:
        changes = application_state_tally(program=program)[1]
    key = f"decision-times:{program.pk}:{changes}"
    cached = cache.get(key)
    if cached is not None:
        return DecisionTimes(*cached)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT changes FROM vouchers_programstatecount"
            " WHERE program_id = %s AND state = ''),"
            " count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY s),"
            " percentile_cont(0.9) WITHIN GROUP (ORDER BY s)"
            " FROM (SELECT extract(epoch FROM decided_at - submitted_at) AS s"
            " FROM vouchers_application WHERE program_id = %s"
            " AND submitted_at IS NOT NULL AND decided_at IS NOT NULL) d",
            [program.pk, program.pk],
        )
        changes, decided, median, p90 = cursor.fetchone()

    def days(seconds) -> Decimal | None:
        if seconds is None:
            return None
        return (Decimal(str(seconds)) / 86400).quantize(Decimal("0.1"), ROUND_HALF_UP)

    times = DecisionTimes(decided, days(median), days(p90))
    cache.set(
        f"decision-times:{program.pk}:{changes or 0}",
        (times.decided, times.median_days, times.p90_days),
        DECISION_TIMES_TTL,
    )
    return times


# --- company --------------------------------------------------------------------------------


@dataclass
class VoucherBurn:
    """One voucher: its balance, what it spent per day (burn-down) and the run-out date
    at the current rate, its usage per day by data center and accelerator (the last 31
    days), and its monthly statements."""

    voucher: Voucher
    spent: Decimal = ZERO
    days: list[date] = field(default_factory=list)
    remaining: list[Decimal] = field(default_factory=list)  # face value less usage so far
    daily_rate: Decimal = ZERO
    runs_out_on: date | None = None
    expires_first: bool = False
    usage_rows: list[tuple] = field(
        default_factory=list
    )  # (day, data center, resource, records, quantity, covered)
    months: list[tuple] = field(default_factory=list)  # (month, records, amount, covered)


_VOUCHER_DAYS = """
SELECT u.voucher_id, (u.ended_at AT TIME ZONE c.timezone)::date AS day, u.data_center_id,
       u.resource, count(*), sum(u.quantity), sum(u.amount), sum(u.covered_amount)
FROM compute_usagerecord u
JOIN vouchers_voucher v ON v.id = u.voucher_id
JOIN portal_city c ON c.id = v.city_id
WHERE u.voucher_id = ANY(string_to_array(%s, ',')::bigint[]) AND u.status = 'accepted'
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
"""


def voucher_burn_list(*, vouchers: list[Voucher], today: date | None = None) -> list[VoucherBurn]:
    """The company dashboard's figures for `vouchers` (the caller's scoped list), in two
    queries: their records summed per day, data center and accelerator (through the
    records' voucher index: what one company's vouchers used, not the city's), and the
    data centers' names."""
    today = today or timezone.localdate()
    burns = {v.pk: VoucherBurn(v) for v in vouchers}
    with connection.cursor() as cursor:
        cursor.execute(_VOUCHER_DAYS, [",".join(str(pk) for pk in burns) or "0"])
        rows = cursor.fetchall()
    names = {dc.pk: dc for dc in DataCenter.objects.filter(pk__in={r[2] for r in rows})}
    per_day: dict[int, dict[date, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    per_month: dict[int, dict[date, list]] = defaultdict(dict)
    since = today - timedelta(days=31)
    for voucher_id, day, dc_id, resource, records, quantity, amount, covered in rows:
        burn = burns[voucher_id]
        per_day[voucher_id][day] += covered
        month = per_month[voucher_id].setdefault(day.replace(day=1), [0, ZERO, ZERO])
        month[0] += records
        month[1] += amount
        month[2] += covered
        if day > since and records:
            burn.usage_rows.append((day, names.get(dc_id), resource, records, quantity, covered))
    for voucher_id, burn in burns.items():
        voucher = burn.voucher
        remaining = voucher.face_value
        for day, covered in sorted(per_day[voucher_id].items()):
            remaining -= covered
            burn.days.append(day)
            burn.remaining.append(_money(remaining))
        burn.spent = _money(voucher.face_value - remaining)
        window = today - timedelta(days=RUN_RATE_DAYS)
        recent = sum((c for d, c in per_day[voucher_id].items() if window < d <= today), ZERO)
        burn.daily_rate = _money(recent / RUN_RATE_DAYS)
        if burn.daily_rate > 0 and voucher.balance > 0 and voucher.status == "active":
            burn.runs_out_on = today + timedelta(days=math.ceil(voucher.balance / burn.daily_rate))
            burn.expires_first = burn.runs_out_on > voucher.valid_until
        burn.usage_rows.sort(key=lambda r: (r[0], r[1].slug if r[1] else "", r[2]), reverse=True)
        burn.months = [
            (month, n, _money(amount), _money(covered))
            for month, (n, amount, covered) in sorted(per_month[voucher_id].items(), reverse=True)
        ]
    return [burns[v.pk] for v in vouchers]


# --- data center ----------------------------------------------------------------------------


@dataclass
class IngestSeries:
    periods: list[date] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)  # accepted, duplicate, then codes
    counts: dict[str, list[int]] = field(default_factory=dict)


def ingest_series(*, data_center: DataCenter, period: str) -> IngestSeries:
    """The data center's records per day, week or month by outcome (accepted, duplicate,
    each rejection code), from its daily ingestion rollup, in one query."""
    rows = list(
        IngestDay.objects.filter(data_center=data_center)
        .annotate(bucket=Trunc("day", period_or_default(period)))
        .values_list("bucket", "outcome")
        .annotate(n=Sum("records"))
        .order_by("bucket", "outcome")
    )
    series = IngestSeries()
    series.periods = sorted({r[0] for r in rows})
    found = {r[1] for r in rows}
    first = [o for o in ("accepted", "duplicate") if o in found]
    series.outcomes = first + sorted(found - set(first))
    index = {p: k for k, p in enumerate(series.periods)}
    series.counts = {o: [0] * len(series.periods) for o in series.outcomes}
    for bucket, outcome, n in rows:
        series.counts[outcome][index[bucket]] += n
    return series


def covered_by_city_list(*, data_center: DataCenter) -> list[tuple[City, int, Decimal]]:
    """(city, records, covered) of the usage this data center billed, per city whose
    vouchers paid it, from the programs' daily rollup; two queries."""
    rows = list(
        ProgramUsageDay.objects.filter(data_center=data_center)
        .values_list("program__city_id")
        .annotate(records=Sum("records"), covered=Sum("covered"))
        .order_by("program__city_id")
    )
    cities = City.objects.in_bulk([r[0] for r in rows])
    return [(cities[c], n, _money(s)) for c, n, s in rows if c in cities]


def settlement_status_list(*, data_center: DataCenter) -> list[tuple[str, str, int, Decimal]]:
    """(status, label, statements, amount) of the data center's statements, one query."""
    rows = dict(
        (status, (n, total))
        for status, n, total in Settlement.objects.filter(data_center=data_center)
        .values_list("status")
        .annotate(n=Count("id"), total=Sum("covered_total"))
        .values_list("status", "n", "total")
    )
    return [
        (
            s.value,
            str(s.label),
            rows.get(s.value, (0, ZERO))[0],
            _money(rows.get(s.value, (0, 0))[1]),
        )
        for s in SettlementStatus
    ]


def feed_run_list(*, data_center: DataCenter, limit: int = 10) -> list[SyncRun]:
    return list(SyncRun.objects.filter(data_center=data_center).order_by("-started_at")[:limit])


# --- platform -------------------------------------------------------------------------------


@dataclass
class CityFigures:
    city: City
    budget: Decimal = ZERO
    committed: Decimal = ZERO
    spent: Decimal = ZERO
    applications: int = 0
    vouchers: int = 0
    data_centers: int = 0


def city_figure_list() -> list[CityFigures]:
    """Every active city side by side, in six queries (one per figure, grouped by city)."""
    figures = {c.pk: CityFigures(c) for c in City.objects.filter(is_active=True).order_by("slug")}
    for city_id, budget in Program.objects.values_list("city_id").annotate(s=Sum("budget")):
        if city_id in figures:
            figures[city_id].budget = _money(budget)
    for city_id, n, committed in Voucher.objects.values_list("city_id").annotate(
        n=Count("id"), s=Sum("face_value")
    ):
        if city_id in figures:
            figures[city_id].vouchers, figures[city_id].committed = n, _money(committed)
    for city_id, spent in ProgramUsageDay.objects.values_list("program__city_id").annotate(
        s=Sum("covered")
    ):
        if city_id in figures:
            figures[city_id].spent = _money(spent)
    # The applications from the state counts PostgreSQL keeps: each program's "" row.
    applications = ProgramStateCount.objects.filter(state="").values_list("program__city_id")
    for city_id, n in applications.annotate(s=Sum("n")):
        if city_id in figures:
            figures[city_id].applications = n
    for city_id, n in (
        Registration.objects.filter(status=RegistrationStatus.ACTIVE)
        .values_list("city_id")
        .annotate(n=Count("data_center_id", distinct=True))
    ):
        if city_id in figures:
            figures[city_id].data_centers = n
    return list(figures.values())
