"""The system's timeline notes read in the reader's language (issue #14 item 2): the
reviews' tally was stored in the language of the request that concluded the reviews, so
an English page showed "2 份评审中有 2 份推荐。"; a hard eligibility failure stored the
rules' English messages, shown so on Chinese pages."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import translation

from portal.stored_text import memo_text
from tests.vouchers.conftest import complete_draft, into_review, review_by
from vouchers.models import EligibilityOutcome, StateChange
from vouchers.notes import note_text, tally_note

TALLY_EN = "2 of 2 reviews recommend."
TALLY_ZH = "2 份评审中有 2 份推荐。"


def _page(user, app, language: str) -> str:
    client = Client()
    client.force_login(user)
    client.post("/i18n/setlang/", {"language": language, "next": "/"})
    return client.get(f"/company/applications/{app.pk}/").content.decode()


@pytest.fixture
def reviewed(sz_program, shenzhen, company, startup_user):
    """Reviews concluded by a reviewer whose request was in Chinese."""
    app = complete_draft(sz_program, company, startup_user)
    into_review(app, user=startup_user, manager=shenzhen.manager)
    with translation.override("zh-hans"):
        review_by(
            app,
            manager=shenzhen.manager,
            reviewers=[shenzhen.reviewer, shenzhen.reviewer2],
            scores={"team": 6, "plan": 6},
        )
    app.refresh_from_db()
    return app


def test_the_tally_is_stored_from_its_numbers_not_the_requests_language(reviewed):
    assert reviewed.state == "in_notice"
    assert reviewed.timeline.last().note == TALLY_EN


@pytest.mark.parametrize(
    ("language", "shown", "hidden"), [("en", TALLY_EN, TALLY_ZH), ("zh-hans", TALLY_ZH, TALLY_EN)]
)
def test_the_tally_reads_in_the_readers_language(reviewed, startup_user, language, shown, hidden):
    page = _page(startup_user, reviewed, language)
    assert shown in page and hidden not in page


def test_a_tally_stored_in_chinese_before_reads_in_english(reviewed, startup_user):
    StateChange.objects.filter(pk=reviewed.timeline.last().pk).update(note=TALLY_ZH)
    page = _page(startup_user, reviewed, "en")
    assert TALLY_EN in page and TALLY_ZH not in page


def test_failed_rules_read_in_the_readers_language(sz_program, company, startup_user):
    app = complete_draft(sz_program, company, startup_user)
    for rule, zh, en in [("a", "员工超过 10 人。", "More than 10 employees."), ("b", "乙", "B.")]:
        EligibilityOutcome.objects.create(
            application=app, rule=rule, outcome="fail", message_zh=zh, message_en=en
        )
    stored = "More than 10 employees.; B."
    with translation.override("zh-hans"):
        assert note_text(stored, app) == "员工超过 10 人。; 乙"
    with translation.override("en"):
        assert note_text(stored, app) == stored
        # A person's words stay as written.
        assert note_text("合同未签", app) == "合同未签"


def test_feed_reasons_read_in_the_readers_language():
    with translation.override("zh-hans"):
        assert memo_text("rejected in the feed") == "数据中心在数据推送中拒绝"
        assert memo_text("closed in feed") == "数据中心在数据推送中关闭"
    with translation.override("en"):
        assert memo_text("closed in feed") == "closed in the data center's feed"


@pytest.mark.parametrize(
    ("stored", "english", "chinese"),
    [
        ("1 of 1 review recommends.", "1 of 1 review recommends.", "1 份评审中有 1 份推荐。"),
        # A one-review tally stored before the plural forms reads right as well.
        ("1 of 1 reviews recommend.", "1 of 1 review recommends.", "1 份评审中有 1 份推荐。"),
        ("0 of 1 review recommends.", "0 of 1 review recommends.", "1 份评审中有 0 份推荐。"),
        ("2 of 3 reviews recommend.", "2 of 3 reviews recommend.", "3 份评审中有 2 份推荐。"),
        ("1 份评审中有 1 份推荐。", "1 of 1 review recommends.", "1 份评审中有 1 份推荐。"),
    ],
)
def test_the_tally_agrees_with_its_number_of_reviews(stored, english, chinese):
    """English had "1 of 1 reviews recommend.": the tally goes through ngettext (Chinese
    has one form)."""
    with translation.override("en"):
        assert note_text(stored) == english
    with translation.override("zh-hans"):
        assert note_text(stored) == chinese


def test_a_one_review_tally_is_stored_in_the_singular():
    assert tally_note(1, 1) == "1 of 1 review recommends."
    assert tally_note(0, 1) == "0 of 1 review recommends."
    assert tally_note(1, 2) == "1 of 2 reviews recommend."
