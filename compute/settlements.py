"""Monthly settlements: what a city owes a data center for a month of covered usage.

States, one table: draft → issued (the city's program manager) → confirmed (the data
center) → paid (recorded by the city). A draft is rebuilt from the ledger's usage
records whenever asked; an issued statement never changes again. A record voided after
the statement of its month was issued becomes an adjustment line (negative amounts) in
the next statement that is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from compute.models import (
    DataCenter,
    LineKind,
    Registration,
    RegistrationStatus,
    Settlement,
    SettlementStatus,
)
from compute.webhooks.models import WebhookEvent
from compute.webhooks.services import webhook_emit
from portal.audit import SYSTEM, Actor, audit_record
from portal.errors import DomainError
from portal.locks import retry_on_deadlock
from portal.models import City, Role, User
from portal.tenancy import has_role

S = SettlementStatus


@dataclass(frozen=True)
class Step:
    source: str
    target: str
    party: str  # "program_manager" of the city, or "data_center"


STEPS = {
    "issue": Step(S.DRAFT, S.ISSUED, "program_manager"),
    "confirm": Step(S.ISSUED, S.CONFIRMED, "data_center"),
    "mark_paid": Step(S.CONFIRMED, S.PAID, "program_manager"),
}


def allowed_steps(settlement: Settlement, *, party: str) -> list[str]:
    return [n for n, s in STEPS.items() if s.source == settlement.status and s.party == party]


def month_bounds(period: date, tz_name: str) -> tuple[datetime, datetime]:
    tz = ZoneInfo(tz_name)
    start = datetime(period.year, period.month, 1, tzinfo=tz)
    year, month = (period.year + 1, 1) if period.month == 12 else (period.year, period.month + 1)
    return start, datetime(year, month, 1, tzinfo=tz)


def parse_period(value: str) -> date:
    """`YYYY-MM` → the first day of that month; a clear error otherwise."""
    try:
        year, month = (int(part) for part in value.split("-"))
        return date(year, month, 1)
    except (ValueError, TypeError) as error:
        raise DomainError(
            _("The period is a month written YYYY-MM, e.g. 2026-11."),
            fields={"period": [_("Write the month as YYYY-MM.")]},
        ) from error


_USAGE_LINES = """
INSERT INTO compute_settlementline
    (settlement_id, kind, usage_record_id, record_id, voucher_code, amount, covered_amount)
SELECT %(settlement)s, 'usage', r.id, r.record_id, v.code, r.amount, r.covered_amount
FROM compute_usagerecord r
JOIN vouchers_voucher v ON v.id = r.voucher_id
WHERE r.data_center_id = %(dc)s AND v.city_id = %(city)s AND r.status = 'accepted'
  AND NOT r.held  -- an integrity finding holds it: billed once cleared (compute/integrity/)
  AND {ended}
  AND NOT EXISTS (SELECT 1 FROM compute_settlementline l
                  WHERE l.usage_record_id = r.id AND l.kind = 'usage')
"""
# The month's own records: one partition of the usage records (bounded by ended_at in
# the partitions' zone, which is the cities').
_MONTH_LINES = _USAGE_LINES.format(ended="r.ended_at >= %(start)s AND r.ended_at < %(end)s")
# Arrived late (within the voucher's grace days) for a month already issued: that
# statement is frozen, so the record is billed in this one instead. Only the months
# from the first one issued on: a statement of this city and data center with none
# issued before it skips this statement.
_LATE_LINES = _USAGE_LINES.format(
    ended="r.ended_at >= %(late_from)s AND r.ended_at < %(start)s"
    """
  AND EXISTS (SELECT 1 FROM compute_settlement p
              WHERE p.city_id = %(city)s AND p.data_center_id = %(dc)s
                AND p.status <> 'draft' AND p.period < %(period)s
                AND p.period = date_trunc('month', r.ended_at AT TIME ZONE %(tz)s)::date)"""
)

# Records voided after the statement carrying them was issued, not yet adjusted.
_ADJUSTMENT_LINES = """
INSERT INTO compute_settlementline
    (settlement_id, kind, usage_record_id, record_id, voucher_code, amount, covered_amount)
SELECT %(settlement)s, 'adjustment', r.id, r.record_id, v.code, -r.amount, -r.covered_amount
FROM compute_usagerecord r
JOIN vouchers_voucher v ON v.id = r.voucher_id
JOIN compute_settlementline u ON u.usage_record_id = r.id AND u.kind = 'usage'
JOIN compute_settlement s ON s.id = u.settlement_id
WHERE r.data_center_id = %(dc)s AND v.city_id = %(city)s AND r.status = 'void'
  AND r.voided_at < %(end)s AND s.status <> 'draft' AND s.period < %(period)s
  AND NOT EXISTS (SELECT 1 FROM compute_settlementline a
                  WHERE a.usage_record_id = r.id AND a.kind = 'adjustment')
