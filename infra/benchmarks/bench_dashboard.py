"""Time to a fully rendered dashboard in headless Chromium, for a trial of 10,000 participants ×
12 waves, against the same Dash page of a trial with no finished run.

The trial is registered and approved through the services; its 10,000 participants and their
allocations are inserted in bulk, its weekly differentially private telemetry releases go through
the federated app's window logic, and its finished AnalysisRun holds the results document of
``analytics.results`` at the size a real run of that trial stores (every panel's sections,
trajectories over 12 waves, posterior histograms, three communities, psychometrics per wave),
built as those types from a simulated cohort (``analytics.simulate``) instead of hours of
fitting. gunicorn serves the real URLs with the
test settings against PostgreSQL, in a database of the run's own (``bench_dashboard_<pid>_<random>``
on the server ``DATABASE_URL`` names, dropped at the end).

A load starts in a fresh browser context (empty HTTP cache, the analyst's session cookie) at
``page.goto`` and ends when every figure the page announces holds its drawn SVG; a second load in
the same context measures the same with the scripts cached. Measured: the dashboard (target
< 2 s) and, as the baseline, the dashboard of a trial without a finished run (the same Dash
shell, scripts and callback, with the status panel only). Best of ``REPEATS`` each; every
timing, the medians and the machine's load average go in the details, since the browser, gunicorn
and PostgreSQL share the machine's cores.

    make bench BENCH_ARGS=dashboard
"""

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np

from analytics.results import (
    Alpha,
    AlphaFigure,
    BayesGrowth,
    BayesianEstimate,
    CommunityEffect,
    Consort,
    ConsortArm,
    Diagnostics,
    Divergence,
    FrequentistEstimate,
    Gates,
    Invariance,
    InvarianceFigure,
    InvarianceStep,
    Omega,
    OmegaFigure,
    Outcome,
    PosteriorDensity,
    PosteriorSummary,
    QuantityConvergence,
    Reliability,
    Results,
    SampleRatioMismatch,
    ScorePsychometrics,
    TrajectoryPoint,
    WaveAttrition,
)
from infra.bench import Measurement, gunicorn, own_database, run_database_name
from infra.services import free_port
from stats.attrition import differential_attrition
from stats.srm import sample_ratio_mismatch

REPO_DIR = Path(__file__).resolve().parents[2]
DATABASE = "bench_dashboard"
PARTICIPANTS = 10_000
WAVES = 12
REPEATS = 5
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
PASSWORD = "bench-password"
# The page is drawn when every figure it announces holds Plotly's SVG (as in the browser test).
ALL_FIGURES_DRAWN = """() => {
  const panels = document.querySelector('#panels');
  if (!panels) return false;
  const drawn = [...panels.querySelectorAll('.js-plotly-plot')]
    .filter((plot) => plot.querySelector('svg.main-svg')).length;
  return drawn === Number(panels.dataset.figures);
}"""


def _summary(draws: np.ndarray, mid: float | None = None) -> PosteriorSummary:
    return PosteriorSummary(
        mean=float(draws.mean()),
        sd=float(draws.std(ddof=1)),
        ci_low=float(np.quantile(draws, 0.025)),
        ci_high=float(np.quantile(draws, 0.975)),
        prob_benefit=float((draws > 0).mean()),
        prob_above_mid=None if mid is None else float((draws > mid).mean()),
        mcse_mean=0.001,
        mcse_prob_benefit=0.001,
    )


