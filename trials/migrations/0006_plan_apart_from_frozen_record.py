"""Keep a version's plan and its frozen record apart.

Until now one column held a draft's plan and, once frozen, the record that was hashed (the plan
inside an envelope with the arms and the allocation commitment). The column is renamed ``record``
(a rename touches no row, so frozen rows stay as they were, below the triggers of migration 0003);
drafts move their plan to the new ``draft_plan`` column. Then every frozen version is checked to
still hash to its stored SHA-256: if one does not, the migration stops and changes nothing.
"""

import hashlib
import json

from django.db import migrations, models


def _sha256_of(value) -> str:
    # The canonical form of trials.canonical, restated so this migration keeps its meaning if
    # that module changes later.
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _split(apps, schema_editor):
    PreRegistration = apps.get_model("trials", "PreRegistration")
    for draft in PreRegistration.objects.filter(frozen_at__isnull=True):
        draft.draft_plan, draft.record = draft.record, {}
        draft.save(update_fields=["draft_plan", "record"])
    broken = [
        f"{prereg.trial_id} v{prereg.version}"
        for prereg in PreRegistration.objects.filter(frozen_at__isnull=False)
        if _sha256_of(prereg.record) != prereg.sha256
    ]
    if broken:
        raise RuntimeError(f"Frozen versions whose record no longer verifies: {', '.join(broken)}")


def _join(apps, schema_editor):
    PreRegistration = apps.get_model("trials", "PreRegistration")
    for draft in PreRegistration.objects.filter(frozen_at__isnull=True):
        draft.record = draft.draft_plan or {}
        draft.save(update_fields=["record"])


class Migration(migrations.Migration):
    dependencies = [("trials", "0005_audit_chain")]

    operations = [
        migrations.RenameField("preregistration", "plan", "record"),
        migrations.RenameField("historicalpreregistration", "plan", "record"),
        migrations.AlterField(
            model_name="preregistration",
            name="record",
            field=models.JSONField(
                default=dict,
                help_text="The frozen record that sha256 is the hash of; empty for a draft.",
            ),
        ),
        migrations.AlterField(
            model_name="historicalpreregistration",
            name="record",
            field=models.JSONField(
                default=dict,
                help_text="The frozen record that sha256 is the hash of; empty for a draft.",
            ),
        ),
        migrations.AddField(
            model_name="preregistration",
            name="draft_plan",
            field=models.JSONField(
                blank=True, null=True, help_text="The plan being written; empty once frozen."
            ),
        ),
        migrations.AddField(
            model_name="historicalpreregistration",
            name="draft_plan",
            field=models.JSONField(
                blank=True, null=True, help_text="The plan being written; empty once frozen."
            ),
        ),
        migrations.RunPython(_split, _join),
    ]
