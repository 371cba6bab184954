"""Stored analysis results; dashboards read these and never fit a model themselves."""

from django.db import models

from trials.models import PreRegistration, Trial


class AnalysisRun(models.Model):
    class Kind(models.TextChoices):
        CONFIRMATORY = "confirmatory"
        EXPLORATORY = "exploratory"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        FINISHED = "finished"
        FAILED = "failed"

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="analysis_runs")
    preregistration = models.ForeignKey(PreRegistration, on_delete=models.PROTECT)
    preregistration_sha256 = models.CharField(max_length=64)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0, help_text="0–1.")
    code_version = models.CharField(max_length=64)
    data_snapshot_sha256 = models.CharField(max_length=64, blank=True)
    seed = models.BigIntegerField()
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text='Sensitivity analyses asked for, e.g. {"ordinal": true}.',
    )
    results = models.JSONField(default=dict, blank=True)
    diagnostics = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Times a worker took the run to execute it."
    )
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Last sign of life: when the run was queued for a worker, or when the worker "
        "executing it last reported. Beat's sweep re-queues a run silent for too long.",
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.trial.slug} {self.kind} run {self.pk} ({self.status})"
