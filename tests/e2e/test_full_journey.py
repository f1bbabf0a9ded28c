"""The whole life of a computing voucher in Chromium (issue #14 item 8), with the real
two-factor and re-authentication checks: a startup signs up, verifies its e-mail
(the link read from the outbox), registers a company and applies with a document; the
program manager screens it and assigns a reviewer, who declares no conflict and scores;
once the public notice is over (its end set in the past, as the workflow tests do) the
approver approves, signed in with an authenticator code; the startup asks a data center
to redeem the voucher, the operator accepts in the console; usage pushed over the API
(a real HTTP POST with the data center's key, applied by a real Celery worker process on
the test database — the other steps' tasks run eagerly, their e-mails read from the
outbox) shows on the voucher's page with the exact new balance; the operator confirms
the month's statement (built and issued by the city) and downloads its PDF.

It runs three times: in Chinese, in English (each browser switched with the page's
language control; no heading, button, label or column head shows the other language),
and in Chinese at 390 px (no page wider than the screen). Every step leaves a screenshot
in `test-artifacts/e2e/<run>/NN-step.png`."""

from __future__ import annotations

import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pypdf
import pytest
from allauth.mfa.totp.internal.auth import TOTP
from django.core import mail
from django.utils import timezone

from compute.models import (
    BATCH_PENDING,
    BatchStatus,
    DataCenter,
    Redemption,
    RedemptionStatus,
    Registration,
    Settlement,
    UsageBatch,
)
from compute.services import api_key_issue
from compute.settlements import settlement_build, settlement_issue
from portal.audit import SYSTEM
from portal.models import User
from tests.e2e.conftest import sign_in
from tests.factories import DataCenterFactory, UserFactory
from tests.integration import celery_worker, wait_for
from tests.portal.test_twofactor import totp_code
from tests.vouchers.conftest import program_values
from vouchers import services
from vouchers.models import Application, Company

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.auth_enforced,
    pytest.mark.django_db(transaction=True),
]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PASSWORD = "a-long-Passw0rd-for-e2e"
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")
# Words a Chinese page may show in Latin letters (formats, codes, units; allauth's
# Chinese says "Email").
LATIN_OK = {"PDF", "CSV", "XLSX", "API", "GPU", "EN", "TOTP", "URL", "ID", "Email"}
LATIN_OK |= {"JPEG", "PNG", "MB", "KB", "Webhook"}
# The text a page's fixed parts are checked in: its headings, controls and labels.
CHROME = "h1, h2, h3, h4, button, label, th, summary, legend, nav a, title"

# Free text the startup and the approver type, in both languages on purpose.
SUMMARY = {"summary": "Training / 训练", "model_plans": "Pretraining / 预训练"}
REASON = "Scaled to the plan / 按计划核定"

RUNS = {
    "zh": {"language": "zh-hans", "width": 1366, "height": 900},
    "en": {"language": "en", "width": 1366, "height": 900},
    "phone": {"language": "zh-hans", "width": 390, "height": 844},
}
NAMES = {
    "zh-hans": {
        "company": "端到端智算科技有限公司",
        "title": "端到端多模态大模型",
        "criteria": ["团队", "方案"],
    },
    "en": {
        "company": "End to End Robotics Co Ltd",
        "title": "Multimodal model E2E",
        "criteria": ["Team", "Plan"],
    },
}


@dataclass
class Journey:
    """One run: its browsers, its screenshots, and the checks every page passes."""

    name: str
    language: str
    width: int
    height: int
    base: str
    new_page: object
    user_data: list[str] = field(default_factory=list)
    step: int = 0

    def browser(self, email: str | None = None, *, secret: str | None = None):
        """A browser of its own in the run's language and size, signed in when `email`
        is given (with an authenticator code when `secret` is)."""
        page = self.new_page(locale="zh-CN")
        page.set_viewport_size({"width": self.width, "height": self.height})
        page.goto(f"{self.base}/accounts/login/")
        self.switch_language(page)
        if email:
            sign_in(page, self.base, email)
            if secret:
                assert "/accounts/2fa/authenticate/" in page.url, page.url
                page.fill("input[name=code]", totp_code(secret))
                page.click("main form button[type=submit]")
                page.wait_for_load_state()
        return page

    def switch_language(self, page) -> None:
        """With the page's own control (behind the menu button on a phone)."""
        if page.get_attribute("html", "lang") == self.language:
            return
        button = page.locator(f".lang-switch button[value={self.language}]")
        if not button.is_visible():
            page.click("button.menu-toggle")
        button.click()
        page.wait_for_load_state()
        assert page.get_attribute("html", "lang") == self.language

    def shot(self, page, name: str) -> None:
        """Screenshot the page, then check it fits the screen and speaks one language."""
        page.wait_for_load_state()
        self.step += 1
        folder = ARTIFACTS / self.name
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{self.step:02d}-{name}.png"), full_page=True)
        where = f"{self.name} step {self.step} ({name}) at {page.url}"
        assert page.get_attribute("html", "lang") == self.language, where
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= self.width, f"{where}: {width} px wide"
        if self.language == "en":  # the whole page: CJK is never English
            text = page.inner_text("body")
        else:
            texts = page.eval_on_selector_all(CHROME, "els => els.map(e => e.innerText || '')")
            text = " ".join(texts)
        for data in self.user_data:
            text = text.replace(data, " ")
        if self.language == "en":
            text = text.replace("中文", " ")
            found = CJK.findall(text)
            assert not found, f"{where}: Chinese in an English page: {''.join(found)}"
        else:
            words = set(re.findall(r"[A-Za-z]{2,}", text)) - LATIN_OK
            assert not words, f"{where}: English in a Chinese page: {sorted(words)}"


