"""Every key form works by keyboard alone, with the focus always visible (issue #14
item 7), in Chromium: a startup applies (the whole wizard, its document chosen from the
file dialog the keyboard opens), a reviewer declares and scores, the approver approves,
the startup asks for a redemption and the operator issues an API key — each field
reached with Tab, filled by typing, boxes ticked with Space, radios and lists moved with
the arrow keys, forms sent with Enter on their button. The steps between (screening,
assigning the reviewer) are services, as they are not what is tested here. Each form
leaves a screenshot with its focused button under test-artifacts/keyboard/."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from compute.models import ApiKey, Redemption
from tests.e2e.test_accessibility import session_cookie
from tests.e2e.test_full_journey import PDF, _stage
from tests.factories import UserFactory
from vouchers import services
from vouchers.models import Application

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "keyboard"

# Whether the focused element shows it: a solid outline at least 2 px wide, or — for a
# text field or list, which Pico rings with a shadow and a coloured border — that shadow.
FOCUS_SHOWN = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return false;
  const s = getComputedStyle(el);
  if (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2) return true;
  const boxes = '[type=checkbox], [type=radio], [type=file]';
  const field = el.matches(`input:not(${boxes}), select, textarea`);
  return field && s.boxShadow && s.boxShadow !== 'none';
}"""


class Keyboard:
    """One browser driven by keys only."""

    def __init__(self, page, name: str):
        self.page, self.name, self.shots = page, name, 0

    def tab_to(self, selector: str, limit: int = 150) -> None:
        """Tab until `selector` has the focus; every focus stop on the way must show."""
        # Each role has a page of its own in this browser; only the page in front has the
        # focus (and so a focus ring): a page opened later takes it from the earlier ones.
        self.page.bring_to_front()
        seen = []
        for _ in range(limit):
            self.page.keyboard.press("Tab")
            here = self.page.evaluate(
                "() => { const e = document.activeElement; return e.outerHTML.slice(0, 120); }"
            )
            seen.append(here)
            if self.page.evaluate("() => document.activeElement === document.body"):
                continue  # past the last stop, Tab comes round again from the top
            assert self.page.evaluate(FOCUS_SHOWN), f"{self.name}: focus not shown on {here}"
            if self.page.evaluate("s => document.activeElement.matches(s)", selector):
                return
        raise AssertionError(f"{self.name}: Tab never reached {selector}: {seen[-5:]}")

    def type_into(self, selector: str, text: str) -> None:
        self.tab_to(selector)
        self.page.keyboard.press("Control+A")
        self.page.keyboard.type(text)

    def tick(self, selector: str) -> None:
        self.tab_to(selector)
        self.page.keyboard.press("Space")
        assert self.page.is_checked(selector), selector

    def radio(self, name: str, value: str) -> None:
        """Into the group with Tab, then the arrow keys until `value` is chosen."""
        self.tab_to(f"input[type=radio][name={name}]")
        target = f"input[name={name}][value={value}]"
        self.page.keyboard.press("Space")
        for _ in range(10):
            if self.page.is_checked(target):
                return
            self.page.keyboard.press("ArrowDown")
        raise AssertionError(f"{self.name}: arrows never chose {target}")

    def choose(self, selector: str, value: str) -> None:
        """A closed list moved with the arrow keys until it shows `value`."""
        self.tab_to(selector)
        self.page.keyboard.press("Home")
        for _ in range(30):
            if self.page.eval_on_selector(selector, "s => s.value") == value:
                return
            self.page.keyboard.press("ArrowDown")
        raise AssertionError(f"{self.name}: arrows never chose {value} in {selector}")

    def open(self, summary: str) -> None:
        """A folded section (<details>) opened with Enter on its summary."""
        self.tab_to(summary)
        self.page.keyboard.press("Enter")

    def send(self, button: str) -> None:
        """Enter on the form's button, after a screenshot of it focused."""
        self.tab_to(button)
        self.shots += 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{self.name}-{self.shots:02d}.png"))
        with self.page.expect_navigation():
            self.page.keyboard.press("Enter")


def _keyboard(browser, base: str, user, name: str) -> Keyboard:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.add_cookies([{"name": "sessionid", "value": session_cookie(user), "url": base}])
    return Keyboard(context.new_page(), name)


