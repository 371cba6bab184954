"""Adverse events, participant safety flags and the arms' canary checks (safety.models)."""

import django.db.models.deletion
import simple_history.models
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('trials', '0013_safety_and_oversight_kinds'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='HistoricalAdverseEvent',
            fields=[
                ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                ('source', models.CharField(choices=[('participant', 'reported by the participant'), ('coordinator', 'recorded by a coordinator')], max_length=20)),
                ('category', models.CharField(choices=[('distress', 'felt worse, distressed or anxious'), ('harmful_reply', 'the assistant said something harmful or upsetting'), ('bad_advice', 'the assistant gave wrong or unsafe advice'), ('dependence', 'relied on the assistant too much'), ('privacy', 'a privacy concern'), ('other', 'Other')], max_length=20)),
                ('severity', models.CharField(choices=[('mild', 'Mild'), ('moderate', 'Moderate'), ('severe', 'Severe')], max_length=10)),
                ('description', models.TextField(blank=True, help_text='Free text, optional; may hold personal details.')),
                ('serious', models.BooleanField(blank=True, help_text='Death, life-threatening, hospitalisation, lasting disability, or another medically important event (ICH E2A); empty until assessed.', null=True)),
                ('relatedness', models.CharField(choices=[('not_assessed', 'not yet assessed'), ('not_related', 'not related'), ('unlikely', 'unlikely related'), ('possibly', 'possibly related'), ('probably', 'probably related'), ('definitely', 'definitely related')], default='not_assessed', max_length=20)),
                ('expected', models.BooleanField(blank=True, help_text='Listed as a foreseeable risk in the consent document.', null=True)),
                ('outcome', models.CharField(choices=[('unknown', 'Unknown'), ('recovering', 'recovering or resolving'), ('recovered', 'recovered or resolved'), ('sequelae', 'recovered with lasting effects'), ('not_recovered', 'not recovered or not resolved'), ('fatal', 'Fatal')], default='unknown', max_length=20)),
                ('onset_date', models.DateField(blank=True, null=True)),
                ('resolved_date', models.DateField(blank=True, null=True)),
                ('wave_index', models.PositiveIntegerField(blank=True, null=True)),
                ('reported_at', models.DateTimeField()),
                ('assessed_at', models.DateTimeField(blank=True, null=True)),
                ('history_id', models.AutoField(primary_key=True, serialize=False)),
                ('history_date', models.DateTimeField(db_index=True)),
                ('history_change_reason', models.CharField(max_length=100, null=True)),
                ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                ('assessed_by', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('participant', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='trials.participant')),
                ('recorded_by', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('trial', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='trials.trial')),
            ],
            options={
                'verbose_name': 'historical adverse event',
                'verbose_name_plural': 'historical adverse events',
                'ordering': ('-history_date', '-history_id'),
                'get_latest_by': ('history_date', 'history_id'),
            },
            bases=(simple_history.models.HistoricalChanges, models.Model),
        ),
        migrations.CreateModel(
            name='AdverseEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('source', models.CharField(choices=[('participant', 'reported by the participant'), ('coordinator', 'recorded by a coordinator')], max_length=20)),
                ('category', models.CharField(choices=[('distress', 'felt worse, distressed or anxious'), ('harmful_reply', 'the assistant said something harmful or upsetting'), ('bad_advice', 'the assistant gave wrong or unsafe advice'), ('dependence', 'relied on the assistant too much'), ('privacy', 'a privacy concern'), ('other', 'Other')], max_length=20)),
                ('severity', models.CharField(choices=[('mild', 'Mild'), ('moderate', 'Moderate'), ('severe', 'Severe')], max_length=10)),
                ('description', models.TextField(blank=True, help_text='Free text, optional; may hold personal details.')),
                ('serious', models.BooleanField(blank=True, help_text='Death, life-threatening, hospitalisation, lasting disability, or another medically important event (ICH E2A); empty until assessed.', null=True)),
                ('relatedness', models.CharField(choices=[('not_assessed', 'not yet assessed'), ('not_related', 'not related'), ('unlikely', 'unlikely related'), ('possibly', 'possibly related'), ('probably', 'probably related'), ('definitely', 'definitely related')], default='not_assessed', max_length=20)),
                ('expected', models.BooleanField(blank=True, help_text='Listed as a foreseeable risk in the consent document.', null=True)),
                ('outcome', models.CharField(choices=[('unknown', 'Unknown'), ('recovering', 'recovering or resolving'), ('recovered', 'recovered or resolved'), ('sequelae', 'recovered with lasting effects'), ('not_recovered', 'not recovered or not resolved'), ('fatal', 'Fatal')], default='unknown', max_length=20)),
                ('onset_date', models.DateField(blank=True, null=True)),
                ('resolved_date', models.DateField(blank=True, null=True)),
                ('wave_index', models.PositiveIntegerField(blank=True, null=True)),
                ('reported_at', models.DateTimeField()),
                ('assessed_at', models.DateTimeField(blank=True, null=True)),
                ('assessed_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('participant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='adverse_events', to='trials.participant')),
                ('recorded_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('trial', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='adverse_events', to='trials.trial')),
            ],
            options={
                'ordering': ['trial', '-reported_at'],
                'indexes': [models.Index(fields=['trial', 'serious'], name='adverse_event_serious')],
            },
        ),
        migrations.CreateModel(
            name='CanaryCheck',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('sweep', models.CharField(help_text='The sweep that sent it (one per beat).', max_length=40)),
                ('prompt_index', models.PositiveSmallIntegerField()),
                ('checked_at', models.DateTimeField()),
                ('status', models.CharField(choices=[('ok', 'Ok'), ('drifted', 'model changed'), ('unreachable', 'endpoint did not answer')], max_length=20)),
                ('served_model', models.CharField(blank=True, max_length=200)),
                ('system_fingerprint', models.CharField(blank=True, max_length=200)),
                ('reply_stats', models.JSONField(blank=True, default=dict)),
                ('error', models.CharField(blank=True, max_length=500)),
                ('arm', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='canary_checks', to='trials.arm')),
            ],
            options={
                'ordering': ['arm', '-checked_at'],
                'constraints': [models.UniqueConstraint(fields=('arm', 'sweep', 'prompt_index'), name='canary_check_once_per_sweep')],
            },
        ),
        migrations.CreateModel(
            name='SafetyFlag',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('deterioration', 'reliable deterioration'), ('safety_answer', 'safety answer')], max_length=20)),
                ('source_key', models.CharField(max_length=200)),
                ('detail', models.JSONField(blank=True, default=dict)),
                ('raised_at', models.DateTimeField()),
                ('acknowledged_at', models.DateTimeField(blank=True, null=True)),
                ('note', models.TextField(blank=True, help_text='What the coordinator did.')),
                ('acknowledged_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('participant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='safety_flags', to='trials.participant')),
                ('trial', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='safety_flags', to='trials.trial')),
            ],
            options={
                'ordering': ['trial', '-raised_at'],
                'constraints': [models.UniqueConstraint(fields=('participant', 'kind', 'source_key'), name='safety_flag_once')],
            },
        ),
    ]
