"""People arriving through a trial's recruitment link, served by gunicorn against PostgreSQL, with
the real e-mail confirmation through a loopback SMTP server.

A trial in *enrolling* with two communities (the strata of its permuted blocks), a plan with
screening criteria and a consent document with every data stream. Two phases run against the
same gunicorn:

- *arrivals*: ``--people`` people arrive through the two communities' recruitment links at
  random moments within ``--seconds`` seconds, each on a thread of their own, from an address of
  their own (``X-Forwarded-For``, as the TLS-terminating proxy of a deployment appends it:
  ``front_door_settings``). Each opens the landing page, the screening form and posts it (one in
  ten answers as someone too young), opens the consent form and posts it (a third decline the
  optional streams; some type their address in capitals), waits for the confirmation e-mail on
  the SMTP server, opens its link and presses "Join the study" (one in twenty never does; one in
  twenty presses twice at once, from two connections). Then, from the database: every confirmed
  eligible person enrolled exactly once, nobody else, no address twice (case-insensitive), and
  the allocation positions of each stratum 0..n-1 with no gap or repeat.
- *enrol*: the throughput of the step that enrols (the POST of "Join the study") beside a bare
  insert of the same rows (``front_door_urls.baseline_enrol``), each by closed-loop clients over
  the same number of people (a fifth as many as arrive, at least 50), who went through screening
  and consent and opened their confirmation link beforehand, untimed.

    python -m infra.bench front_door --people 60 --seconds 20
"""

import email
import html
import logging
import os
import random
import re
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.client import HTTPConnection, HTTPException
from http.cookies import SimpleCookie
from queue import Empty, SimpleQueue
from typing import IO
from urllib.parse import urlencode

import django
from aiosmtpd.controller import Controller
from django.conf import settings

from infra.bench import Measurement, gunicorn, own_database, run_database_name
from infra.services import free_port

SETTINGS = "infra.benchmarks.front_door_settings"
SLUG = "door"
BASELINE_SLUG = "door-baseline"
COMMUNITIES = ("north", "south")
BASELINE_PATH = "/bench/baseline-enrol"
# As the survey benchmark runs them: two sync workers for the two cores, two clients per worker
# in the closed-loop phase (infra/benchmarks/bench_survey_submissions.py says why).
WORKERS = 2
CLIENTS = 4
# Threads that carry the arrivals: more than are ever mid-visit at once at the default pace,
# so a person starts when they arrive rather than when a thread is free.
ARRIVAL_THREADS = 64
INELIGIBLE_SHARE = 0.10
DECLINE_SHARE = 0.33
SHOUTED_SHARE = 0.10
UNCONFIRMED_SHARE = 0.05
TWICE_SHARE = 0.05
MAIL_WAIT_SECONDS = 60.0
SCREENING = {
    "min_age": 18,
    "max_age": 80,
    "languages": ["en"],
    "countries": ["GB", "DE"],
    "uses_ai_assistants": "yes",
    "questions": [{"text": "Do you have a smartphone?", "required_answer": "yes"}],
}
ELIGIBLE = {"languages": ["en"], "country": "GB", "uses_ai": "yes", "question_1": "yes"}
ALL_SCOPES = ["surveys", "telemetry", "conversation_content", "data_sharing"]

_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
_CONFIRM = re.compile(r"(/join/[\w-]+/confirm/[^\s\"<>]+/)")


class FlowError(RuntimeError):
    """A page did not answer as it answers a person's browser."""


