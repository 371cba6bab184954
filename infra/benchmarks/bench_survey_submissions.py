"""Sustained survey submissions through the participant endpoint, served by gunicorn against
PostgreSQL, beside a minimal view that inserts the same rows.

The benchmark's wave shows its two questionnaires (SWLS and WHO-5) on one page, a layout
coordinators can choose. Three sides run, one after another, against the same gunicorn:

- *submit*: the one request that stores a complete wave: the participant's POST of the page's
  whole form (every answer, ``action=finish``, with the participant's CSRF cookie and token) to
  their signed survey link. The server validates every answer, computes the scores and quality
  indices, stores one Response and its two Score rows, and redirects to the thank-you page. The
  page is not fetched first: the *flow* side measures that.
- *flow*: the whole visit as a browser makes it: GET the page, POST it, GET the thank-you page
  (three requests).
- *baseline*: one POST to ``survey_urls.baseline_submit``, which inserts the same Response and
  Score rows in one transaction behind the same middleware and does nothing else.

The headline ratio is *submit* against *baseline*: the same one request's work, stored the same
way (target ≥ 0.60). Each side runs for ``--duration`` seconds after a short untimed warm-up,
driven by closed-loop clients on loopback. Also reported: latency per HTTP request (target p99
< 100 ms), SQL statements per request, and the rows found afterwards: exactly one Response per
accepted submission, none for anyone else, and every Score row. It all happens in a database of
its own, ``bench_surveys_<pid>_<random>``, created on the server ``DATABASE_URL`` names and
dropped at the end.

    python -m infra.bench survey --duration 10
"""

import html
import math
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from http.client import HTTPConnection, HTTPException
from http.cookies import SimpleCookie
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import IO, TYPE_CHECKING, Protocol
from urllib.parse import urlencode

import django
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils.crypto import get_random_string

from infra.bench import Measurement, gunicorn, own_database, run_database_name
from infra.services import free_port

if TYPE_CHECKING:  # importing models needs Django set up, which run() does
    from infra.benchmarks.survey_data import Cohort

SETTINGS = "infra.benchmarks.survey_settings"
REPO_DIR = Path(__file__).resolve().parents[2]
BASELINE_PATH = "/bench/baseline-submit"

# One sync worker per core of the 2-core machines this runs on. A request here is CPU work (ORM,
# templates, signing) with short waits on loopback PostgreSQL, and the cores are shared with
# PostgreSQL and the load generator, so more workers only take turns on the same cores
# (gunicorn's 2 × cores + 1 assumes requests that wait on slow I/O): 4 workers measured no
# faster there, with longer tails. It is also what the production-like stack runs (stack.sh).
WORKERS = 2
# Closed-loop clients: two per worker, so a worker is not left idle while a client parses a page
# or reconnects (sync workers close the connection after each response), and few enough that
# waiting in gunicorn's queue does not swamp the latency (3 clients reached less, 6 no more).
CLIENTS = 4
# Untimed, before each side: the workers' first requests import modules and compile templates.
WARM_UP_SECONDS = 2.0
# More submissions per second than either side reaches with two workers on a large machine; the
# cohort is sized from them so that a run does not run out of participants.
FLOW_CEILING = 200
SUBMIT_CEILING = 600
BASELINE_CEILING = 1500
# A wave has one page per questionnaire, or one in all; more means the flow went in circles.
MAX_PAGES = 10
TARGET_RATIO = 0.60
TARGET_P99_MS = 100.0

SUBMISSION = (
    "one POST of a one-page wave's whole form (10 answers, CSRF cookie and token) to the "
    "participant's signed link; stores 1 Response + 2 Score rows, redirects to the thank-you page"
)
FLOW = "the whole visit: GET the page, POST it, GET the thank-you page (3 requests)"
BASELINE = "one POST to a minimal view inserting the same Response + Score rows in one transaction"

_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
_RADIO = re.compile(r'type="radio" name="([^":]+):([^"]+)"')


