"""The audit trail: writing events into per-city hash chains and verifying the chains.

Writers serialise per chain with a PostgreSQL advisory lock held until their transaction
commits, so two concurrent writers can never both link to the same predecessor. An event
is written inside the caller's transaction: if the change rolls back, so does its event.

Each hash is an HMAC-SHA-256 under `settings.AUDIT_CHAIN_KEY`, which lives in the
environment and never in the database: whoever can write the tables but lacks the key
cannot re-hash a history they rewrote. Events carry the id of their key (a fingerprint,
`key_id`); when the key changes, the next write to a chain first appends an
`audit.key_rotated` event naming the new key, and the key may change at such an event
only. Events from before the chain was keyed keep their plain SHA-256 hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC
from enum import Enum
from typing import Any, Final, TypeAlias

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from portal.locks import AUDIT_CHAIN
from portal.models import AuditEvent, City, User

GENESIS = "0" * 64
# Namespace of the advisory locks (registered in portal.locks with the others).
_LOCK_NAMESPACE = AUDIT_CHAIN


def _canonical(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True, ensure_ascii=False)


# The action of the event that records a change of key, naming the new key's id.
KEY_ROTATED = "audit.key_rotated"


class UnknownKeyError(Exception):
    """An event is keyed with a key that is neither AUDIT_CHAIN_KEY nor a fallback."""


def key_id(key: str) -> str:
    """A key's public name: a fingerprint that says which key, not what it is."""
    return hashlib.sha256(b"suanli-audit-key-id:" + key.encode()).hexdigest()[:12]


def chain_keys() -> dict[str, bytes]:
    """Every key that verifies, by id: the current one and the former ones."""
    keys = [settings.AUDIT_CHAIN_KEY, *settings.AUDIT_CHAIN_KEY_FALLBACKS]
    return {key_id(key): key.encode() for key in keys if key}


def current_key_id() -> str:
    return key_id(settings.AUDIT_CHAIN_KEY)


def mac(key_name: str, message: str) -> str:
    """HMAC-SHA-256 of `message` under the key called `key_name` (UnknownKeyError if it
    is not configured). The anchors are signed with it too."""
    key = chain_keys().get(key_name)
    if key is None:
        raise UnknownKeyError(key_name)
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def event_hash(event: AuditEvent) -> str:
    """The HMAC (or, for an event from before the key, the SHA-256) over the
    predecessor's hash and every field that carries meaning."""
    payload = {
        "city": event.city_id,
        "seq": event.seq,
        "actor": event.actor_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        # Round-trip through JSON so the hash is computed over what the database stores.
        "data": json.loads(_canonical(event.data)),
        "ip": event.ip,
        "created_at": event.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "prev_hash": event.prev_hash,
    }
    if not event.key_id:
        return hashlib.sha256(_canonical(payload).encode()).hexdigest()
    payload["key_id"] = event.key_id
    return mac(event.key_id, _canonical(payload))


# Events held by `audit_deferred`, written when its block ends (None: write at once).
_deferred: ContextVar[list[dict[str, Any]] | None] = ContextVar("audit_deferred", default=None)


class SystemActor(Enum):
    """The portal acting on its own: a periodic job, the feed sync, a data center's
    key, a management command, the demo. Services take `actor: Actor` and never None,
    so an action without a person says so (`actor=SYSTEM`) instead of a forgotten
    argument passing every permission check (`actor is not SYSTEM` is what skips
    them). The audit trail and the ledger record it as no user, named "system"."""

    SYSTEM = "system"

    @property
    def is_authenticated(self) -> bool:
        return False


SYSTEM: Final = SystemActor.SYSTEM
# Who acts: a signed-in person, or the portal itself.
Actor: TypeAlias = "User | SystemActor"


def actor_user(actor: Actor | None) -> User | None:
    """The user an actor column stores: None for SYSTEM."""
    return actor if isinstance(actor, User) and actor.is_authenticated else None


def actor_name(actor: Actor | None, label: str = "") -> str:
    """What an actor label stores: `label` if given, else the user's e-mail or "system"."""
    user = actor_user(actor)
    return label or (user.email if user is not None else SYSTEM.value)


