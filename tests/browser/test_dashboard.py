"""The analyst's journey in a real browser: the demo trial seeded as ``make demo`` seeds it, its
analysis run executed by a real worker, then the trial list and the dashboard with every figure
drawn, on a laptop and on a tablet. Screenshots go to test-artifacts/."""

from urllib.parse import urlparse

import pytest
from django.core.management import call_command

from analytics.models import AnalysisRun
from dashboards import plotly_bundle
from dashboards.views import headline
from tests.conftest import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every figure the page announces is drawn when each Plotly div holds its SVG.
ALL_FIGURES_DRAWN = """() => {
  const panels = document.querySelector('#panels');
  if (!panels) return false;
  const drawn = [...panels.querySelectorAll('.js-plotly-plot')]
    .filter((plot) => plot.querySelector('svg.main-svg')).length;
  return drawn > 0 && drawn === Number(panels.dataset.figures);
}"""


@pytest.fixture
def demo_trial(settings, tmp_path, celery_worker_process):
    """``seed_demo`` (a smaller cohort) with its run finished by the worker process."""
    settings.VAR_DIR = tmp_path  # the demo's credentials file
    call_command("seed_demo", participants=80)
    run = wait_for(
        lambda: AnalysisRun.objects.filter(
            trial__slug="demo", status__in=["finished", "failed"]
        ).first(),
        timeout=300,
        what="the demo's analysis run",
    )
    assert run.status == "finished", run.error
    return run, (tmp_path / "demo-credentials.txt").read_text().strip()


def test_analyst_reads_the_demo_trials_dashboard(live_server, chromium, demo_trial, artifacts_dir):
    run, password = demo_trial
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page = context.new_page()
    hosts, paths = set(), []

    def requested(request) -> None:
        url = urlparse(request.url)
        # data: and blob: URLs (the downloads) never leave the browser; anything else would.
        if url.scheme not in ("data", "blob"):
            hosts.add(url.hostname)
            paths.append(url.path)

    page.on("request", requested)

    page.goto(f"{live_server.url}/dashboards/")
    page.get_by_label("Username").fill("analyst")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    primary = headline(run)
    row = page.get_by_role("row").filter(has_text="Demo: does a flourishing-oriented")
    assert f"{primary.estimate:.2f}" in row.inner_text() and "Enrolling" in row.inner_text()
    page.screenshot(path=artifacts_dir / "analyst-1-trials.png", full_page=True)

    row.get_by_role("link").click()
    page.wait_for_function(ALL_FIGURES_DRAWN, timeout=30_000)
    page.screenshot(path=artifacts_dir / "analyst-2-dashboard.png", full_page=True)
    figures = int(page.locator("#panels").get_attribute("data-figures"))
    assert figures >= 10
    # Every panel says whether it is confirmatory or exploratory, and reads in one line.
    sections = page.locator("section.panel")
    for i in range(sections.count()):
        badge = sections.nth(i).locator(".badge").inner_text().lower()
        assert badge in ("confirmatory", "exploratory")
        assert sections.nth(i).locator("p.reading").inner_text().strip()
    forest = page.locator("#panel-forest-mental_wellbeing-section")
    assert forest.locator(".badge").inner_text().lower() == "confirmatory"
    assert f"{abs(primary.estimate):.2f} score points per wave" in forest.inner_text()
    # The estimates table downloads as CSV with the stored numbers.
    with page.expect_download() as download:
        forest.locator("a.csv").click()
    csv = download.value.path().read_text()
    assert csv.startswith('"Outcome","Dimension"') and str(round(primary.estimate, 4)) in csv
    # Each figure downloads as a PNG, rendered in the browser.
    forest.locator(".js-plotly-plot").hover()
    with page.expect_download() as download:
        forest.get_by_role("button", name="Download plot as a PNG").click()
    assert download.value.path().read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert download.value.suggested_filename == "demo-forest-mental_wellbeing-1.png"
    # Nothing came from anywhere but this server, and nothing offers to upload a chart.
    assert page.get_by_role("button", name="Share chart...").count() == 0
    assert hosts == {urlparse(live_server.url).hostname}
    # Plotly is the installed basic bundle; Dash never fell back to loading the full one.
    assert f"/dashboards/assets/{plotly_bundle.SCRIPT}" in paths
    assert not [path for path in paths if path.endswith("/plotly.min.js")]

    # On a tablet the page reflows: nothing but the wide tables scrolls sideways.
    page.set_viewport_size({"width": 768, "height": 1024})
    page.reload()
    page.wait_for_function(ALL_FIGURES_DRAWN, timeout=30_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    page.screenshot(path=artifacts_dir / "analyst-3-tablet.png", full_page=True)
    context.close()
