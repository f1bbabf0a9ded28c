"""The vouchers' ledger (`vouchers/ledger.py`): append-only entries, balances derivable
from them, budget allocation, status changes by program managers, bulk charges,
verification, concurrency. Usage ingestion's side of it is in tests/compute."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, transaction

from portal.audit import SYSTEM
from portal.errors import DomainError
from tests.concurrency import outcome_codes, race
from tests.vouchers.conftest import make_company, make_program
from vouchers.ledger import (
    ledger_verify,
    voucher_code_is_well_formed,
    voucher_issue,
    voucher_resume,
    voucher_revoke,
    voucher_suspend,
)
from vouchers.models import Company, EntryKind, LedgerEntry, Program, Voucher


@dataclass
class Issued:
    program: Program
    company: Company
    voucher: Voucher


@pytest.fixture
def issued(world, startup_user) -> Issued:
    """A voucher of 1,000.00 in Shanghai's program; Shenzhen has a program too."""
    sh, sz = world["shanghai"], world["shenzhen"]
    program = make_program(sh.city)
    make_program(sz.city)
    company = make_company(startup_user)
    voucher = voucher_issue(
        program=program,
        company=company,
        amount=Decimal("1000.00"),
        actor=sh.approver,
        valid_from=date(2026, 11, 1),
    )
    return Issued(program=program, company=company, voucher=voucher)


def test_issue_writes_the_first_entry_and_allocates_budget(issued):
    w = issued
    entry = LedgerEntry.objects.get(voucher=w.voucher)
    assert (entry.kind, entry.amount, entry.balance_after) == (
        EntryKind.ISSUE,
        Decimal("1000.00"),
        Decimal("1000.00"),
    )
    w.program.refresh_from_db()
    assert w.program.allocated == Decimal("1000.00")
    assert voucher_code_is_well_formed(w.voucher.code)
    assert w.voucher.code.startswith("SH-26-")


def test_code_check_character_catches_a_typo(issued):
    code = issued.voucher.code
    i = 7  # a character of the random part
    typo = code[:i] + ("2" if code[i] != "2" else "3") + code[i + 1 :]
    assert not voucher_code_is_well_formed(typo)


def test_database_refuses_update_and_delete_of_entries(issued):
    entry = LedgerEntry.objects.filter(voucher=issued.voucher).first()
    with pytest.raises(DatabaseError), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).update(amount=Decimal("5000.00"))
    with pytest.raises(DatabaseError), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).delete()


def test_verify_ledger_names_the_voucher_that_disagrees(issued, capsys):
    call_command("verify_ledger")
    Voucher.objects.filter(pk=issued.voucher.pk).update(balance=Decimal("999.99"))
    with pytest.raises(CommandError):
        call_command("verify_ledger")
    assert issued.voucher.code in capsys.readouterr().err
    assert [p.code for p in ledger_verify()] == [issued.voucher.code]


def test_issue_never_exceeds_the_budget(shanghai, startup_user):
    program = make_program(shanghai.city, budget=Decimal("150000.00"), award_max=Decimal("100000"))
    company = make_company(startup_user)
    voucher_issue(program=program, company=company, amount=Decimal("100000"), actor=SYSTEM)
    with pytest.raises(DomainError) as err:
        voucher_issue(program=program, company=company, amount=Decimal("50000.01"), actor=SYSTEM)
    assert err.value.code == "conflict"
    program.refresh_from_db()
    assert program.allocated == Decimal("100000.00")


