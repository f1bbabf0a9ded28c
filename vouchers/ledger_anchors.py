"""The voucher ledger anchored beside the audit trail (portal.anchors), once a day.

Per city: the highest entry id, how many entries up to it, their sum, and a digest of
every one of them (the sum of a 60-bit slice of each entry's MD5 over all its columns:
order-free, one pass, constant memory). `verify_audit --anchors` recomputes them over
the entries up to that id: fewer entries is a deletion or a truncation, any other
difference an entry changed or slipped in below the anchored id. The balance_after
chain (`verify_ledger`) covers entries written since the last anchor.
"""

from __future__ import annotations

from typing import Any

from django.db import connection

from portal.anchors import AnchorSource, anchor_source_register

KIND = "ledger"
_AGGREGATE = """
    count(*), coalesce(sum(e.amount), 0)::text,
    coalesce(sum(('x' || substr(md5(concat_ws('|', e.id, e.voucher_id, e.kind, e.amount,
        e.balance_after, e.actor_id, e.actor_label, e.usage_record_id, e.memo,
        extract(epoch FROM e.created_at))), 1, 15))::bit(60)::bigint), 0)::text
"""


def ledger_heads() -> list[dict[str, Any]]:
    """One record per city with ledger entries: one grouped statement."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT v.city_id, c.slug, max(e.id), {_AGGREGATE}
            FROM vouchers_ledgerentry e
            JOIN vouchers_voucher v ON v.id = e.voucher_id
            JOIN portal_city c ON c.id = v.city_id
            GROUP BY v.city_id, c.slug ORDER BY v.city_id
            """  # noqa: S608 - no input in it
        )
        return [
            {
                "chain": slug,
                "city_id": city_id,
                "max_id": max_id,
                "count": count,
                "total": total,
                "digest": digest,
            }
            for city_id, slug, max_id, count, total, digest in cursor.fetchall()
        ]


def ledger_anchor_check(record: dict[str, Any]) -> str:
    """What differs between the city's entries up to the anchored id and the anchor."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT {_AGGREGATE}
            FROM vouchers_ledgerentry e JOIN vouchers_voucher v ON v.id = e.voucher_id
            WHERE v.city_id = %s AND e.id <= %s
            """,  # noqa: S608 - parameters only
            [record["city_id"], record["max_id"]],
        )
        count, total, digest = cursor.fetchone()
    where = f"the {record['chain']} ledger up to entry {record['max_id']} (anchored {record['at']})"
    if count < record["count"]:
        return (
            f"{where} has {count} entries, not {record['count']}: entries were deleted or "
            "the table truncated"
        )
    if (count, total, digest) != (record["count"], record["total"], record["digest"]):
        return f"{where} differs from its anchor: entries were changed or inserted"
    return ""


def ledger_anchor_register() -> None:
    anchor_source_register(AnchorSource(KIND, ledger_heads, ledger_anchor_check))
