from django.core.management import call_command

from compute.models import DataCenter
from portal.models import AuditEvent, City, CityMembership, User


def _snapshot():
    return {
        "cities": list(
            City.objects.order_by("slug").values_list("slug", "code", "name_zh", "name_en")
        ),
        "users": list(
            User.objects.order_by("email").values_list("email", "display_name", "password")
        ),
        "roles": list(
            CityMembership.objects.order_by("city__slug", "user__email", "role").values_list(
                "city__slug", "user__email", "role"
            )
        ),
        "centers": list(
            DataCenter.objects.order_by("slug").values_list(
                "slug", "hub", "operator_zh", "operator_en"
            )
        ),
        "audit": AuditEvent.objects.count(),
    }


def test_seed_demo_twice_gives_the_same_data(db):
    call_command("seed_demo")
    first = _snapshot()
    call_command("seed_demo")
    assert _snapshot() == first


def test_seed_demo_creates_six_cities_with_every_role_and_six_data_centers(db):
    call_command("seed_demo")
    assert {c.slug for c in City.objects.all()} == {
        "beijing",
        "shanghai",
        "shenzhen",
        "hangzhou",
        "chengdu",
        "guizhou",
    }
    for city in City.objects.all():
        roles = set(city.memberships.values_list("role", flat=True))
        assert roles == {"reviewer", "approver", "program_manager", "auditor"}
    assert DataCenter.objects.count() == 6
    clusters = set(DataCenter.objects.values_list("cluster_zh", "cluster_en"))
    assert clusters >= {("贵安", "Gui'an"), ("中卫", "Zhongwei"), ("和林格尔", "Horinger")}
    # Every name the demo shows has both halves, none a copy of the other.
    for center in DataCenter.objects.all():
        assert center.operator_zh != center.operator_en
        assert center.cluster_zh != center.cluster_en


def test_demo_logins_can_sign_in(client, db):
    from portal.demo import DEMO_PASSWORD, DEMO_TOTP_SECRET
    from tests.mfa import totp_code

    call_command("seed_demo")
    response = client.post(
        "/accounts/login/", {"login": "manager@shanghai.demo.suanli.cn", "password": DEMO_PASSWORD}
    )
    assert response.status_code == 302
    # Staff sign in with the demo's published authenticator secret (README).
    client.post("/accounts/2fa/authenticate/", {"code": totp_code(DEMO_TOTP_SECRET)})
    assert client.get("/shanghai/staff/").status_code == 200
