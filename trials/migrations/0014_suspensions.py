"""Each oversight body's suspension of a trial, and each body's lifting of it, as rows the audit
chain vouches for (trials.models.Suspension, SuspensionLift). Like the record in 0003 and 0004,
the database refuses to delete or truncate them, to change what a suspension said, to lift a
suspension twice, or to change a lift; setting ``lifted_at`` once, the hash of the recording
event and the links that ``on_delete=SET_NULL`` clears stay writable."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


# (table, event, condition over OLD/NEW or None for always, message), as in 0003.
RULES = [
    (
        "trials_suspension",
        "UPDATE",
        "OLD.trial_id IS DISTINCT FROM NEW.trial_id"
        " OR OLD.body_id IS DISTINCT FROM NEW.body_id"
        " OR OLD.reason IS DISTINCT FROM NEW.reason"
        " OR OLD.suspended_at IS DISTINCT FROM NEW.suspended_at"
        " OR OLD.state_before IS DISTINCT FROM NEW.state_before"
        " OR (OLD.lifted_at IS NOT NULL AND OLD.lifted_at IS DISTINCT FROM NEW.lifted_at)",
        "A suspension cannot be changed, only lifted once.",
    ),
    ("trials_suspension", "DELETE", None, "A suspension cannot be deleted."),
    (
        "trials_suspensionlift",
        "UPDATE",
        "OLD.suspension_id IS DISTINCT FROM NEW.suspension_id"
        " OR OLD.body_id IS DISTINCT FROM NEW.body_id"
        " OR OLD.rationale IS DISTINCT FROM NEW.rationale"
        " OR OLD.lifted_at IS DISTINCT FROM NEW.lifted_at",
        "A lifted suspension's record cannot be changed.",
    ),
    ("trials_suspensionlift", "DELETE", None, "A lifted suspension's record cannot be deleted."),
]
TABLES = ["trials_suspension", "trials_suspensionlift"]


def _name(table: str, event: str) -> str:
    return f"{table}_refuse_{event.lower()}"


def _install(apps, schema_editor):
    # flourish_refuse_change and flourish_refuse_truncate are 0003's and 0004's functions.
    vendor = schema_editor.connection.vendor
    for table, event, condition, message in RULES:
        quoted = message.replace("'", "''")
        if vendor == "postgresql":
            when = f"WHEN ({condition})" if condition else ""
            schema_editor.execute(
                f"CREATE TRIGGER {_name(table, event)} BEFORE {event} ON {table} FOR EACH ROW "
                f"{when} EXECUTE FUNCTION flourish_refuse_change('{quoted}')",
                None,
            )
        elif vendor == "sqlite":
            when = f"WHEN {condition.replace('IS DISTINCT FROM', 'IS NOT')}" if condition else ""
            schema_editor.execute(
                f"CREATE TRIGGER {_name(table, event)} BEFORE {event} ON {table} FOR EACH ROW "
                f"{when} BEGIN SELECT RAISE(ABORT, '{quoted}'); END",
                None,
            )
        else:
            raise NotImplementedError(f"No immutability triggers for {vendor}.")
    if vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(
                f"CREATE TRIGGER {table}_refuse_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION flourish_refuse_truncate()"
            )


def _remove(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    suffix = "ON {}" if vendor == "postgresql" else ""
    for table, event, _condition, _message in RULES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {_name(table, event)} {suffix.format(table)}")
    if vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_refuse_truncate ON {table}")


class Migration(migrations.Migration):

    dependencies = [
        ('trials', '0013_safety_and_oversight_kinds'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Suspension',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('reason', models.TextField()),
                ('suspended_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('state_before', models.CharField(choices=[('draft', 'Draft'), ('registered', 'Registered'), ('enrolling', 'Enrolling'), ('follow_up', 'follow-up'), ('closed', 'Closed'), ('analysed', 'Analysed'), ('suspended', 'Suspended'), ('terminated', 'Terminated')], help_text='The state the trial returns to when the last standing suspension is lifted.', max_length=20)),
                ('lifted_at', models.DateTimeField(blank=True, null=True)),
                ('chain_hash', models.CharField(blank=True, help_text='The hash of the audit event that recorded it.', max_length=64)),
                ('body', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='suspensions', to='trials.oversightbody')),
                ('suspended_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('trial', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='suspensions', to='trials.trial')),
            ],
            options={
                'ordering': ['trial', 'suspended_at'],
            },
        ),
        migrations.CreateModel(
            name='SuspensionLift',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('rationale', models.TextField()),
                ('lifted_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('chain_hash', models.CharField(blank=True, help_text='The hash of the audit event that recorded it.', max_length=64)),
                ('body', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='trials.oversightbody')),
                ('lifted_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('suspension', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='lifts', to='trials.suspension')),
            ],
            options={
                'ordering': ['suspension', 'lifted_at'],
            },
        ),
        migrations.AddConstraint(
            model_name='suspension',
            constraint=models.UniqueConstraint(condition=models.Q(('lifted_at__isnull', True)), fields=('trial', 'body'), name='suspension_one_standing_per_body'),
        ),
        migrations.AddConstraint(
            model_name='suspensionlift',
            constraint=models.UniqueConstraint(fields=('suspension', 'body'), name='suspension_lift_per_body'),
        ),
        migrations.RunPython(_install, _remove),
    ]
