"""The ledger's keyed chain (issue #15 item 5): every entry sealed with an HMAC-SHA-256
under AUDIT_CHAIN_KEY onto its voucher's chain. Tampering is done as a database
administrator would, by SQL with the triggers off; `verify_ledger` must name it, and
with `--anchors` also what a chain alone cannot show (a truncated table)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from portal.anchors import anchors_write
from portal.audit import key_id
from tests.vouchers.conftest import make_company, make_program
from vouchers.ledger import (
    ledger_charge_many,
    ledger_verify,
    voucher_issue,
    voucher_revoke,
    vouchers_lock,
)
from vouchers.ledger_chain import (
    GENESIS,
    KEYED_CHAIN,
    Sealer,
    constant_part,
    ledger_seal_existing,
    message,
)
from vouchers.models import LedgerEntry, Voucher


@pytest.fixture(autouse=True)
def _keys(settings, monkeypatch):
    settings.AUDIT_CHAIN_KEY = "key-a-for-the-ledger-chain-tests"
    settings.AUDIT_CHAIN_KEY_FALLBACKS = []
    # No data centers here: the charges name no usage records, so compute's check of
    # charges against their records is left out.
    monkeypatch.setattr("vouchers.ledger_checks.ledger_checks", [])


def _charge(voucher: Voucher, *amounts: str) -> list[int]:
    with transaction.atomic():
        balances = {vid: b for vid, (_s, b) in vouchers_lock([voucher.pk]).items()}
        _now, ids = ledger_charge_many(
            balances=balances,
            charges=[(voucher.pk, Decimal(a), 100 + n, f"r-{n}") for n, a in enumerate(amounts)],
            actor_label="data center #1",
        )
    return ids


@pytest.fixture
def voucher(shanghai, startup_user) -> Voucher:
    """Issued 1,000.00 (an ORM entry), charged 100.00 and 200.00 (COPY), revoked: 700.00
    back to the program (an ORM entry again)."""
    v = voucher_issue(
        program=make_program(shanghai.city),
        company=make_company(startup_user),
        amount=Decimal("1000.00"),
        actor=shanghai.approver,
        valid_from=date(2026, 11, 1),
    )
    _charge(v, "100.00", "200.00")
    voucher_revoke(voucher=v, actor=shanghai.manager, reason="核查不实")
    return Voucher.objects.get(pk=v.pk)


def _entries(voucher: Voucher) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(voucher=voucher).order_by("id"))


def _tamper(statement: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")  # triggers off
        cursor.execute(statement, params or [])
        cursor.execute("SET LOCAL session_replication_role = origin")


def _breaks() -> list[str]:
    return [p.reason for p in ledger_verify() if KEYED_CHAIN in p.reason]


def _reseal(voucher: Voucher, key: str, *, label: str | None = None) -> None:
    """Seal the voucher's whole chain again, as someone holding `key` would, naming the
    key `label` (default: its own id); the voucher's head follows."""
    sealer, name, prev = Sealer(key.encode()), label or key_id(key), GENESIS
    for e in _entries(voucher):
        constant = constant_part(
            actor_id=e.actor_id,
            created_at=e.created_at,
            key_id=name,
            kind=e.kind,
            actor_label=e.actor_label,
        )
        prev = sealer(
            message(
                entry_id=e.pk,
                voucher_id=e.voucher_id,
                prev=prev,
                amount=e.amount,
                balance_after=e.balance_after,
                usage_record_id=e.usage_record_id,
                constant=constant,
                memo=e.memo,
            )
        )
        _tamper(
            "UPDATE vouchers_ledgerentry SET key_id = %s, mac = %s WHERE id = %s",
            [name, prev, e.pk],
        )
    _tamper("UPDATE vouchers_voucher SET ledger_head = %s WHERE id = %s", [prev, voucher.pk])


def test_every_entry_is_sealed_onto_its_vouchers_chain(voucher, shanghai, startup_user):
    entries = _entries(voucher)
    assert [e.kind for e in entries] == ["issue", "charge", "charge", "revoke"]
    current = key_id("key-a-for-the-ledger-chain-tests")
    assert {e.key_id for e in entries} == {current}
    assert len({e.mac for e in entries}) == 4 and all(len(e.mac) == 64 for e in entries)
    assert voucher.ledger_head == entries[-1].mac
    # A second voucher has a chain of its own.
    other = voucher_issue(
        program=voucher.program,
        company=make_company(startup_user, name="另一家公司", code="91310000MA1FL8TQ3X"),
        amount=Decimal("500.00"),
        actor=shanghai.approver,
    )
    _charge(other, "1", "2.5")  # sealed as stored: with two places
    assert ledger_verify() == []
    call_command("verify_ledger")


