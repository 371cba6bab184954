"""The privacy ledger on PostgreSQL: concurrent reservations cannot overspend, a window's key is
paid once, over budget is refused with a clear message, nothing is ever refunded."""

import threading

import pytest
from django.db import connection

from federated.models import PrivacyBudget, PrivacyCharge
from federated.selectors import privacy_budget_summary, telemetry_schema_in_force
from federated.services import PrivacyBudgetExhausted, privacy_charge_reserve
from tests.federated.conftest import telemetry_trial

pytestmark = pytest.mark.django_db(transaction=True)

WINDOW = 10_000_000  # 0.01 ρ in nano-ρ; the test trial's budget is 0.05 ρ


def _reserve(trial, key: str, nano_rho: int = WINDOW) -> PrivacyCharge:
    _, schema = telemetry_schema_in_force(trial)
    return privacy_charge_reserve(
        trial=trial, schema=schema, key=key, nano_rho=nano_rho, measurements={}
    )


def _race(target, arguments: list) -> list:
    """Run ``target`` in one thread per argument, all released at once; their outcomes."""
    outcomes = [None] * len(arguments)
    start = threading.Barrier(len(arguments))

    def work(index, argument):
        try:
            start.wait()
            outcomes[index] = target(argument)
        except Exception as error:  # noqa: BLE001 - the outcome is what the test inspects
            outcomes[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=pair) for pair in enumerate(arguments)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_forty_concurrent_reservations_grant_exactly_what_the_budget_holds():
    trial = telemetry_trial()
    outcomes = _race(lambda key: _reserve(trial, key), [f"window-{n}" for n in range(40)])
    granted = [o for o in outcomes if isinstance(o, PrivacyCharge)]
    refused = [o for o in outcomes if isinstance(o, PrivacyBudgetExhausted)]
    assert (len(granted), len(refused)) == (5, 35), outcomes
    budget = PrivacyBudget.objects.get(trial=trial)
    assert budget.spent_nano_rho == budget.total_nano_rho == 5 * WINDOW
    assert PrivacyCharge.objects.count() == 5
    assert trial.events.filter(kind="privacy_budget_reserved").count() == 5
    assert trial.events.filter(kind="privacy_budget_refused").count() == 35


def test_a_window_reserved_concurrently_under_one_key_is_paid_once():
    trial = telemetry_trial()
    outcomes = _race(lambda key: _reserve(trial, key), ["window-0"] * 20)
    assert all(isinstance(o, PrivacyCharge) for o in outcomes), outcomes
    assert len({o.pk for o in outcomes}) == 1
    assert PrivacyBudget.objects.get(trial=trial).spent_nano_rho == WINDOW


def test_over_budget_is_refused_clearly_and_nothing_is_refunded_or_reset():
    trial = telemetry_trial()
    for n in range(4):
        _reserve(trial, f"window-{n}")
    with pytest.raises(PrivacyBudgetExhausted, match="needs ρ = 0.020000000 but only 0.010000000"):
        _reserve(trial, "big", 2 * WINDOW)
    assert PrivacyBudget.objects.get(trial=trial).spent_nano_rho == 4 * WINDOW
    _reserve(trial, "window-4")
    with pytest.raises(PrivacyBudgetExhausted, match="Nothing was released"):
        _reserve(trial, "window-5")
    # A retried key still returns its reservation after the budget ran out.
    assert _reserve(trial, "window-0").key == "window-0"
    summary = privacy_budget_summary(trial)
    assert summary.spent_rho == summary.total_rho == 0.05
    assert summary.remaining_rho == 0
    assert 0.05 < summary.epsilon < 0.05 + 2 * (0.05 * 16.2) ** 0.5  # Bun–Steinke bound


def test_a_key_cannot_be_reused_for_a_different_cost():
    trial = telemetry_trial()
    _reserve(trial, "window-0")
    with pytest.raises(Exception, match="cannot change once reserved"):
        _reserve(trial, "window-0", WINDOW + 1)


def test_the_database_refuses_spending_beyond_the_total():
    from django.db import IntegrityError

    trial = telemetry_trial()
    _reserve(trial, "window-0")
    with pytest.raises(IntegrityError):
        PrivacyBudget.objects.filter(trial=trial).update(spent_nano_rho=10**18)