class FlowError(RuntimeError):
    """A page did not answer as it answers a participant's browser."""


class Send(Protocol):
    def __call__(
        self,
        kind: str,
        method: str,
        path: str,
        form: dict | None = None,
        *,
        submits: bool = False,
        cookies: dict[str, str] | None = None,
    ) -> tuple[int, str, str]:
        """Status, Location header and body of one request; ``submits`` marks the request that
        stores the submission; ``cookies`` are set in the browser before it is sent."""


def _expect(status: int, wanted: int, kind: str) -> None:
    if status != wanted:
        raise FlowError(f"{kind}: HTTP {status}, expected {wanted}")


def _expect_done(location: str, kind: str) -> None:
    if not location.endswith("/done/"):
        raise FlowError(f"{kind}: redirected to {location}, not the thank-you page")


def wave_through_pages(send: Send, path: str, answers: dict[str, dict[str, int]]) -> None:
    """One participant's wave, page by page, as the participant-pages tests answer it."""
    url = path
    for number in range(1, MAX_PAGES + 1):
        kind = f"GET page {number}"
        status, _, page = send(kind, "GET", url)
        _expect(status, 200, kind)
        form = {name: html.unescape(value) for name, value in _HIDDEN.findall(page)}
        for instrument, item in set(_RADIO.findall(page)):
            form[f"{instrument}:{item}"] = str(answers[instrument][item])
        action = "finish" if 'value="finish"' in page else "next"
        kind = f"POST page {number} ({action})"
        status, location, _ = send(
            kind, "POST", path, {**form, "action": action}, submits=action == "finish"
        )
        _expect(status, 302, kind)
        if action == "finish":
            _expect_done(location, kind)
            status, _, _ = send("GET thank-you", "GET", location)
            _expect(status, 200, "GET thank-you")
            return
        url = location
    raise FlowError(f"no finish button after {MAX_PAGES} pages")


def wave_in_one_post(send: Send, path: str, answers: dict[str, dict[str, int]]) -> None:
    """The POST that stores a whole one-page wave, as the browser sends it once the page has
    loaded: every answer, with the CSRF cookie and the token Django accepts for it."""
    secret = get_random_string(32)  # a CSRF secret: 32 letters and digits, as Django makes them
    form = {
        "csrfmiddlewaretoken": secret,
        "page": "0",
        "action": "finish",
        **{
            f"{instrument}:{item}": str(value)
            for instrument, items in answers.items()
            for item, value in items.items()
        },
    }
    status, location, _ = send(
        "POST finish", "POST", path, form, submits=True, cookies={"csrftoken": secret}
    )
    _expect(status, 302, "POST finish")
    _expect_done(location, "POST finish")


def baseline_post(send: Send, participant: str, wave_id: int) -> None:
    form = {"participant": participant, "wave": str(wave_id)}
    status, _, _ = send("POST baseline", "POST", BASELINE_PATH, form, submits=True)
    _expect(status, 204, "POST baseline")


type Job = Callable[[Send], None]


class _Browser:
    """One participant's browser on a client's connection: cookies of its own, every request
    timed from sending to the last byte of the answer."""

    def __init__(self, connection: HTTPConnection) -> None:
        self.connection = connection
        self.cookies: dict[str, str] = {}
        self.requests: list[tuple[str, float]] = []
        self.submitted = False

    def send(
        self,
        kind: str,
        method: str,
        path: str,
        form: dict | None = None,
        *,
        submits: bool = False,
        cookies: dict[str, str] | None = None,
    ) -> tuple[int, str, str]:
        self.cookies.update(cookies or {})
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        start = time.perf_counter()
        self.connection.request(method, path, body, headers)
        response = self.connection.getresponse()
        content = response.read()
        self.requests.append((kind, time.perf_counter() - start))
        for header in response.headers.get_all("Set-Cookie") or ():
            for morsel in SimpleCookie(header).values():
                self.cookies[morsel.key] = morsel.value
        if submits and response.status < 400:
            self.submitted = True
        return response.status, response.getheader("Location", ""), content.decode()