class Mailbox:
    """The loopback SMTP server's handler: each recipient's messages, for the people waiting."""

    def __init__(self) -> None:
        self.messages: dict[str, list[str]] = defaultdict(list)
        self.arrived = threading.Condition()

    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.content)
        text = "".join(
            part.get_payload(decode=True).decode()
            for part in message.walk()
            if part.get_content_type() == "text/plain"
        )
        with self.arrived:
            for recipient in envelope.rcpt_tos:
                self.messages[recipient.lower()].append(text)
            self.arrived.notify_all()
        return "250 Message accepted for delivery"

    def confirmation_link(self, address: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                for text in self.messages.get(address.lower(), ()):
                    if match := _CONFIRM.search(text):
                        return html.unescape(match[1])
                left = deadline - time.monotonic()
                if left <= 0:
                    raise FlowError(f"no confirmation e-mail to {address}")
                self.arrived.wait(left)


class Browser:
    """One person's browser: cookies of its own, their address in ``X-Forwarded-For``, every
    request timed from sending to the last byte of the answer."""

    def __init__(self, port: int, client: str) -> None:
        self.port, self.client = port, client
        self.connection = HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}
        self.requests: list[tuple[str, float]] = []

    def send(
        self, kind: str, method: str, path: str, form: dict | None = None
    ) -> tuple[int, str, str]:
        headers = {"X-Forwarded-For": self.client}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form, doseq=True)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        start = time.perf_counter()
        try:
            self.connection.request(method, path, body, headers)
            response = self.connection.getresponse()
            content = response.read()
        except (OSError, HTTPException):
            self.connection.close()  # the next request starts on a fresh connection
            raise
        self.requests.append((kind, time.perf_counter() - start))
        for header in response.headers.get_all("Set-Cookie") or ():
            for morsel in SimpleCookie(header).values():
                self.cookies[morsel.key] = morsel.value
        return response.status, response.getheader("Location", ""), content.decode()

    def expect(self, kind: str, method: str, path: str, form: dict | None = None, status=200):
        got, location, page = self.send(kind, method, path, form)
        if got != status:
            raise FlowError(f"{kind} {path}: HTTP {got}, expected {status}")
        return location, page

    def twin(self) -> "Browser":
        """The same browser on a second connection: a second click while the first is sent."""
        other = Browser(self.port, self.client)
        other.cookies = dict(self.cookies)
        return other


@dataclass(frozen=True)
class Person:
    number: int
    community: str
    eligible: bool
    scopes: tuple[str, ...]
    address: str
    confirms: bool
    twice: bool

    @property
    def client(self) -> str:
        # An address of their own in 10.0.0.0/8, as their proxy would report it.
        return f"10.{self.number >> 16 & 255}.{self.number >> 8 & 255}.{self.number & 255}"


def people_make(
    count: int, *, seed: int, first: int = 0, everyone_eligible: bool = False
) -> list[Person]:
    rng = random.Random(seed)
    people = []
    for number in range(first, first + count):
        address = f"person{number}@example.org"
        eligible = everyone_eligible or rng.random() >= INELIGIBLE_SHARE
        confirms = everyone_eligible or eligible and rng.random() >= UNCONFIRMED_SHARE
        people.append(
            Person(
                number=number,
                community=COMMUNITIES[number % len(COMMUNITIES)],
                eligible=eligible,
                scopes=("surveys",) if rng.random() < DECLINE_SHARE else tuple(ALL_SCOPES),
                address=address.upper() if rng.random() < SHOUTED_SHARE else address,
                confirms=confirms,
                twice=confirms and not everyone_eligible and rng.random() < TWICE_SHARE,
            )
        )
    return people


def _hidden(page: str) -> dict[str, str]:
    """The form's hidden fields (the CSRF token among them), as the browser sends them back."""
    return {name: html.unescape(value) for name, value in _HIDDEN.findall(page)}


