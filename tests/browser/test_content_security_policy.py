"""The Content-Security-Policy in a real browser: the guard every browser test runs under catches
a violation, and every page of the admin works under the policy. (The participant pages and the
dashboards are proven by their own journeys, test_journeys.py and test_dashboard.py, which run
under the same guard.)"""

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import RequestFactory
from django.urls import reverse

from tests.browser.conftest import CspWatchedBrowser
from trials.models import Trial

pytestmark = [pytest.mark.browser]

INLINE_EVERYTHING = """<!doctype html><html><head><style>p { color: red }</style></head>
<body><p style="color: blue">inline</p><script>document.title = "ran";</script></body></html>"""


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_the_guard_catches_inline_script_and_style(chromium_browser, javascript):
    watched = CspWatchedBrowser(chromium_browser)
    context = watched.new_context(java_script_enabled=javascript)
    page = context.new_page()
    page.route(
        "http://policy.test/",
        lambda route: route.fulfill(
            body=INLINE_EVERYTHING,
            content_type="text/html",
            headers={"Content-Security-Policy": "default-src 'self'"},
        ),
    )
    page.goto("http://policy.test/")
    title = page.title()
    context.close()
    assert title == ""  # the inline script did not run
    text = "\n".join(watched.violations)
    assert "Applying inline style" in text  # the <style> element and the style attribute
    if javascript:
        assert "style-src-attr blocked inline" in text
        assert "script-src-elem blocked inline" in text


def _admin_pages(user: User, trial: Trial) -> list[str]:
    """The admin's index, its own pages, and each registered model's list, add form (where
    there is one) and its first object's change and history pages."""
    request = RequestFactory().get("/admin/")
    request.user = user
    urls = [
        reverse("admin:index"),
        reverse("admin:trials_trial_consort", args=[trial.pk]),
        reverse("admin:surveys_wave_report", args=[trial.pk]),
        reverse("admin:surveys_instrument_load_pack"),
        reverse("admin:analytics_analysisrun_start"),
    ]
    for model, model_admin in admin.site._registry.items():
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        urls.append(reverse(f"{name}_changelist"))
        if model_admin.has_add_permission(request):
            urls.append(reverse(f"{name}_add"))
        obj = model._default_manager.order_by("pk").first()
        if obj is not None:
            urls.append(reverse(f"{name}_change", args=[obj.pk]))
            urls.append(reverse(f"{name}_history", args=[obj.pk]))
    return urls


@pytest.mark.django_db(transaction=True)
def test_every_admin_page_works_under_the_policy(live_server, chromium, small_trial):
    root = User.objects.create_superuser("root", password="a-long-password")
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/")
    # One failed sign-in first, so the login records' pages have rows to show.
    for password in ("wrong-password", "a-long-password"):
        page.get_by_label("Username").fill("root")
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Site administration").wait_for()
    # django-axes' login records are in the admin, for superusers.
    assert page.get_by_role("link", name="Access failures").count() == 1

    for url in _admin_pages(root, small_trial):
        answer = page.goto(live_server.url + url)
        # A record kept without version history answers its history page with 404.
        assert answer.status == 200 or (answer.status == 404 and "/history/" in url), url
        assert "script-src 'self'" in answer.headers["content-security-policy"], url
    context.close()
