"""The per-program counts of applications by state (`ProgramStateCount`), kept by a
trigger on the applications so that the dashboards, the queue and the staff home need
not count a city's applications on every request (issue #12, speed): they must equal
an independent count of the rows after every kind of write — the services, bulk
updates, a program changed, deletes, bulk inserts."""

from __future__ import annotations

from collections import Counter

import pytest
from django.urls import reverse
from django.utils import timezone

from portal import links
from portal.models import User
from tests.vouchers.conftest import complete_draft, make_program
from vouchers import selectors, services, workflow
from vouchers.models import Application, ApplicationState, ProgramStateCount

S = ApplicationState


def _kept() -> dict[tuple[int, str], int]:
    return {
        (p, s): n for p, s, n in ProgramStateCount.objects.values_list("program", "state", "n") if n
    }


def _counted() -> dict[tuple[int, str], int]:
    """The same figures counted from the applications themselves."""
    rows = list(Application.objects.values_list("program", "state"))
    counted = Counter(rows) + Counter((p, "") for p, _s in rows)
    return dict(counted)


def _changes(program) -> int:
    return ProgramStateCount.objects.get(program=program, state="").changes


def test_counts_follow_the_services_bulk_writes_and_deletes(
    sh_program, company, startup_user, shanghai
):
    manager = shanghai.manager
    apps = [complete_draft(sh_program, company, startup_user) for _ in range(4)]
    assert _kept() == _counted() == {(sh_program.pk, ""): 4, (sh_program.pk, S.DRAFT): 4}
    services.application_submit(application=apps[0], actor=startup_user)
    services.application_submit(application=apps[1], actor=startup_user)
    services.application_start_screening(application=apps[1], actor=manager)
    services.application_withdraw(application=apps[2], actor=startup_user)
    assert _kept() == _counted()
    assert _kept()[(sh_program.pk, S.SCREENING)] == 1

    # Writes that bypass the services: a bulk update, a move to another program, a
    # bulk insert and deletes.
    other = make_program(shanghai.city, slug="other-2026")
    Application.objects.filter(pk__in=[apps[0].pk, apps[3].pk]).update(state=S.REJECTED)
    Application.objects.filter(pk=apps[1].pk).update(program=other)
    Application.objects.bulk_create(
        [
            Application(
                city=shanghai.city,
                program=other,
                company=company,
                created_by=startup_user,
                state=S.SUBMITTED,
            )
            for _ in range(3)
        ]
    )
    assert _kept() == _counted()
    Application.objects.filter(program=other, state=S.SUBMITTED).delete()
    Application.objects.filter(pk=apps[2].pk).delete()
    assert _kept() == _counted()
    assert _kept()[(other.pk, "")] == 1


def test_the_change_counter_moves_with_state_and_times_only(sh_program, company, startup_user):
    app = complete_draft(sh_program, company, startup_user)
    before = _changes(sh_program)
    Application.objects.filter(pk=app.pk).update(title="another title")
    assert _changes(sh_program) == before  # no state, submission or decision changed
    services.application_submit(application=app, actor=startup_user)
    after_submit = _changes(sh_program)
    assert after_submit > before
    Application.objects.filter(pk=app.pk).update(decided_at=timezone.now())
    assert _changes(sh_program) > after_submit


def test_queue_count_comes_from_the_counts_and_equals_the_list(
    client, sh_program, company, startup_user, shanghai
):
    apps = [complete_draft(sh_program, company, startup_user) for _ in range(3)]
    for app in apps[:2]:
        services.application_submit(application=app, actor=startup_user)
    client.force_login(shanghai.manager)
    url = reverse("vouchers:queue", args=["shanghai"])
    for query, expected in [("", 2), ("?state=submitted", 2), ("?state=rejected", 0)]:
        page = client.get(url + query).context["page"]
        assert page.paginator.count == expected == len(page.object_list)
    assert selectors.application_queue_count(city=shanghai.city, filters={"q": "x"}) is None


@pytest.mark.parametrize("state", [S.SUBMITTED, S.SCREENING])
def test_counts_of_another_city_are_not_this_citys(state, sh_program, company, startup_user, world):
    app = complete_draft(sh_program, company, startup_user)
    Application.objects.filter(pk=app.pk).update(state=state)
    assert selectors.application_state_counts(city=world["shenzhen"].city) == {}
    assert selectors.application_state_counts(city=world["shanghai"].city)[state] == 1


def _without_approver(city) -> tuple[list[int], list[int]]:
    """The staff home's list, and the rule alone over the city's applications."""
    listed = [a.pk for a in selectors.application_without_approver_list(city=city)]
    rule = selectors.application_list(city=city).filter(workflow.no_eligible_approver_filter())
    return listed, sorted(a.pk for a in rule)


def test_the_list_no_approver_may_approve_is_the_rules_in_every_case(
    sh_program, company, startup_user, shanghai
):
    """The list starts from the approvers' reviews and companies (speed); it must still
    be exactly the rule's: no approver at all, the only approver a member of the
    company, and an approver free to approve."""
    apps = [complete_draft(sh_program, company, startup_user) for _ in range(2)]
    Application.objects.filter(pk__in=[a.pk for a in apps]).update(
        state=S.RECOMMENDED, submitted_at=timezone.now()
    )
    assert _without_approver(shanghai.city) == ([], [])  # the approver may approve
    company.members.add(shanghai.approver)
    assert _without_approver(shanghai.city) == ([a.pk for a in apps],) * 2
    company.members.remove(shanghai.approver)
    User.objects.filter(pk=shanghai.approver.pk).update(is_active=False)
    assert _without_approver(shanghai.city) == ([a.pk for a in apps],) * 2


def test_a_long_work_list_says_how_many_up_to_the_cap(
    client, monkeypatch, sh_program, company, startup_user, shanghai
):
    """Past COUNT_CAP a work list counted by a query says "N+" (the count stops there);
    the screening list, from the state counts, stays exact."""
    monkeypatch.setattr(links, "COUNT_CAP", 2)
    apps = [complete_draft(sh_program, company, startup_user) for _ in range(3)]
    Application.objects.filter(pk__in=[a.pk for a in apps]).update(
        state=S.RECOMMENDED, submitted_at=timezone.now()
    )
    for app in [complete_draft(sh_program, company, startup_user) for _ in range(3)]:
        services.application_submit(application=app, actor=startup_user)
    client.force_login(shanghai.approver)
    home = client.get("/shanghai/staff/").content.decode()
    approve = home[home.index('id="work-vouchers.approve"') :]
    assert '<span class="count">2+</span>' in approve[: approve.index("</article>")]
    assert "查看全部 2+ 项" in approve[: approve.index("</article>")]  # the user reads Chinese
    client.force_login(shanghai.manager)
    home = client.get("/shanghai/staff/").content.decode()
    screen = home[home.index('id="work-vouchers.screen"') :]
    assert '<span class="count">3</span>' in screen[: screen.index("</article>")]