def through_consent(browser: Browser, person: Person) -> bool:
    """Landing, screening and consent; True when a confirmation e-mail is on its way."""
    browser.expect("GET landing", "GET", f"/join/{SLUG}/{person.community}/")
    screening = f"/join/{SLUG}/screening?" + urlencode(
        {"lang": "en", "community": person.community}
    )
    _, page = browser.expect("GET screening", "GET", screening)
    answers = _hidden(page) | ELIGIBLE | {"age": "34" if person.eligible else "15"}
    if not person.eligible:
        _, page = browser.expect("POST screening", "POST", screening, answers)
        if "cannot include you" not in page:
            raise FlowError("an ineligible answer did not get the polite page")
        return False
    consent, _ = browser.expect("POST screening", "POST", screening, answers, status=302)
    _, page = browser.expect("GET consent", "GET", consent)
    form = _hidden(page) | {
        "scopes": list(person.scopes),
        "email": person.address,
        "name": "A Person",
    }
    _, page = browser.expect("POST consent", "POST", consent, form)
    if "Check your e-mail" not in page:
        raise FlowError("the consent form did not send a confirmation")
    return True


def join(browser: Browser, link: str, form: dict[str, str]) -> None:
    """Press "Join the study" on the confirmation page (``form``: its hidden fields): a redirect
    to the person's data page, or the page that says they have joined already (the second of
    two clicks)."""
    kind = "POST join (enrols)"
    status, location, page = browser.send(kind, "POST", link, form)
    if not (status == 302 and location or status == 200 and "You have already joined" in page):
        raise FlowError(f"{kind}: HTTP {status}, neither enrolled nor already joined")


