"""The audit trail becomes a hash chain (trials.audit): each event gets its position, the name
of who acted, the previous event's hash and its own; approvals and deviations keep the hash of
the event that recorded them. Existing events are chained in the order they were written, and
existing approvals and deviations are vouched for by a ``record_chained`` event each. The
triggers of 0003 are widened so that none of these columns changes once written.
"""

from django.db import migrations, models
from django.utils import timezone

from trials.audit import GENESIS, chain_link, record_chained_link, record_content

# Snapshots of the models' audit_fields as of this migration.
APPROVAL_FIELDS = ("body_id", "preregistration_id", "decided_at", "note")
DEVIATION_FIELDS = ("trial_id", "preregistration_id", "kind", "description", "recorded_at")

FROZEN_ONCE_SET = " OR (OLD.chain_hash <> '' AND NEW.chain_hash IS DISTINCT FROM OLD.chain_hash)"
# (table, condition of 0003, the wider condition now, message)
UPDATE_RULES = [
    (
        "trials_approval",
        "OLD.body_id IS DISTINCT FROM NEW.body_id"
        " OR OLD.preregistration_id IS DISTINCT FROM NEW.preregistration_id"
        " OR OLD.decided_at IS DISTINCT FROM NEW.decided_at"
        " OR OLD.note IS DISTINCT FROM NEW.note",
        FROZEN_ONCE_SET,
        "An approval cannot be changed.",
    ),
    (
        "trials_protocoldeviation",
        "OLD.trial_id IS DISTINCT FROM NEW.trial_id"
        " OR OLD.preregistration_id IS DISTINCT FROM NEW.preregistration_id"
        " OR OLD.kind IS DISTINCT FROM NEW.kind"
        " OR OLD.description IS DISTINCT FROM NEW.description"
        " OR OLD.recorded_at IS DISTINCT FROM NEW.recorded_at",
        FROZEN_ONCE_SET,
        "A recorded protocol deviation cannot be changed.",
    ),
    (
        "trials_trialevent",
        "OLD.trial_id IS DISTINCT FROM NEW.trial_id"
        " OR OLD.kind IS DISTINCT FROM NEW.kind"
        " OR OLD.at IS DISTINCT FROM NEW.at"
        " OR OLD.detail IS DISTINCT FROM NEW.detail",
        " OR OLD.sequence IS DISTINCT FROM NEW.sequence"
        " OR OLD.actor_name IS DISTINCT FROM NEW.actor_name"
        " OR OLD.previous_hash IS DISTINCT FROM NEW.previous_hash"
        " OR OLD.hash IS DISTINCT FROM NEW.hash",
        "An audit event cannot be changed.",
    ),
]


def _create_update_trigger(schema_editor, table: str, condition: str, message: str) -> None:
    name = f"{table}_refuse_update"
    quoted = message.replace("'", "''")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        schema_editor.execute(
            f"CREATE TRIGGER {name} BEFORE UPDATE ON {table} FOR EACH ROW WHEN ({condition}) "
            f"EXECUTE FUNCTION flourish_refuse_change('{quoted}')",
            None,
        )
    else:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")
        when = condition.replace("IS DISTINCT FROM", "IS NOT")
        schema_editor.execute(
            f"CREATE TRIGGER {name} BEFORE UPDATE ON {table} FOR EACH ROW WHEN {when} "
            f"BEGIN SELECT RAISE(ABORT, '{quoted}'); END",
            None,
        )


def _widen_triggers(apps, schema_editor):
    for table, before, added, message in UPDATE_RULES:
        _create_update_trigger(schema_editor, table, before + added, message)


def _narrow_triggers(apps, schema_editor):
    for table, before, _added, message in UPDATE_RULES:
        _create_update_trigger(schema_editor, table, before, message)


def _chain_existing(apps, schema_editor):
    Trial = apps.get_model("trials", "Trial")
    TrialEvent = apps.get_model("trials", "TrialEvent")
    chained = [
        (apps.get_model("trials", "Approval"), "preregistration__trial", APPROVAL_FIELDS),
        (apps.get_model("trials", "ProtocolDeviation"), "trial", DEVIATION_FIELDS),
    ]
    for trial in Trial.objects.all():
        previous, sequence = GENESIS, 0
        events = TrialEvent.objects.filter(trial=trial).select_related("actor")
        for event in events.order_by("at", "id"):
            sequence += 1
            link = chain_link(
                trial_id=trial.pk,
                sequence=sequence,
                previous_hash=previous,
                kind=event.kind,
                detail=event.detail,
                actor_name=event.actor.username if event.actor_id else "",
                at=event.at,
            )
            columns = ("sequence", "actor_name", "previous_hash", "hash")
            TrialEvent.objects.filter(pk=event.pk).update(**{c: link[c] for c in columns})
            previous = link["hash"]
        for model, trial_path, fields in chained:
            for row in model.objects.filter(**{trial_path: trial}).order_by("pk"):
                sequence += 1
                link = record_chained_link(
                    trial_id=trial.pk,
                    sequence=sequence,
                    previous_hash=previous,
                    label=model._meta.label_lower,
                    pk=row.pk,
                    content=record_content(row, fields),
                )
                TrialEvent.objects.create(**link)
                model.objects.filter(pk=row.pk).update(chain_hash=link["hash"])
                previous = link["hash"]


class Migration(migrations.Migration):
    dependencies = [("trials", "0004_refuse_truncate")]

    operations = [
        migrations.AddField(
            model_name="approval",
            name="chain_hash",
            field=models.CharField(
                blank=True,
                help_text="The hash of the audit event that recorded it.",
                max_length=64,
            ),
        ),
        migrations.AddField(
            model_name="protocoldeviation",
            name="chain_hash",
            field=models.CharField(
                blank=True,
                help_text="The hash of the audit event that recorded it.",
                max_length=64,
            ),
        ),
        migrations.AddField(
            model_name="trialevent",
            name="actor_name",
            field=models.CharField(
                blank=True,
                help_text="Who acted, kept when their account is deleted.",
                max_length=150,
            ),
        ),
        migrations.AddField(
            model_name="trialevent",
            name="hash",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="trialevent",
            name="previous_hash",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="trialevent",
            name="sequence",
            field=models.PositiveIntegerField(default=0, help_text="1, 2, 3, … within the trial."),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="trialevent",
            name="at",
            field=models.DateTimeField(default=timezone.now),
        ),
        migrations.RunPython(_chain_existing, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="trialevent",
            constraint=models.UniqueConstraint(
                fields=("trial", "sequence"), name="one_event_per_position"
            ),
        ),
        migrations.RunPython(_widen_triggers, _narrow_triggers),
    ]
