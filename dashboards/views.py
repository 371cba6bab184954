"""Read-only result pages for analysts. They only read stored AnalysisRun rows; no model is
fitted inside a request."""

from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from analytics.models import AnalysisRun
from trials.models import Trial
from trials.selectors import trials_analysed_by
from trials.services import missing_approvals, preregistration_current

VIEW_PERMISSION = "analytics.view_analysisrun"


def _latest_finished(trial: Trial) -> AnalysisRun | None:
    return trial.analysis_runs.filter(status=AnalysisRun.Status.FINISHED).first()


def headline(run: AnalysisRun) -> dict | None:
    """The primary outcome's mixed-model growth estimate: the one-line answer for a list."""
    return next(
        (
            e
            for e in run.results.get("estimates", [])
            if e["role"] == "primary" and e["method"] == "mixedlm"
        ),
        None,
    )


@login_required
@permission_required(VIEW_PERMISSION, raise_exception=True)
def trial_list(request: HttpRequest) -> HttpResponse:
    rows = []
    for trial in trials_analysed_by(request.user).order_by("slug"):
        run = _latest_finished(trial)
        primary = headline(run) if run else None
        rows.append({"trial": trial, "run": run, "primary": primary})
    return render(request, "dashboards/trial_list.html", {"rows": rows})


@login_required
@permission_required(VIEW_PERMISSION, raise_exception=True)
def trial_detail(request: HttpRequest, slug: str) -> HttpResponse:
    trial = get_object_or_404(Trial, slug=slug)
    if not trials_analysed_by(request.user).filter(pk=trial.pk).exists():
        raise PermissionDenied("You are not an analyst or coordinator of this trial.")
    run = _latest_finished(trial)
    context = {
        "trial": trial,
        "prereg": preregistration_current(trial),
        "missing_approvals": missing_approvals(trial),
        "run": run,
        "latest_run": trial.analysis_runs.first(),
    }
    return render(request, "dashboards/trial_detail.html", context)
