"""The quality sweep on the suite's real Celery worker."""

import pytest

from surveys.models import Response, Wave
from surveys.tasks import quality_sweep
from tests.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_the_worker_adds_the_sample_wide_index_to_every_wave(small_trial, celery_worker_process):
    quality_sweep.delay()
    wait_for(
        lambda: not Wave.objects.filter(trial=small_trial, quality_refreshed_count=0).exists(),
        what="every wave refreshed by the worker",
    )
    assert "surveys.tasks.quality_sweep[" in celery_worker_process.log()
    first = Response.objects.filter(wave__trial=small_trial, wave__index=0)
    assert all(r.quality["swls"]["mahalanobis_p"] is not None for r in first)