@dataclass
class _Run:
    """What the clients saw during one timed (or warm-up) stretch of one side."""

    seconds: float = 0.0
    completed: int = 0
    accepted: set[str] = field(default_factory=set)
    requests: list[tuple[str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    exhausted: bool = False

    def add(self, other: "_Run") -> None:
        self.completed += other.completed
        self.accepted |= other.accepted
        self.requests += other.requests
        self.errors += other.errors
        self.exhausted |= other.exhausted


def _client(port: int, queue: SimpleQueue, deadline: float) -> _Run:
    """Take participants one after another until the deadline, each with a new browser."""
    run = _Run()
    connection = HTTPConnection("127.0.0.1", port, timeout=30)
    while time.perf_counter() < deadline:
        try:
            participant, job = queue.get_nowait()
        except Empty:
            run.exhausted = True
            break
        browser = _Browser(connection)
        try:
            job(browser.send)
            run.completed += 1
        except (FlowError, OSError, HTTPException) as error:
            run.errors.append(f"{participant}: {error}")
            connection.close()  # the next participant starts on a fresh connection
        run.requests += browser.requests
        if browser.submitted:
            run.accepted.add(participant)
    connection.close()
    return run


def _drive(port: int, queue: SimpleQueue, seconds: float) -> _Run:
    """CLIENTS closed-loop clients for ``seconds``; waves under way at the deadline finish and
    count, and the time runs until the last one has."""
    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(_client, port, queue, start + seconds) for _ in range(CLIENTS)]
        runs = [future.result() for future in futures]
    total = _Run(seconds=time.perf_counter() - start)
    for run in runs:
        total.add(run)
    return total


def _percentiles(seconds: list[float]) -> dict[str, float | None]:
    if len(seconds) < 2:
        value = seconds[0] * 1000 if seconds else None
        return {"p50_ms": value, "p99_ms": value}
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return {"p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000}


def _side(port: int, jobs: list[tuple[str, Job]], seconds: float) -> tuple[_Run, dict]:
    """Warm up, then time one side; returns every run's outcome (for the row check) and the
    timed run's figures."""
    queue: SimpleQueue = SimpleQueue()
    for job in jobs:
        queue.put(job)
    warm_up = _drive(port, queue, min(WARM_UP_SECONDS, seconds))
    load_before, cpu_before = os.getloadavg()[0], time.process_time()
    timed = _drive(port, queue, seconds)
    by_kind: dict[str, list[float]] = {}
    for kind, elapsed in timed.requests:
        by_kind.setdefault(kind, []).append(elapsed)
    figures = {
        "submissions": timed.completed,
        "seconds": timed.seconds,
        "submissions_per_s": timed.completed / timed.seconds,
        "requests": len(timed.requests),
        "requests_per_s": len(timed.requests) / timed.seconds,
        **_percentiles([elapsed for _, elapsed in timed.requests]),
        "per_request": {
            kind: {"count": len(values), **_percentiles(values)} for kind, values in by_kind.items()
        },
        "errors": len(warm_up.errors) + len(timed.errors),
        "first_errors": (warm_up.errors + timed.errors)[:5],
        "ran_out_of_participants": timed.exhausted,
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        # The load generator shares the cores with gunicorn and PostgreSQL.
        "load_generator_cpu_share": (time.process_time() - cpu_before) / timed.seconds,
    }
    warm_up.add(timed)
    return warm_up, figures


def _statements_per_request(cohort: "Cohort", answers: dict) -> dict[str, int]:
    """SQL statements (BEGIN, COMMIT and savepoints included) each request sends, through
    Django's test client in this process, outside the timed runs: where to look first when a
    page is slow."""
    client = Client(HTTP_HOST="127.0.0.1")
    counts: dict[str, int] = {}

    def send(
        kind: str,
        method: str,
        path: str,
        form: dict | None = None,
        *,
        submits: bool = False,
        cookies: dict[str, str] | None = None,
    ) -> tuple[int, str, str]:
        for name, value in (cookies or {}).items():
            client.cookies[name] = value
        with CaptureQueriesContext(connection) as queries:
            response = client.post(path, form) if method == "POST" else client.get(path)
        counts[kind] = len(queries)
        return response.status_code, response.get("Location", ""), response.content.decode()

    wave_through_pages(send, cohort.flow_probe[1], answers)
    client.cookies.clear()
    wave_in_one_post(send, cohort.submit_probe[1], answers)
    baseline_post(send, cohort.baseline_probe, cohort.wave_id)
    return counts


def _tail(log: IO, lines: int = 20) -> str:
    log.flush()
    log.seek(0)
    return "".join(log.readlines()[-lines:])


def _django_setup(database: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    os.environ["SURVEY_BENCH_DATABASE"] = database
    django.setup()
    if settings.SETTINGS_MODULE != SETTINGS:
        raise RuntimeError(
            f"Django is already set up with {settings.SETTINGS_MODULE}; run this benchmark in a "
            "process of its own."
        )


def run(duration: float = 60.0) -> list[Measurement]:
    database = run_database_name("bench_surveys")
    _django_setup(database)
    # Models can be imported only now that Django is set up.
    from django.core.management import call_command

    from infra.benchmarks.survey_data import cohort_prepare, rows_check
    from infra.benchmarks.survey_urls import ANSWERS, stored_fields

    server_url = os.environ["DATABASE_URL"]
    cohort_seconds = duration + WARM_UP_SECONDS
    with (
        own_database(server_url, database),
        tempfile.TemporaryFile("w+") as log,
    ):
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        cohort = cohort_prepare(
            flow=math.ceil(cohort_seconds * FLOW_CEILING),
            submit=math.ceil(cohort_seconds * SUBMIT_CEILING),
            baseline=math.ceil(cohort_seconds * BASELINE_CEILING),
        )
        print(
            f"[survey] {len(cohort.flow) + len(cohort.submit):,} participants and "
            f"{len(cohort.baseline):,} baseline rows prepared in "
            f"{time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )
        stored_fields()  # so the probe counts a warm process's statements
        statements = _statements_per_request(cohort, ANSWERS)
        jobs = {
            "submit": [
                (participant, partial(wave_in_one_post, path=path, answers=ANSWERS))
                for participant, path in cohort.submit
            ],
            "flow": [
                (participant, partial(wave_through_pages, path=path, answers=ANSWERS))
                for participant, path in cohort.flow
            ],
            "baseline": [
                (
                    participant,
                    partial(baseline_post, participant=participant, wave_id=cohort.wave_id),
                )
                for participant in cohort.baseline
            ],
        }
        port = free_port()
        runs, sides = {}, {}
        with gunicorn(
            port, env=dict(os.environ, DJANGO_SETTINGS_MODULE=SETTINGS), log=log, workers=WORKERS
        ):
            for label, side_jobs in jobs.items():
                runs[label], sides[label] = _side(port, side_jobs, duration)
        rows = rows_check(cohort, **{label: run.accepted for label, run in runs.items()})
        failed = any(side["errors"] for side in sides.values())
        server_log = _tail(log) if failed else ""
    for label, side in sides.items():
        if not side["submissions"]:
            raise RuntimeError(
                f"No {label} submission succeeded: {side['first_errors']}\n{server_log}"
            )
    for side in sides.values():
        side["sql_statements"] = {
            kind: statements[kind] for kind in side["per_request"] if kind in statements
        }
    submit, flow, baseline = sides["submit"], sides["flow"], sides["baseline"]
    details = {
        "submission": SUBMISSION,
        "flow": FLOW,
        "baseline": BASELINE,
        "duration_s": duration,
        "gunicorn_sync_workers": WORKERS,
        "clients": CLIENTS,
        "cpu_cores": os.cpu_count(),
        "submit": submit,
        "flow_side": flow,
        "baseline_view": baseline,
        "ratio": submit["submissions_per_s"] / baseline["submissions_per_s"],
        "ratio_target": TARGET_RATIO,
        "flow_ratio": flow["submissions_per_s"] / baseline["submissions_per_s"],
        "p99_target_ms": TARGET_P99_MS,
        "rows": rows,
    }
    _print_summary(details, server_log)
    rows_ok = all(side["ok"] for side in rows.values())
    return [
        Measurement(
            name="survey submissions (participant endpoint / baseline)",
            seconds=1 / submit["submissions_per_s"],
            baseline_name="baseline insert view",
            baseline_seconds=1 / baseline["submissions_per_s"],
            note=f"{submit['submissions_per_s']:.1f} vs {baseline['submissions_per_s']:.1f} "
            f"submissions/s; submit p99 {submit['p99_ms']:.0f} ms; whole visits "
            f"{flow['submissions_per_s']:.1f}/s; rows {'ok' if rows_ok else 'MISMATCH'}",
            details=details,
        )
    ]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _print_summary(details: dict, server_log: str) -> None:
    sides = {
        "submit": details["submit"],
        "flow": details["flow_side"],
        "baseline": details["baseline_view"],
    }
    print(
        f"\nSurvey submissions: gunicorn, {details['gunicorn_sync_workers']} sync workers, "
        f"{details['clients']} closed-loop clients on loopback, PostgreSQL, "
        f"{details['duration_s']:g} s per side, {details['cpu_cores']} CPU cores"
    )
    print(f"  submit   = {details['submission']}")
    print(f"  flow     = {details['flow']}")
    print(f"  baseline = {details['baseline']}")
    print(f"  {'':10} {'submissions/s':>14} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} errors")
    for label, side in sides.items():
        print(
            f"  {label:10} {side['submissions_per_s']:14.1f} {side['requests_per_s']:11.1f} "
            f"{_ms(side['p50_ms']):>8} {_ms(side['p99_ms']):>8} {side['errors']:6}"
        )
    met = "met" if details["ratio"] >= details["ratio_target"] else "NOT met"
    print(
        f"  ratio submit/baseline {details['ratio']:.2f} (target ≥ {details['ratio_target']:.2f}: "
        f"{met}); whole visits/baseline {details['flow_ratio']:.2f}"
    )
    p99 = sides["submit"]["p99_ms"] or math.inf
    met = "met" if p99 < details["p99_target_ms"] else "NOT met"
    print(f"  submit p99 {p99:.1f} ms (target < {details['p99_target_ms']:g} ms: {met})")
    print("  per request:               p50 /     p99 ms, SQL statements")
    for label, side in sides.items():
        for kind, figures in side["per_request"].items():
            print(
                f"    {label + ': ' + kind:24} {_ms(figures['p50_ms']):>7} / "
                f"{_ms(figures['p99_ms']):>7}  {side['sql_statements'].get(kind, '-'):>3}"
            )
    for label, counts in details["rows"].items():
        drafts = f", {counts['drafts_left']} drafts left" if "drafts_left" in counts else ""
        print(
            f"  rows, {label}: {counts['accepted']:,} accepted → {counts['responses']:,} responses "
            f"({counts['missing']} missing, {counts['duplicated']} duplicated, "
            f"{counts['unexpected']} unexpected), {counts['scores']:,}/"
            f"{counts['scores_expected']:,} scores{drafts}: {'ok' if counts['ok'] else 'MISMATCH'}"
        )
    for label, side in sides.items():
        load = side["load_average_1min"]
        print(
            f"  load, {label}: 1-min load average {load['before']:.1f} → {load['after']:.1f}; "
            f"load generator used {side['load_generator_cpu_share']:.0%} of one core"
            + ("; RAN OUT OF PARTICIPANTS" if side["ran_out_of_participants"] else "")
        )
        for error in side["first_errors"]:
            print(f"  error, {label}: {error}")
    if server_log:
        print(f"  gunicorn's log ends:\n{server_log}")
