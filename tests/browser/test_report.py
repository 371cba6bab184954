"""A run's report opened from disk, as its reader opens it, in a browser that may reach no
network: every figure is drawn, nothing is requested but the file, and its own
Content-Security-Policy is never violated (the ``chromium`` fixture fails the test if it is)."""

import pytest

from analytics.models import AnalysisRun
from dashboards.report import render_report
from tests.dashboards.conftest import analysed_trial, analyst  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every figure place holds the SVG Plotly drew in it.
ALL_FIGURES_DRAWN = """() => {
  const places = [...document.querySelectorAll('div.figure')];
  return places.length > 0 && places.every((place) => place.querySelector('svg.main-svg'));
}"""


def test_the_report_draws_its_figures_from_disk_offline(
    chromium,
    analysed_trial,  # noqa: F811 (the fixture imported above)
    tmp_path,
    artifacts_dir,
):
    path = tmp_path / "report.html"
    path.write_text(render_report(AnalysisRun.objects.get(trial=analysed_trial)), encoding="utf-8")
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, offline=True)
    requested = []
    context.on("request", lambda request: requested.append(request.url))
    page = context.new_page()
    page.goto(path.as_uri())
    page.wait_for_function(ALL_FIGURES_DRAWN, timeout=30_000)
    assert page.locator("#answer li.answer").count() >= 1
    assert requested == [path.as_uri()]
    page.screenshot(path=artifacts_dir / "report-offline.png", full_page=False)
    context.close()
