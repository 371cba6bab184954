"""Analysts' pages: the trial list (a Django template) and the per-trial Dash dashboard, whose
every request passes through Django's login and the rule ``trials.view_results``
(``trials.rules``) before it reaches Dash (see ``dashboards.dash_app`` for why Dash is mounted
this way). Both carry the same header (``dashboards/header.html``): a switcher to the other
trials the user may read, who is signed in, and a sign-out form. Nothing here fits a model."""

from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_update
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.views.decorators.csrf import csrf_exempt
from werkzeug.test import EnvironBuilder

from config.security import csp_hash
from dashboards.answer import run_answers
from dashboards.selectors import latest_finished_run
from trials.models import Trial
from trials.rules import permitted

# Asked without a trial, the rule says whether the user may read any trial's results.
VIEW_RESULTS = "trials.view_results"

# plotly.js's style for each rich-text tag it draws (src/lib/svg_text_utils.js, TAG_STYLES).
PLOTLY_TAG_STYLES = (
    "font-size:70%",
    "text-decoration:line-through",
    "text-decoration:underline",
    "font-weight:bold",
    "font-style:italic",
    "cursor:pointer",
    "font-style:italic;font-weight:bold",
)
# Hop-by-hop headers belong to one connection and must not be copied between servers.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


def _header(request: HttpRequest, current: Trial | None = None) -> dict:
    """What the header shows: only the trials this user may read."""
    return {
        "header_trials": permitted(request.user, VIEW_RESULTS).order_by("title"),
        "current_trial": current,
    }


@login_required
@permission_required(VIEW_RESULTS, raise_exception=True)
def trial_list(request: HttpRequest) -> HttpResponse:
    """Each trial the user may read, with the latest finished run's answer to its first primary
    outcome (``dashboards.answer``): the verdict, the difference in units and its interval."""
    rows = []
    for trial in permitted(request.user, VIEW_RESULTS).order_by("slug"):
        run = latest_finished_run(trial)
        answers = run_answers(run) if run else []
        rows.append({"trial": trial, "run": run, "answer": answers[0] if answers else None})
    return render(request, "dashboards/trial_list.html", {"rows": rows, **_header(request)})


def _to_dash(request: HttpRequest) -> HttpResponse:
    """Run the Dash (Flask) WSGI app on this request and return its answer as Django's."""
    # Dash loads on the first dashboard request, not when the URL conf does.
    from dashboards.dash_app import USER_KEY, dash_app

    builder = EnvironBuilder(
        path=request.path,
        method=request.method,
        headers={k: v for k, v in request.headers.items() if k.lower() != "content-length"},
        query_string=request.META.get("QUERY_STRING", ""),
        data=request.body,
        base_url=f"{request.scheme}://{request.get_host()}",
    )
    environ = builder.get_environ()
    environ[USER_KEY] = request.user
    captured: dict = {}

    def start_response(status: str, headers: list, exc_info=None) -> None:
        captured["status"], captured["headers"] = status, headers

    answer = dash_app().server.wsgi_app(environ, start_response)
    try:
        body = b"".join(answer)
    finally:
        if hasattr(answer, "close"):
            answer.close()
    response = HttpResponse(body, status=int(captured["status"].split()[0]))
    for name, value in captured["headers"]:
        if name.lower() not in HOP_BY_HOP:
            response[name] = value
    return response


@login_required
@permission_required(VIEW_RESULTS, raise_exception=True)
def trial_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """The dashboard page of one trial (Dash's index page, once access is checked)."""
    from dashboards.dash_app import HEADER_MARKER

    trial = get_object_or_404(Trial, slug=slug)
    if not request.user.has_perm(VIEW_RESULTS, trial):
        raise PermissionDenied("You are not an analyst or coordinator of this trial.")
    response = csp_update(_dash_policy())(_to_dash)(request)
    if response.status_code == 200 and response["Content-Type"].startswith("text/html"):
        header = render_to_string(
            "dashboards/header.html", _header(request, trial), request=request
        )
        response.content = response.content.replace(HEADER_MARKER.encode(), header.encode(), 1)
    return response


def _dash_policy() -> dict[str, list[str]]:
    """What the dashboard page adds to the site's Content-Security-Policy (config.settings)."""
    from dashboards.dash_app import dash_app

    return {
        # Dash's index runs inline scripts (its renderer's start): allowed by their hashes,
        # Dash's documented way (Dash.csp_hashes) to keep 'unsafe-inline' out of script-src.
        "script-src": dash_app().csp_hashes(),
        # Dash's renderer and core components and plotly.js insert their CSS as <style>
        # elements from their scripts, with no nonce (their webpack builds fix
        # __webpack_nonce__ to undefined), and Dash's CSS changes with every release. Allowed
        # for <style> elements on this page only: CSS runs no script, and an injected style
        # could send nothing away, since images, fonts and requests come only from this server.
        "style-src-elem": [SELF, UNSAFE_INLINE],
        # Plotly writes rich text (the figures' <b> titles) as style attributes from one fixed
        # table (plotly.js svg_text_utils TAG_STYLES): exactly those are allowed.
        "style-src-attr": [csp_hash(style) for style in PLOTLY_TAG_STYLES],
        # A figure's PNG download is drawn from a blob: image of its SVG (Plotly.toImage).
        "img-src": [SELF, "blob:"],
    }


# Dash posts its callbacks as JSON without Django's CSRF token. The callbacks only read, and
# the session cookie is SameSite=Lax, so a cross-site post carries no session anyway.
@csrf_exempt
@login_required
@permission_required(VIEW_RESULTS, raise_exception=True)
def dash_resource(request: HttpRequest, resource: str) -> HttpResponse:
    """Dash's own routes (layout, callbacks, scripts); the callback checks the trial itself."""
    return _to_dash(request)