def audit_record(
    *,
    action: str,
    city: City | None = None,
    actor: Actor = SYSTEM,
    actor_label: str = "",
    target: Model | None = None,
    data: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEvent | None:
    """Append one event to the city's chain (or the platform chain when city is None).
    Inside `audit_deferred` the event is held and written when that block ends (and
    None is returned)."""
    fields = {
        "city": city,
        "actor": actor_user(actor),
        "actor_label": actor_name(actor, actor_label),
        "action": action,
        # The target as it is now (a deleted row keeps the id it had).
        "target_type": target._meta.label_lower if target is not None else "",
        "target_id": str(target.pk) if target is not None else "",
        "data": json.loads(_canonical(data or {})),
        "ip": ip,
    }
    pending = _deferred.get()
    if pending is not None:
        pending.append(fields)
        return None
    return _append(fields)


def _append(fields: dict[str, Any]) -> AuditEvent:
    city = fields["city"]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_NAMESPACE, city.pk if city else 0]
            )
        last = (
            AuditEvent.objects.filter(city=city)
            .order_by("-seq")
            .values_list("seq", "hash", "key_id")
            .first()
        )
        seq, prev_hash, prev_key = last if last else (0, GENESIS, None)
        key = current_key_id()
        if prev_key is not None and prev_key != key:
            # The key changed since this chain's last event: say so in the chain first.
            rotated = _insert(
                {
                    "city": city,
                    "actor": None,
                    "actor_label": "system",
                    "action": KEY_ROTATED,
                    "target_type": "",
                    "target_id": "",
                    "data": {"key_id": key, "previous_key_id": prev_key},
                    "ip": None,
                },
                seq + 1,
                prev_hash,
                key,
            )
            seq, prev_hash = rotated.seq, rotated.hash
        return _insert(fields, seq + 1, prev_hash, key)


def _insert(fields: dict[str, Any], seq: int, prev_hash: str, key: str) -> AuditEvent:
    event = AuditEvent(
        **fields, seq=seq, created_at=timezone.now(), prev_hash=prev_hash, key_id=key
    )
    event.hash = event_hash(event)
    event.save(force_insert=True)
    return event


@contextmanager
def audit_deferred() -> Iterator[None]:
    """Hold the audit events of everything called inside the block and write them when
    it ends, in the same transaction, after every row those calls locked.

    For a caller that runs several services in one transaction (the admin saving an
    object with its inlines: each service writes its event last, but the next service
    would lock rows after it, and nothing may be locked after the audit lock,
    portal/locks.py). The chains are written in ascending order, the platform's first,
    each chain's events in the order they were recorded, so two such callers never wait
    for each other's chains crosswise. If the block raises, nothing is written. Nested
    blocks leave the writing to the outermost."""
    if _deferred.get() is not None:
        yield
        return
    assert connection.in_atomic_block, "audit events are written inside the transaction"
    pending: list[dict[str, Any]] = []
    token = _deferred.set(pending)
    try:
        yield
    finally:
        _deferred.reset(token)
    for fields in sorted(pending, key=lambda f: f["city"].pk if f["city"] else 0):
        _append(fields)


@dataclass(frozen=True)
class BrokenLink:
    city_id: int | None
    seq: int
    event_id: int
    reason: str

    def describe(self) -> str:
        chain = f"city #{self.city_id}" if self.city_id else "platform"
        return f"{chain} chain, event id {self.event_id} (seq {self.seq}): {self.reason}"


def audit_chain_verify() -> list[BrokenLink]:
    """Walk every chain; return the first broken link of each chain that has one."""
    problems: list[BrokenLink] = []
    city_ids: list[int | None] = [None, *City.objects.order_by("pk").values_list("pk", flat=True)]
    for city_id in city_ids:
        broken = _first_break(_chain(city_id), city_id)
        if broken:
            problems.append(broken)
    return problems


def _chain(city_id: int | None) -> Iterator[AuditEvent]:
    qs = AuditEvent.objects.filter(city_id=city_id).order_by("seq")  # type: ignore[misc]
    return qs.iterator(chunk_size=2000)


def _first_break(events: Iterator[AuditEvent], city_id: int | None) -> BrokenLink | None:
    expected_seq, expected_prev, key = 1, GENESIS, None
    for event in events:
        if event.seq != expected_seq:
            return BrokenLink(
                city_id,
                event.seq,
                event.pk,
                f"expected seq {expected_seq}: the event before it was deleted",
            )
        if event.prev_hash != expected_prev:
            return BrokenLink(
                city_id,
                event.seq,
                event.pk,
                "its link does not match the previous event: an event was deleted or replaced",
            )
        if key is not None and event.key_id != key:
            reason = _key_change_refused(event, key)
            if reason:
                return BrokenLink(city_id, event.seq, event.pk, reason)
        try:
            intact = hmac.compare_digest(event_hash(event), event.hash)
        except UnknownKeyError:
            return BrokenLink(
                city_id,
                event.seq,
                event.pk,
                f"it is keyed with key {event.key_id}, which is not configured "
                "(AUDIT_CHAIN_KEY, AUDIT_CHAIN_KEY_FALLBACKS)",
            )
        if not intact:
            return BrokenLink(
                city_id,
                event.seq,
                event.pk,
                "its content was altered (or its hash recomputed without the chain's key)",
            )
        expected_seq, expected_prev, key = event.seq + 1, event.hash, event.key_id
    return None


def _key_change_refused(event: AuditEvent, key: str) -> str:
    """Why the key may not change at this event ('' if it may: a rotation naming it)."""
    if not event.key_id:
        return (
            "it has a plain hash after keyed events: the history from here was re-hashed "
            "by someone without the chain's key"
        )
    if event.action != KEY_ROTATED or event.data.get("key_id") != event.key_id:
        return f"its key changes from {key} to {event.key_id} without a rotation event"
    return ""
    return None
