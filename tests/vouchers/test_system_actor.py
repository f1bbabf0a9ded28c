"""One system actor (issue #18 item 3): what the portal does on its own is done by
`portal.audit.SYSTEM`, recorded as no user and named "system"; None is no longer a
way to act without a person."""

from datetime import date
from decimal import Decimal

import pytest

from portal.audit import SYSTEM, actor_name, actor_user, audit_record
from portal.errors import DomainError
from portal.models import AuditEvent
from tests.vouchers.conftest import program_values
from vouchers import services
from vouchers.ledger import voucher_expire, voucher_issue
from vouchers.models import EntryKind, Program


def test_system_is_recorded_as_no_user_named_system(shanghai):
    event = audit_record(action="test.system", city=shanghai.city, actor=SYSTEM)
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.actor_id is None
    assert stored.actor_label == "system"
    assert actor_user(SYSTEM) is None
    assert actor_name(SYSTEM) == "system"
    assert actor_name(shanghai.manager) == shanghai.manager.email
    assert actor_name(SYSTEM, "data center x") == "data center x"


def test_a_person_is_recorded_by_account(shanghai):
    event = audit_record(action="test.person", city=shanghai.city, actor=shanghai.manager)
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.actor_id == shanghai.manager.pk
    assert stored.actor_label == shanghai.manager.email


def test_the_system_may_save_a_program_and_none_may_not(shanghai):
    # Before SYSTEM, actor=None skipped the program managers' check: a forgotten actor
    # could edit any city's programs.
    program = services.program_save(
        city=shanghai.city, actor=SYSTEM, values=program_values(slug="system-made")
    )
    assert program.slug == "system-made"
    with pytest.raises(DomainError) as refused:
        services.program_save(
            city=shanghai.city, actor=None, values=program_values(slug="nobody-made")
        )
    assert refused.value.code == "forbidden"
    assert not Program.objects.filter(slug="nobody-made").exists()


def test_expiry_is_the_systems_ledger_entry(sh_program, company, shanghai):
    voucher = voucher_issue(
        program=sh_program,
        company=company,
        amount=Decimal("1000.00"),
        actor=shanghai.approver,
        valid_from=date(2020, 1, 1),
    )
    voucher_expire(voucher=voucher)
    entry = voucher.entries.get(kind=EntryKind.EXPIRE)
    assert entry.actor_id is None
    assert entry.actor_label == "system"
    issue = voucher.entries.get(kind=EntryKind.ISSUE)
    assert issue.actor_id == shanghai.approver.pk