@dataclass
class Stage:
    program: object
    dc: DataCenter
    key: str
    operator: User
    manager: User
    reviewer: User
    approver: User


def _stage(shanghai) -> Stage:
    """What the city and the data center set up before the journey; the rubric's
    criteria have a name in each language, so each run's pages show its own."""
    rubric = [
        {"name": zh, "name_en": en, "weight": weight, "max": 10}
        for zh, en, weight in zip(
            NAMES["zh-hans"]["criteria"], NAMES["en"]["criteria"], (1, 2), strict=True
        )
    ]
    program = services.program_save(
        city=shanghai.city,
        actor=shanghai.manager,
        values=program_values(reviews_required=1, rubric=rubric, notice_days=5),
    )
    dc = DataCenterFactory(slug="guian")
    dc.programs.add(program)
    Registration.objects.create(
        city=shanghai.city, data_center=dc, starts_on=timezone.localdate() - timedelta(days=60)
    )
    _k, key = api_key_issue(data_center=dc, actor=SYSTEM)
    operator = UserFactory(email="ops@guian.test")
    dc.operators.add(operator)
    # Names of people are user data: Latin letters, so either language's check sees
    # past them.
    for n, user in enumerate([*shanghai.staff(), operator], start=1):
        user.display_name = f"Staff {n}"
        user.save(update_fields=["display_name"])
        TOTP.activate(user, SECRET)
    return Stage(
        program=program,
        dc=dc,
        key=key,
        operator=operator,
        manager=shanghai.manager,
        reviewer=shanghai.reviewer,
        approver=shanghai.approver,
    )


def _usage(voucher_code: str) -> dict:
    """One record of today's usage, in the city's time (within the voucher's validity
    and the month of the statement)."""
    today = timezone.localdate()
    start = datetime(today.year, today.month, today.day, 0, 10, tzinfo=ZoneInfo("Asia/Shanghai"))
    return {
        "record_id": f"e2e-{today:%Y%m%d}-000001",
        "voucher": voucher_code,
        "started_at": start.isoformat(),
        "ended_at": (start + timedelta(minutes=30)).isoformat(),
        "resource": "Ascend 910B",
        "domestic": True,
        "quantity": "8.000",
        "amount": "2000.00",
    }


@contextmanager
def _real_worker():
    """Tasks published meanwhile go to a Celery worker process of their own (not run
    eagerly in the server's thread), as in production."""
    from portal.celery import app

    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        with celery_worker(concurrency=1):
            yield
    finally:
        app.conf.task_always_eager = eager