def test_suspend_resume_and_revoke_by_program_managers_only(issued, shanghai, shenzhen):
    w = issued
    entries = LedgerEntry.objects.count()
    for intruder in (shanghai.reviewer, shanghai.approver, shenzhen.manager):
        for step in (voucher_suspend, voucher_resume, voucher_revoke):
            with pytest.raises(DomainError) as err:
                step(voucher=w.voucher, actor=intruder, reason="x")
            assert err.value.code == "forbidden", (step.__name__, intruder.email)
    with pytest.raises(DomainError) as err:
        voucher_suspend(voucher=w.voucher, actor=shanghai.manager, reason="  ")
    assert (err.value.code, list(err.value.fields)) == ("invalid", ["reason"])
    assert Voucher.objects.get(pk=w.voucher.pk).status == "active"
    with pytest.raises(DomainError) as err:
        voucher_resume(voucher=w.voucher, actor=shanghai.manager, reason="not suspended")
    assert err.value.code == "conflict"
    voucher_suspend(voucher=w.voucher, actor=shanghai.manager, reason="材料核查")
    with pytest.raises(DomainError) as err:
        voucher_suspend(voucher=w.voucher, actor=shanghai.manager, reason="again")
    assert err.value.code == "conflict"
    assert Voucher.objects.get(pk=w.voucher.pk).status == "suspended"
    resumed = voucher_resume(voucher=w.voucher, actor=shanghai.manager, reason="核查完毕")
    assert resumed.status == "active"
    assert LedgerEntry.objects.count() == entries  # status changes post no money


def test_revocation_returns_the_remainder_to_the_program(issued, shanghai):
    w = issued
    revoked = voucher_revoke(voucher=w.voucher, actor=shanghai.manager, reason="虚假材料")
    assert revoked.status == "revoked"
    assert revoked.balance == Decimal("0.00")
    entry = LedgerEntry.objects.filter(voucher=w.voucher).last()
    assert (entry.kind, entry.amount) == (EntryKind.REVOKE, Decimal("-1000.00"))
    w.program.refresh_from_db()
    assert w.program.allocated == Decimal("0.00")
    with pytest.raises(DomainError) as err:
        voucher_revoke(voucher=w.voucher, actor=shanghai.manager, reason="again")
    assert err.value.code == "conflict"
    assert LedgerEntry.objects.filter(voucher=w.voucher, kind=EntryKind.REVOKE).count() == 1
    assert ledger_verify() == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_issues_never_exceed_the_budget():
    from tests.factories import CityFactory, UserFactory

    city = CityFactory(slug="budget", code="BG")
    program = make_program(city, budget=Decimal("500000.00"), award_max=Decimal("100000"))
    company = make_company(UserFactory(email="c@budget.test"))

    def issue():
        voucher_issue(program=program, company=company, amount=Decimal("100000"), actor=SYSTEM)

    assert outcome_codes(race(*[issue] * 8)) == ["conflict"] * 3 + ["done"] * 5
    program.refresh_from_db()
    assert program.allocated == program.budget == Decimal("500000.00")
    assert Voucher.objects.filter(program=program).count() == 5
    assert ledger_verify() == []


def test_validity_is_the_programs_months(shanghai, startup_user):
    program = make_program(shanghai.city, validity_months=6)
    voucher = voucher_issue(
        program=program,
        company=make_company(startup_user),
        amount=Decimal("100000"),
        actor=SYSTEM,
        valid_from=date(2026, 8, 31),
    )
    assert (voucher.valid_from, voucher.valid_until) == (date(2026, 8, 31), date(2027, 2, 27))
    assert Program.objects.get(pk=program.pk).allocated == Decimal("100000.00")


def test_verify_ledger_also_derives_each_programs_allocation(issued, shanghai, capsys):
    voucher_revoke(voucher=issued.voucher, actor=shanghai.manager, reason="撤销")
    assert ledger_verify() == []  # issued 1,000.00, returned 1,000.00, allocated 0.00
    Program.objects.filter(pk=issued.program.pk).update(allocated=Decimal("5.00"))
    with pytest.raises(CommandError):
        call_command("verify_ledger")
    assert "program shanghai/compute-2026" in capsys.readouterr().err