@dataclass
class Outcome:
    requests: list[tuple[str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ineligible: int = 0
    confirmed: set[str] = field(default_factory=set)
    unconfirmed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, browsers: list[Browser], *, state: str = "", confirmed: str = "", error=""):
        with self.lock:
            self.requests += [request for browser in browsers for request in browser.requests]
            self.ineligible += state == "ineligible"
            self.unconfirmed += state == "unconfirmed"
            if confirmed:
                self.confirmed.add(confirmed)
            if error:
                self.errors.append(error)


def arrive(port: int, mailbox: Mailbox, person: Person, at: float, outcome: Outcome) -> None:
    time.sleep(max(0.0, at - time.perf_counter()))
    browsers = [Browser(port, person.client)]
    browser = browsers[0]
    try:
        if not through_consent(browser, person):
            outcome.add(browsers, state="ineligible")
            return
        link = mailbox.confirmation_link(person.address, MAIL_WAIT_SECONDS)
        if not person.confirms:
            outcome.add(browsers, state="unconfirmed")
            return
        _, page = browser.expect("GET confirmation", "GET", link)
        form = _hidden(page)
        if person.twice:
            browsers.append(browser.twin())
            with ThreadPoolExecutor(1) as other:
                second = other.submit(join, browsers[1], link, form)
                join(browser, link, form)
                second.result()
        else:
            join(browser, link, form)
        outcome.add(browsers, confirmed=person.address.lower())
    except (FlowError, OSError, HTTPException) as error:
        outcome.add(browsers, error=f"person {person.number}: {error}")
    finally:
        for each in browsers:
            each.connection.close()


def _percentiles(seconds: list[float]) -> dict[str, float]:
    if len(seconds) < 2:
        return {"count": len(seconds), "p50_ms": seconds[0] * 1000 if seconds else float("nan")}
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return {"count": len(seconds), "p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000}


def closed_loop(port: int, jobs: list, clients: int = CLIENTS) -> tuple[float, list[str]]:
    """Seconds for ``clients`` closed-loop clients to do ``jobs`` (callables taking a connection
    of theirs), and the errors."""
    queue: SimpleQueue = SimpleQueue()
    for job in jobs:
        queue.put(job)
    errors: list[str] = []

    def client() -> None:
        while True:
            try:
                job = queue.get_nowait()
            except Empty:
                return
            try:
                job()
            except (FlowError, OSError, HTTPException) as error:
                errors.append(str(error))

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    return time.perf_counter() - start, errors


def _django_setup(database: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    os.environ["FRONT_DOOR_BENCH_DATABASE"] = database
    django.setup()
    if settings.SETTINGS_MODULE != SETTINGS:
        raise RuntimeError(
            f"Django is already set up with {settings.SETTINGS_MODULE}; run this benchmark in a "
            "process of its own."
        )


def _tail(log: IO, lines: int = 20) -> str:
    log.flush()
    log.seek(0)
    return "".join(log.readlines()[-lines:])


def run(people: int = 500, seconds: float = 60.0) -> list[Measurement]:
    database = run_database_name("bench_front_door")
    _django_setup(database)
    from django.core.management import call_command

    from infra.benchmarks.front_door_data import baseline_prepare, rows_check, trials_prepare

    # aiosmtpd logs every connection at INFO: hundreds of lines a run.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    mailbox = Mailbox()
    smtp_port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    with (
        own_database(os.environ["DATABASE_URL"], database),
        tempfile.TemporaryFile("w+") as log,
    ):
        call_command("migrate", verbosity=0)
        trial, baseline_trial = trials_prepare(slugs=(SLUG, BASELINE_SLUG), screening=SCREENING)
        arrivals = people_make(people, seed=1)
        # A fifth as many as arrive, at least 50: enough for the closed loop's rate to settle.
        timed = people_make(max(50, people // 5), seed=2, first=people, everyone_eligible=True)
        env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE=SETTINGS,
            FRONT_DOOR_BENCH_DATABASE=database,
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(smtp_port),
        )
        port = free_port()
        controller.start()
        try:
            with gunicorn(port, env=env, log=log, workers=WORKERS):
                _warm_up(port)
                outcome = Outcome()
                rng = random.Random(3)
                start = time.perf_counter()
                moments = sorted(start + rng.uniform(0, seconds) for _ in arrivals)
                with ThreadPoolExecutor(ARRIVAL_THREADS) as pool:
                    visits = [
                        pool.submit(arrive, port, mailbox, person, at, outcome)
                        for person, at in zip(arrivals, moments, strict=True)
                    ]
                for visit in visits:
                    visit.result()  # a bug of the load generator's, not a page's answer
                arrivals_seconds = time.perf_counter() - start
                enrol, baseline, enrol_errors = _enrol_phase(
                    port, mailbox, timed, baseline_prepare(trial=baseline_trial, people=timed)
                )
        finally:
            controller.stop(no_assert=True)
        rows = rows_check(
            trial=trial, confirmed=outcome.confirmed | {p.address.lower() for p in timed}
        )
        errors = outcome.errors + enrol_errors
        server_log = _tail(log) if errors else ""
    by_kind: dict[str, list[float]] = defaultdict(list)
    for kind, elapsed in outcome.requests:
        by_kind[kind].append(elapsed)
    details = {
        "people": people,
        "arrival_window_s": seconds,
        "arrivals_took_s": arrivals_seconds,
        "gunicorn_sync_workers": WORKERS,
        "cpu_cores": os.cpu_count(),
        "arrived": len(arrivals),
        "ineligible": outcome.ineligible,
        "unconfirmed": outcome.unconfirmed,
        "confirmed": len(outcome.confirmed),
        "pressed_twice": sum(p.twice for p in arrivals),
        "per_page": {kind: _percentiles(values) for kind, values in by_kind.items()},
        "enrol_phase_people": len(timed),
        "enrol_per_s": len(timed) / enrol,
        "baseline_per_s": len(timed) / baseline,
        "ratio": baseline / enrol,
        "rows": rows,
        "errors": len(errors),
        "first_errors": errors[:5],
    }
    _print_summary(details, server_log)
    return [
        Measurement(
            name="front door enrol step (join / bare insert)",
            seconds=enrol / len(timed),
            baseline_name="baseline insert view",
            baseline_seconds=baseline / len(timed),
            note=f"{details['enrol_per_s']:.1f} vs {details['baseline_per_s']:.1f} enrolments/s; "
            f"{rows['enrolled']} enrolled, {rows['lost']} lost, {rows['twice']} twice, "
            f"positions {'contiguous' if rows['contiguous'] else 'NOT CONTIGUOUS'}",
            details=details,
        )
    ]


def _warm_up(port: int) -> None:
    """Untimed: each worker's first requests import modules and compile templates."""
    browser = Browser(port, "10.255.255.254")
    for _ in range(2 * WORKERS):
        for community in COMMUNITIES:
            browser.expect("warm-up", "GET", f"/join/{SLUG}/{community}/")
            browser.expect("warm-up", "GET", f"/join/{SLUG}/screening?community={community}")
    browser.connection.close()


def _enrol_phase(
    port: int, mailbox: Mailbox, timed: list[Person], baseline_forms: list[dict]
) -> tuple[float, float, list[str]]:
    """Screening and consent for ``timed`` (untimed), then the seconds their joins take and the
    seconds the same number of bare inserts take, each by closed-loop clients."""
    confirmations: dict[int, tuple[Browser, str, dict[str, str]]] = {}

    def prepare(person: Person) -> None:
        browser = Browser(port, person.client)
        through_consent(browser, person)
        link = mailbox.confirmation_link(person.address, MAIL_WAIT_SECONDS)
        _, page = browser.expect("GET confirmation", "GET", link)
        confirmations[person.number] = browser, link, _hidden(page)

    _, errors = closed_loop(port, [lambda p=p: prepare(p) for p in timed])
    if errors:
        raise FlowError(f"{len(errors)} people of the enrol phase were not prepared: {errors[:3]}")
    joins = [lambda p=p: join(*confirmations[p.number]) for p in timed]
    enrol, join_errors = closed_loop(port, joins)

    def insert(form: dict) -> None:
        Browser(port, "10.255.255.255").expect("POST baseline", "POST", BASELINE_PATH, form, 204)

    baseline, insert_errors = closed_loop(port, [lambda f=f: insert(f) for f in baseline_forms])
    return enrol, baseline, errors + join_errors + insert_errors


def _ms(figures: dict, key: str) -> str:
    value = figures.get(key)
    return "-" if value is None else f"{value:.1f}"


def _print_summary(details: dict, server_log: str) -> None:
    rows = details["rows"]
    print(
        f"\nFront door: {details['arrived']} people through the recruitment links within "
        f"{details['arrival_window_s']:g} s (all done after {details['arrivals_took_s']:.1f} s); "
        f"gunicorn, {details['gunicorn_sync_workers']} sync workers, PostgreSQL, loopback SMTP, "
        f"{details['cpu_cores']} CPU cores"
    )
    print(
        f"  arrived {details['arrived']}, ineligible {details['ineligible']}, unconfirmed "
        f"{details['unconfirmed']}, confirmed {details['confirmed']} "
        f"({details['pressed_twice']} pressed Join twice at once)"
    )
    print(
        f"  enrolled {rows['enrolled']} (arrivals and enrol phase): lost {rows['lost']}, "
        f"enrolled twice {rows['twice']}, enrolled unexpectedly {rows['unexpected']}; allocation "
        f"positions per stratum {'contiguous' if rows['contiguous'] else 'NOT CONTIGUOUS'} "
        f"({', '.join(f'{k}: {n}' for k, n in rows['strata'].items())})"
    )
    print("  per page:                   count   p50 ms   p99 ms")
    for kind, figures in details["per_page"].items():
        print(
            f"    {kind:24} {figures['count']:7} {_ms(figures, 'p50_ms'):>8} "
            f"{_ms(figures, 'p99_ms'):>8}"
        )
    print(
        f"  enrol step ({details['enrol_phase_people']} people, closed loop): "
        f"{details['enrol_per_s']:.1f} joins/s vs {details['baseline_per_s']:.1f} bare inserts/s "
        f"of the same rows: ratio {details['ratio']:.2f}"
    )
    for error in details["first_errors"]:
        print(f"  error: {error}")
    if server_log:
        print(f"  gunicorn's log ends:\n{server_log}")
