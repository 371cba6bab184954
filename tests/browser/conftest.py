"""Headless Chromium (Debian's ``chromium`` package), driven by Playwright, against the live
server."""

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def chromium():
    if not CHROMIUM.exists():
        pytest.skip(
            f"No Chromium at {CHROMIUM}: install Debian's `chromium` package (or set "
            "CHROMIUM_PATH) to run the browser tests."
        )
    # Playwright's sync API runs an event loop in this thread; Django's ORM calls made by the
    # test itself are still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(params=[True, False], ids=["javascript", "no-javascript"])
def phone(chromium, request):
    """A small phone's screen (360 × 640 CSS pixels, touch), with JavaScript on and off."""
    context = chromium.new_context(
        viewport={"width": 360, "height": 640},
        has_touch=True,
        is_mobile=True,
        device_scale_factor=2,
        java_script_enabled=request.param,
    )
    page = context.new_page()
    page.javascript = request.param
    yield page
    context.close()


@pytest.fixture
def laptop(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    yield context.new_page()
    context.close()
