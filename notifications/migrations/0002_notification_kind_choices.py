"""A notification's kind is its audit event's, whose choices gained SAFETY_FLAG_ACKNOWLEDGED
(trials 0015). Choices live in Python only: no row and no column changes."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('notifications', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='notification',
            name='kind',
            field=models.CharField(choices=[('trial_created', 'Trial Created'), ('trial_described', 'Trial Described'), ('member_added', 'Member Added'), ('state_changed', 'State Changed'), ('arm_created', 'Arm Created'), ('arm_changed', 'Arm Changed'), ('arm_amended', 'Arm Amended'), ('preregistration_draft_saved', 'Preregistration Draft Saved'), ('preregistration_frozen', 'Preregistration Frozen'), ('deviation_recorded', 'Deviation Recorded'), ('oversight_assigned', 'Oversight Assigned'), ('approval_recorded', 'Approval Recorded'), ('changes_requested', 'Changes Requested'), ('suspension_lifted', 'Suspension Lifted'), ('participant_enrolled', 'Participant Enrolled'), ('participant_withdrew', 'Participant Withdrew'), ('consent_granted', 'Consent Granted'), ('consent_revoked', 'Consent Revoked'), ('wave_created', 'Wave Created'), ('wave_changed', 'Wave Changed'), ('invitation_released', 'Invitation Released'), ('recruitment_invited', 'Recruitment Invited'), ('analysis_run_started', 'Analysis Run Started'), ('analysis_run_requeued', 'Analysis Run Requeued'), ('analysis_run_finished', 'Analysis Run Finished'), ('analysis_run_failed', 'Analysis Run Failed'), ('privacy_budget_reserved', 'Privacy Budget Reserved'), ('privacy_budget_refused', 'Privacy Budget Refused'), ('telemetry_released', 'Telemetry Released'), ('telemetry_window_waiting', 'Telemetry Window Waiting'), ('access_refused', 'Access Refused'), ('edit_refused', 'Edit Refused'), ('arm_integrity_failure', 'Arm Integrity Failure'), ('adverse_event_reported', 'Adverse Event Reported'), ('adverse_event_recorded', 'Adverse Event Recorded'), ('adverse_event_assessed', 'Adverse Event Assessed'), ('deterioration_flagged', 'Deterioration Flagged'), ('safety_answer_flagged', 'Safety Answer Flagged'), ('safety_flag_acknowledged', 'Safety Flag Acknowledged'), ('harm_boundary_crossed', 'Harm Boundary Crossed'), ('guardrail_flagged', 'Guardrail Flagged'), ('record_chained', 'Record Chained')], max_length=50),
        ),
    ]
