"""Field errors are tied to their fields (issue #14 item 7): each invalid input says
aria-invalid and names, in aria-describedby, elements that exist on the page — its help
and its errors — and the errors are announced (role="alert"). Before, the shared form
template gave the help and the errors no ids, so the references Django's widgets make
pointed at nothing."""

from __future__ import annotations

from html.parser import HTMLParser


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, dict[str, str]] = {}
        self.described: list[tuple[str, list[str]]] = []

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids[a["id"]] = a
        if a.get("aria-describedby"):
            self.described.append((a.get("name", tag), a["aria-describedby"].split()))


def references(html: str) -> _Refs:
    parser = _Refs()
    parser.feed(html)
    return parser


def assert_all_resolve(html: str) -> _Refs:
    refs = references(html)
    dangling = [(name, i) for name, ids in refs.described for i in ids if i not in refs.ids]
    assert dangling == []
    return refs


def test_an_invalid_grant_ties_its_error_to_the_field(client, shanghai):
    client.force_login(shanghai.manager)
    response = client.post(
        "/shanghai/staff/members/", {"email": "not an address", "role": "reviewer"}
    )
    html = response.content.decode()
    refs = assert_all_resolve(html)
    described = dict(refs.described)
    assert "id_email_error" in described["email"]
    error = refs.ids["id_email_error"]
    assert error.get("role") == "alert"
    assert 'aria-invalid="true"' in html


def test_help_texts_are_referenced_and_exist_on_the_webhook_and_key_forms(
    client, ledger_world, operator
):
    client.force_login(operator)
    for path, data in (
        ("/dc/guian/keys/", {"name": "x", "expires_on": "not a date"}),
        ("/dc/guian/webhooks/", {"url": "not a url", "events": []}),
    ):
        html = client.post(path, data).content.decode()
        refs = assert_all_resolve(html)
        assert any(i.endswith("_error") for _, ids in refs.described for i in ids), path
