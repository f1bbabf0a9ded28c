"""End-to-end tests in a real browser: Debian's Chromium driven by Playwright, against
the portal served by pytest-django's live server. Run with `make e2e` (CI installs
Chromium); they are marked `e2e` and left out of `make test`, which must pass on a
machine that has only Python."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Playwright's sync API runs an event loop in the test thread; the ORM calls the tests
# make around it are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser):
    contexts = []

    def make(locale: str = "zh-CN"):
        context = browser.new_context(locale=locale)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def sign_in(page, base: str, email: str) -> None:
    """Through the real sign-in form (the factories' password)."""
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", "pw-for-tests")
    page.click("main form button[type=submit]")
    page.wait_for_load_state()


# The ledger world and its helpers, shared with the compute tests.
from tests.compute.conftest import eager_tasks, ledger_world, operator  # noqa: E402, F401
