"""The arms' drift watch (safety.canary) against a local server that speaks OpenAI's chat
completions protocol: the real ``openai`` client sends the canary prompts over loopback HTTP, and
the server answers as OpenAI does (it reports the snapshot it was asked for, unless told that the
provider now serves another one)."""

import hashlib
import html
import json
import re
import secrets
import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse

from safety.canary import NO_KEY, api_key_for, canary_sweep, pinned_model
from safety.models import CanaryCheck
from safety.tasks import canary_sweep as canary_sweep_task
from surveys.services import wave_create
from tests.conftest import wait_for
from tests.safety.conftest import coordinator_of
from tests.trials.factories import bodies, valid_plan
from trials.models import ConsentDocument, ConsentScope, Trial, TrialEvent
from trials.selectors import preregistration_current
from trials.services import (
    approval_record,
    arm_create,
    oversight_assign,
    preregistration_freeze,
    trial_create,
    trial_transition,
)

pytestmark = pytest.mark.django_db

Status = CanaryCheck.Status
PROMPTS = {
    "a": ["How should I plan a hard week?", "I feel lonely tonight."],
    "b": ["Can you decide for me whether to quit my job?"],
}
# Arm a is pinned OpenAI's way (a model and a snapshot date), arm b by the snapshot's full name.
PINS = {"a": ("gpt-4o", "2024-08-06"), "b": ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")}


class FakeOpenAI:
    """An OpenAI-compatible endpoint on a port the OS chose. ``served_model`` (None: the model
    asked for) and ``fingerprint`` say what it reports; ``requests`` keeps what it received."""

    def __init__(self):
        self.served_model: str | None = None
        self.garbled = False  # answer a proxy's error page instead of a completion
        self.fingerprint = "fp_44709d6fcb"
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/chat/completions":
                    self._answer(404, {"error": {"message": "Not found", "type": "invalid"}})
                    return
                fake.requests.append(body | {"authorization": self.headers["Authorization"]})
                if fake.garbled:
                    self._answer(200, "<html>Bad gateway</html>", "text/html")
                    return
                self._answer(200, fake.completion(body))

            def _answer(self, status: int, payload, content_type="application/json") -> None:
                data = (json.dumps(payload) if isinstance(payload, dict) else payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_port}"
        self.url = f"http://{self.host}/v1"

    def completion(self, request: dict) -> dict:
        """A chat completion object as https://platform.openai.com/docs/api-reference/chat
        documents it."""
        reply = reply_to(request["messages"][-1]["content"])
        return {
            "id": f"chatcmpl-{secrets.token_hex(12)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.served_model or request["model"],
            "system_fingerprint": self.fingerprint,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29},
        }

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def reply_to(prompt: str) -> str:
    return f"Let us think about it together: {prompt}"


@contextmanager
def refused_port():
    """The address of a port nothing listens on (taken from the OS, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield f"http://127.0.0.1:{port}/v1"


@contextmanager
def silent_port():
    """The address of a port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"


@contextmanager
def garbled_endpoint():
    """The address of an endpoint that answers with something other than a chat completion."""
    with FakeOpenAI() as server:
        server.garbled = True
        yield server.url


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(autouse=True)
def short_timeout(settings):
    settings.CANARY_TIMEOUT_SECONDS = 0.5


def watched_trial(slug: str, endpoints: dict[str, str]) -> Trial:
    """An enrolling trial whose arms a and b answer at ``endpoints`` and whose plan in force
    registers ``PROMPTS``."""
    trial = trial_create(slug=slug, title=slug.upper())
    for slug_, url in endpoints.items():
        model_id, version = PINS[slug_]
        arm_create(
            trial=trial,
            slug=slug_,
            name=slug_.upper(),
            is_control=slug_ == "a",
            endpoint_url=url,
            model_id=model_id,
            model_version=version,
            system_prompt=f"You are assistant {slug_}.",
            parameters={"temperature": 0.2, "max_tokens": 200},
        )
    for index in range(3):
        wave_create(trial=trial, index=index, day_offset=14 * index, instrument_codes=["who5"])
    preregistration_freeze(trial=trial, plan=valid_plan(safety={"canary_prompts": PROMPTS}))
    trial = trial_transition(trial=trial, to=Trial.State.REGISTERED)
    for body in bodies("Ethics", "Council"):
        oversight_assign(trial=trial, body=body)
        approval_record(body=body, preregistration=preregistration_current(trial))
    ConsentDocument.objects.create(
        trial=trial, version=1, text="Consent.", scopes=list(ConsentScope.values)
    )
    return trial_transition(trial=trial, to=Trial.State.ENROLLING)


