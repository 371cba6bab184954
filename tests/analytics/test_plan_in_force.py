"""A confirmatory run analyses the plan the oversight bodies approved, never a pending amendment."""

import pytest
from django.core.exceptions import ValidationError

from analytics.models import AnalysisRun
from analytics.services import analysis_run_create
from tests.trials.factories import draft_trial, enrolling_trial, valid_plan
from trials.services import arm_amend, preregistration_freeze

pytestmark = pytest.mark.django_db


def test_a_confirmatory_run_uses_the_approved_version_while_an_amendment_is_pending():
    trial = enrolling_trial()
    amended = arm_amend(
        arm=trial.arms.get(slug="b"), changes={"model_version": "2"}, rationale="Retired."
    )
    confirmatory = analysis_run_create(trial=trial, enqueue=False)
    assert confirmatory.preregistration.version == 1
    exploratory = analysis_run_create(trial=trial, kind=AnalysisRun.Kind.EXPLORATORY, enqueue=False)
    assert exploratory.preregistration == amended


def test_no_confirmatory_run_before_any_version_is_approved():
    trial = draft_trial()
    preregistration_freeze(trial=trial, plan=valid_plan())
    with pytest.raises(ValidationError, match="approved by every required oversight body"):
        analysis_run_create(trial=trial, enqueue=False)
