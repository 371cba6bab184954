"""The analyst's journey in a real browser: the demo trial seeded as ``make demo`` seeds it, its
analysis run executed by a real worker, then the trial list and the dashboard with every figure
drawn, on a laptop and on a tablet; and the answer to the pre-registered question on the first
screen of a phone, a tablet and a laptop, with nothing overlapping and nothing hidden sideways.
Screenshots go to test-artifacts/ (git-ignored)."""

from urllib.parse import urlparse

import pytest
from django.core.management import call_command

from analytics.models import AnalysisRun
from dashboards import plotly_bundle
from dashboards.answer import run_answers
from tests.conftest import wait_for
from tests.dashboards.conftest import analyst_create, finish_with_golden_run

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
    call_command("seed_demo", participants=80)  # the trial and its logins
    call_command("seed_demo", participants=80, cohort=True)  # its cohort, and the analysis
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
    primary = run_answers(run)[0]
    row = page.get_by_role("row").filter(has_text="Demo: does a flourishing-oriented")
    assert primary.summary in row.inner_text() and "Enrolling" in row.inner_text()
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
    assert csv.startswith('"Outcome","Arm"') and str(round(primary.estimate, 4)) in csv
    # Each figure downloads as a PNG, rendered in the browser.
    plot = forest.locator(".js-plotly-plot").first
    plot.hover()
    with page.expect_download() as download:
        plot.get_by_role("button", name="Download plot as a PNG").click()
    assert download.value.path().read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert download.value.suggested_filename == "demo-forest-mental_wellbeing-1.png"
    # Nothing came from anywhere but this server, and nothing offers to upload a chart.
    assert page.get_by_role("button", name="Share chart...").count() == 0
    assert hosts == {urlparse(live_server.url).hostname}
    # Plotly is the installed basic bundle; Dash never fell back to loading the full one.
    assert f"/dashboards/assets/{plotly_bundle.BUNDLE.script}" in paths
    assert not [path for path in paths if path.endswith("/plotly.min.js")]

    # On a tablet the page reflows: nothing but the wide tables scrolls sideways.
    page.set_viewport_size({"width": 768, "height": 1024})
    page.reload()
    page.wait_for_function(ALL_FIGURES_DRAWN, timeout=30_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    page.screenshot(path=artifacts_dir / "analyst-3-tablet.png", full_page=True)
    context.close()


# Boxes of what the answer block and the figures show, in page coordinates.
BOXES = """(root, selector) => [...root.querySelectorAll(selector)].map((element) => {
  const box = element.getBoundingClientRect();
  return {text: element.textContent.trim().slice(0, 60), left: box.left, right: box.right,
          top: box.top, bottom: box.bottom};
})"""
# The text a figure draws: its title, axis titles, annotations (the MID labels) and legend.
FIGURE_TEXT = ".gtitle, .g-xtitle, .g-ytitle, .annotation-text, .legendtext"
ANSWER_DRAWN = """() => {
  const answer = document.querySelector('#answer');
  return !!answer && answer.querySelectorAll('svg.main-svg').length > 0
    && answer.querySelectorAll('.js-plotly-plot').length === Number(answer.dataset.figures);
}"""
WIDTHS = {360: 640, 768: 1024, 1366: 768}


def _overlapping(boxes: list[dict]) -> list[tuple[str, str]]:
    """Pairs of boxes that intersect by more than a pixel each way."""
    return [
        (a["text"], b["text"])
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if min(a["right"], b["right"]) - max(a["left"], b["left"]) > 1
        and min(a["bottom"], b["bottom"]) - max(a["top"], b["top"]) > 1
    ]


def _boxes(page, selector: str, root: str = "body") -> list[dict]:
    return page.locator(root).evaluate(BOXES, selector)


def _figure_text_problems(page, scope: str) -> list:
    """Text a figure draws that runs into other text, or past the figure's edges (where the
    SVG cuts it off)."""
    problems = []
    for plot in page.locator(f"{scope} .js-plotly-plot").all():
        edge = plot.bounding_box()
        boxes = [b for b in plot.evaluate(BOXES, FIGURE_TEXT) if b["text"]]
        problems += _overlapping(boxes)
        problems += [
            ("cut off", b["text"])
            for b in boxes
            if b["left"] < edge["x"] - 1 or b["right"] > edge["x"] + edge["width"] + 1
        ]
    return problems


@pytest.mark.slow
def test_the_answer_is_on_the_first_screen_at_every_width(
    live_server, chromium, small_trial, artifacts_dir
):
    run = finish_with_golden_run(small_trial, analyst_create())
    [answer] = run_answers(run)
    context = chromium.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.goto(f"{live_server.url}/dashboards/")
    page.get_by_label("Username").fill("ana")
    page.get_by_label("Password").fill("pw")
    page.get_by_role("button", name="Sign in").click()
    # The trial list states the same verdict, in units, with its direction.
    row = page.get_by_role("row").filter(has_text=small_trial.title)
    assert answer.verdict.capitalize() in row.inner_text()
    assert answer.summary in row.inner_text()
    row.get_by_role("link").click()
    for width, height in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.reload()
        page.wait_for_function(ANSWER_DRAWN, timeout=30_000)
        page.wait_for_function(ALL_FIGURES_DRAWN, timeout=30_000)
        page.screenshot(path=artifacts_dir / f"answer-first-screen-{width}.png")
        page.screenshot(path=artifacts_dir / f"answer-dashboard-{width}.png", full_page=True)
        block = page.locator("#answer")
        # The verdict, the estimate, its interval and p are in view without scrolling sideways;
        # the verdict on the first screen, and on a tablet or a laptop the numbers too.
        verdict = block.locator(".sentence strong")
        assert verdict.inner_text() == answer.verdict.capitalize() + ":"
        numbers = block.locator(".key-numbers > div")
        for i, element in enumerate([verdict, numbers.nth(0), numbers.nth(1), numbers.nth(2)]):
            box = element.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, (width, box)
            if i == 0 or width >= 768:
                assert box["y"] + box["height"] <= height, (width, element.inner_text(), box)
        assert "95% interval" in numbers.nth(1).inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert block.evaluate("(b) => b.scrollWidth <= b.clientWidth"), width
        # Nothing in the header or the answer overlaps, nor any text the figures draw.
        for parts in (".site-header > *", "#answer .answer > *"):
            boxes = _boxes(page, parts)
            assert not _overlapping(boxes), (width, parts, _overlapping(boxes))
        forest = "#panel-forest-mental_wellbeing-section"
        assert not _figure_text_problems(page, "#answer"), width
        assert not _figure_text_problems(page, forest), width
        # The estimates table shows estimate, interval and p without a sideways scroll.
        table = page.locator(f"{forest} .table-wrap").first
        wrap = table.bounding_box()
        for column in ("Estimate", "95% low", "95% high", "p adjusted"):
            cell = table.locator(f'td[data-label="{column}"]').first.bounding_box()
            assert cell["x"] + cell["width"] <= wrap["x"] + wrap["width"] + 1, (width, column)
        if width < 1024:
            assert table.evaluate("(t) => t.scrollWidth <= t.clientWidth"), width
    # The header switches between the trials this analyst reads, and signs out.
    page.locator(".switcher summary").click()
    assert page.locator(".switcher a[aria-current=page]").inner_text() == small_trial.title
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/accounts/login/**")
    context.close()
