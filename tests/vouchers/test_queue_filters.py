"""The review queue's filters (issue #14): they had no labels (a blank box and
"---------" lists), and the search did not match project titles."""

from __future__ import annotations

from html.parser import HTMLParser

from tests.vouchers.conftest import complete_draft
from vouchers import services
from vouchers.models import Application


class _Controls(HTMLParser):
    """The filter form's controls, and the labels that hold them."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0  # inside <label>
        self.in_filters = False
        self.labelled: list[str] = []
        self.unlabelled: list[str] = []
        self.options: list[str] = []
        self._option = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and "filters" in (a.get("class") or ""):
            self.in_filters = True
        if not self.in_filters:
            return
        if tag == "label":
            self.depth += 1
        if tag in ("input", "select") and a.get("type") != "hidden":
            (self.labelled if self.depth else self.unlabelled).append(a.get("name", ""))
        self._option = tag == "option"

    def handle_endtag(self, tag):
        if tag == "label" and self.in_filters:
            self.depth -= 1
        if tag == "form":
            self.in_filters = False

    def handle_data(self, data):
        if self.in_filters and self._option:
            self.options.append(data.strip())
            self._option = False


def test_every_filter_has_a_label_and_no_dashes(client, shanghai, sh_program):
    client.force_login(shanghai.manager)
    page = _Controls()
    page.feed(client.get("/shanghai/staff/applications/").content.decode())
    expected = {"q", "program", "state", "assignee", "eligibility", "sort", "todo", "assigned"}
    assert set(page.labelled) >= expected
    assert page.unlabelled == []
    assert "---------" not in page.options
    html = client.get("/shanghai/staff/applications/").content.decode()
    assert 'aria-describedby="id_q_helptext"' in html and 'id="id_q_helptext"' in html


def test_search_matches_project_titles(client, shanghai, sh_program, company, startup_user):
    app = complete_draft(sh_program, company, startup_user)
    services.application_update(
        application=app, actor=startup_user, values={"title": "城市交通视觉大模型"}
    )
    services.application_submit(application=app, actor=startup_user)
    other = Application.objects.get(pk=app.pk)
    assert other.title == "城市交通视觉大模型"
    client.force_login(shanghai.manager)

    def found(q: str) -> bool:
        body = client.get("/shanghai/staff/applications/", {"q": q}).content.decode()
        return f'/shanghai/staff/applications/{app.pk}/"' in body

    assert found("交通视觉")  # part of the project's title (not found before)
    assert found(company.legal_name[:4])  # the company's name, as before
    assert found(company.credit_code)  # and its credit code
    assert not found("没有这个申报项目")
