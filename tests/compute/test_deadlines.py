"""Deadlines read in the city's time zone with the zone named (issue #14 item 3): a
program's closing time was shown as a bare date in the server's zone, a voucher's last
day and a key's expiry without a zone. They go through `city_time` / `city_date`
(portal.citytime) on every page."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.test import Client

from compute.models import ApiKey
from tests.vouchers.conftest import make_program

TEMPLATES = Path(settings.BASE_DIR) / "templates"
DEADLINES = "closes_at|opens_at|valid_until|notice_ends_at|award_expires_at|expires_at"
BARE = re.compile(r"\.(?:" + DEADLINES + r")\|date\b")


def test_no_template_shows_a_deadline_without_its_zone():
    found = [
        f"{path.relative_to(TEMPLATES)}: {m.group(0)}"
        for path in TEMPLATES.rglob("*.html")
        for m in BARE.finditer(path.read_text())
    ]
    assert found == []


def test_a_programs_closing_time_is_the_citys_with_its_zone(shanghai):
    city = shanghai.city
    city.timezone = "Asia/Urumqi"  # UTC+6: the same moment is 21:59 there
    city.save(update_fields=["timezone"])
    make_program(city, closes_at=datetime(2099, 12, 31, 15, 59, tzinfo=UTC))
    page = Client().get(f"/{city.slug}/programs/").content.decode()
    assert "2099-12-31 21:59 (Asia/Urumqi)" in page


def test_a_keys_expiry_names_its_zone(client, ledger_world, operator):
    from compute.services import api_key_issue
    from portal.audit import SYSTEM

    key, _raw = api_key_issue(data_center=ledger_world.dc, actor=SYSTEM)
    ApiKey.objects.filter(pk=key.pk).update(expires_at=datetime(2099, 1, 1, 0, 0, tzinfo=UTC))
    client.force_login(operator)
    page = client.get(f"/dc/{ledger_world.dc.slug}/keys/").content.decode()
    assert "2099-01-01 08:00 (Asia/Shanghai)" in page