def results_document(frame, rng: np.random.Generator) -> tuple[Results, Diagnostics]:
    """The results and diagnostics of a run of this trial, built as the types
    (``analytics.results``) a real run stores: every panel's sections, at the size a real run of
    the trial has (trajectories, attrition and reliability over every wave, posterior
    histograms, three communities); effects are drawn around the simulated truth, and the
    descriptive sections are computed from the simulated cohort."""
    last = WAVES - 1
    outcomes = [
        Outcome(code="who5", instrument="who5", dimension="mental_wellbeing", wave=last,
                role="primary", planned=True),
        Outcome(code="swls", instrument="swls", dimension="life_satisfaction", wave=last,
                role="secondary", planned=True),
    ]  # fmt: skip
    frame = frame.assign(
        arm=np.where(frame["arm"] == 1, "b", "a"),
        outcome=frame["dimension"].map({o.dimension: o.code for o in outcomes}),
    )
    mids = {"mental_wellbeing": 10.0, "life_satisfaction": 3.0}
    estimates: list = []
    densities = []
    for o in outcomes:
        about = {
            "outcome": o.code,
            "instrument": o.instrument,
            "dimension": o.dimension,
            "role": o.role,
            "wave": last,
            "arm": "b",
            "n_participants": PARTICIPANTS,
            "n_observations": int((frame.outcome == o.code).sum()),
            "reportable": True,
        }
        for method, estimand, se, confirmatory in [
            ("mixedlm", "growth_difference_per_wave", 0.05, True),
            ("gee", "growth_difference_per_wave", 0.05, False),
            ("ancova", "final_wave_difference", 0.5, True),
        ]:
            estimate = 0.3 * (last if method == "ancova" else 1) + rng.normal(0, se)
            estimates.append(
                FrequentistEstimate(
                    **about, method=method, estimand=estimand, estimate=estimate, std_error=se,
                    ci_low=estimate - 1.96 * se, ci_high=estimate + 1.96 * se, p_value=1e-6,
                    p_adjusted=2e-6, confirmatory=confirmatory,
                )
            )  # fmt: skip
        draws = rng.normal(0.3, 0.05, 4000)
        summary = _summary(draws, mids[o.dimension] / last)
        estimates.append(
            BayesianEstimate(
                **about, method="bayes_growth", estimand="growth_difference_per_wave",
                estimate=summary.mean, std_error=summary.sd, ci_low=summary.ci_low,
                ci_high=summary.ci_high, prob_benefit=summary.prob_benefit,
                prob_above_mid=summary.prob_above_mid, mid=mids[o.dimension],
                mcse_mean=summary.mcse_mean, mcse_prob_benefit=summary.mcse_prob_benefit,
                confirmatory=True,
            )
        )  # fmt: skip
        density, edges = np.histogram(draws, bins=60, density=True)
        densities.append(
            PosteriorDensity(
                arm="b",
                outcome=o.code,
                x=((edges[:-1] + edges[1:]) / 2).tolist(),
                density=density.tolist(),
            )
        )
    communities = [
        CommunityEffect(
            arm="b",
            community=name,
            per_dimension={o.code: _summary(rng.normal(0.3, 0.1, 4000)) for o in outcomes},
            composite=_summary(rng.normal(0.02, 0.01, 4000)),
            weights={"who5": 0.6, "swls": 0.4},
        )
        for name in ("general", "rural-council", "students")
    ]
    grouped = frame.groupby(["outcome", "arm", "wave"]).score.agg(["count", "mean", "std"])
    trajectories = [
        TrajectoryPoint(
            outcome=outcome, arm=arm, wave=int(wave), n=int(row["count"]),
            mean=float(row["mean"]),
            ci_low=float(row["mean"] - 1.96 * row["std"] / np.sqrt(row["count"])),
            ci_high=float(row["mean"] + 1.96 * row["std"] / np.sqrt(row["count"])),
        )
        for (outcome, arm, wave), row in grouped.iterrows()
    ]  # fmt: skip
    allocated = {arm: int(n) for arm, n in frame.groupby("arm").participant.nunique().items()}
    who5 = frame[frame.outcome == "who5"]
    responded = {
        int(wave): {arm: int(n) for arm, n in group.groupby("arm").participant.nunique().items()}
        for wave, group in who5.groupby("wave")
        if wave > 0
    }
    step = {"chi2": 40.0, "df": 10, "p_value": 0.01, "cfi": 0.99, "tli": 0.98, "rmsea": 0.03,
            "srmr": 0.02, "delta_chi2": 3.0, "delta_df": 4, "delta_p_value": 0.5,
            "delta_cfi": -0.001, "delta_rmsea": 0.0, "holds": True}  # fmt: skip
    invariance = InvarianceFigure(
        value=Invariance(
            groups={},
            steps=[InvarianceStep(model=m, **step) for m in ("configural", "metric", "scalar")],
        )
    )
    psychometrics = [
        ScorePsychometrics(
            instrument=o.instrument,
            score=o.code,
            validated=True,
            reliability=[
                Reliability(
                    wave=w,
                    n=PARTICIPANTS,
                    alpha=AlphaFigure(
                        value=Alpha(
                            alpha=0.85,
                            ci_low=0.84,
                            ci_high=0.86,
                            n_respondents=PARTICIPANTS,
                            n_items=5,
                        )
                    ),
                    omega=OmegaFigure(value=Omega(omega=0.86, n_respondents=PARTICIPANTS)),
                )  # fmt: skip
                for w in range(WAVES)
            ],
            invariance=dict.fromkeys(("language", "community", "wave"), invariance),
        )
        for o in outcomes
    ]
    final = responded[last]
    results = Results(
        kind="confirmatory",
        control="a",
        planned_contrast="b − a",
        alpha=0.05,
        multiplicity="holm",
        outcomes=outcomes,
        estimates=estimates,
        bayes_growth=BayesGrowth(
            reportable=True,
            community_effects=communities,
            participants=PARTICIPANTS,
            observations=len(frame),
            posterior_densities=densities,
        ),
        trajectories=trajectories,
        srm=SampleRatioMismatch.model_validate(
            sample_ratio_mismatch(allocated, dict.fromkeys(allocated, 1)), from_attributes=True
        ),
        attrition=[
            WaveAttrition.model_validate(w, from_attributes=True)
            for w in differential_attrition(allocated, responded)
        ],
        consort=Consort(
            assessed=11_000,
            eligible=PARTICIPANTS,
            excluded=1_000,
            excluded_reasons={"under 18": 600, "no smartphone": 400},
            consented=PARTICIPANTS,
            final_wave=last,
            arms=[
                ConsortArm(
                    slug=arm,
                    name=arm.upper(),
                    allocated=n,
                    followed_up=final[arm],
                    analysed=final[arm],
                    withdrawn=n - final[arm],
                    withdrawal_reasons={"no reason given": n - final[arm]},
                )
                for arm, n in allocated.items()
            ],  # fmt: skip
        ),
        divergence=[
            Divergence(
                arm="b",
                engagement_source="survey: reliance",
                flourishing_source="who5",
                prob_engagement_rose=0.2,
                prob_flourishing_rose=0.99,
                probability=0.01,
                threshold=0.8,
                flagged=False,
                draws=4000,
            )
        ],  # fmt: skip
        psychometrics=psychometrics,
    )
    quantities = {
        "gamma": QuantityConvergence(rhat=1.002, ess_bulk=2100.0, ess_tail=1800.0),
        "community_gamma": QuantityConvergence(rhat=1.003, ess_bulk=2400.0, ess_tail=1900.0),
    }
    gates = Gates(
        passed=True, max_rhat=1.003, min_ess_bulk=2100.0, min_ess_tail=1800.0, divergences=0,
        chains=4, draws_per_chain=1000, per_quantity=quantities,
    )  # fmt: skip
    diagnostics = Diagnostics(
        gates=gates, reportable=True, bayes_seconds=40.0, target_accept=0.9, rows=len(frame)
    )
    return results, diagnostics