def test_an_edited_amount_is_detected(voucher):
    """The second charge made smaller, every balance after it patched to match: the sums
    and the balance_after chain agree; its MAC does not."""
    charge, revoke = _entries(voucher)[2:]
    _tamper(
        "UPDATE vouchers_ledgerentry SET amount = -150, balance_after = 750 WHERE id = %s",
        [charge.pk],
    )
    _tamper("UPDATE vouchers_ledgerentry SET amount = -750 WHERE id = %s", [revoke.pk])
    assert not any("balance_after" in p.reason for p in ledger_verify())
    problems = [p for p in ledger_verify() if KEYED_CHAIN in p.reason]
    assert [p.reason for p in problems] == [
        f"entry {charge.pk} breaks the voucher's keyed chain: its MAC does not match: it was "
        "changed, an entry before it deleted or inserted, or it was sealed again without the key"
    ]
    assert problems[0].code == voucher.code
    with pytest.raises(CommandError):
        call_command("verify_ledger")


def test_a_deleted_entry_is_detected(voucher):
    """The first charge deleted and the history after it patched: the entry after it no
    longer follows from its predecessor's MAC."""
    first, second, revoke = _entries(voucher)[1:]
    _tamper("DELETE FROM vouchers_ledgerentry WHERE id = %s", [first.pk])
    _tamper("UPDATE vouchers_ledgerentry SET balance_after = 800 WHERE id = %s", [second.pk])
    _tamper("UPDATE vouchers_ledgerentry SET amount = -800 WHERE id = %s", [revoke.pk])
    assert not any("balance_after" in p.reason for p in ledger_verify())
    assert [r.startswith(f"entry {second.pk} breaks") for r in _breaks()] == [True]


def test_resealed_with_a_wrong_key_is_detected(voucher, capsys):
    """Whoever lacks the key cannot seal an edited history again: under the chain's key
    id the MACs fail, under a key of their own the key is not configured."""
    entries = _entries(voucher)
    _tamper("UPDATE vouchers_ledgerentry SET memo = 'forged' WHERE id = %s", [entries[1].pk])
    current = key_id("key-a-for-the-ledger-chain-tests")
    _reseal(voucher, "a-guessed-key", label=current)
    assert [r.startswith(f"entry {entries[0].pk} breaks") for r in _breaks()] == [True]
    assert "its MAC does not match" in _breaks()[0]
    _reseal(voucher, "a-guessed-key")
    assert _breaks() == [
        f"entry {entries[0].pk} breaks the voucher's keyed chain: it is sealed with key "
        f"{key_id('a-guessed-key')}, which is not configured "
        "(AUDIT_CHAIN_KEY, AUDIT_CHAIN_KEY_FALLBACKS)"
    ]
    with pytest.raises(CommandError):
        call_command("verify_ledger")
    assert "keyed chain" in capsys.readouterr().err


def test_resealed_with_the_key_is_caught_by_the_anchors(voucher, tmp_path, capsys):
    """The key holder can seal an edited history again; the anchor taken before cannot
    be made to agree (SECURITY.md, what is still trusted)."""
    anchors_write(tmp_path)
    call_command("verify_ledger", anchors=str(tmp_path))
    _tamper(
        "UPDATE vouchers_ledgerentry SET memo = 'forged' WHERE id = %s", [_entries(voucher)[1].pk]
    )
    _reseal(voucher, "key-a-for-the-ledger-chain-tests")
    assert _breaks() == []
    with pytest.raises(CommandError):
        call_command("verify_ledger", anchors=str(tmp_path))
    assert "differs from its anchor" in capsys.readouterr().err


def test_a_truncated_ledger_is_detected(voucher, tmp_path, capsys):
    anchors_write(tmp_path)
    _tamper("TRUNCATE vouchers_ledgerentry")
    assert _breaks() == [
        "breaks the voucher's keyed chain: the voucher's chain has a head but no entries: "
        "they were deleted or the table truncated"
    ]
    with pytest.raises(CommandError):
        call_command("verify_ledger", anchors=str(tmp_path))
    err = capsys.readouterr().err
    assert "has 0 entries, not 4: entries were deleted or the table truncated" in err


