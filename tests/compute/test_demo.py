from django.core.management import call_command

from compute.demo import SERVES, operator_email
from compute.models import DataCenter, Redemption, Registration
from portal.demo import DEMO_PASSWORD, DEMO_TOTP_SECRET
from tests.mfa import totp_code


def _links():
    return (
        sorted(Registration.objects.values_list("city__slug", "data_center__slug")),
        sorted(Redemption.objects.values_list("voucher__code", "data_center__slug", "status")),
        sorted(DataCenter.objects.values_list("slug", "operators__email")),
    )


def test_demo_links_cities_data_centers_and_operators_idempotently(db):
    call_command("seed_demo")
    first = _links()
    call_command("seed_demo")
    assert _links() == first
    registrations, _redemptions, operators = first
    assert len(registrations) == sum(len(v) for v in SERVES.values())
    assert {email for _slug, email in operators} == {
        operator_email(s) for s in DataCenter.objects.values_list("slug", flat=True)
    }


def test_demo_operator_reaches_the_console(client, db):
    call_command("seed_demo")
    client.post("/accounts/login/", {"login": operator_email("guian"), "password": DEMO_PASSWORD})
    # Operators sign in with the demo's published authenticator secret (README).
    client.post("/accounts/2fa/authenticate/", {"code": totp_code(DEMO_TOTP_SECRET)})
    assert client.get("/dc/guian/").status_code == 200
    assert client.get("/dc/wuhu/").status_code == 404
