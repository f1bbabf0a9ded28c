"""The compute app's screens: the company's voucher page, the data-center console and
city staff's vouchers, each tried by outsiders too."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from compute.models import ApiKey, Redemption, RedemptionStatus, UsageBatch
from portal.audit import SYSTEM
from tests.compute.conftest import make_company, record
from tests.factories import UserFactory
from vouchers.ledger import voucher_issue


@pytest.fixture
def member(client, startup_user):
    client.force_login(startup_user)
    return client


# --- company ------------------------------------------------------------------------------


def test_company_sees_its_vouchers_balance_and_ledger(member, ledger_world):
    w = ledger_world
    body = member.get("/my/vouchers/").content.decode()
    assert w.voucher.code in body
    assert w.other_voucher.code in body
    page = member.get(f"/my/vouchers/{w.voucher.code}/").content.decode()
    assert "¥1,000.00" in page
    assert "GA-2026-001" in page


def test_another_companys_user_gets_404(client, ledger_world, outsider):
    client.force_login(outsider)
    assert client.get(f"/my/vouchers/{ledger_world.voucher.code}/").status_code == 404
    rid = ledger_world.redemption.pk
    assert client.get(f"/my/redemptions/{rid}/close/").status_code == 404
    assert client.post(f"/my/redemptions/{rid}/close/", {"reason": "x"}).status_code == 404
    ledger_world.redemption.refresh_from_db()
    assert ledger_world.redemption.status == "active"


def test_anonymous_is_sent_to_sign_in(client, ledger_world):
    response = client.get(f"/my/vouchers/{ledger_world.voucher.code}/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_request_a_redemption_and_cancel_it(member, ledger_world, shanghai):
    w = ledger_world
    w.redemption.status = RedemptionStatus.CLOSED
    w.redemption.save()
    url = f"/my/vouchers/{w.voucher.code}/"
    response = member.post(
        url, {"data_center": w.dc.pk, "contract_ref": "GA-9", "amount_cap": "300"}
    )
    assert response.status_code == 302
    redemption = Redemption.objects.get(contract_ref="GA-9")
    assert redemption.status == "requested"
    assert redemption.amount_cap == Decimal("300")
    # Twice for the same data center: a clear error, nothing stored.
    again = member.post(url, {"data_center": w.dc.pk, "contract_ref": "GA-10"})
    assert "已有未结束的核销" in str(again.context["form"].non_field_errors())
    assert not Redemption.objects.filter(contract_ref="GA-10").exists()
    # Confirmation first, then the cancellation.
    cancel = f"/my/redemptions/{redemption.pk}/cancel/"
    assert member.get(cancel).status_code == 200
    assert member.post(cancel, {"reason": "换一家"}).status_code == 302
    redemption.refresh_from_db()
    assert redemption.status == "cancelled"


def test_data_center_not_allowed_by_the_program_is_refused(member, ledger_world):
    w = ledger_world
    response = member.post(
        f"/my/vouchers/{w.voucher.code}/", {"data_center": w.other_dc.pk, "contract_ref": "X"}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["data_center"]
    assert not Redemption.objects.filter(contract_ref="X").exists()


def test_close_needs_a_reason(member, ledger_world):
    url = f"/my/redemptions/{ledger_world.redemption.pk}/close/"
    assert member.post(url, {"reason": ""}).status_code == 200
    ledger_world.redemption.refresh_from_db()
    assert ledger_world.redemption.status == "active"
    assert member.post(url, {"reason": "合同结束"}).status_code == 302
    ledger_world.redemption.refresh_from_db()
    assert ledger_world.redemption.status == "closed"


# --- data-center console ----------------------------------------------------------------


@pytest.fixture
def console(client, operator):
    client.force_login(operator)
    return client


def test_console_is_for_its_operators_only(client, ledger_world, operator, outsider, shanghai):
    for user in (outsider, shanghai.manager):
        client.force_login(user)
        for path in (
            "/dc/guian/",
            "/dc/guian/redemptions/",
            "/dc/guian/batches/",
            "/dc/guian/keys/",
        ):
            assert client.get(path).status_code == 404, (user, path)
    client.force_login(operator)
    assert client.get("/dc/guian/").status_code == 200
    assert client.get("/dc/zhongwei/").status_code == 404


def test_console_accepts_a_requested_redemption(console, ledger_world, startup_user):
    w = ledger_world
    w.redemption.status = RedemptionStatus.CLOSED
    w.redemption.save()
    r = Redemption.objects.create(
        voucher=w.voucher, data_center=w.dc, contract_ref="GA-5", requested_by=startup_user
    )
    assert "GA-5" in console.get("/dc/guian/").content.decode()
    assert (
        console.post(f"/dc/guian/redemptions/{r.pk}/accept/", {"contract_ref": ""}).status_code
        == 302
    )
    r.refresh_from_db()
    assert (r.status, r.contract_ref) == ("active", "GA-5")
    # Another data center's redemption is not there.
    other = Redemption.objects.filter(data_center=w.other_dc).first()
    assert console.get(f"/dc/guian/redemptions/{other.pk}/accept/").status_code == 404


def test_console_lists_and_rejects_redemptions(console, ledger_world, startup_user):
    w = ledger_world
    Redemption.objects.filter(pk=w.redemption.pk).update(status=RedemptionStatus.CLOSED)
    r = Redemption.objects.create(
        voucher=w.voucher, data_center=w.dc, contract_ref="GA-9", requested_by=startup_user
    )
    page = console.get("/dc/guian/redemptions/?status=requested").content.decode()
    assert "GA-9" in page and "GA-2026-001" not in page
    assert "GA-2026-001" in console.get("/dc/guian/redemptions/?status=bogus").content.decode()
    reject = f"/dc/guian/redemptions/{r.pk}/reject/"
    assert console.get(reject).status_code == 200
    assert console.post(reject, {"reason": " "}).status_code == 200  # the form says why
    assert Redemption.objects.get(pk=r.pk).status == "requested"
    assert console.post(reject, {"reason": "合同未签"}).status_code == 302
    assert (Redemption.objects.get(pk=r.pk).status, r.voucher.code) == ("rejected", w.voucher.code)
    other = Redemption.objects.filter(data_center=w.other_dc).first()
    assert (
        console.post(f"/dc/guian/redemptions/{other.pk}/reject/", {"reason": "x"}).status_code
        == 404
    )
    assert Redemption.objects.get(pk=other.pk).status == "active"


def test_the_console_index_leads_to_each_operators_data_centers(
    client, ledger_world, operator, outsider
):
    client.force_login(operator)
    assert client.get("/dc/").url == "/dc/guian/"  # one: straight to it
    ledger_world.other_dc.operators.add(operator)
    page = client.get("/dc/").content.decode()
    assert "/dc/guian/" in page and "/dc/zhongwei/" in page
    client.force_login(outsider)
    assert client.get("/dc/").status_code == 404


def test_console_shows_rejected_records_of_a_batch(
    console, ledger_world, eager_tasks, django_capture_on_commit_callbacks
):
    w = ledger_world
    with django_capture_on_commit_callbacks(execute=True):
        w.api.post(
            "/api/v1/usage/batches",
            {"records": [record(1, w.voucher.code), record(2, "SH-26-NOPE-NOPE")]},
            format="json",
        )
    batch = UsageBatch.objects.get()
    page = console.get(f"/dc/guian/batches/{batch.pk}/").content.decode()
    assert "unknown_voucher" in page
    assert "dc-2026-11-000002" in page
    assert "dc-2026-11-000001" not in page
    assert console.get("/dc/guian/batches/?rejected=1").status_code == 200


def test_console_issues_a_key_once_and_revokes_it(console, ledger_world):
    response = console.post("/dc/guian/keys/", {"name": "billing 2026"})
    key = ApiKey.objects.get(name="billing 2026")
    raw = response.context["new_key"]
    assert raw.startswith(key.prefix)
    assert raw in response.content.decode()
    assert raw not in console.get("/dc/guian/keys/").content.decode()
    assert console.post(f"/dc/guian/keys/{key.pk}/revoke/", {"reason": "轮换"}).status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_the_key_list_names_its_column_for_keys(console, ledger_world):
    # The name column of the API keys read 姓名 (a person's name) in Chinese (issue #14).
    console.post("/dc/guian/keys/", {"name": "billing 2026"})
    page = console.get("/dc/guian/keys/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "<th>密钥名称</th>" in page
    assert "姓名" not in page


# --- city staff ---------------------------------------------------------------------------


def test_staff_list_their_citys_vouchers_only(client, ledger_world, shanghai, shenzhen):
    client.force_login(shanghai.auditor)
    body = client.get("/shanghai/staff/vouchers/").content.decode()
    assert ledger_world.voucher.code in body
    assert ledger_world.other_voucher.code not in body
    assert (
        client.get(f"/shanghai/staff/vouchers/{ledger_world.other_voucher.code}/").status_code
        == 404
    )
    client.force_login(shenzhen.manager)
    assert client.get("/shanghai/staff/vouchers/").status_code == 404
    assert client.get(f"/shanghai/staff/vouchers/{ledger_world.voucher.code}/").status_code == 404


def test_staff_voucher_search(client, ledger_world, shanghai):
    client.force_login(shanghai.reviewer)
    assert (
        ledger_world.voucher.code
        in client.get("/shanghai/staff/vouchers/?q=深度河流").content.decode()
    )
    assert (
        ledger_world.voucher.code
        not in client.get("/shanghai/staff/vouchers/?q=nobody").content.decode()
    )
    assert (
        ledger_world.voucher.code
        not in client.get("/shanghai/staff/vouchers/?status=revoked").content.decode()
    )


def test_voucher_list_query_count_does_not_grow(
    client, ledger_world, shanghai, django_assert_max_num_queries
):
    client.force_login(shanghai.auditor)
    company = make_company(UserFactory(), name="另一家", code="91310000MA1FL8TQ3Y")
    for _ in range(15):
        voucher_issue(
            program=ledger_world.program, company=company, amount=Decimal("10"), actor=SYSTEM
        )
    with django_assert_max_num_queries(12):
        response = client.get("/shanghai/staff/vouchers/")
    assert response.content.decode().count("/shanghai/staff/vouchers/SH-") == 16


def test_only_program_managers_suspend_and_revoke(client, ledger_world, shanghai, shenzhen):
    code = ledger_world.voucher.code
    url = f"/shanghai/staff/vouchers/{code}/suspend/"
    client.force_login(shanghai.reviewer)
    assert client.post(url, {"reason": "x"}).status_code == 403
    client.force_login(shenzhen.manager)
    assert client.post(url, {"reason": "x"}).status_code == 404
    client.force_login(shanghai.manager)
    assert client.get(url).status_code == 200  # the confirmation
    assert client.post(url, {"reason": "核查"}).status_code == 302
    ledger_world.voucher.refresh_from_db()
    assert ledger_world.voucher.status == "suspended"
    assert (
        client.post(f"/shanghai/staff/vouchers/{code}/bogus/", {"reason": "x"}).status_code == 404
    )


def test_program_manager_registers_a_data_center(client, ledger_world, shanghai):
    client.force_login(shanghai.reviewer)
    assert client.get("/shanghai/staff/data-centers/").status_code == 200
    assert (
        client.post(
            "/shanghai/staff/data-centers/",
            {"data_center": ledger_world.other_dc.pk, "status": "active"},
        ).status_code
        == 404
    )
    client.force_login(shanghai.manager)
    response = client.post(
        "/shanghai/staff/data-centers/",
        {"data_center": ledger_world.other_dc.pk, "status": "active"},
    )
    assert response.status_code == 302
    assert ledger_world.other_dc.registrations.filter(city=shanghai.city).exists()


def test_voucher_page_in_chinese_and_english(member, ledger_world):
    url = f"/my/vouchers/{ledger_world.voucher.code}/"
    assert "各数据中心用量" in member.get(url).content.decode()
    member.post("/i18n/setlang/", {"language": "en", "next": url})
    assert "Usage per data center" in member.get(url).content.decode()


def test_sync_health_for_operators_and_city_staff(
    client, ledger_world, operator, shanghai, shenzhen
):
    from compute.models import Discrepancy, SyncRun

    dc = ledger_world.dc
    dc.feed_url, dc.feed_healthy, dc.feed_error = "http://127.0.0.1:9/feed", False, "HTTP 503"
    dc.save()
    SyncRun.objects.create(data_center=dc, outcome="failed", error="HTTP 503")
    Discrepancy.objects.create(city=shanghai.city, kind="ledger", detail="SH-26 off by ¥0.01")
    Discrepancy.objects.create(city=shenzhen.city, kind="ledger", detail="SZ-26 elsewhere")
    client.force_login(operator)
    assert "HTTP 503" in client.get("/dc/guian/sync/").content.decode()
    client.force_login(shanghai.auditor)
    page = client.get("/shanghai/staff/sync/").content.decode()
    assert "HTTP 503" in page
    assert "SH-26 off by" in page
    assert "SZ-26 elsewhere" not in page
    client.force_login(shenzhen.auditor)
    assert client.get("/shanghai/staff/sync/").status_code == 404
    client.force_login(shanghai.manager)
    assert client.get("/dc/guian/sync/").status_code == 404


def test_run_datacenter_sim_needs_a_token():
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("run_datacenter_sim", "--port", "0")


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        ((), {}, "Name a data center slug or pass --all."),
        (("guian",), {"all": True}, "Either a slug or --all, not both."),
        (("guian",), {"records": 0}, "--records must be between 1 and 5000."),
        (("nowhere",), {}, "No data center 'nowhere'."),
        ((), {"all": True, "key": "sk_x"}, "--key fits one data center only."),
    ],
)
def test_simulate_push_refuses_what_it_cannot_do(ledger_world, args, options, message):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError) as err:
        call_command("simulate_push", *args, **options)
    assert str(err.value) == message
    assert not ApiKey.objects.filter(name="simulate_push").exists()


def test_simulate_push_reports_a_portal_it_cannot_use(ledger_world, live_server, capsys):
    from django.core.management import call_command

    call_command("simulate_push", "guian", url="http://127.0.0.1:9", key="sk_x")
    assert "guian: cannot reach http://127.0.0.1:9" in capsys.readouterr().err
    call_command("simulate_push", "guian", url=live_server.url, key="sk_wrong")
    assert capsys.readouterr().err.startswith("guian: 401 ")
    Redemption.objects.update(status=RedemptionStatus.CLOSED)
    call_command("simulate_push", "guian", url=live_server.url, key=ledger_world.key)
    assert "guian: no active redemptions; nothing to bill." in capsys.readouterr().out
    assert not UsageBatch.objects.exists()


@pytest.mark.parametrize(
    ("language", "shown", "hidden"),
    [
        ("zh-hans", ["中国电信", "贵安"], ["China Telecom", "Gui&#x27;an"]),
        ("en", ["China Telecom", "Gui&#x27;an"], ["中国电信", "贵安"]),
    ],
)
def test_operator_and_cluster_read_in_the_readers_language(
    console, ledger_world, shanghai, language, shown, hidden
):
    # The operating company and the cluster had one name each, shown as entered on pages
    # of both languages (issue #14 item 2): the console read "中国电信 · … · Gui'an".
    console.post("/i18n/setlang/", {"language": language, "next": "/"})
    console_page = console.get("/dc/guian/").content.decode()
    client = Client()
    client.force_login(shanghai.manager)
    client.post("/i18n/setlang/", {"language": language, "next": "/"})
    staff_page = client.get("/shanghai/staff/data-centers/").content.decode()
    for text in shown:
        assert text in console_page
    assert shown[0] in staff_page
    for text in hidden:
        assert text not in console_page and text not in staff_page