def test_the_newest_entry_deleted_is_detected(voucher):
    last = _entries(voucher)[-1]
    _tamper("DELETE FROM vouchers_ledgerentry WHERE id = %s", [last.pk])
    assert _breaks() == [
        "breaks the voucher's keyed chain: the voucher's chain head is not its last "
        "entry's MAC: its newest entries were deleted, or entries added around the ledger's code"
    ]


def test_a_key_rotation_is_recorded_in_the_chain_and_verifies(voucher, settings, shanghai):
    key_a, key_b = "key-a-for-the-ledger-chain-tests", "key-b-after-the-rotation"
    other = voucher_issue(
        program=voucher.program,
        company=voucher.company,
        amount=Decimal("500.00"),
        actor=shanghai.approver,
    )
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_FALLBACKS = key_b, [key_a]
    _charge(other, "10.00", "20.00")  # by COPY
    voucher_revoke(voucher=other, actor=shanghai.manager, reason="到期前撤销")  # by the ORM
    entries = _entries(other)
    assert [e.key_id for e in entries] == [key_id(key_a)] + [key_id(key_b)] * 3
    assert ledger_verify() == []
    # The first entry under the new key is sealed with it over the old key's MAC: the
    # change of key is a link of the chain. Without the former key it cannot be checked.
    settings.AUDIT_CHAIN_KEY_FALLBACKS = []
    assert sorted(_breaks()) == sorted(
        f"entry {e.pk} breaks the voucher's keyed chain: it is sealed with key {key_id(key_a)}, "
        "which is not configured (AUDIT_CHAIN_KEY, AUDIT_CHAIN_KEY_FALLBACKS)"
        for e in (entries[0], _entries(voucher)[0])
    )
    # A retired key cannot write after the rotation: an entry sealed with it after
    # entries of the new key is refused, though its MAC is right.
    settings.AUDIT_CHAIN_KEY_FALLBACKS = [key_a]
    head = Voucher.objects.get(pk=other.pk).ledger_head
    forged_id = entries[-1].pk + 1
    when = entries[-1].created_at
    mac = Sealer(key_a.encode())(
        message(
            entry_id=forged_id,
            voucher_id=other.pk,
            prev=head,
            amount=Decimal("0.00"),
            balance_after=Decimal("0.00"),
            usage_record_id=None,
            constant=constant_part(
                actor_id=None,
                created_at=when,
                key_id=key_id(key_a),
                kind="adjust",
                actor_label="x",
            ),
            memo="",
        )
    )
    _tamper(
        "INSERT INTO vouchers_ledgerentry (id, voucher_id, kind, amount, balance_after,"
        " actor_label, memo, created_at, key_id, mac)"
        " VALUES (%s, %s, 'adjust', 0, 0, 'x', '', %s, %s, %s)",
        [forged_id, other.pk, when, key_id(key_a), mac],
    )
    _tamper("UPDATE vouchers_voucher SET ledger_head = %s WHERE id = %s", [mac, other.pk])
    assert _breaks() == [
        f"entry {forged_id} breaks the voucher's keyed chain: it is sealed with key "
        f"{key_id(key_a)}, older than the key of the entry before it"
    ]


def test_entries_from_before_the_chain_are_sealed_by_the_migration(voucher):
    """What vouchers 0015 does to the entries it finds: each voucher's chain sealed in
    id order, the heads set; the result verifies, and is what the writers would have
    written."""
    before = {e.pk: e.mac for e in _entries(voucher)}
    _tamper("UPDATE vouchers_ledgerentry SET key_id = '', mac = ''")
    _tamper("UPDATE vouchers_voucher SET ledger_head = ''")
    assert len(_breaks()) == 1 and "not sealed" in _breaks()[0]
    assert ledger_seal_existing(connection) == 4
    assert {e.pk: e.mac for e in _entries(voucher)} == before
    assert Voucher.objects.get(pk=voucher.pk).ledger_head == voucher.ledger_head
    assert ledger_verify() == []
    # The append-only trigger is back on.
    refused = pytest.raises(Exception, match="append-only")
    with connection.cursor() as cursor, refused, transaction.atomic():
        cursor.execute("UPDATE vouchers_ledgerentry SET memo = 'x'")


@pytest.mark.parametrize("key", [b"short", b"k" * 64, b"a-key-longer-than-a-block-" * 4])
def test_the_sealer_is_hmac_sha256(key):
    import hashlib
    import hmac

    text = "1|2|" + GENESIS + "|-1.00|9.00|3|…|备注"
    assert Sealer(key)(text) == hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
