"""Anchors: the head of every audit chain, written outside the database.

The HMAC chain (portal.audit) stops someone without the key from re-hashing a rewritten
history, but not from truncating a chain, deleting its newest events, or replacing it
whole with one hashed the old, unkeyed way. So at least daily (Celery beat,
`portal.tasks.audit_anchor_task`) the head of each chain — its last seq and hash — is
appended, as one signed JSON line, to `AUDIT_ANCHOR_DIR/audit-anchors.jsonl` and e-mailed
to the city's auditors (the platform chain's to the platform admins). `verify_audit
--anchors DIR` then requires each anchored (seq, hash) to still be in the database.

A line is signed with HMAC-SHA-256 under the chain key it names (`signed_with`), so an
anchor cannot be forged or edited without the key either.

Later apps anchor their own append-only tables beside the trail (`anchor_source_register`
from their AppConfig.ready(); the voucher ledger, vouchers/ledger_anchors.py): records of
their `kind`, checked by their own function.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from portal.audit import UnknownKeyError, _canonical, current_key_id, mac
from portal.models import AuditEvent, City, CityMembership, Role, User

ANCHOR_FILE = "audit-anchors.jsonl"


@dataclass(frozen=True)
class AnchorSource:
    """Another table anchored daily: `heads()` gives its records (each with `chain` and
    `city_id`), `check(record)` says what no longer matches ('' if all does)."""

    kind: str
    heads: Callable[[], list[dict[str, Any]]]
    check: Callable[[dict[str, Any]], str]


_sources: dict[str, AnchorSource] = {}


def anchor_source_register(source: AnchorSource) -> None:
    _sources[source.kind] = source


def chain_heads() -> list[dict[str, Any]]:
    """The last event of every chain that has one (platform chain first), one query."""
    heads = (
        AuditEvent.objects.order_by("city_id", "-seq")
        .distinct("city_id")
        .values("city_id", "city__slug", "seq", "hash")
    )
    rows = sorted(heads, key=lambda row: (row["city_id"] is not None, row["city_id"] or 0))
    return [
        {
            "chain": row["city__slug"] or "platform",
            "city_id": row["city_id"],
            "seq": row["seq"],
            "hash": row["hash"],
        }
        for row in rows
    ]


def _sign(record: dict[str, Any]) -> str:
    return mac(record["signed_with"], _canonical(record))


def anchors_write(directory: Path | None = None) -> list[dict[str, Any]]:
    """Append the head of every chain to the anchor file, signed; return the records.
    The file is opened for appending only and synced before this returns."""
    directory = Path(directory or settings.AUDIT_ANCHOR_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    at = timezone.now().isoformat(timespec="seconds")
    heads = [*chain_heads()]
    for source in _sources.values():
        heads += [{**head, "kind": source.kind} for head in source.heads()]
    records = []
    for head in heads:
        record = {**head, "at": at, "signed_with": current_key_id()}
        records.append({**record, "signature": _sign(record)})
    if records:
        lines = "".join(_canonical(record) + "\n" for record in records).encode()
        fd = os.open(directory / ANCHOR_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, lines)
            os.fsync(fd)
        finally:
            os.close(fd)
    return records


def anchors_mail(records: list[dict[str, Any]]) -> int:
    """E-mail each city's auditors its chain's anchor, the platform admins the platform
    chain's, with the city's other anchors (its ledger's): a copy out of reach of whoever
    administers the server. Returns the mails sent."""
    sent = 0
    for record in [r for r in records if "kind" not in r]:
        others = [r for r in records if "kind" in r and r["city_id"] == record["city_id"]]
        if record["city_id"] is None:
            people = User.objects.filter(is_superuser=True, is_active=True)
        else:
            auditors = CityMembership.objects.filter(city_id=record["city_id"], role=Role.AUDITOR)
            people = User.objects.filter(pk__in=auditors.values("user_id"), is_active=True)
        recipients = sorted(people.exclude(email="").values_list("email", flat=True))
        if not recipients:
            continue
        with translation.override(settings.LANGUAGE_CODE):
            if record["city_id"] is None:
                chain = _("the platform")
            else:
                chain = City.objects.get(pk=record["city_id"]).name
            send_mail(
                _("[Suanli] Audit trail anchor for %(chain)s") % {"chain": chain},
                _(
                    "The audit trail of %(chain)s ended at event %(seq)s with hash %(hash)s "
                    "at %(at)s. Keep this e-mail: an audit checks the trail against it. "
                    "The signed record:"
                )
                % {**record, "chain": chain}
                + "\n\n"
                + "".join(_canonical(r) + "\n" for r in [record, *others]),
                settings.DEFAULT_FROM_EMAIL,
                recipients,
            )
        sent += 1
    return sent


@dataclass(frozen=True)
class AnchorProblem:
    source: str
    reason: str

    def describe(self) -> str:
        return f"{self.source}: {self.reason}"


def _anchor_lines(directory: Path) -> Iterator[tuple[str, Any]]:
    for path in sorted(Path(directory).glob("*.jsonl")):
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield f"{path.name}:{number}", line


# The kind of the audit trail's own anchors (records without a `kind`).
AUDIT_KIND = "audit"


def anchors_verify(directory: Path, kinds: set[str] | None = None) -> list[AnchorProblem]:
    """Check every anchor in `directory` (of `kinds` only, if given: AUDIT_KIND or an
    anchor source's): its signature, then that the database still has the event it
    names with the hash it names. An anchor whose event is gone means a truncated chain
    or deleted newest events; another hash, a replaced history."""
    problems: list[AnchorProblem] = []
    anchors: list[tuple[str, dict[str, Any]]] = []
    checked = 0
    for source, line in _anchor_lines(directory):
        try:
            record = json.loads(line)
            claimed = record.pop("signature")
            valid = _sign(record) == claimed
        except (ValueError, KeyError, TypeError, AttributeError):
            problems.append(AnchorProblem(source, "not an anchor record"))
            continue
        except UnknownKeyError:
            problems.append(
                AnchorProblem(
                    source, f"signed with key {record['signed_with']}, which is not configured"
                )
            )
            continue
        if not valid:
            problems.append(AnchorProblem(source, "its signature does not match: it was edited"))
            continue
        kind = record.get("kind")
        if kinds is not None and (kind or AUDIT_KIND) not in kinds:
            continue
        checked += 1
        if kind is None:
            anchors.append((source, record))
        elif kind in _sources:
            reason = _sources[kind].check(record)
            if reason:
                problems.append(AnchorProblem(source, reason))
        else:
            problems.append(AnchorProblem(source, f"an anchor of {kind}, which nothing checks"))
    if not anchors:
        if not problems and not checked:
            problems.append(AnchorProblem(str(directory), "no anchors found"))
        return problems
    seqs: dict[int | None, set[int]] = {}
    for _source, record in anchors:
        seqs.setdefault(record["city_id"], set()).add(record["seq"])
    stored: dict[tuple[int | None, int], str] = {}
    for city_id, chain_seqs in seqs.items():  # one query a chain
        events = AuditEvent.objects.filter(
            Q(city__isnull=True) if city_id is None else Q(city_id=city_id), seq__in=chain_seqs
        )
        stored.update({(city_id, seq): h for seq, h in events.values_list("seq", "hash")})
    for source, record in anchors:
        held = stored.get((record["city_id"], record["seq"]))
        where = f"the {record['chain']} chain's event {record['seq']} (anchored {record['at']})"
        if held is None:
            problems.append(
                AnchorProblem(
                    source,
                    f"{where} is not in the database: the chain was truncated or its "
                    "newest events deleted",
                )
            )
        elif held != record["hash"]:
            problems.append(
                AnchorProblem(
                    source, f"{where} has another hash than anchored: the history was replaced"
                )
            )
    return problems