"""


@retry_on_deadlock()
def settlement_build(*, city: City, data_center: DataCenter, period: date) -> Settlement:
    """Create or rebuild the draft statement of a city, data center and month."""
    period = period.replace(day=1)
    start, end = month_bounds(period, city.timezone)
    with transaction.atomic():
        # Builds of different months of one city × data center compete for the same late
        # records and adjustments; one at a time, each sees what the other one claimed.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                [f"settlement:{city.pk}:{data_center.pk}"],
            )
        settlement, _created = Settlement.objects.select_for_update().get_or_create(
            city=city, data_center=data_center, period=period
        )
        if settlement.status != S.DRAFT:
            raise DomainError(
                _("This statement is %(status)s and can no longer change.")
                % {"status": settlement.get_status_display()},
                code="conflict",
            )
        settlement.lines.all().delete()
        params: dict[str, Any] = {
            "settlement": settlement.pk,
            "dc": data_center.pk,
            "city": city.pk,
            "start": start,
            "end": end,
            "period": period,
            "tz": city.timezone,
        }
        issued_before = (
            Settlement.objects.filter(city=city, data_center=data_center, period__lt=period)
            .exclude(status=S.DRAFT)
            .order_by("period")
            .values_list("period", flat=True)
            .first()
        )
        with connection.cursor() as cursor:
            cursor.execute(_MONTH_LINES, params)
            if issued_before is not None:
                params["late_from"] = month_bounds(issued_before, city.timezone)[0]
                cursor.execute(_LATE_LINES, params)
            cursor.execute(_ADJUSTMENT_LINES, params)
        totals = settlement.lines.aggregate(
            amount=Sum("amount"),
            covered=Sum("covered_amount"),
            usage=Count("id", filter=Q(kind=LineKind.USAGE)),
        )
        settlement.records = totals["usage"]
        settlement.amount_total = totals["amount"] or 0
        settlement.covered_total = totals["covered"] or 0
        settlement.save()
    return settlement


def previous_month(today: date | None = None) -> date:
    today = today or timezone.localdate()
    first = today.replace(day=1)
    return (
        first.replace(year=first.year - 1, month=12)
        if first.month == 1
        else first.replace(month=first.month - 1)
    )


def settlements_build_month(*, period: date, city: City | None = None) -> list[Settlement]:
    """Drafts for every active registration (of one city, if given). Statements already
    issued are left alone, also when one is issued while this runs: one frozen statement
    must not stop the other drafts from being built."""
    registrations = Registration.objects.filter(status=RegistrationStatus.ACTIVE)
    if city is not None:
        registrations = registrations.filter(city=city)
    frozen = set(
        Settlement.objects.filter(period=period)
        .exclude(status=S.DRAFT)
        .values_list("city_id", "data_center_id")
    )
    built = []
    for registration in registrations.select_related("city", "data_center").order_by("id"):
        if (registration.city_id, registration.data_center_id) in frozen:
            continue
        try:
            built.append(
                settlement_build(
                    city=registration.city, data_center=registration.data_center, period=period
                )
            )
        except DomainError as error:
            if error.code != "conflict":
                raise
    return built


@retry_on_deadlock()
def _advance(
    settlement: Settlement, *, step: str, actor: Actor, actor_label: str, **fields
) -> Settlement:
    with transaction.atomic():
        locked = (
            Settlement.objects.select_for_update(of=("self",))  # portal/locks.py
            .select_related("city", "data_center")
            .get(pk=settlement.pk)
        )
        rule = STEPS[step]
        if locked.status != rule.source:
            raise DomainError(
                _("This statement is %(status)s; that step is not possible now.")
                % {"status": locked.get_status_display()},
                code="conflict",
            )
        locked.status = rule.target
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.save()
        if step == "issue":
            webhook_emit(
                event=WebhookEvent.STATEMENT_ISSUED,
                data_center_id=locked.data_center_id,
                data={
                    "settlement": locked.pk,
                    "city": locked.city.slug,
                    "period": f"{locked.period:%Y-%m}",
                    "covered_total": f"{locked.covered_total:.2f}",
                },
            )
        audit_record(
            action=f"settlement.{step}",
            city=locked.city,
            actor=actor,
            actor_label=actor_label,
            target=locked,
            data={"period": f"{locked.period:%Y-%m}", "covered_total": str(locked.covered_total)},
        )
    return locked


def settlement_issue(*, settlement: Settlement, actor: User) -> Settlement:
    if not has_role(actor, settlement.city, Role.PROGRAM_MANAGER):
        raise DomainError(_("Only the city's program managers issue statements."), code="forbidden")
    return _advance(
        settlement,
        step="issue",
        actor=actor,
        actor_label="",
        issued_at=timezone.now(),
        issued_by=actor,
    )


def settlement_confirm(
    *, settlement: Settlement, data_center: DataCenter, actor: Actor
) -> Settlement:
    if settlement.data_center_id != data_center.pk:
        raise DomainError(_("Not found."), code="not_found")
    # A signed-in person confirms only for a data center they operate; without an actor
    # the caller is the data center itself (its API key), already authenticated.
    if actor is not SYSTEM and not data_center.operators.filter(pk=actor.pk).exists():
        raise DomainError(
            _("Only the data center's operators confirm statements."), code="forbidden"
        )
    return _advance(
        settlement,
        step="confirm",
        actor=actor,
        # Name the person when there is one; the API caller is the data center itself.
        actor_label=(
            f"{actor.email} (data center {data_center.slug})"
            if actor is not SYSTEM
            else f"data center {data_center.slug}"
        ),
        confirmed_at=timezone.now(),
    )


def settlement_mark_paid(*, settlement: Settlement, actor: User, payment_ref: str) -> Settlement:
    if not has_role(actor, settlement.city, Role.PROGRAM_MANAGER):
        raise DomainError(_("Only the city's program managers record payments."), code="forbidden")
    payment_ref = (payment_ref or "").strip()
    if not payment_ref:
        raise DomainError(
            _("Give the payment reference."),
            fields={"payment_ref": [_("Give the payment reference.")]},
        )
    return _advance(
        settlement,
        step="mark_paid",
        actor=actor,
        actor_label="",
        paid_at=timezone.now(),
        paid_by=actor,
        payment_ref=payment_ref[:100],
    )
