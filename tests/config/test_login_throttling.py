"""Password guessing on both sign-in pages is throttled (django-axes): after the limit every
attempt, even with the right password, gets the 429 lock-out page, and each one is recorded."""

import logging
from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

pytestmark = pytest.mark.django_db

PASSWORD = "the-right-password"
GUESSES = 200


@pytest.fixture
def staff():
    return get_user_model().objects.create_user("carol", password=PASSWORD, is_staff=True)


def _sign_in(client: Client, path: str, password: str):
    return client.post(path, {"username": "carol", "password": password})


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("path", ["/admin/login/", "/accounts/login/"])
def test_two_hundred_wrong_passwords_are_refused_then_even_the_right_one(
    client, staff, path, caplog
):
    limit = settings.AXES_FAILURE_LIMIT
    with caplog.at_level(logging.WARNING, logger="axes"):
        statuses = [_sign_in(client, path, f"guess-{i}").status_code for i in range(GUESSES)]
    # The form says "did not match" until the limit; from the limit on, the lock-out page.
    assert statuses == [200] * (limit - 1) + [429] * (GUESSES - limit + 1)
    assert "Locking out" in caplog.text

    locked = _sign_in(client, path, PASSWORD)
    assert locked.status_code == 429
    assert "Too many sign-in attempts" in locked.content.decode()
    assert "Content-Security-Policy" in locked  # the lock-out page is a page like the others
    assert not _signed_in(client)

    # Every attempt is on record: the counter and one failure row each, none a sign-in.
    attempt = AccessAttempt.objects.get(username="carol")
    assert attempt.failures_since_start == GUESSES + 1 and attempt.path_info == path
    failures = AccessFailureLog.objects.filter(username="carol")
    assert failures.count() == GUESSES + 1
    assert failures.filter(locked_out=True).count() == GUESSES + 1 - (limit - 1)
    assert not AccessLog.objects.exists()
    assert PASSWORD not in attempt.post_data


def test_a_lock_out_binds_one_user_name_from_one_address_and_ends_after_the_cool_off(staff):
    guesser = Client(REMOTE_ADDR="198.51.100.7")
    for i in range(settings.AXES_FAILURE_LIMIT):
        _sign_in(guesser, "/accounts/login/", f"guess-{i}")
    assert _sign_in(guesser, "/accounts/login/", PASSWORD).status_code == 429
    # The same account from another address still signs in: a stranger cannot lock it out.
    colleague = Client(REMOTE_ADDR="203.0.113.20")
    assert _sign_in(colleague, "/accounts/login/", PASSWORD).status_code == 302
    assert _signed_in(colleague)
    # A forged X-Forwarded-For does not free the locked address: no proxy is configured.
    spoofer = Client(REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="192.0.2.1")
    assert _sign_in(spoofer, "/accounts/login/", PASSWORD).status_code == 429

    # Once the cool-off has passed since the last attempt, the right password works again.
    over = timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    AccessAttempt.objects.update(attempt_time=over)
    assert _sign_in(guesser, "/accounts/login/", PASSWORD).status_code == 302
    assert _signed_in(guesser)
    assert AccessLog.objects.filter(username="carol").count() == 2