def _trials() -> tuple[str, str]:
    """The large trial with its stored run, and one without a run; returns their slugs."""
    from django.contrib.auth.models import Group, User
    from django.utils import timezone

    from analytics.models import AnalysisRun
    from analytics.seeding import synthetic_telemetry_release, synthetic_trial_create
    from analytics.simulate import simulate_scores
    from trials.models import Allocation, Participant, TrialMember
    from trials.selectors import preregistration_current
    from trials.services import member_add

    rng = np.random.default_rng(7)
    large = synthetic_trial_create(slug="large", participants=4, waves=WAVES, effect=0.3, seed=7)
    # Weekly DP releases as far as the synthetic plan's budget goes (ρ = 1 at 0.05 a window),
    # through the real window logic.
    synthetic_telemetry_release(trial=large, minutes_effect=20, seed=7, windows=20)
    arms = list(large.arms.order_by("-is_control", "slug"))
    start = timezone.now() - timedelta(days=200)
    participants = Participant.objects.bulk_create(
        Participant(trial=large, enrolled_at=start + timedelta(minutes=int(m)))
        for m in rng.integers(0, 60 * 24 * 120, PARTICIPANTS - 4)
    )
    Allocation.objects.bulk_create(
        Allocation(participant=p, arm=arms[i % 2], allocated_at=p.enrolled_at)
        for i, p in enumerate(participants)
    )
    frame = simulate_scores(n_participants=PARTICIPANTS, n_waves=WAVES, effect=0.3, seed=7).scores
    results, diagnostics = results_document(frame, rng)
    prereg = preregistration_current(large)
    AnalysisRun.objects.create(
        trial=large, preregistration=prereg, preregistration_sha256=prereg.sha256,
        kind="confirmatory", status="finished", code_version="bench", seed=7,
        data_snapshot_sha256="0" * 64, results=results.model_dump(mode="json"),
        diagnostics=diagnostics.model_dump(mode="json"),
        started_at=timezone.now(), finished_at=timezone.now(), progress=1.0,
    )  # fmt: skip
    empty = synthetic_trial_create(slug="empty", participants=4, waves=WAVES, effect=0.3, seed=8)
    analyst = User.objects.create_user("analyst", password=PASSWORD)
    analyst.groups.add(Group.objects.get(name="Analysts"))
    for trial in (large, empty):
        member_add(trial=trial, user=analyst, role=TrialMember.Role.ANALYST)
    return large.slug, empty.slug


