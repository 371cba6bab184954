"""`make demo`'s launcher on a fresh state directory: embedded SQLite and file-system broker."""

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from infra.services import free_port
from tests.conftest import wait_for
from tests.dashboards.conftest import callback_body

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
REPO = Path(__file__).resolve().parents[2]
EXTERNAL_SERVICES = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_TASK_DEFAULT_QUEUE",
    "CELERY_ANALYSIS_QUEUE",
    "DJANGO_SETTINGS_MODULE",
)


def _read_until(process: subprocess.Popen, marker: str, timeout: float) -> str:
    output = ""
    deadline = time.monotonic() + timeout
    while marker not in output:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        output += line
        if time.monotonic() > deadline:
            break
    return output


def test_demo_starts_serves_every_printed_url_and_stops_on_ctrl_c(tmp_path):
    """The pages are up before the simulated cohort is recorded behind them; e-mails land in the
    printed folder with links to this port; Ctrl-C ends the demo with status 0."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in EXTERNAL_SERVICES}
    env |= {"PORT": str(port), "FLOURISH_VAR_DIR": str(tmp_path / "var")}
    process = subprocess.Popen(
        ["bash", "infra/demo.sh"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output = _read_until(process, "Press Ctrl-C", timeout=240)
        assert "Press Ctrl-C" in output, output
        base = f"http://127.0.0.1:{port}"
        health = json.load(urllib.request.urlopen(f"{base}/healthz", timeout=10))
        assert health["status"] == "ok" and health["broker"]["detail"] == "filesystem"

        survey = re.search(r"Participant survey.*:\s+(\S+)", output).group(1)
        page = urllib.request.urlopen(survey, timeout=10).read().decode()
        assert "In most ways my life is close to my ideal." in page  # the first page: SWLS

        analyst = re.search(r"Analyst of the demo trial:\s+analyst / (\S+)", output).group(1)
        assert re.search(r"Superuser, apart from the roles.*: admin / ", output)
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        login_page = opener.open(f"{base}/accounts/login/", timeout=10).read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page).group(1)
        form = urllib.parse.urlencode(
            {
                "username": "analyst",
                "password": analyst,
                "csrfmiddlewaretoken": token,
                "next": "/dashboards/demo/",
            }
        ).encode()
        request = urllib.request.Request(
            f"{base}/accounts/login/", data=form, headers={"Referer": f"{base}/accounts/login/"}
        )
        opener.open(request, timeout=10)
        # The cohort is recorded behind the pages, then the worker analyses it (it compiles the
        # Bayesian sampler first): wait for its results up to a deadline.
        deadline = time.monotonic() + 420
        page = opener.open(f"{base}/dashboards/demo/", timeout=10).read().decode()
        assert "Flourish dashboard" in page
        while True:
            # What the Dash page's renderer asks for: the stored results drawn as panels.
            render = urllib.request.Request(
                f"{base}/dashboards/_dash-update-component",
                data=callback_body("demo").encode(),
                headers={"Content-Type": "application/json"},
            )
            dashboard = opener.open(render, timeout=60).read().decode()
            if "mental_wellbeing" in dashboard or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert "confirmatory" in dashboard and "mental_wellbeing" in dashboard
        # The invitation to this run's participant, sent by the worker's sweep (every minute,
        # between the worker's other tasks).
        mail = Path(re.search(r"E-mails the platform sends.*:\s+(\S+)", output).group(1))
        invitation = wait_for(
            lambda: next(
                (m.read_text() for m in mail.glob("*.log") if "To: you+1@" in m.read_text()), ""
            ),
            timeout=240,
            interval=2,
            what="the participant's invitation in the demo's mail folder",
        )
        assert f"http://127.0.0.1:{port}/s/" in invitation
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    assert process.returncode == 0, process.stdout.read()
    # Ctrl-C stopped every process the demo started (an exited child awaiting its reaper, state
    # Z, is already stopped).
    table = subprocess.run(["ps", "-eo", "pgid=,stat=,args="], capture_output=True, text=True)
    alive = [
        line
        for line in table.stdout.splitlines()
        if line.split()[0] == str(process.pid) and not line.split()[1].startswith("Z")
    ]
    assert alive == []