def test_the_key_forms_work_by_keyboard_alone(live_server, browser, shanghai, tmp_path):
    stage = _stage(shanghai)
    base = live_server.url
    startup = UserFactory(email="ceo@keys.test")
    company = services.company_create(
        actor=startup,
        legal_name="键盘科技有限公司",
        credit_code="91440300708461136T",
        registered_city=shanghai.city,
    )
    pdf = tmp_path / "licence.pdf"
    pdf.write_bytes(PDF)

    # 1. Apply: the wizard's four steps and the submission.
    k = _keyboard(browser, base, startup, "apply")
    k.page.goto(f"{base}/shanghai/programs/{stage.program.slug}/")
    k.send("main form button[type=submit]")  # start an application
    k.type_into("input[name=title]", "键盘多模态模型")
    k.type_into("textarea[name=summary]", "只用键盘填写。")
    k.type_into("textarea[name=model_plans]", "预训练")
    k.send("button[value=next]")
    k.type_into("input[name=plan-0-accelerator]", "Ascend 910B")
    k.tick("input[name=plan-0-domestic]")
    k.type_into("input[name=plan-0-hours]", "5000")
    k.send("button[value=next]")
    k.type_into("input[name=requested_amount]", "300000")
    for name in ("no_related_party", "no_other_subsidy", "true_information"):
        k.tick(f"input[name=declares_{name}]")
    k.send("button[value=next]")
    k.choose("select[name=doc_type]", "business_licence")
    k.tab_to("input[name=file]")
    with k.page.expect_file_chooser() as chooser:
        k.page.keyboard.press("Space")
    chooser.value.set_files(str(pdf))
    k.send("button[value=stay]")
    assert "licence.pdf" in k.page.content()
    k.page.goto(k.page.url.split("?")[0] + "?step=review")
    k.send("main form[action$='/submit/'] button[type=submit]")
    application = Application.objects.get(company=company)
    assert application.state == "submitted"

    services.application_start_screening(application=application, actor=stage.manager)
    services.application_pass_screening(application=application, actor=stage.manager)
    services.review_assign(application=application, actor=stage.manager, reviewer=stage.reviewer)
    staff_url = f"{base}/shanghai/staff/applications/{application.pk}/"

    # 2. The reviewer declares no conflict, then scores.
    k = _keyboard(browser, base, stage.reviewer, "review")
    k.page.goto(staff_url)
    k.radio("conflict", "no")
    k.send(f"form[action$='/{application.pk}/do/declare/'] button[type=submit]")
    k.radio("recommend", "yes")  # the form asks it before the criteria
    k.type_into("input[name=score_0]", "8")
    k.type_into("input[name=score_1]", "9")
    k.send(f"form[action$='/{application.pk}/do/score/'] button[type=submit]")
    application.refresh_from_db()
    assert application.state == "in_notice"
    assert application.reviews.get().recommend is True

    # 3. After the notice the approver approves.
    Application.objects.filter(pk=application.pk).update(
        notice_ends_at=timezone.now() - timedelta(seconds=1)
    )
    k = _keyboard(browser, base, stage.approver, "approve")
    k.page.goto(staff_url)
    k.open(f"details:has(form[action$='/{application.pk}/do/approve/']) > summary")
    k.type_into("input[name=amount]", "250000")
    k.type_into("textarea[name=reason]", "按计划核定")
    k.send(f"form[action$='/{application.pk}/do/approve/'] button[type=submit]")
    application.refresh_from_db()
    assert application.state == "approved", application.state
    voucher = application.voucher
    assert voucher.balance == Decimal("250000.00")

    # 4. The startup asks the data center to redeem the voucher.
    k = _keyboard(browser, base, startup, "redemption")
    k.page.goto(f"{base}/my/vouchers/{voucher.code}/")
    k.open("main details > summary")
    k.choose("select[name=data_center]", str(stage.dc.pk))
    k.type_into("input[name=contract_ref]", "KEYS-1")
    k.send("main details form button[type=submit]")
    assert Redemption.objects.get(contract_ref="KEYS-1").data_center == stage.dc

    # 5. The operator issues an API key.
    k = _keyboard(browser, base, stage.operator, "api-key")
    k.page.goto(f"{base}/dc/{stage.dc.slug}/keys/")
    before = ApiKey.objects.filter(data_center=stage.dc).count()
    k.type_into("input[name=name]", "billing")
    k.send("main form:has(input[name=name]) button[type=submit]")
    assert ApiKey.objects.filter(data_center=stage.dc, name="billing").count() == 1
    assert ApiKey.objects.filter(data_center=stage.dc).count() == before + 1