def _loads(browser, state: dict, url: str, drawn: Callable) -> tuple[list[float], list[float]]:
    """Cold loads (a fresh context: empty cache) and, in the same context, warm reloads (the
    scripts from the browser's cache, as an analyst's second visit)."""
    cold, warm = [], []
    for _ in range(REPEATS):
        context = browser.new_context(viewport={"width": 1280, "height": 800}, storage_state=state)
        page = context.new_page()
        for timings in (cold, warm):
            started = time.perf_counter()
            page.goto(url)
            drawn(page)
            timings.append(time.perf_counter() - started)
        context.close()
    return cold, warm


def run() -> list[Measurement]:
    if not CHROMIUM.exists():
        print(f"[dashboard] skipped: no Chromium at {CHROMIUM}", file=sys.stderr)
        return []
    with own_database(os.environ["DATABASE_URL"], run_database_name(DATABASE)) as url:
        env = dict(os.environ, DATABASE_URL=url, DJANGO_SETTINGS_MODULE="config.settings.test")
        os.environ.update(env)
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        large, empty = _trials()
        print(
            f"[dashboard] trials prepared in {time.perf_counter() - started:.0f} s", file=sys.stderr
        )
        from playwright.sync_api import sync_playwright

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with (
            tempfile.TemporaryFile("w+") as log,
            gunicorn(port, env=env, log=log),
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"{base}/accounts/login/")
            page.get_by_label("Username").fill("analyst")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{base}/dashboards/")
            state = context.storage_state()
            # Untimed: each worker's first request imports Dash and builds the app.
            for slug in (large, empty, large, empty):
                page.goto(f"{base}/dashboards/{slug}/")
                page.wait_for_selector("#panels")
            page.goto(f"{base}/dashboards/{large}/")
            page.wait_for_function(ALL_FIGURES_DRAWN)
            figures = int(page.locator("#panels").get_attribute("data-figures"))
            context.close()
            load_before = os.getloadavg()[0]
            dashboard, dashboard_warm = _loads(
                browser,
                state,
                f"{base}/dashboards/{large}/",
                lambda p: p.wait_for_function(ALL_FIGURES_DRAWN, timeout=60_000),
            )
            shell, shell_warm = _loads(
                browser,
                state,
                f"{base}/dashboards/{empty}/",
                lambda p: p.wait_for_selector("#panels section.panel", timeout=60_000),
            )
            browser.close()
    details = {
        "load_average_1min_before": load_before,
        "load_average_1min_after": os.getloadavg()[0],
        "cores": os.cpu_count(),
        "participants": PARTICIPANTS,
        "waves": WAVES,
        "figures": figures,
        "dashboard_seconds": dashboard,
        "baseline_seconds": shell,
        "dashboard_median": statistics.median(dashboard),
        "baseline_median": statistics.median(shell),
        "dashboard_warm_seconds": dashboard_warm,
        "baseline_warm_seconds": shell_warm,
    }
    return [
        Measurement(
            name=f"dashboard drawn, {PARTICIPANTS:,} × {WAVES} waves",
            seconds=min(dashboard),
            baseline_name="dashboard without a run",
            baseline_seconds=min(shell),
            note=f"cold; {figures} figures; median {statistics.median(dashboard):.2f} s; "
            "target < 2 s",
            details=details,
        ),
        Measurement(
            name=f"dashboard drawn again, {PARTICIPANTS:,} × {WAVES} waves",
            seconds=min(dashboard_warm),
            baseline_name="dashboard without a run",
            baseline_seconds=min(shell_warm),
            note=f"warm cache; median {statistics.median(dashboard_warm):.2f} s",
        ),
    ]
