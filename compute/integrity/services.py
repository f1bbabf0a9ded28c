"""Raising findings and deciding them (one state machine: open → confirmed | cleared).

Raising is the checks' business (the ingestion pipeline, the nightly job, a redemption
request), always by the system; deciding is the city's program managers': confirming
voids the finding's records through the ledger (reversal entries, the redemption's cap
and the rollups, as a data center's own void does), clearing releases the charges the
finding held. Each writes its audit event in its transaction; a finding on a data
center's records also tells its webhooks (`finding.raised`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from compute.integrity.models import (
    Finding,
    FindingRecord,
    FindingStatus,
    IntegrityRules,
    Inventory,
    PriceBand,
    RelatedParty,
)
from compute.models import DataCenter, RecordStatus, Registration, UsageRecord
from compute.services import usage_record_void_locked
from compute.webhooks.models import WebhookEvent
from compute.webhooks.services import webhook_emit
from portal.audit import SYSTEM, audit_record
from portal.db import sql_list
from portal.errors import DomainError
from portal.locks import retry_on_deadlock
from portal.models import City, Role, User
from portal.tenancy import has_role
from vouchers.ledger import vouchers_lock
from vouchers.models import Company, Program

# The state machine: which decision leads where, from open only.
DECISIONS = {"confirm": FindingStatus.CONFIRMED, "clear": FindingStatus.CLEARED}
# A webhook names at most this many of the finding's record_ids (the console has all).
WEBHOOK_RECORD_IDS = 100


@dataclass(slots=True)
class FindingDraft:
    """A finding a check wants raised. `key` identifies it within its data center and
    rule, so a check that runs again finds it raised already."""

    city_id: int
    data_center_id: int
    rule: str
    severity: str
    key: str
    evidence: dict[str, Any]
    voucher_id: int | None = None
    company_id: int | None = None
    record_ids: list[int] = field(default_factory=list)
    holds: bool = False


def findings_raise(drafts: list[FindingDraft]) -> list[Finding]:
    """Write the findings not raised before (by data center, rule and key), with their
    records, an audit event each and a `finding.raised` webhook to the data center, in
    the caller's transaction. Returns the new ones. Findings are few (a batch's worth is
    a handful), so each is one insert; their records go in by one statement."""
    assert connection.in_atomic_block, "findings are raised inside a transaction"
    raised: list[Finding] = []
    for draft in drafts:
        finding = Finding(
            city_id=draft.city_id,
            data_center_id=draft.data_center_id,
            voucher_id=draft.voucher_id,
            company_id=draft.company_id,
            rule=draft.rule,
            severity=draft.severity,
            key=draft.key[:200],
            evidence=draft.evidence,
            holds=draft.holds,
            record_count=len(set(draft.record_ids)),
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM compute_finding WHERE data_center_id = %s AND rule = %s"
                " AND key = %s",
                [finding.data_center_id, finding.rule, finding.key],
            )
            if cursor.fetchone():
                continue
        finding.save()
        if draft.record_ids:
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO compute_findingrecord (finding_id, usage_record_id)"
                    " SELECT %s, r FROM unnest(string_to_array(%s, E'\\n')::bigint[]) AS r"
                    " ON CONFLICT DO NOTHING",
                    [finding.pk, sql_list(sorted(set(draft.record_ids)))],
                )
        raised.append(finding)
    _announce(raised)
    return raised


def _announce(raised: list[Finding]) -> None:
    """Webhooks first, then the audit events (lock order: the audit chain last)."""
    if not raised:
        return
    names = _record_names([f.pk for f in raised])
    cities = {c.pk: c for c in City.objects.filter(pk__in={f.city_id for f in raised})}
    for finding in raised:
        record_names = names.get(finding.pk, [])
        if record_names:
            webhook_emit(
                event=WebhookEvent.FINDING_RAISED,
                data_center_id=finding.data_center_id,
                data={
                    "finding": finding.pk,
                    "city": cities[finding.city_id].slug,
                    "rule": finding.rule,
                    "severity": finding.severity,
                    "held": finding.holds,
                    "records": finding.record_count,
                    "record_ids": record_names[:WEBHOOK_RECORD_IDS],
                },
            )
    for finding in raised:
        audit_record(
            action="finding.raise",
            city=cities[finding.city_id],
            actor=SYSTEM,
            target=finding,
            data={
                "rule": finding.rule,
                "severity": finding.severity,
                "data_center": finding.data_center_id,
                "records": finding.record_count,
                "held": finding.holds,
            },
        )


def _record_names(finding_ids: list[int]) -> dict[int, list[str]]:
    names: dict[int, list[str]] = {}
    rows = (
        FindingRecord.objects.filter(finding_id__in=finding_ids)
        .order_by("finding_id", "usage_record_id")
        .values_list("finding_id", "usage_record__record_id")
    )
    for finding_id, record_id in rows:
        names.setdefault(finding_id, []).append(record_id)
    return names


def _require_manager(finding: Finding, actor: User) -> None:
    if not has_role(actor, finding.city, Role.PROGRAM_MANAGER):
        raise DomainError(
            _("Only the city's program managers may decide on a finding."), code="forbidden"
        )


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(
            _("Give a reason."), code="invalid", fields={"reason": [_("Give a reason.")]}
        )
    return reason[:300]


def _locked_open(finding: Finding) -> Finding:
    locked = (
        Finding.objects.select_for_update(of=("self",)).select_related("city").get(pk=finding.pk)
    )
    if locked.status != FindingStatus.OPEN:
        raise DomainError(
            _("This finding was decided already (%(status)s).")
            % {"status": locked.get_status_display()},
            code="conflict",
        )
    return locked


@retry_on_deadlock()
def finding_confirm(*, finding: Finding, actor: User, reason: str) -> Finding:
    """The usage did not happen as billed: void every record of the finding still
    accepted, through the ledger. Locks: the finding, its records (ascending id, as a
    data center's own void takes one), then their vouchers (ascending id)."""
    _require_manager(finding, actor)
    reason = _reason(reason)
    with transaction.atomic():
        locked = _locked_open(finding)
        records = list(
            UsageRecord.objects.select_for_update(of=("self",))
            .filter(findings=locked, status=RecordStatus.ACCEPTED)
            .order_by("id")
        )
        vouchers_lock(r.voucher_id for r in records)
        label = f"finding F{locked.pk}"
        returned = sum((r.covered_amount for r in records), Decimal(0))
        for record in records:
            usage_record_void_locked(record, reason=f"F{locked.pk}: {reason}", actor_label=label)
        _decide(locked, FindingStatus.CONFIRMED, actor, reason)
        audit_record(
            action="finding.confirm",
            city=locked.city,
            actor=actor,
            target=locked,
            data={
                "reason": reason,
                "voided": [r.record_id for r in records],
                "returned": str(returned),
            },
        )
    return locked


@retry_on_deadlock()
def finding_clear(*, finding: Finding, actor: User, reason: str) -> Finding:
    """The usage is sound: release the charges the finding held (those no other open
    finding still holds); they are settled from the next statement built."""
    _require_manager(finding, actor)
    reason = _reason(reason)
    with transaction.atomic():
        locked = _locked_open(finding)
        _decide(locked, FindingStatus.CLEARED, actor, reason)
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE compute_usagerecord u SET held = false
                FROM compute_findingrecord fr
                WHERE fr.finding_id = %s AND u.id = fr.usage_record_id AND u.held
                  AND NOT EXISTS (
                      SELECT 1 FROM compute_findingrecord o
                      JOIN compute_finding f ON f.id = o.finding_id
                      WHERE o.usage_record_id = u.id AND f.id <> %s
                        AND f.status = 'open' AND f.holds)
                RETURNING u.record_id
                """,
                [locked.pk, locked.pk],
            )
            released = [row[0] for row in cursor.fetchall()]
        audit_record(
            action="finding.clear",
            city=locked.city,
            actor=actor,
            target=locked,
            data={"reason": reason, "released": released},
        )
    return locked


def _decide(finding: Finding, status: str, actor: User, reason: str) -> None:
    finding.status = status
    finding.decided_by = actor
    finding.decided_at = timezone.now()
    finding.reason = reason
    finding.save(update_fields=["status", "decided_by", "decided_at", "reason"])


def inventory_declare(
    *, registration: Registration, accelerator: str, cards: int, valid_from: date, actor: User
) -> Inventory:
    """A data center's operator declares (or corrects) its cards of one model for one
    city from a date on; the capacity check reads it the next night."""
    with transaction.atomic():
        item, _created = Inventory.objects.update_or_create(
            registration=registration,
            accelerator=accelerator,
            valid_from=valid_from,
            defaults={"cards": cards, "created_by": actor},
        )
        audit_record(
            action="inventory.declare",
            city=registration.city,
            actor=actor,
            target=item,
            data={
                "data_center": registration.data_center_id,
                "accelerator": accelerator,
                "cards": cards,
                "from": valid_from.isoformat(),
            },
        )
    return item


def related_party_add(
    *,
    name: str,
    code: str,
    actor: User,
    data_center: DataCenter | None = None,
    company: Company | None = None,
) -> RelatedParty:
    """A data center or a company declares a shareholder or manager (platform-wide: no
    city). `code` comes normalised (compute.integrity.parties.party_code_normalise); the
    same code twice for one owner is refused. The owner's row is locked first, so two
    requests declaring the same code at once cannot both pass the check."""
    assert (data_center is None) != (company is None), "a party has one owner"
    lock: Any
    owner: dict[str, Any]
    if data_center is not None:
        owner, lock = {"data_center": data_center}, DataCenter.objects.filter(pk=data_center.pk)
    else:
        assert company is not None
        owner, lock = {"company": company}, Company.objects.filter(pk=company.pk)
    with transaction.atomic():
        list(lock.select_for_update().values_list("pk", flat=True))
        if RelatedParty.objects.filter(code=code, **owner).exists():
            message = _("This ID number or registration code is declared already.")
            raise DomainError(message, code="duplicate", fields={"code": [message]})
        party = RelatedParty.objects.create(name=name, code=code, **owner)
        audit_record(
            action="related_party.add",
            actor=actor,
            target=party,
            data={**{k: v.pk for k, v in owner.items()}, "name": name},
        )
    return party


def related_party_remove(*, party: RelatedParty, actor: User) -> None:
    """Withdraw a declared shareholder or manager (findings already raised stay)."""
    with transaction.atomic():
        data = {
            "data_center": party.data_center_id,
            "company": party.company_id,
            "name": party.name,
            "code": "…" + party.code[-4:],
        }
        # Deleted first (the audit lock comes last, portal/locks.py); the instance keeps
        # its id for the event.
        RelatedParty.objects.filter(pk=party.pk).delete()
        audit_record(
            action="related_party.remove",
            actor=actor,
            target=party,
            data={k: v for k, v in data.items() if v is not None},
        )


def _require_program_manager(program: Program, actor: User) -> None:
    if not has_role(actor, program.city, Role.PROGRAM_MANAGER):
        raise DomainError(
            _("Only the city's program managers may set a program's checks."), code="forbidden"
        )


def integrity_rules_set(*, program: Program, actor: User, **values: Any) -> IntegrityRules:
    """A program manager sets the program's checks (plan, margin, holds, drain factor);
    they apply from the next batch."""
    _require_program_manager(program, actor)
    with transaction.atomic():
        rules, _created = IntegrityRules.objects.update_or_create(program=program, defaults=values)
        audit_record(
            action="integrity.rules",
            city=program.city,
            actor=actor,
            target=program,
            data={k: str(v) for k, v in values.items()},
        )
    return rules


def price_band_set(
    *,
    program: Program,
    actor: User,
    accelerator: str,
    reference_price: Decimal,
    tolerance_percent: Decimal,
) -> PriceBand:
    """A program manager sets (or changes) the band of one accelerator model."""
    _require_program_manager(program, actor)
    with transaction.atomic():
        band, _created = PriceBand.objects.update_or_create(
            program=program,
            accelerator=accelerator,
            defaults={"reference_price": reference_price, "tolerance_percent": tolerance_percent},
        )
        audit_record(
            action="integrity.price_band",
            city=program.city,
            actor=actor,
            target=program,
            data={
                "accelerator": accelerator,
                "reference_price": str(reference_price),
                "tolerance_percent": str(tolerance_percent),
            },
        )
    return band
