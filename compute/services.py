"""Writes of the compute app: API keys, registrations, redemptions and voiding usage.
Usage batches live in `compute.ingest` (the hot path); money moves only through
`vouchers.ledger`."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from compute.models import (
    ApiKey,
    DataCenter,
    RecordStatus,
    Redemption,
    RedemptionStatus,
    Registration,
    RegistrationStatus,
    UsageRecord,
)
from compute.partitions import usage_record_by_key
from compute.rollups import rollups_void
from compute.webhooks.models import WebhookEvent
from compute.webhooks.services import webhook_emit
from portal.audit import SYSTEM, Actor, actor_user, audit_record
from portal.errors import DomainError
from portal.locks import retry_on_deadlock
from portal.models import City, Role, User
from portal.notifications import notify
from portal.tenancy import has_role
from vouchers.ledger import ledger_reverse
from vouchers.models import Company, Program, Voucher, VoucherStatus

KEY_PREFIX = "sk_live_"


def key_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def is_operator(user: User, data_center: DataCenter) -> bool:
    return bool(
        user.is_authenticated
        and (user.is_superuser or data_center.operators.filter(pk=user.pk).exists())
    )


# --- API keys ---------------------------------------------------------------------------


def api_key_expiry(expires_on: date | None) -> datetime | None:
    """A key valid through `expires_on` stops working at the next midnight, Shanghai time."""
    if expires_on is None:
        return None
    return datetime.combine(
        expires_on + timedelta(days=1), time(), tzinfo=timezone.get_default_timezone()
    )


def api_key_issue(
    *,
    data_center: DataCenter,
    actor: Actor,
    name: str = "",
    expires_on: date | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with the raw secret, which is shown once and never
    stored nor logged (only its SHA-256 and prefix are kept; the audit event names the
    prefix). With `expires_on` the key works through that day (Asia/Shanghai)."""
    if actor is not SYSTEM and not is_operator(actor, data_center):
        raise DomainError(_("Only the data center's operators may issue keys."), code="forbidden")
    if expires_on is not None and expires_on < timezone.localdate():
        message = _("The expiry date cannot be in the past.")
        raise DomainError(message, code="invalid", fields={"expires_on": [message]})
    expires_at = api_key_expiry(expires_on)
    public = secrets.token_hex(4)
    raw = f"{KEY_PREFIX}{public}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        key = ApiKey.objects.create(
            data_center=data_center,
            name=name.strip()[:100],
            prefix=f"{KEY_PREFIX}{public}",
            key_hash=key_hash(raw),
            created_by=actor_user(actor),
            expires_at=expires_at,
        )
        audit_record(
            action="api_key.issue",
            actor=actor,
            actor_label="" if actor else "manage.py issue_api_key",
            target=key,
            data={
                "data_center": data_center.slug,
                "prefix": key.prefix,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    return key, raw


def api_key_revoke(*, key: ApiKey, actor: User) -> ApiKey:
    if not is_operator(actor, key.data_center):
        raise DomainError(_("Only the data center's operators may revoke keys."), code="forbidden")
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=key.pk)
        if locked.revoked_at is not None:
            raise DomainError(_("This key is already revoked."), code="conflict")
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
        audit_record(
            action="api_key.revoke",
            actor=actor,
            target=locked,
            data={"data_center": key.data_center.slug, "prefix": locked.prefix},
        )
    return locked


class ApiKeyExpired(Exception):
    """A known key past its expiry: refused, and the client is told why."""

    def __init__(self, key: ApiKey) -> None:
        super().__init__(key.prefix)
        self.key = key


def api_key_authenticate(raw: str) -> ApiKey | None:
    """The active key for a raw secret, or None; `ApiKeyExpired` for a key past its
    expiry. Records use at most once a minute so a busy client does not turn every
    request into a write."""
    if not raw.startswith(KEY_PREFIX) or len(raw) > 120:
        return None
    key = (
        ApiKey.objects.select_related("data_center")
        .filter(key_hash=key_hash(raw), revoked_at__isnull=True, data_center__is_active=True)
        .first()
    )
    if key is None:
        return None
    now = timezone.now()
    if key.expires_at is not None and key.expires_at <= now:
        raise ApiKeyExpired(key)
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def api_keys_expiry_remind(*, now: datetime | None = None) -> int:
    """E-mail the operators of each data center whose live keys expire within
    `API_KEY_EXPIRY_REMINDER_DAYS`, once per key, in each operator's language; return
    how many e-mails went out. Run daily by beat (compute.tasks)."""
    now = now or timezone.now()
    horizon = now + timedelta(days=settings.API_KEY_EXPIRY_REMINDER_DAYS)
    sent = 0
    due = ApiKey.objects.filter(
        revoked_at__isnull=True,
        expiry_reminded_at__isnull=True,
        expires_at__gt=now,
        expires_at__lte=horizon,
    ).select_related("data_center")
    for key in due:
        sent += _api_key_remind(key, now)
    return sent


def _api_key_remind(key: ApiKey, now: datetime) -> int:
    sent = 0
    # Claimed before sending, so that two runs never send one reminder twice; a mail
    # that fails rolls the claim back, and tomorrow's run tries again.
    with transaction.atomic():
        claimed = ApiKey.objects.filter(pk=key.pk, expiry_reminded_at__isnull=True).update(
            expiry_reminded_at=now
        )
        if not claimed:
            return 0
        for user in key.data_center.operators.filter(is_active=True):
            with translation.override(user.preferred_language):
                when = timezone.localtime(key.expires_at).strftime("%Y-%m-%d %H:%M")
                notify(
                    user=user,
                    kind="api_key",
                    subject=_("[Suanli] API key %(prefix)s… of %(dc)s expires on %(when)s")
                    % {"prefix": key.prefix, "dc": key.data_center.name, "when": when},
                    body=_(
                        "The API key %(prefix)s… (%(name)s) of %(dc)s stops working on "
                        "%(when)s (Asia/Shanghai). Issue a new key in the console "
                        "(%(url)s), switch your clients to it, then revoke the old one."
                    )
                    % {
                        "prefix": key.prefix,
                        "name": key.name or "—",
                        "dc": key.data_center.name,
                        "when": when,
                        "url": f"{settings.SITE_URL}/dc/{key.data_center.slug}/keys/",
                    },
                    path=f"/dc/{key.data_center.slug}/keys/",
                )
            sent += 1
    return sent


# --- data centers -----------------------------------------------------------------------

# Kept out of the audit trail: it is the data center's secret, not ours to copy around.
DATA_CENTER_SECRET_FIELDS = frozenset({"feed_token"})
# Written by the feed sync, never by people.
DATA_CENTER_SYNC_FIELDS = frozenset(
    {"feed_cursor", "feed_healthy", "feed_error", "feed_checked_at"}
)


def data_center_save(
    *,
    actor: User,
    data_center: DataCenter,
    changed: Iterable[str],
    programs: Iterable[Program] | None = None,
    operators: Iterable[User] | None = None,
    ip: str | None = None,
) -> DataCenter:
    """Create a data center or save the fields named in `changed`, and set the programs
    whose vouchers it accepts and its operator users (platform admins, the admin site).

    Audited: `data_center.create/update` (the changed fields and their new values, the
    outbound token only as changed), and one `data_center.operator_grant/revoke` per
    operator added or removed, and `data_center.programs` when those change."""
    created = data_center.pk is None
    perm = "compute.add_datacenter" if created else "compute.change_datacenter"
    if not actor.has_perm(perm):
        raise DomainError(_("Only platform admins manage data centers."), code="forbidden")
    changed = sorted(set(changed) - {"programs", "operators"})
    with transaction.atomic():
        data_center.save()
        events: list[tuple[str, dict[str, object]]] = []
        if created or changed:
            events.append(
                (
                    "data_center.create" if created else "data_center.update",
                    {
                        "changed": changed,
                        "values": {
                            f: getattr(data_center, f)
                            for f in changed
                            if f not in DATA_CENTER_SECRET_FIELDS
                        },
                    },
                )
            )
        if programs is not None:
            before = set(data_center.programs.values_list("pk", flat=True))
            data_center.programs.set(programs)
            after = set(data_center.programs.values_list("pk", flat=True))
            if before != after:
                events.append(
                    (
                        "data_center.programs",
                        {"added": sorted(after - before), "removed": sorted(before - after)},
                    )
                )
        if operators is not None:
            before_users = {u.pk: u.email for u in data_center.operators.all()}
            data_center.operators.set(operators)
            after_users = {u.pk: u.email for u in data_center.operators.all()}
            for pk in sorted(after_users.keys() - before_users.keys()):
                events.append(("data_center.operator_grant", {"user": after_users[pk]}))
            for pk in sorted(before_users.keys() - after_users.keys()):
                events.append(("data_center.operator_revoke", {"user": before_users[pk]}))
        # The events last, after every row written (portal/locks.py).
        for action, data in events:
            audit_record(
                action=action,
                actor=actor,
                target=data_center,
                data={"data_center": data_center.slug, **data},
                ip=ip,
            )
    return data_center


# --- registrations ----------------------------------------------------------------------


def registration_set(
    *,
    city: City,
    data_center: DataCenter,
    status: str,
    actor: User,
    starts_on: date | None = None,
    ip: str | None = None,
) -> Registration:
    """Register a data center for a city, or change the registration's status.
    Platform admins and the city's program managers may do this."""
    if not (actor.is_superuser or has_role(actor, city, Role.PROGRAM_MANAGER)):
        raise DomainError(
            _("Only platform admins and the city's program managers manage registrations."),
            code="forbidden",
        )
    if status not in RegistrationStatus.values:
        raise DomainError(_("Unknown registration status."), fields={"status": [_("Unknown.")]})
    with transaction.atomic():
        registration, created = Registration.objects.select_for_update().get_or_create(
            city=city,
            data_center=data_center,
            defaults={"status": status, "starts_on": starts_on or timezone.localdate()},
        )
        if not created:
            registration.status = status
            registration.ends_on = (
                timezone.localdate() if status == RegistrationStatus.ENDED else None
            )
            registration.save(update_fields=["status", "ends_on"])
        audit_record(
            action="registration.set",
            city=city,
            actor=actor,
            target=registration,
            data={"data_center": data_center.slug, "status": status},
            ip=ip,
        )
    return registration


# --- redemptions --------------------------------------------------------------------------


def _is_member(user: User, company: Company) -> bool:
    return company.members.filter(pk=user.pk).exists()


@retry_on_deadlock()
def redemption_request(
    *,
    voucher: Voucher,
    data_center: DataCenter,
    contract_ref: str,
    actor: User,
    amount_cap: Decimal | None = None,
) -> Redemption:
    """The voucher's company asks a data center to bill this voucher under a contract."""
    if not _is_member(actor, voucher.company):
        raise DomainError(
            _("Only the voucher's company may request a redemption."), code="forbidden"
        )
    contract_ref = (contract_ref or "").strip()
    errors: dict[str, list[str]] = {}
    if not contract_ref or len(contract_ref) > 100:
        errors["contract_ref"] = [_("Give the contract reference (at most 100 characters).")]
    if amount_cap is not None and (amount_cap <= 0 or amount_cap > voucher.face_value):
        errors["amount_cap"] = [_("The cap must be above zero and at most the face value.")]
    if errors:
        raise DomainError(_("Please correct the fields below."), fields=errors)
    if voucher.status != VoucherStatus.ACTIVE:
        raise DomainError(_("Only an active voucher can be redeemed."), code="conflict")
    registered = Registration.objects.filter(
        city_id=voucher.city_id, data_center=data_center, status=RegistrationStatus.ACTIVE
    ).exists()
    allowed = data_center.programs.filter(pk=voucher.program_id).exists()
    if not (registered and allowed and data_center.is_active):
        raise DomainError(
            _("This data center does not accept vouchers of this program."),
            fields={"data_center": [_("Choose a data center the program allows.")]},
        )
    with transaction.atomic():
        Voucher.objects.select_for_update().get(pk=voucher.pk)
        if Redemption.objects.filter(
            voucher=voucher,
            data_center=data_center,
            status__in=[RedemptionStatus.REQUESTED, RedemptionStatus.ACTIVE],
        ).exists():
            raise DomainError(
                _("This voucher already has an open redemption at this data center."),
                code="conflict",
            )
        redemption = Redemption.objects.create(
            voucher=voucher,
            data_center=data_center,
            contract_ref=contract_ref,
            amount_cap=amount_cap,
            requested_by=actor,
        )
        webhook_emit(
            event=WebhookEvent.REDEMPTION_REQUESTED,
            data_center_id=data_center.pk,
            data=redemption_event_data(redemption),
        )
        audit_record(
            action="redemption.request",
            city=voucher.city,
            actor=actor,
            target=redemption,
            data={"voucher": voucher.code, "data_center": data_center.slug},
        )
        from compute.integrity.parties import related_parties_check  # a cycle at import

        related_parties_check(redemption)
    return redemption


# The redemption changes a data center hears of by webhook (compute.webhooks); an
# acceptance or a rejection is the data center's own answer.
REDEMPTION_EVENTS: dict[str, WebhookEvent] = {
    RedemptionStatus.CANCELLED: WebhookEvent.REDEMPTION_CANCELLED,
    RedemptionStatus.CLOSED: WebhookEvent.REDEMPTION_CLOSED,
}


def redemption_event_data(redemption: Redemption) -> dict[str, Any]:
    """A redemption as webhooks carry it (the API's fields)."""
    return {
        "redemption": redemption.pk,
        "voucher": redemption.voucher.code,
        "status": redemption.status,
        "contract_ref": redemption.contract_ref,
        "amount_cap": None if redemption.amount_cap is None else f"{redemption.amount_cap:.2f}",
    }


def _transition(
    redemption: Redemption,
    *,
    allowed_from: tuple[str, ...],
    to: str,
    action: str,
    actor: Actor,
    actor_label: str = "",
    contract_ref: str | None = None,
    reason: str = "",
) -> Redemption:
    with transaction.atomic():
        locked = (
            Redemption.objects.select_for_update(of=("self",))
            .select_related("voucher__city", "data_center")
            .get(pk=redemption.pk)
        )
        if locked.status not in allowed_from:
            raise DomainError(
                _("This redemption is %(status)s; it cannot be changed that way.")
                % {"status": locked.get_status_display()},
                code="conflict",
            )
        locked.status = to
        fields = ["status", "updated_at"]
        if contract_ref:
            locked.contract_ref = contract_ref[:100]
            fields.append("contract_ref")
        if reason:
            locked.reason = reason[:300]
            fields.append("reason")
        locked.save(update_fields=fields)
        if to in REDEMPTION_EVENTS:
            webhook_emit(
                event=REDEMPTION_EVENTS[to],
                data_center_id=locked.data_center_id,
                data=redemption_event_data(locked),
            )
        audit_record(
            action=action,
            city=locked.voucher.city,
            actor=actor,
            actor_label=actor_label,
            target=locked,
            data={"status": to, "reason": reason},
        )
    redemption.status = locked.status
    return locked


@retry_on_deadlock()
def redemption_accept(
    *,
    redemption: Redemption,
    data_center: DataCenter,
    contract_ref: str = "",
    actor: Actor,
) -> Redemption:
    if redemption.data_center_id != data_center.pk:
        raise DomainError(_("Not found."), code="not_found")
    return _transition(
        redemption,
        allowed_from=(RedemptionStatus.REQUESTED,),
        to=RedemptionStatus.ACTIVE,
        action="redemption.accept",
        actor=actor,
        actor_label=f"data center {data_center.slug}",
        contract_ref=(contract_ref or "").strip() or None,
    )


@retry_on_deadlock()
def redemption_reject(
    *, redemption: Redemption, data_center: DataCenter, reason: str, actor: Actor
) -> Redemption:
    if redemption.data_center_id != data_center.pk:
        raise DomainError(_("Not found."), code="not_found")
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(_("Give a reason."), fields={"reason": [_("Give a reason.")]})
    return _transition(
        redemption,
        allowed_from=(RedemptionStatus.REQUESTED,),
        to=RedemptionStatus.REJECTED,
        action="redemption.reject",
        actor=actor,
        actor_label=f"data center {data_center.slug}",
        reason=reason,
    )


@retry_on_deadlock()
def redemption_cancel(*, redemption: Redemption, actor: User) -> Redemption:
    """The company withdraws a request the data center has not answered yet."""
    if not _is_member(actor, redemption.voucher.company):
        raise DomainError(_("Not found."), code="not_found")
    return _transition(
        redemption,
        allowed_from=(RedemptionStatus.REQUESTED,),
        to=RedemptionStatus.CANCELLED,
        action="redemption.cancel",
        actor=actor,
    )


@retry_on_deadlock()
def redemption_close(*, redemption: Redemption, actor: Actor, reason: str = "") -> Redemption:
    """End an active redemption: the data center can no longer charge the voucher."""
    if actor is not SYSTEM and not _is_member(actor, redemption.voucher.company):
        raise DomainError(_("Not found."), code="not_found")
    return _transition(
        redemption,
        allowed_from=(RedemptionStatus.ACTIVE,),
        to=RedemptionStatus.CLOSED,
        action="redemption.close",
        actor=actor,
        reason=reason,
    )


@retry_on_deadlock()
def usage_record_void(*, data_center: DataCenter, record_id: str, reason: str) -> UsageRecord:
    """Void an accepted record: its covered amount returns to the voucher (a reversal
    entry) and to the redemption's cap. Voiding twice is a conflict."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(_("Give a reason."), fields={"reason": [_("Give a reason.")]})
    with transaction.atomic():
        record = usage_record_by_key(data_center, record_id, lock=True)
        if record is None:
            raise DomainError(_("Not found."), code="not_found")
        if record.status == RecordStatus.VOID:
            raise DomainError(_("This record is already void."), code="conflict")
        usage_record_void_locked(
            record, reason=reason, actor_label=f"data center {data_center.slug}"
        )
        voucher = Voucher.objects.select_related("city").get(pk=record.voucher_id)
        audit_record(
            action="usage_record.void",
            city=voucher.city,
            actor_label=f"data center {data_center.slug}",
            target=record,
            data={"record_id": record.record_id, "reason": reason},
        )
    return record


def usage_record_void_locked(record: UsageRecord, *, reason: str, actor_label: str) -> None:
    """Void a record the caller locked (reversal, cap, rollups); the caller audits it."""
    entry = None
    if record.covered_amount > 0:
        entry = ledger_reverse(
            voucher_id=record.voucher_id,
            amount=record.covered_amount,
            usage_record_id=record.pk,
            actor_label=actor_label,
            memo=f"void {record.record_id}: {reason}"[:300],
        )
        Redemption.objects.filter(pk=record.redemption_id).update(
            covered_total=F("covered_total") - record.covered_amount,
            updated_at=timezone.now(),
        )
    rollups_void(usage_record_id=record.pk)  # the dashboards' sums
    record.status = RecordStatus.VOID
    record.void_reason = reason[:300]
    record.voided_at = timezone.now()
    record.reversal_entry = entry
    record.held = False
    record.save(update_fields=["status", "void_reason", "voided_at", "reversal_entry", "held"])
