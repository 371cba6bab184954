"""What this round adds to the trials app: the audit kinds of safety and of a body lifting its
suspension, the data monitoring committee as a kind of body, and the support resources a consent
document gives (shown on the trial's support page). Choices live in Python; the one new column
is blank for every existing document."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('trials', '0012_participantcontact_consent_copy'),
    ]

    operations = [
        migrations.AddField(
            model_name='consentdocument',
            name='support_resources',
            field=models.TextField(blank=True, help_text="Where to get help now (crisis lines, services) in this document's language: shown on the trial's support page when an answer or a report calls for it."),
        ),
        migrations.AddField(
            model_name='historicalconsentdocument',
            name='support_resources',
            field=models.TextField(blank=True, help_text="Where to get help now (crisis lines, services) in this document's language: shown on the trial's support page when an answer or a report calls for it."),
        ),
        migrations.AlterField(
            model_name='historicaloversightbody',
            name='kind',
            field=models.CharField(choices=[('ethics_board', 'ethics board'), ('community_council', 'community council'), ('data_protection', 'data-protection officer'), ('data_monitoring_committee', 'data monitoring committee'), ('other', 'Other')], max_length=30),
        ),
        migrations.AlterField(
            model_name='oversightbody',
            name='kind',
            field=models.CharField(choices=[('ethics_board', 'ethics board'), ('community_council', 'community council'), ('data_protection', 'data-protection officer'), ('data_monitoring_committee', 'data monitoring committee'), ('other', 'Other')], max_length=30),
        ),
        migrations.AlterField(
            model_name='trialevent',
            name='kind',
            field=models.CharField(choices=[('trial_created', 'Trial Created'), ('trial_described', 'Trial Described'), ('member_added', 'Member Added'), ('state_changed', 'State Changed'), ('arm_created', 'Arm Created'), ('arm_changed', 'Arm Changed'), ('arm_amended', 'Arm Amended'), ('preregistration_draft_saved', 'Preregistration Draft Saved'), ('preregistration_frozen', 'Preregistration Frozen'), ('deviation_recorded', 'Deviation Recorded'), ('oversight_assigned', 'Oversight Assigned'), ('approval_recorded', 'Approval Recorded'), ('changes_requested', 'Changes Requested'), ('suspension_lifted', 'Suspension Lifted'), ('participant_enrolled', 'Participant Enrolled'), ('participant_withdrew', 'Participant Withdrew'), ('consent_granted', 'Consent Granted'), ('consent_revoked', 'Consent Revoked'), ('wave_created', 'Wave Created'), ('wave_changed', 'Wave Changed'), ('invitation_released', 'Invitation Released'), ('recruitment_invited', 'Recruitment Invited'), ('analysis_run_started', 'Analysis Run Started'), ('analysis_run_requeued', 'Analysis Run Requeued'), ('analysis_run_finished', 'Analysis Run Finished'), ('analysis_run_failed', 'Analysis Run Failed'), ('privacy_budget_reserved', 'Privacy Budget Reserved'), ('privacy_budget_refused', 'Privacy Budget Refused'), ('telemetry_released', 'Telemetry Released'), ('telemetry_window_waiting', 'Telemetry Window Waiting'), ('access_refused', 'Access Refused'), ('edit_refused', 'Edit Refused'), ('arm_integrity_failure', 'Arm Integrity Failure'), ('adverse_event_reported', 'Adverse Event Reported'), ('adverse_event_recorded', 'Adverse Event Recorded'), ('adverse_event_assessed', 'Adverse Event Assessed'), ('deterioration_flagged', 'Deterioration Flagged'), ('safety_answer_flagged', 'Safety Answer Flagged'), ('harm_boundary_crossed', 'Harm Boundary Crossed'), ('guardrail_flagged', 'Guardrail Flagged'), ('record_chained', 'Record Chained')], max_length=50),
        ),
    ]
