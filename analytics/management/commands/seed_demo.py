"""Seed the ``demo`` trial and its users once; later runs reuse what exists."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from analytics.seeding import synthetic_telemetry_release, synthetic_trial_create
from analytics.services import analysis_run_create
from surveys.links import survey_path
from trials.models import ConsentScope, ParticipantContact, Trial, TrialMember
from trials.services import member_add, participant_enrol

DEMO_SLUG = "demo"
DEMO_PARTICIPANT_EMAIL = "you@example.org"


class Command(BaseCommand):
    help = "Create the demo trial, an admin and an analyst; print the logins and links as JSON."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--participants", type=int, default=300)

    def handle(self, *args, participants: int, **kwargs) -> None:
        credentials_file = settings.VAR_DIR / "demo-credentials.txt"
        with transaction.atomic():
            if not Trial.objects.filter(slug=DEMO_SLUG).exists():
                self.stderr.write(f"Seeding the demo trial ({participants} participants)…")
                trial = synthetic_trial_create(
                    slug=DEMO_SLUG,
                    title="Demo: does a flourishing-oriented assistant help?",
                    participants=participants,
                    waves=4,
                    effect=1.5,
                    seed=2026,
                )
                participant_enrol(
                    trial=trial,
                    email=DEMO_PARTICIPANT_EMAIL,
                    consent_document=trial.consent_documents.get(),
                    scopes=[ConsentScope.SURVEYS],
                )
                # Arm b's assistant is used an hour a week more: the divergence check reads it.
                synthetic_telemetry_release(trial=trial, minutes_effect=60, seed=2026)
                analysis_run_create(trial=trial)
            password = self._users(credentials_file)
            member_add(
                trial=Trial.objects.get(slug=DEMO_SLUG),
                user=get_user_model().objects.get(username="analyst"),
                role=TrialMember.Role.ANALYST,
            )
        participant = ParticipantContact.objects.get(
            email=DEMO_PARTICIPANT_EMAIL, participant__trial__slug=DEMO_SLUG
        ).participant
        for line in (
            f"login=admin / {password}",
            f"analyst=analyst / {password}",
            f"survey={survey_path(participant.pk, participant.trial.waves.get(index=0).pk)}",
        ):
            self.stdout.write(line)

    def _users(self, credentials_file) -> str:
        """Create ``admin`` and ``analyst`` once, with one random password kept in var/."""
        if credentials_file.exists():
            return credentials_file.read_text().strip()
        password = secrets.token_urlsafe(12)
        User = get_user_model()
        User.objects.create_superuser("admin", "admin@example.org", password)
        analyst = User.objects.create_user("analyst", "analyst@example.org", password)
        # The group and its permissions come from trials.roles, synchronised on migrate.
        analyst.groups.add(Group.objects.get(name="Analysts"))
        credentials_file.parent.mkdir(parents=True, exist_ok=True)
        credentials_file.write_text(password + "\n")
        return password
