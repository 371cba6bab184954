"""Which of a set of top-level packages a fresh process has imported after running some code,
under the production settings (with placeholder secrets and hosts that are never contacted):
the start-up import tests of the web process and of the Flower ServerApp share it."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def packages_loaded(code: str, packages: tuple[str, ...], *args: str) -> list[str]:
    """Run ``code`` (``sys.argv[1:]`` = ``args``) in a fresh interpreter from the repository and
    return, sorted, the modules of ``packages`` it has loaded by its end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env |= {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DATABASE_URL": "postgres://flourish@db.example.org:5432/flourish",
        "CELERY_BROKER_URL": "amqp://flourish@mq.example.org:5672//",
        "DJANGO_ALLOWED_HOSTS": "flourish.example.org",
    }
    report = (
        "\nimport json, sys\nprint(json.dumps(sorted(name for name in sys.modules "
        f"if name.partition('.')[0] in {set(packages)!r})))\n"
    )
    probe = subprocess.run(
        [sys.executable, "-c", code + report, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    return json.loads(probe.stdout.splitlines()[-1])
