"""The code version every analysis run records: the value the build gave (the Docker image has no
``.git``), else the checkout's commit, else "unknown"."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analytics.services import analysis_run_create, code_version

REPO = Path(__file__).resolve().parents[2]
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed here")


def _git(repo, *arguments: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    command += ["-c", "commit.gpgsign=false", *arguments]
    return subprocess.run(command, cwd=repo, capture_output=True, text=True, check=True).stdout


@pytest.mark.unit
def test_the_build_s_value_comes_first(settings, tmp_path):
    settings.FLOURISH_CODE_VERSION = "0123456789ab"
    assert code_version(repo_dir=tmp_path) == "0123456789ab"


@pytest.mark.unit
def test_the_image_s_environment_variable_is_the_setting():
    """infra/Dockerfile sets FLOURISH_CODE_VERSION in the environment of every process."""
    program = "import django; django.setup(); from analytics.services import code_version; "
    program += "print(code_version())"
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings.test")
    env["FLOURISH_CODE_VERSION"] = "built-from-abc"
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.strip() == "built-from-abc", result.stderr


@pytest.mark.unit
@needs_git
def test_without_it_the_checkout_s_commit(settings, tmp_path):
    settings.FLOURISH_CODE_VERSION = ""
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "commit", "-q", "--allow-empty", "-m", "first")
    head = _git(tmp_path, "rev-parse", "HEAD").strip()
    assert code_version(repo_dir=tmp_path) == head[:12]


@pytest.mark.unit
def test_without_it_or_a_checkout_unknown(settings, tmp_path, monkeypatch):
    settings.FLOURISH_CODE_VERSION = ""
    # git also looks in the folders above; stop it here, as in the image, whose /app has none.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert code_version(repo_dir=tmp_path) == "unknown"


@pytest.mark.django_db
def test_a_run_records_the_build_s_value(settings, small_trial):
    settings.FLOURISH_CODE_VERSION = "image-build-7"
    run = analysis_run_create(trial=small_trial, enqueue=False)
    assert run.code_version == "image-build-7"
