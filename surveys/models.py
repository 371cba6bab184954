"""Measuring flourishing (DESIGN.md §2 "surveys/")."""

from django.db import models

from trials.models import Participant, Trial


class Instrument(models.Model):
    """A validated questionnaire, loaded from ``surveys/instruments/*.json`` (see registry.py)."""

    code = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    definition = models.JSONField(help_text="Items, scale, scoring rule, languages, licence.")

    class Meta:
        # A stable order, so a wave's questionnaires appear the same way on every page load.
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class Wave(models.Model):
    """A measurement occasion: ``day_offset`` days after enrolment, open for ``window_days``."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="waves")
    index = models.PositiveIntegerField(help_text="0 is baseline.")
    day_offset = models.PositiveIntegerField()
    window_days = models.PositiveIntegerField(default=7)
    instruments = models.ManyToManyField(Instrument)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["trial", "index"], name="wave_unique_index")]
        ordering = ["trial", "index"]

    def __str__(self) -> str:
        return f"{self.trial.slug} wave {self.index}"


class Response(models.Model):
    """A participant's completed answers to one wave; at most one per participant and wave."""

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="responses")
    wave = models.ForeignKey(Wave, on_delete=models.PROTECT, related_name="responses")
    answers = models.JSONField(help_text='{"instrument": {"item": value}}')
    submitted_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["participant", "wave"], name="response_once_per_wave")
        ]

    def __str__(self) -> str:
        return f"{self.participant_id} wave {self.wave.index}"


class Score(models.Model):
    """An instrument score of one response, mapped to the flourishing dimension it measures."""

    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="scores")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT)
    dimension = models.CharField(max_length=50)
    value = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["response", "instrument"], name="score_unique")
        ]

    def __str__(self) -> str:
        return f"{self.instrument.code}={self.value:g}"