def incidents(trial: Trial) -> list[dict]:
    events = trial.events.filter(kind=TrialEvent.Kind.ARM_INTEGRITY_FAILURE).order_by("sequence")
    return [event.detail for event in events]


def statuses(trial: Trial, sweep: str) -> dict[tuple[str, int], str]:
    checks = CanaryCheck.objects.filter(arm__trial=trial, sweep=sweep)
    return {(check.arm.slug, check.prompt_index): check.status for check in checks}


def test_the_pinned_model_is_the_snapshot_name_openai_reports():
    assert pinned_model("gpt-4o", "2024-08-06") == "gpt-4o-2024-08-06"
    assert pinned_model("gpt-4o", "gpt-4o-2024-08-06") == "gpt-4o-2024-08-06"


def test_a_key_goes_only_to_the_host_it_is_configured_for(settings):
    settings.ASSISTANT_API_KEYS = {"api.openai.com": "sk-a", "llm.lab.example:8000": "sk-b"}
    assert api_key_for("https://api.openai.com/v1") == "sk-a"
    assert api_key_for("http://llm.lab.example:8000/v1") == "sk-b"
    assert api_key_for("http://llm.lab.example/v1") == NO_KEY
    assert api_key_for("https://api.openai.com.attacker.example/v1") == NO_KEY


def test_endpoints_serving_their_pins_are_ok_and_get_the_arm_s_configuration(fake, settings):
    settings.ASSISTANT_API_KEYS = {fake.host: "sk-test-key"}
    trial = watched_trial("steady", {"a": fake.url, "b": fake.url})

    counts = canary_sweep(sweep="s1")

    assert counts == {
        "ok": 3,
        "drifted": 0,
        "unreachable": 0,
        "incidents": 0,
        "already_recorded": 0,
    }
    assert set(statuses(trial, "s1").values()) == {Status.OK}
    assert incidents(trial) == []
    sent = sorted((r["model"], r["messages"][-1]["content"]) for r in fake.requests)
    assert sent == sorted(
        [("gpt-4o-2024-08-06", prompt) for prompt in PROMPTS["a"]]
        + [("gpt-4o-mini-2024-07-18", PROMPTS["b"][0])]
    )
    for request in fake.requests:
        assert request["temperature"] == 0.2 and request["max_tokens"] == 200
        assert request["messages"][0]["role"] == "system"
        assert request["authorization"] == "Bearer sk-test-key"
    check = CanaryCheck.objects.get(arm__slug="a", sweep="s1", prompt_index=1)
    text = reply_to(PROMPTS["a"][1])
    assert check.served_model == "gpt-4o-2024-08-06"
    assert check.system_fingerprint == fake.fingerprint
    assert check.reply_stats == {
        "characters": len(text),
        "words": len(text.split()),
        "finish_reason": "stop",
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
    }


def test_another_model_version_raises_one_incident_within_one_sweep(fake):
    trial = watched_trial("swapped", {"a": fake.url, "b": fake.url})
    canary_sweep(sweep="s1")
    fake.served_model = "gpt-4o-2024-11-20"  # the provider moved every name to a new snapshot

    counts = canary_sweep(sweep="s2")

    assert set(statuses(trial, "s2").values()) == {Status.DRIFTED}
    assert counts["drifted"] == 3 and counts["incidents"] == 2  # one per arm
    by_arm = {detail["arm"]: detail for detail in incidents(trial)}
    assert by_arm["a"]["expected_model"] == "gpt-4o-2024-08-06"
    assert by_arm["a"]["served_model"] == "gpt-4o-2024-11-20"
    assert by_arm["b"]["expected_model"] == "gpt-4o-mini-2024-07-18"

    # While the drift persists, each sweep records it and raises nothing more.
    canary_sweep(sweep="s3")
    assert set(statuses(trial, "s3").values()) == {Status.DRIFTED}
    assert len(incidents(trial)) == 2

    # Back on the pin, then drifting again: a new drift, a new incident.
    fake.served_model = None
    canary_sweep(sweep="s4")
    assert set(statuses(trial, "s4").values()) == {Status.OK}
    fake.served_model = "gpt-4o-2024-11-20"
    canary_sweep(sweep="s5")
    assert len(incidents(trial)) == 4


