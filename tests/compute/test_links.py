"""The compute app's pages, linked from the vouchers app's and the portal's pages
through portal.links (registered by ComputeConfig.ready())."""

from __future__ import annotations

from vouchers.models import Voucher


def test_the_company_home_links_each_voucher_code_to_its_page(client, ledger_world, startup_user):
    client.force_login(startup_user)
    page = client.get("/company/").content.decode()
    for voucher in Voucher.objects.filter(company=ledger_world.company):
        assert f'href="/my/vouchers/{voucher.code}/"><code>{voucher.code}</code>' in page
    assert 'href="/my/vouchers/"' in page  # the navigation: this user has vouchers


def test_an_operator_sees_the_console_in_the_navigation(client, ledger_world, operator):
    client.force_login(operator)
    assert 'href="/dc/"' in client.get("/").content.decode()