@pytest.mark.parametrize("run", list(RUNS))
def test_the_whole_journey(run, live_server, new_page, shanghai, eager_celery, tmp_path):
    settings = RUNS[run]
    stage = _stage(shanghai)
    names = NAMES[settings["language"]]
    j = Journey(name=run, base=live_server.url, new_page=new_page, **settings)
    j.user_data = [names["company"], names["title"], "licence.pdf", "ceo@e2e.test", "Lin"]
    j.user_data += ["Ascend 910B", "GA-E2E-1", *SUMMARY.values(), REASON]
    j.user_data += [f"Staff {n}" for n in range(1, 7)]
    shutil.rmtree(ARTIFACTS / run, ignore_errors=True)
    base = j.base

    # 1. The startup signs up and verifies its e-mail address.
    startup = j.browser()
    startup.goto(f"{base}/accounts/signup/")
    j.switch_language(startup)
    startup.fill("input[name=email]", "ceo@e2e.test")
    startup.fill("input[name=password1]", PASSWORD)
    startup.fill("input[name=password2]", PASSWORD)
    startup.fill("input[name=display_name]", "Lin")
    startup.select_option("select[name=preferred_language]", settings["language"])
    j.shot(startup, "signup")
    startup.click("main form button[type=submit]")
    j.shot(startup, "verification-sent")
    message = next(m for m in mail.outbox if "ceo@e2e.test" in m.to)
    link = re.search(r"https?://[^/\s]+(/accounts/confirm-email/\S+)", message.body)
    assert link, message.body
    startup.goto(base + link.group(1))
    j.shot(startup, "confirm-email")
    startup.click("main form button[type=submit]")
    startup.wait_for_load_state()
    j.shot(startup, "email-confirmed")
    startup.goto(f"{base}/accounts/login/")
    startup.fill("input[name=login]", "ceo@e2e.test")
    startup.fill("input[name=password]", PASSWORD)
    startup.click("main form button[type=submit]")
    startup.wait_for_load_state()
    user = User.objects.get(email="ceo@e2e.test")
    assert user.emailaddress_set.get().verified

    # 2. It registers its company.
    startup.goto(f"{base}/company/")
    startup.click("main details > summary")  # register a company
    startup.fill("input[name=legal_name]", names["company"])
    startup.fill("input[name=credit_code]", "91440300708461136T")
    j.shot(startup, "company-form")
    startup.click("details[open] form button[type=submit]")
    j.shot(startup, "company-registered")
    company = Company.objects.get(legal_name=names["company"])

    # 3. It applies with a document.
    pdf = tmp_path / "licence.pdf"
    pdf.write_bytes(PDF)
    startup.goto(f"{base}/shanghai/programs/{stage.program.slug}/")
    j.shot(startup, "program")
    startup.click("main form button[type=submit]")  # start an application
    startup.wait_for_url("**/company/applications/**")
    startup.fill("input[name=title]", names["title"])
    startup.fill("textarea[name=summary]", SUMMARY["summary"])
    startup.fill("textarea[name=model_plans]", SUMMARY["model_plans"])
    j.shot(startup, "apply-project")
    startup.click("button[value=next]")
    startup.fill("input[name=plan-0-accelerator]", "Ascend 910B")
    startup.check("input[name=plan-0-domestic]")
    startup.fill("input[name=plan-0-hours]", "5000")
    j.shot(startup, "apply-plan")
    startup.click("button[value=next]")
    startup.fill("input[name=requested_amount]", "300000")
    for name in (
        "declares_no_related_party",
        "declares_no_other_subsidy",
        "declares_true_information",
    ):
        startup.check(f"input[name={name}]")
    j.shot(startup, "apply-amount")
    startup.click("button[value=next]")
    startup.select_option("select[name=doc_type]", "business_licence")
    startup.set_input_files("input[name=file]", str(pdf))
    startup.click("button[value=stay]")
    startup.wait_for_load_state()
    assert "licence.pdf" in startup.content()
    j.shot(startup, "apply-documents")
    startup.goto(startup.url.split("?")[0] + "?step=review")
    j.shot(startup, "apply-review")
    startup.click("main button:has-text('{}')".format("提交申请" if run != "en" else "Submit"))
    startup.wait_for_load_state()
    application = Application.objects.get(company=company)
    assert application.state == "submitted"
    j.shot(startup, "submitted")
    staff_url = f"{base}/shanghai/staff/applications/{application.pk}/"

    # 4. The program manager screens it and assigns the reviewer.
    manager = j.browser(stage.manager.email, secret=SECRET)
    manager.goto(f"{base}/shanghai/staff/applications/")
    j.shot(manager, "queue")
    manager.goto(staff_url)
    manager.click(f"form[action$='/{application.pk}/do/start_screening/'] button")
    manager.wait_for_load_state()
    manager.click(f"form[action$='/{application.pk}/do/pass_screening/'] button")
    manager.wait_for_load_state()
    manager.click(f"form[action$='/{application.pk}/do/assign/'] >> xpath=.. >> summary")
    manager.select_option("select[name=reviewer]", str(stage.reviewer.pk))
    j.shot(manager, "assign")
    manager.click(f"form[action$='/{application.pk}/do/assign/'] button[type=submit]")
    manager.wait_for_load_state()
    j.shot(manager, "assigned")

    # 5. The reviewer declares no conflict and scores.
    reviewer = j.browser(stage.reviewer.email, secret=SECRET)
    reviewer.goto(staff_url)
    reviewer.check("input[name=conflict][value=no]")
    j.shot(reviewer, "declare")
    reviewer.click(f"form[action$='/{application.pk}/do/declare/'] button[type=submit]")
    reviewer.wait_for_load_state()
    reviewer.fill("input[name=score_0]", "8")
    reviewer.fill("input[name=score_1]", "9")
    reviewer.check("input[name=recommend][value=yes]")
    j.shot(reviewer, "score")
    reviewer.click(f"form[action$='/{application.pk}/do/score/'] button[type=submit]")
    reviewer.wait_for_load_state()
    j.shot(reviewer, "scored")
    application.refresh_from_db()
    assert application.state == "in_notice"

    # 6. After the notice the approver approves (signed in with a code a moment ago,
    # so the re-authentication the approval needs is satisfied).
    Application.objects.filter(pk=application.pk).update(
        notice_ends_at=timezone.now() - timedelta(seconds=1)
    )
    approver = j.browser(stage.approver.email, secret=SECRET)
    approver.goto(staff_url)
    approver.click(f"form[action$='/{application.pk}/do/approve/'] >> xpath=.. >> summary")
    approver.fill("input[name=amount]", "250000")
    approver.fill("textarea[name=reason]", REASON)
    j.shot(approver, "approve")
    approver.click(f"form[action$='/{application.pk}/do/approve/'] button[type=submit]")
    approver.wait_for_load_state()
    j.shot(approver, "approved")
    application.refresh_from_db()
    assert application.state == "approved", application.state
    voucher = application.voucher
    assert voucher.balance == Decimal("250000.00")
    j.user_data.append(voucher.code)

    # 7. The startup asks the data center to redeem its voucher.
    startup.goto(f"{base}/company/")
    j.shot(startup, "company-home")
    startup.goto(f"{base}/my/vouchers/{voucher.code}/")
    startup.click("main details summary")
    startup.select_option("select[name=data_center]", str(stage.dc.pk))
    startup.fill("input[name=contract_ref]", "GA-E2E-1")
    j.shot(startup, "redemption-request")
    startup.click("main details form button[type=submit]")
    j.shot(startup, "redemption-requested")
    redemption = Redemption.objects.get(contract_ref="GA-E2E-1")
    assert redemption.status == RedemptionStatus.REQUESTED

    # 8. The operator accepts it in the console.
    ops = j.browser(stage.operator.email, secret=SECRET)
    ops.goto(f"{base}/dc/{stage.dc.slug}/")
    j.shot(ops, "console")
    ops.click(f"a[href$='/redemptions/{redemption.pk}/accept/']")
    j.shot(ops, "accept-confirm")
    ops.click("main form button[type=submit]")
    j.shot(ops, "accepted")
    redemption.refresh_from_db()
    assert redemption.status == RedemptionStatus.ACTIVE

    # 9. Usage over the API; the voucher's page shows the exact new balance:
    # 2,000.00 at the domestic rate of 30 % covers 600.00.
    with _real_worker():
        response = httpx.post(
            f"{base}/api/v1/usage/batches",
            json={"records": [_usage(voucher.code)]},
            headers={"Authorization": f"Bearer {stage.key}"},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        batch = response.json()["id"]
        wait_for(lambda: UsageBatch.objects.get(pk=batch).status not in BATCH_PENDING)
    assert UsageBatch.objects.get(pk=batch).status == BatchStatus.DONE
    voucher.refresh_from_db()
    assert voucher.balance == Decimal("249400.00")
    startup.goto(f"{base}/my/vouchers/{voucher.code}/")
    j.shot(startup, "balance")
    assert "¥249,400.00" in startup.inner_text("main")

    # 10. The operator confirms the month's statement and downloads its PDF.
    settlement = settlement_build(
        city=shanghai.city, data_center=stage.dc, period=timezone.localdate()
    )
    settlement_issue(settlement=settlement, actor=stage.manager)
    ops.goto(f"{base}/dc/{stage.dc.slug}/settlements/")
    j.shot(ops, "statements")
    ops.click(f"a[href$='/settlements/{settlement.pk}/']")
    ops.click("main details summary")
    j.shot(ops, "statement-confirm")
    ops.click("main details form button[value=confirm]")
    j.shot(ops, "statement-confirmed")
    assert Settlement.objects.get(pk=settlement.pk).status == "confirmed"
    with ops.expect_download() as info:
        ops.click("a[href$='pdf/']")
    target = ARTIFACTS / run / f"{j.step + 1:02d}-statement.pdf"
    info.value.save_as(target)
    # In the reader's language, with the usage record and the status just reached.
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(target).pages)
    heading, status = {
        "en": ("Computing-voucher settlement statement", "Confirmed"),
        "zh-hans": ("算力券结算单", "已确认"),
    }[settings["language"]]
    assert heading in text and status in text, text
    assert _usage(voucher.code)["record_id"] in text, text
