"""Recruitment e-mails sent from a coordinator's contact list, one per trial and keyed hash of
the address, so a list uploaded twice e-mails nobody twice."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("surveys", "0007_front_door_attempt"),
        ("trials", "0011_trialevent_recruitment_invited"),
    ]

    operations = [
        migrations.CreateModel(
            name="RecruitmentInvitation",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key", models.CharField(help_text="HMAC-SHA256 of the address.", max_length=64)),
                ("claimed_at", models.DateTimeField(blank=True, null=True)),
                ("sent_at", models.DateTimeField(blank=True, null=True)),
                (
                    "trial",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="trials.trial",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("trial", "key"), name="recruitment_once_per_address"
                    )
                ],
            },
        ),
    ]
