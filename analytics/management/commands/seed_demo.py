"""Prepare the ``demo`` trial: the quick part at once, the simulated cohort with ``--cohort``.

Without ``--cohort`` (``make demo`` runs this before it starts the servers) the command migrates
the database, opens the demo trial if it is missing, keeps one login per role and enrols a new
participant on every run, so the printed survey link is always unused; it prints ``key=value``
lines for the launcher. With ``--cohort`` (the launcher runs it in the background once the pages
are up) it records the simulated cohort's answers and telemetry in short transactions and queues
the confirmatory analysis for the worker; an interrupted run is resumed by the next one.
"""

import re
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from analytics.models import AnalysisRun
from analytics.seeding import (
    synthetic_cohort_record,
    synthetic_dose_release,
    synthetic_telemetry_release,
    synthetic_trial_open,
)
from analytics.services import analysis_run_create
from surveys.links import survey_path
from trials.models import ConsentScope, OversightBody, ParticipantContact, Trial, TrialMember
from trials.services import member_add, participant_enrol, trial_create

DEMO_SLUG = "demo"
# A trial the demo's coordinator, analyst and ethics board have nothing to do with: only the
# superuser sees it, which shows the per-trial scoping of every other login.
OTHER_SLUG = "other-lab"
PARTICIPANTS = 300
SEED = 2026
EFFECT = 1.5
# WHO-5 points of change per minute of use over the trial, within arms: the demo's dose release.
DOSE_SLOPE = 0.02
# Each run's fresh participant: you+1@example.org, you+2@example.org, …
PARTICIPANT_EMAIL = "you+{}@example.org"
PARTICIPANT_EMAIL_RE = r"^you\+([0-9]+)@example\.org$"
# Participants per transaction while the cohort is recorded beside the running web server.
COHORT_BATCH = 20


class Command(BaseCommand):
    help = (
        "Migrate and prepare the demo trial, its logins and a fresh participant link (printed as "
        "key=value lines); with --cohort, record the simulated cohort and queue its analysis."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--participants", type=int, default=PARTICIPANTS)
        parser.add_argument(
            "--cohort",
            action="store_true",
            help="Record the simulated cohort's answers and telemetry, then queue the analysis.",
        )

    def handle(self, *args, participants: int, cohort: bool, **kwargs) -> None:
        if cohort:
            self._cohort(participants)
            return
        call_command("migrate", interactive=False, verbosity=0)
        with transaction.atomic():
            trial = Trial.objects.filter(slug=DEMO_SLUG).first() or synthetic_trial_open(
                slug=DEMO_SLUG,
                title="Demo: does a flourishing-oriented assistant help?",
                participants=participants,
                waves=4,
                effect=EFFECT,
                seed=SEED,
                dose=True,
            )
            if not Trial.objects.filter(slug=OTHER_SLUG).exists():
                trial_create(
                    slug=OTHER_SLUG,
                    title="Another lab's trial",
                    description="Only the superuser sees this draft: the demo's other logins "
                    "work on the demo trial alone.",
                )
            logins = self._logins(trial, settings.VAR_DIR / "demo-credentials.txt")
            participant = self._fresh_participant(trial)
        analysed = AnalysisRun.objects.filter(trial=trial).exists()
        for key, value in [
            *logins.items(),
            ("survey", survey_path(participant.pk, trial.waves.get(index=0).pk)),
            ("cohort", "ready" if analysed else "pending"),
        ]:
            self.stdout.write(f"{key}={value}")

    def _cohort(self, participants: int) -> None:
        trial = Trial.objects.get(slug=DEMO_SLUG)
        if AnalysisRun.objects.filter(trial=trial).exists():
            return
        self.stderr.write(f"Recording the demo's simulated cohort ({participants} participants)…")
        synthetic_cohort_record(
            trial=trial,
            participants=participants,
            effect=EFFECT,
            seed=SEED,
            batch_size=COHORT_BATCH,
        )
        # The dose release first: it must not find the budget spent by the windows.
        synthetic_dose_release(trial=trial, slope=DOSE_SLOPE, seed=SEED)
        # Arm b's assistant is used an hour a week more: the divergence check reads it.
        synthetic_telemetry_release(trial=trial, minutes_effect=60, seed=SEED)
        with transaction.atomic():
            analysis_run_create(trial=trial)
        self.stderr.write("The demo's cohort is recorded; the worker is analysing it.")

    def _logins(self, trial: Trial, credentials_file: Path) -> dict[str, str]:
        """One login per role, created when missing, with one random password kept in var/:
        the trial's coordinator, a member of its ethics board, its analyst, and the superuser."""
        if credentials_file.exists():
            password = credentials_file.read_text().strip()
        else:
            password = secrets.token_urlsafe(12)
            credentials_file.parent.mkdir(parents=True, exist_ok=True)
            credentials_file.write_text(password + "\n")
        coordinator = _user("coordinator", password, staff=True, group="Coordinators")
        member_add(trial=trial, user=coordinator, role=TrialMember.Role.COORDINATOR)
        overseer = _user("ethics", password, staff=True, group="Oversight members")
        OversightBody.objects.get(name="Ethics board").members.add(overseer)
        # Analysts read results on the dashboards, not in the admin.
        analyst = _user("analyst", password, staff=False, group="Analysts")
        member_add(trial=trial, user=analyst, role=TrialMember.Role.ANALYST)
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.org", password)
        return {
            "coordinator": f"coordinator / {password}",
            "oversight": f"ethics / {password}",
            "analyst": f"analyst / {password}",
            "superuser": f"admin / {password}",
        }

    def _fresh_participant(self, trial: Trial):
        """A new participant of the demo trial, answering surveys only, for this run's link."""
        taken = ParticipantContact.objects.filter(trial=trial, email__regex=PARTICIPANT_EMAIL_RE)
        numbers = [int(re.match(PARTICIPANT_EMAIL_RE, c.email)[1]) for c in taken]
        return participant_enrol(
            trial=trial,
            email=PARTICIPANT_EMAIL.format(max(numbers, default=0) + 1),
            consent_document=trial.consent_documents.get(version=1),
            scopes=[ConsentScope.SURVEYS],
        )


def _user(username: str, password: str, *, staff: bool, group: str) -> AbstractUser:
    """``username``, created with ``password`` when missing, in ``group`` (whose permissions
    trials.roles keeps in step on migrate)."""
    user, created = get_user_model().objects.get_or_create(
        username=username, defaults={"email": f"{username}@example.org", "is_staff": staff}
    )
    if created:
        user.set_password(password)
        user.save(update_fields=["password"])
    user.groups.add(Group.objects.get(name=group))
    return user
