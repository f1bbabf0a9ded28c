from decimal import Decimal
from pathlib import Path

import polib
from django.conf import settings

from portal.templatetags.money import format_yuan


def test_money_is_shown_with_yuan_sign_and_two_decimals():
    assert format_yuan(Decimal("1234567")) == "¥1,234,567.00"
    assert format_yuan(Decimal("0.005")) == "¥0.01"
    assert format_yuan(Decimal("-12.5")) == "-¥12.50"
    assert format_yuan(None) == ""
    assert format_yuan("not money") == ""


def test_default_language_is_chinese_and_time_zone_shanghai(client, db):
    assert settings.TIME_ZONE == "Asia/Shanghai"
    body = client.get("/").content.decode()
    assert 'lang="zh-hans"' in body
    assert "算力券" in body


def test_language_switcher_changes_the_language(client, db):
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/"}, follow=True)
    assert 'lang="en"' in response.content.decode()
    assert "Computing vouchers for AI companies" in response.content.decode()


def test_signed_in_users_language_is_remembered(client, startup_user):
    client.force_login(startup_user)
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    startup_user.refresh_from_db()
    assert startup_user.preferred_language == "en"
    # A new browser (no cookie) gets the user's language after sign-in.
    client.cookies.clear()
    client.force_login(startup_user)
    assert 'lang="en"' in client.get("/").content.decode()


def test_unknown_language_changes_nothing(client, startup_user):
    client.force_login(startup_user)
    client.post("/i18n/setlang/", {"language": "xx", "next": "/"})
    startup_user.refresh_from_db()
    assert startup_user.preferred_language == "zh-hans"


def test_chinese_catalogue_translates_every_message():
    po = polib.pofile(str(Path(settings.BASE_DIR) / "locale/zh_Hans/LC_MESSAGES/django.po"))
    missing = [e.msgid for e in po if not e.obsolete and (not e.translated() or e.fuzzy)]
    assert missing == []
    assert len(po) > 50


def test_compiletranslations_compiles_stale_catalogues_only(settings, tmp_path):
    import io
    import shutil

    from django.core.management import call_command

    source = next(Path(settings.LOCALE_PATHS[0]).glob("*/LC_MESSAGES/django.po"))
    po = tmp_path / "zh_Hans" / "LC_MESSAGES" / "django.po"
    po.parent.mkdir(parents=True)
    shutil.copy(source, po)
    settings.LOCALE_PATHS = [tmp_path]
    out = io.StringIO()
    call_command("compiletranslations", stdout=out)
    assert out.getvalue().strip() == "Compiled 1 catalogue(s)."
    mo = polib.mofile(str(po.with_suffix(".mo")))
    assert len(mo.translated_entries()) == len(polib.pofile(str(po)).translated_entries())
    call_command("compiletranslations", stdout=out)  # up to date: left alone
    assert out.getvalue().strip().endswith("Compiled 0 catalogue(s).")


def test_quantities_and_rates_as_people_read_them():
    from portal.templatetags.money import format_percent, format_quantity

    # Card-hours showed as "20000.0" (issue #14 item 3).
    assert format_quantity(Decimal("20000.0")) == "20,000"
    assert format_quantity(20000.0) == "20,000"
    assert format_quantity(Decimal("1234.500")) == "1,234.5"
    assert format_quantity(Decimal("0.0005")) == "0.001"
    assert format_quantity(Decimal("-1500")) == "-1,500"
    assert format_quantity(None) == "" and format_quantity("n/a") == ""
    assert format_percent(Decimal("0.30")) == "30%"
    assert format_percent(Decimal("0.125")) == "12.5%"
    assert format_percent(Decimal("1")) == "100%"
    assert format_percent("") == ""


# The glossary (docs/glossary.md): one Chinese word per domain term, in the UI too.
GLOSSARY = {
    "Program": "专项",
    "Programs": "专项",
    "Program manager": "专项主管",
    "Project": "申报项目",
    "Project title": "申报项目名称",
    "Application": "申请",
    "Applications": "申请",
    "Voucher": "算力券",
    "Redemptions": "核销",
    "Data center": "数据中心",
    "Ledger": "台账",
}


def test_the_ui_uses_the_glossarys_words():
    from django.utils import translation

    with translation.override("zh-hans"):
        words = {english: translation.gettext(english) for english in GLOSSARY}
    assert words == GLOSSARY
    # "Program" and "Project" were both 项目: two identical column headers.
    assert words["Program"] != words["Project"]
