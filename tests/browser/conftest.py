"""Headless Chromium (Debian's ``chromium`` package), driven by Playwright, against the live
server. Every page a browser test opens runs under the site's Content-Security-Policy, and a
violation of it on any page fails the test (``chromium``'s teardown)."""

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# Reports each violation the page's scripts can see (CSP3's securitypolicyviolation event).
VIOLATION_LISTENER = """document.addEventListener('securitypolicyviolation', (event) => {
  window.reportCspViolation(`${event.effectiveDirective} blocked ${event.blockedURI || 'inline'}`
    + ` at ${event.sourceFile || event.documentURI}:${event.lineNumber}`);
});"""


class CspWatchedBrowser:
    """The browser, each of whose contexts records Content-Security-Policy violations: from the
    page's own event (with JavaScript on) and from Chromium's console message ("Refused to …
    because it violates the following Content Security Policy directive"), which Chromium also
    writes with JavaScript off."""

    def __init__(self, browser) -> None:
        self._browser = browser
        self.violations: list[str] = []

    def new_context(self, **options):
        context = self._browser.new_context(**options)
        context.expose_binding(
            "reportCspViolation", lambda source, text: self.violations.append(text)
        )
        context.add_init_script(VIOLATION_LISTENER)
        context.on("console", self._console)
        return context

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text:
            self.violations.append(f"{message.location['url']}: {message.text}")

    def __getattr__(self, name: str):
        return getattr(self._browser, name)


@pytest.fixture(scope="session")
def chromium_browser():
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


@pytest.fixture
def chromium(chromium_browser):
    """The browser for one test; the test fails if any page broke the site's CSP."""
    watched = CspWatchedBrowser(chromium_browser)
    yield watched
    assert not watched.violations, "Content-Security-Policy violations:\n" + "\n".join(
        watched.violations
    )


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


class AxeAudit:
    """Runs axe-core (installed by ``make``: infra/axe_bundle.py) on pages and keeps each
    page's violations, so one journey reports every page that fails, not only the first.
    The script is evaluated through the DevTools protocol, which the page's
    Content-Security-Policy does not govern, so the site's policy stays as it is served."""

    def __init__(self, script: str) -> None:
        self.script = script
        self.pages: dict[str, list[dict]] = {}

    def check(self, page, label: str) -> list[dict]:
        if not page.evaluate("() => typeof window.axe !== 'undefined'"):
            page.evaluate(self.script)
        result = page.evaluate("async () => await axe.run(document)")
        self.pages[label] = result["violations"]
        return result["violations"]

    def report(self) -> str:
        lines = []
        for label, violations in self.pages.items():
            for violation in violations:
                lines.append(
                    f"{label}: {violation['id']} ({violation['impact']}) {violation['help']}"
                )
                lines += [
                    f"    {node['target']} {node['html'][:160]}" for node in violation["nodes"]
                ]
        return "\n".join(lines)


@pytest.fixture(scope="session")
def axe_script() -> str:
    from infra import axe_bundle

    script = axe_bundle.BUNDLE.installed_script()
    if script is None:
        pytest.fail(
            f"axe-core {axe_bundle.BUNDLE.version} is not installed: run `make test` (or "
            "`python -m infra.axe_bundle`), which installs it with the environment."
        )
    return script.read_text(encoding="utf-8")


@pytest.fixture
def axe(axe_script) -> AxeAudit:
    """Checks pages with axe-core; ``axe.pages`` holds each checked page's violations."""
    return AxeAudit(axe_script)
