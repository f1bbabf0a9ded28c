"""Re-authentication before sensitive actions (issue #15 item 2): within 15 minutes of
signing in (or of confirming again) the action is done; later the user is sent to
confirm it is them, and what they posted is carried out once they have. These tests
have the real re-authentication check (`auth_enforced`); the second factor is taken as
passed (tests/portal/test_twofactor.py covers it)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
import time_machine
from django.contrib.messages import get_messages

from compute.models import ApiKey, Voucher
from portal.models import CityMembership, Role, StaffInvitation
from tests.compute.conftest import ledger_world, operator  # noqa: F401
from tests.vouchers.conftest import make_program
from vouchers.forms import ProgramForm
from vouchers.models import Program

pytestmark = pytest.mark.auth_enforced

REAUTH = "/accounts/reauthenticate/"


@pytest.fixture(autouse=True)
def _second_factor_passed(monkeypatch):
    monkeypatch.setattr("portal.twofactor.mfa_satisfied", lambda request: True)


@dataclass
class Sensitive:
    name: str
    who: str  # "manager", "approver" (of Shanghai) or "operator" (of guian)
    url: str
    data: dict


def program_form_data(program, **changes) -> dict:
    """The program form as its page would post it, with `changes`."""
    form = ProgramForm(instance=program)
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if isinstance(value, list | dict):
            value = json.dumps(value)
        data[name] = "" if value is None else str(value)
    data.update(changes)
    return data


def sensitive_requests(world) -> list[Sensitive]:
    """One request for each action of the issue's list. Applications and statements
    that do not exist are enough to see the gate: without a recent authentication the
    request never reaches the view; with one, the view answers (404)."""
    code = world.voucher.code
    key = ApiKey.objects.filter(data_center=world.dc).first()
    program = world.program
    money = program_form_data(program, budget=str(program.budget + 1))
    return [
        Sensitive("approve", "approver", "/shanghai/staff/applications/999999/do/approve/", {}),
        Sensitive("reject", "approver", "/shanghai/staff/applications/999999/do/reject/", {}),
        Sensitive(
            "revoke voucher", "manager", f"/shanghai/staff/vouchers/{code}/revoke/", {"reason": "x"}
        ),
        Sensitive(
            "suspend voucher",
            "manager",
            f"/shanghai/staff/vouchers/{code}/suspend/",
            {"reason": "x"},
        ),
        Sensitive("issue API key", "operator", "/dc/guian/keys/", {"name": "billing"}),
        Sensitive(
            "revoke API key", "operator", f"/dc/guian/keys/{key.pk}/revoke/", {"reason": "x"}
        ),
        Sensitive(
            "grant role",
            "manager",
            "/shanghai/staff/members/",
            {"email": "new@shanghai.test", "role": Role.AUDITOR},
        ),
        Sensitive(
            "issue statement", "manager", "/shanghai/staff/settlements/999999/", {"step": "issue"}
        ),
        Sensitive(
            "mark statement paid",
            "manager",
            "/shanghai/staff/settlements/999999/",
            {"step": "mark_paid", "payment_ref": "P-1"},
        ),
        Sensitive("program budget", "manager", f"/shanghai/staff/programs/{program.slug}/", money),
        Sensitive(
            "program rate",
            "manager",
            f"/shanghai/staff/programs/{program.slug}/",
            program_form_data(program, rate_domestic="0.31"),
        ),
        Sensitive("new program", "manager", "/shanghai/staff/programs/new/", {"slug": "new-one"}),
        Sensitive(
            "accept outcome report", "manager", "/shanghai/staff/outcomes/999999/do/accept/", {}
        ),
        Sensitive(
            "return outcome report",
            "manager",
            "/shanghai/staff/outcomes/999999/do/return/",
            {"comment": "x"},
        ),
    ]


def _state(world) -> tuple:
    """What the sensitive requests would change."""
    voucher = Voucher.objects.get(pk=world.voucher.pk)
    return (
        voucher.status,
        ApiKey.objects.filter(data_center=world.dc, revoked_at__isnull=True).count(),
        ApiKey.objects.count(),
        CityMembership.objects.count(),
        StaffInvitation.objects.count(),
        tuple(Program.objects.values_list("budget", "rate_domestic").order_by("pk")),
    )


def _users(shanghai, operator):  # noqa: F811
    return {"manager": shanghai.manager, "approver": shanghai.approver, "operator": operator}


def test_every_sensitive_action_asks_again_after_15_minutes(
    client,
    shanghai,
    ledger_world,  # noqa: F811
    operator,  # noqa: F811
):
    users = _users(shanghai, operator)
    with time_machine.travel(time.time(), tick=False) as traveller:
        for item in sensitive_requests(ledger_world):
            client.force_login(users[item.who])  # signing in counts as authenticating
            traveller.shift(16 * 60)
            before = _state(ledger_world)
            response = client.post(item.url, item.data)
            assert response.status_code == 302, item.name
            assert response["Location"] == f"{REAUTH}?{urlencode({'next': item.url})}", item.name
            assert _state(ledger_world) == before, item.name
            # A page to read is not an action: it opens without asking (the step
            # addresses under …/do/ answer POST only).
            if item.who != "approver" and "/do/" not in item.url:
                assert client.get(item.url).status_code in (200, 404), item.name


def test_within_15_minutes_nothing_is_asked(
    client,
    shanghai,
    ledger_world,  # noqa: F811
    operator,  # noqa: F811
):
    users = _users(shanghai, operator)
    with time_machine.travel(time.time(), tick=False) as traveller:
        for item in sensitive_requests(ledger_world):
            client.force_login(users[item.who])
            traveller.shift(14 * 60)
            response = client.post(item.url, item.data)
            assert not response.get("Location", "").startswith(REAUTH), item.name
    # Done: the voucher revoked, a key issued and one revoked, the invitation sent.
    assert Voucher.objects.get(pk=ledger_world.voucher.pk).status == "revoked"
    assert ApiKey.objects.filter(data_center=ledger_world.dc, name="billing").exists()
    assert ApiKey.objects.filter(data_center=ledger_world.dc, revoked_at__isnull=False).exists()
    assert StaffInvitation.objects.filter(email="new@shanghai.test").exists()


def test_a_program_edit_that_leaves_the_money_alone_is_not_asked(client, shanghai):
    program = make_program(shanghai.city)
    with time_machine.travel(time.time(), tick=False) as traveller:
        client.force_login(shanghai.manager)
        traveller.shift(20 * 60)
        data = program_form_data(program, description_en="Clearer words.")
        response = client.post(f"/shanghai/staff/programs/{program.slug}/", data)
        assert not response.get("Location", "").startswith(REAUTH)


def test_confirming_carries_out_what_was_posted(client, shanghai):
    """The grant posted 20 minutes after signing in waits for the password, then is
    done, and the page said it would be."""
    with time_machine.travel(time.time(), tick=False) as traveller:
        client.force_login(shanghai.manager)
        traveller.shift(20 * 60)
        data = {"email": shanghai.reviewer.email, "role": Role.AUDITOR}
        response = client.post("/shanghai/staff/members/", data)
        assert response["Location"] == f"{REAUTH}?next=%2Fshanghai%2Fstaff%2Fmembers%2F"
        page = client.get(response["Location"])
        assert page.status_code == 200
        said = [str(m) for m in get_messages(page.wsgi_request)]
        assert any("kept" in m or "保留" in m for m in said), said
        assert not CityMembership.objects.filter(user=shanghai.reviewer, role=Role.AUDITOR).exists()

        wrong = client.post(response["Location"], {"password": "not-it"})
        assert wrong.status_code == 200
        assert not CityMembership.objects.filter(user=shanghai.reviewer, role=Role.AUDITOR).exists()

        done = client.post(response["Location"], {"password": "pw-for-tests"})
        assert done.status_code == 302
        assert done["Location"] == "/shanghai/staff/members/"
        back = client.get(done["Location"])  # runs as the kept POST: grant, then redirect
        assert back.status_code == 302
        assert CityMembership.objects.filter(user=shanghai.reviewer, role=Role.AUDITOR).exists()
        assert client.get("/shanghai/staff/members/").status_code == 200  # once only

        # Confirmed: for the next 15 minutes nothing more is asked.
        traveller.shift(10 * 60)
        response = client.post(
            "/shanghai/staff/members/", {"email": shanghai.reviewer.email, "role": Role.APPROVER}
        )
        assert response["Location"] == "/shanghai/staff/members/"
        assert CityMembership.objects.filter(user=shanghai.reviewer, role=Role.APPROVER).exists()


def test_a_kept_post_is_dropped_when_the_user_goes_elsewhere(client, shanghai):
    with time_machine.travel(time.time(), tick=False) as traveller:
        client.force_login(shanghai.manager)
        traveller.shift(20 * 60)
        data = {"email": shanghai.reviewer.email, "role": Role.AUDITOR}
        client.post("/shanghai/staff/members/", data)
        client.get("/shanghai/staff/")  # walked away instead of confirming
        client.post(f"{REAUTH}?next=%2Fshanghai%2Fstaff%2Fmembers%2F", {"password": "pw-for-tests"})
        assert client.get("/shanghai/staff/members/").status_code == 200
        assert not CityMembership.objects.filter(user=shanghai.reviewer, role=Role.AUDITOR).exists()


def test_an_approval_waits_for_the_password_and_is_then_done(client, shanghai):
    """The approve button posts to a URL with no page of its own: coming back from
    confirming runs the kept POST there (not a 405 or 404)."""
    with time_machine.travel(time.time(), tick=False) as traveller:
        client.force_login(shanghai.approver)
        traveller.shift(20 * 60)
        url = "/shanghai/staff/applications/999999/do/approve/"
        response = client.post(url, {"amount": "1000.00"})
        assert response["Location"].startswith(REAUTH)
        done = client.post(response["Location"], {"password": "pw-for-tests"})
        assert done["Location"] == url
        replay = client.get(url)
        # The application does not exist: the view itself answered, as to a POST.
        assert replay.status_code == 404
        assert replay.wsgi_request.method == "POST"
        assert replay.wsgi_request.POST["amount"] == "1000.00"


def test_signed_out_visitors_are_sent_to_sign_in_not_to_confirm(client, shanghai):
    response = client.post("/shanghai/staff/members/", {"email": "x@shanghai.test"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_guessing_the_password_on_the_confirmation_page_is_limited(client, shanghai):
    """A stolen session cookie could guess the password where the user confirms: ten
    tries a minute, thirty an hour, then 429 even for the right one."""
    client.force_login(shanghai.manager)
    with time_machine.travel(time.time(), tick=False) as traveller:
        answers = []
        for i in range(30):
            if i and i % 10 == 0:
                traveller.shift(61)
            answers.append(client.post(REAUTH, {"password": f"guess-{i}"}).status_code)
        assert answers == [200] * 30
        assert client.post(REAUTH, {"password": "pw-for-tests"}).status_code == 429