def test_verify_ledger_reports_entries_whose_voucher_is_missing(issued, capsys):
    # `voucher` carries no foreign-key constraint (the hot path skips the per-row check),
    # so an entry written for a voucher that does not exist must show up here.
    missing = Voucher.objects.order_by("-pk").first().pk + 1000
    LedgerEntry.objects.create(
        voucher_id=missing,
        kind="adjust",
        amount=Decimal("1.00"),
        balance_after=Decimal("1.00"),
        actor_label="test",
    )
    with pytest.raises(CommandError):
        call_command("verify_ledger")
    assert f"#{missing}: entries name a voucher that is missing" in capsys.readouterr().err


def test_verify_ledger_reports_entries_whose_actor_is_missing(issued, capsys):
    # `actor` carries no foreign-key constraint either (a per-row check queued even when
    # it is empty): an entry naming a user that does not exist must show up here.
    from portal.models import User

    v = issued.voucher
    LedgerEntry.objects.create(
        voucher=v,
        kind="adjust",
        amount=Decimal("0.00"),
        balance_after=v.balance,
        actor_id=User.objects.order_by("-pk").first().pk + 1000,
        actor_label="gone",
    )
    with pytest.raises(CommandError):
        call_command("verify_ledger")
    assert f"{v.code}: entries name an actor (user) that is missing" in capsys.readouterr().err


def test_ids_are_taken_a_block_at_a_time_and_keep_increasing(issued):
    from portal.db import new_ids

    with transaction.atomic():
        _now, ids = new_ids("vouchers_ledgerentry", 5001)  # two blocks of 5,000
    assert len(set(ids)) == 5001 and ids == sorted(ids)
    later = LedgerEntry.objects.create(
        voucher=issued.voucher,
        kind="adjust",
        amount=Decimal("0.00"),
        balance_after=issued.voucher.balance,
        actor_label="test",
    )
    assert later.pk > ids[-1]


def test_bulk_charges_post_running_balances_and_exhaust_the_voucher(issued, monkeypatch):
    from vouchers.ledger import ledger_charge_many, vouchers_lock

    # A world without data centers: the charges name no usage record, so compute's check
    # of charges against their records (tests/compute) is left out of verify_ledger.
    monkeypatch.setattr("vouchers.ledger_checks.ledger_checks", [])

    v = issued.voucher
    with transaction.atomic():
        balances = {vid: b for vid, (_status, b) in vouchers_lock([v.pk]).items()}
        _now, ids = ledger_charge_many(
            balances=balances,
            charges=[
                (v.pk, Decimal("600.00"), 11, "r-1"),
                (v.pk, Decimal("400.00"), 12, "r-2\tC:\\x\n"),  # escaped for COPY
            ],
            actor_label="data center #1",
        )
    entries = list(LedgerEntry.objects.filter(pk__in=ids).order_by("pk"))
    assert [(e.amount, e.balance_after, e.usage_record_id, e.memo) for e in entries] == [
        (Decimal("-600.00"), Decimal("400.00"), 11, "r-1"),
        (Decimal("-400.00"), Decimal("0.00"), 12, "r-2\tC:\\x\n"),
    ]
    v.refresh_from_db()
    assert (v.balance, v.status) == (Decimal("0.00"), "exhausted")
    call_command("verify_ledger")


@pytest.mark.parametrize("amounts", [["600.00", "400.01"], ["0.00"], ["-1.00"]])
def test_bulk_charges_beyond_the_balance_or_not_positive_write_nothing(issued, amounts):
    from vouchers.ledger import ledger_charge_many, vouchers_lock

    v = issued.voucher
    entries_before = LedgerEntry.objects.count()
    with pytest.raises(ValueError), transaction.atomic():
        balances = {vid: b for vid, (_status, b) in vouchers_lock([v.pk]).items()}
        ledger_charge_many(
            balances=balances,
            charges=[(v.pk, Decimal(a), n, f"r-{n}") for n, a in enumerate(amounts)],
            actor_label="data center #1",
        )
    assert LedgerEntry.objects.count() == entries_before
    v.refresh_from_db()
    assert v.balance == Decimal("1000.00")
