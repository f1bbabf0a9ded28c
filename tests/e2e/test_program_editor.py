"""The program editor's script in a real browser: a rule row added, its type's parameter
alone shown, moved up, and the order saved as seen (vouchers/program_forms.py,
static/js/program_editor.js)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import sign_in
from tests.vouchers.conftest import program_values
from vouchers import services
from vouchers.models import Program

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_rule_added_and_moved_up_in_the_browser_is_saved_in_that_order(
    live_server, new_page, shanghai
):
    program = services.program_save(
        city=shanghai.city,
        actor=shanghai.manager,
        values=program_values(
            eligibility_rules=[{"type": "declarations_made"}, {"type": "required_documents"}]
        ),
    )
    page = new_page()
    sign_in(page, live_server.url, shanghai.manager.email)
    page.goto(f"{live_server.url}/shanghai/staff/programs/{program.slug}/")
    rows = "#rows-rules .row-list > .row-item"
    blank = page.locator(rows).count()  # the saved two and the blank rows
    page.click("#rows-rules button[data-add]")
    assert page.locator(rows).count() == blank + 1
    # Locators are lazy: pin the new row by its index in the formset, not as "the last".
    new = page.locator(f"{rows}:has(select[name='rules-{blank}-type'])")
    new.locator("select[name$='-type']").select_option("founded_within_years")
    assert new.locator("input[name$='-years']").is_visible()
    assert not new.locator("input[name$='-max_headcount']").is_visible()
    new.locator("input[name$='-years']").fill("8")
    for _ in range(blank - 1):  # above the two blank rows and the second saved rule
        new.locator("button[data-move=up]").click()
    assert page.locator(rows).nth(1).locator("input[name$='-years']").input_value() == "8"
    page.click("button[name=go][value=save]")
    page.wait_for_load_state()
    assert Program.objects.get(pk=program.pk).eligibility_rules == [
        {"type": "declarations_made"},
        {"type": "founded_within_years", "years": 8},
        {"type": "required_documents"},
    ]
