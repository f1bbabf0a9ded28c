"""A company's shareholders and managers in the UI (/company/<pk>/parties/, issue #19
item 1): its members declare, list and withdraw them (with a confirmation), codes are
checked and duplicates refused, each change is audited, another company's user gets a
404, and a party the company declares here that a data center declared too raises the
related-party finding when the company asks that data center to bill its voucher."""

from __future__ import annotations

import pytest

from compute.integrity.models import Finding, FindingRule, RelatedParty
from portal.models import AuditEvent
from tests.factories import UserFactory
from tests.vouchers.conftest import make_company

pytestmark = pytest.mark.usefixtures("eager_tasks")

ZHANG = "110101199001011234"


def url(company) -> str:
    return f"/company/{company.pk}/parties/"


def declare(client, company, name="张三", code=ZHANG):
    return client.post(url(company), {"name": name, "code": code})


def test_a_member_declares_lists_and_withdraws_a_party(ledger_world, startup_user, client):
    company = ledger_world.company
    client.force_login(startup_user)
    assert client.get(url(company)).status_code == 200
    # Spaces, dashes and a lower-case x are normalised away.
    response = declare(client, company, name=" 张三 ", code="110101-19900101 123x")
    assert response.status_code == 302
    party = RelatedParty.objects.get(company=company)
    assert (party.name, party.code, party.data_center_id) == ("张三", "11010119900101123X", None)
    assert declare(client, company, name="深度资本", code="91440300708461136T").status_code == 302
    page = client.get(url(company)).content.decode()
    assert "张三" in page and "深度资本" in page and "…123X" in page
    assert "11010119900101123X" not in page  # only the code's end is shown
    event = AuditEvent.objects.get(action="related_party.add", target_id=str(party.pk))
    assert event.data == {"company": company.pk, "name": "张三"}

    remove = f"/company/{company.pk}/parties/{party.pk}/remove/"
    confirm = client.get(remove)
    assert confirm.status_code == 200 and "张三" in confirm.content.decode()
    assert RelatedParty.objects.filter(pk=party.pk).exists()  # a GET removes nothing
    assert client.post(remove).status_code == 302
    assert list(RelatedParty.objects.filter(company=company).values_list("name", flat=True)) == [
        "深度资本"
    ]
    event = AuditEvent.objects.get(action="related_party.remove")
    assert event.data == {"company": company.pk, "name": "张三", "code": "…123X"}


@pytest.mark.parametrize(
    "name, code, field",
    [
        ("张三", "12345", "code"),  # too short
        ("张三", "1101011990010112345", "code"),  # too long
        ("张三", "11010A199001011234", "code"),  # the region is six digits
        ("张三", "110101199001011Z34", "code"),  # no Z in either
        ("张三", "9144030070846113IO", "code"),  # no I or O in a credit code
        ("张三", "", "code"),
        ("   ", ZHANG, "name"),
        ("张" * 121, ZHANG, "name"),
    ],
)
def test_a_malformed_party_is_refused_on_its_field(
    ledger_world, startup_user, client, name, code, field
):
    company = ledger_world.company
    client.force_login(startup_user)
    response = declare(client, company, name=name, code=code)
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not RelatedParty.objects.exists()


def test_the_same_code_twice_is_refused_with_a_message(ledger_world, startup_user, client):
    company = ledger_world.company
    client.force_login(startup_user)
    assert declare(client, company).status_code == 302
    response = declare(client, company, name="张三丰", code=ZHANG.replace("1234", "12-34"))
    assert response.status_code == 200
    assert response.context["form"].errors["code"] == ["该证件号码或注册代码已申报过。"]
    assert RelatedParty.objects.count() == 1
    # A data center may declare the same person: that is what the check looks for.
    RelatedParty.objects.create(data_center=ledger_world.dc, name="张三", code=ZHANG)


def test_another_companys_user_gets_404(ledger_world, startup_user, client):
    company = ledger_world.company
    party = RelatedParty.objects.create(company=company, name="张三", code=ZHANG)
    other = UserFactory(email="rival@other.test")
    rival = make_company(other, name="竞争科技有限公司", code="91310000MA1FL8TQ3X")
    client.force_login(other)
    assert client.get(url(company)).status_code == 404
    assert declare(client, company, name="李四", code="110101199202022345").status_code == 404
    remove = f"/company/{company.pk}/parties/{party.pk}/remove/"
    assert client.get(remove).status_code == 404
    assert client.post(remove).status_code == 404
    # Nor through its own company's address.
    assert client.post(f"/company/{rival.pk}/parties/{party.pk}/remove/").status_code == 404
    assert RelatedParty.objects.filter(pk=party.pk).exists()
    assert RelatedParty.objects.filter(company=company).count() == 1


def test_the_company_page_links_to_its_parties(ledger_world, startup_user, client):
    company = ledger_world.company
    client.force_login(startup_user)
    for page in ("/company/", f"/company/{company.pk}/"):
        assert url(company) in client.get(page).content.decode()


def test_a_party_declared_in_the_ui_is_flagged_at_redemption(ledger_world, startup_user, client):
    w = ledger_world
    w.redemption.status = "closed"
    w.redemption.save()
    RelatedParty.objects.create(data_center=w.dc, name="张三", code=ZHANG)
    client.force_login(startup_user)
    assert declare(client, w.company, code=f"{ZHANG[:6]} {ZHANG[6:]}").status_code == 302
    response = client.post(
        f"/my/vouchers/{w.voucher.code}/",
        {"data_center": w.dc.pk, "contract_ref": "GA-2"},
    )
    assert response.status_code == 302
    finding = Finding.objects.get()
    assert finding.rule == FindingRule.RELATED_PARTY and finding.company == w.company
    assert finding.evidence["shared"] == [{"name": "张三", "company_side": "张三", "code": "…1234"}]
    # Withdrawn, the party no longer matches: a second request raises nothing more.
    party = RelatedParty.objects.get(company=w.company)
    assert client.post(f"/company/{w.company.pk}/parties/{party.pk}/remove/").status_code == 302
    assert not RelatedParty.objects.filter(company=w.company).exists()


def test_a_data_center_declaring_a_code_twice_sees_why(ledger_world, operator, client):
    """The console's form shows the refusal on the party form (it was put on the
    inventory form, out of sight of the party's fields)."""
    client.force_login(operator)
    url = f"/dc/{ledger_world.dc.slug}/inventory/"
    body = {"kind": "party", "party-name": "张三", "party-code": ZHANG}
    assert client.post(url, body).status_code == 302
    response = client.post(url, body)
    assert response.status_code == 200
    assert response.context["party_form"].errors["code"] == ["该证件号码或注册代码已申报过。"]
    assert RelatedParty.objects.filter(data_center=ledger_world.dc).count() == 1
