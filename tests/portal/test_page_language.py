"""Pages read in one language (issue #14 item 2): the key pages of every role of the demo,
rendered in English, have no Chinese in their headings, table headers, buttons, labels and
navigation, and rendered in Chinese no English words there beyond codes both languages
write the same way. User data (a company's legal name, a project's title, a person's
name, an e-mail, a voucher code) is what it is and is taken out first."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.core.management import call_command
from django.test import Client

from compute.models import DataCenter
from portal.models import City, User
from portal.stored_text import actor_text, memo_text
from tests.e2e.test_accessibility import pages_by_role
from tests.portal.test_template_text import ALLOWED
from vouchers.models import Application, Company, Program, Voucher

# The parts of a page the portal itself writes: its chrome, not its data.
CHROME = {"h1", "h2", "h3", "h4", "th", "button", "label", "legend", "summary", "caption", "nav"}
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
WORD = re.compile(r"[A-Za-z]+(?:['’-][A-Za-z]+)*")
# Written the same in both languages: the template check's list (codes, formats, the
# language switch's "EN"), plus what pages print around them.
SAME_IN_BOTH = ALLOWED | {"IP", "w", "max"}
# Codes shown as codes: e-mails, a document kind's code in a help text ("environmental_permit"),
# the city's time-zone name ("Asia/Shanghai").
CODES = re.compile(r"\S+@\S+|\b[a-z]+(?:_[a-z]+)+\b|\b[A-Z][a-z]+/[A-Z][A-Za-z_]+\b")


class _Chrome(HTMLParser):
    """The texts inside CHROME elements (and submit buttons' values)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.skip = 0
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style", "textarea"}:  # code, or a value someone typed
            self.skip += 1
        if tag in CHROME:
            self.depth += 1
        values = dict(attrs)
        if tag == "input" and values.get("type") == "submit" and values.get("value"):
            self.texts.append(values["value"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style", "textarea"} and self.skip:
            self.skip -= 1
        if tag in CHROME and self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth and not self.skip and data.strip():
            self.texts.append(" ".join(data.split()))


def chrome_texts(html: str) -> list[str]:
    parser = _Chrome()
    parser.feed(html)
    return parser.texts


def user_data() -> list[str]:
    """Names people gave, in the one language they gave them; longest first."""
    names: set[str] = set()
    names |= set(Company.objects.values_list("legal_name", flat=True))
    names |= set(Application.objects.values_list("title", flat=True))
    names |= set(User.objects.values_list("display_name", flat=True))
    names |= set(Voucher.objects.values_list("code", flat=True))
    names |= set(DataCenter.objects.values_list("slug", flat=True))
    names |= set(City.objects.values_list("slug", flat=True))
    names |= set(Program.objects.values_list("slug", flat=True))
    return sorted((n for n in names if n), key=len, reverse=True)


def without_user_data(text: str, names: list[str]) -> str:
    text = CODES.sub(" ", text)
    for name in names:
        text = text.replace(name, " ")
    return text


@pytest.fixture
def demo(db):
    call_command("seed_demo")
    pages = pages_by_role()
    # Beyond the accessibility walk: the pages with the most labels of their own.
    city = pages["program manager"][1][0].strip("/").split("/")[0]
    program = Program.objects.filter(city__slug=city).first()
    pages["program manager"][1].extend(
        [
            f"/{city}/staff/programs/{program.slug}/ranking/",
            f"/{city}/staff/dashboards/",
            f"/{city}/staff/programs/{program.slug}/dashboard/",
            f"/{city}/staff/data-centers/",
            f"/{city}/staff/redemptions/",
            f"/{city}/staff/sync/",
            f"/{city}/results/",
        ]
    )
    pages["company"][1].append("/my/dashboard/")
    dc = pages["operator"][1][0]
    pages["operator"][1].extend([f"{dc}dashboard/", f"{dc}sync/"])
    return pages


def _render(user: User | None, paths: list[str], language: str) -> dict[str, list[str]]:
    client = Client()
    if user is not None:
        client.force_login(user)
    client.post("/i18n/setlang/", {"language": language, "next": "/"})
    pages = {}
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, path
        pages[path] = chrome_texts(response.content.decode())
    return pages


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_key_pages_of_every_role_read_in_one_language(demo, language):
    names = user_data()
    stray: list[str] = []
    for role, (user, paths) in demo.items():
        for path, texts in _render(user, paths, language).items():
            assert texts, path  # the page has headings to check
            for text in texts:
                rest = without_user_data(text, names)
                if language == "en":
                    bad = bool(CJK.search(rest)) and rest.strip() != "中文"
                else:
                    bad = bool([w for w in WORD.findall(rest) if w not in SAME_IN_BOTH])
                if bad:
                    stray.append(f"{role} {path}: {text!r}")
    assert not stray, "\n".join(stray)


TITLE = re.compile(r"<title>(.*?)</title>", re.S)


def test_every_key_page_has_a_title_of_plain_text(demo):
    """A block left open in a template pours the page into its <title> (the program
    dashboard's outcome figures did): the tab then reads as markup, and screen readers
    announce it."""
    wrong = []
    for role, (user, paths) in demo.items():
        client = Client()
        if user is not None:
            client.force_login(user)
        for path in paths:
            found = TITLE.findall(client.get(path).content.decode())
            if len(found) != 1 or "<" in found[0] or len(found[0]) > 200:
                wrong.append(f"{role} {path}: {found!r:.120}")
    assert not wrong, "\n".join(wrong)


def test_stored_english_labels_read_in_chinese(settings):
    from django.utils import translation

    with translation.override("zh-hans"):
        assert actor_text("system") == "系统"
        assert actor_text("data center #5") == "数据中心 #5"
        assert actor_text("data center guian") == "数据中心 guian"
        assert actor_text("ops@x.cn (data center guian)") == "ops@x.cn（数据中心 guian）"
        assert actor_text("manager@x.cn") == "manager@x.cn"
        assert memo_text("application 43") == "申请 43"
        assert memo_text("void r-1: duplicate") == "作废 r-1：duplicate"
        assert memo_text("a person's own words") == "a person's own words"
    with translation.override("en"):
        assert actor_text("system") == "system"
        assert memo_text("application 43") == "application 43"


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.inside = 0
        self.cells: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "td":
            self.inside += 1
            self.cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self.inside:
            self.inside -= 1

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.cells[-1] += data


def test_actors_and_memos_of_the_demo_read_in_chinese(demo):
    # The ledger and the audit trail showed "system" and "application 43" on Chinese pages.
    manager, paths = demo["program manager"]
    client = Client()
    client.force_login(manager)
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    cells = []
    for path in [p for p in paths if "/audit/" in p or "/vouchers/" in p]:
        parser = _Cells()
        parser.feed(client.get(path).content.decode())
        cells += [" ".join(c.split()) for c in parser.cells]
    stored_english = re.compile(r"^(system|application \d+|data center .+)$")
    assert [c for c in cells if stored_english.match(c)] == []
    assert "系统" in cells  # the demo's own events are the portal's


def test_exports_of_the_audit_trail_and_ledger_name_actors_in_chinese(demo):
    from django.urls import reverse

    from tests.exporting import csv_rows

    manager, paths = demo["program manager"]
    city = paths[0].strip("/").split("/")[0]
    client = Client()
    client.force_login(manager)
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    audit = csv_rows(client.get(reverse("portal:audit_export_csv", args=[city])))
    actors = {row[2] for row in audit[1:]}
    assert "系统" in actors and "system" not in actors
    ledger = csv_rows(client.get(reverse("vouchers:ledger_export_csv", args=[city])))
    memos = {row[7] for row in ledger[1:]}
    assert any(re.fullmatch(r"申请 \d+", m) for m in memos)
    assert not any(re.fullmatch(r"application \d+", m) for m in memos)