def test_a_changed_fingerprint_is_an_incident(fake):
    trial = watched_trial("refitted", {"a": fake.url, "b": fake.url})
    first = fake.fingerprint
    canary_sweep(sweep="s1")
    fake.fingerprint = "fp_9b0abffe81"

    canary_sweep(sweep="s2")

    assert set(statuses(trial, "s2").values()) == {Status.DRIFTED}
    details = incidents(trial)
    assert len(details) == 2
    assert {d["expected_fingerprint"] for d in details} == {first}
    assert {d["served_fingerprint"] for d in details} == {"fp_9b0abffe81"}
    assert {d["served_model"] == d["expected_model"] for d in details} == {True}


@pytest.mark.parametrize(
    "down", [refused_port, silent_port, garbled_endpoint], ids=["refused", "silent", "garbled"]
)
def test_an_endpoint_that_does_not_answer_is_unreachable_and_the_others_are_checked(fake, down):
    with down() as dead:
        trial = watched_trial("patchy", {"a": dead, "b": fake.url})
        counts = canary_sweep(sweep="s1")

    assert statuses(trial, "s1") == {
        ("a", 0): Status.UNREACHABLE,
        ("a", 1): Status.UNREACHABLE,
        ("b", 0): Status.OK,
    }
    assert counts["unreachable"] == 2 and counts["ok"] == 1
    unreachable = CanaryCheck.objects.filter(arm__trial=trial, status=Status.UNREACHABLE)
    assert all(check.error and not check.served_model for check in unreachable)
    assert incidents(trial) == []


def test_a_redelivered_sweep_sends_and_writes_nothing_twice(fake):
    trial = watched_trial("redelivered", {"a": fake.url, "b": fake.url})
    fake.served_model = "gpt-4o-2024-11-20"
    # The beat task keys its sweep by its task id, which a re-delivered message keeps.
    canary_sweep_task.apply(task_id="sweep-7f3a")
    rows, sent = CanaryCheck.objects.count(), len(fake.requests)

    again = canary_sweep_task.apply(task_id="sweep-7f3a").get()

    assert again["already_recorded"] == 3 and again["drifted"] == again["incidents"] == 0
    assert CanaryCheck.objects.count() == rows == 3
    assert len(fake.requests) == sent
    assert len(incidents(trial)) == 2


def test_the_incident_is_shown_to_the_trial_s_coordinators_only(client, fake):
    trial = watched_trial("shown", {"a": fake.url, "b": fake.url})
    own = coordinator_of(trial, "own")
    other_trial = watched_trial("elsewhere", {"a": fake.url, "b": fake.url})
    stranger = coordinator_of(other_trial, "stranger")
    fake.served_model = "gpt-4o-2024-11-20"
    canary_sweep(sweep="s1")
    opened = CanaryCheck.objects.get(arm__trial=trial, arm__slug="a", prompt_index=0)
    checks = reverse("admin:safety_canarycheck_changelist")

    client.force_login(stranger)
    listed = client.get(checks, {"status": "drifted"}).context["cl"].result_list
    assert {check.arm.trial_id for check in listed} == {other_trial.pk}
    refused = client.get(reverse("admin:safety_canarycheck_change", args=[opened.pk]))
    assert refused.status_code == 403

    client.force_login(own)
    page = client.get(reverse("admin:safety_canarycheck_change", args=[opened.pk]))
    assert page.status_code == 200
    assert "gpt-4o-2024-11-20" in page.text and "Record a protocol deviation" in page.text
    arm_page = client.get(reverse("admin:trials_arm_change", args=[opened.arm_id]))
    assert "Record a protocol deviation" in arm_page.text
    # The link opens the deviation form with the trial and what was found filled in.
    link = re.search(r'href="([^"]*/protocoldeviation/add/\?[^"]*)"', page.text)[1]
    form = client.get(html.unescape(link)).context["adminform"].form
    assert form.initial["trial"] == str(trial.pk)
    assert "gpt-4o-2024-11-20" in form.initial["description"]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_beat_task_on_the_suite_s_worker_raises_the_incident(fake, celery_worker_process):
    trial = watched_trial("on-worker", {"a": fake.url, "b": fake.url})
    fake.served_model = "gpt-4o-2024-11-20"

    sweep = canary_sweep_task.delay().id

    wait_for(
        lambda: CanaryCheck.objects.filter(arm__trial=trial, sweep=sweep).count() == 3,
        what="every canary prompt checked by the worker",
    )
    assert set(statuses(trial, sweep).values()) == {Status.DRIFTED}
    assert sorted(detail["arm"] for detail in incidents(trial)) == ["a", "b"]
