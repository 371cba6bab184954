import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pandas as pd
import pytest

from stats.ordinal import (
    OrdinalData,
    graded_response_log_prob,
    ordinal_data_from_frame,
    ordinal_growth_fit,
    simulate_ordinal,
)

pytestmark = pytest.mark.unit


def _hand_log_prob(eta: float, cutpoints: list[float], k: int) -> float:
    """Cumulative logit by hand: P(Y = k) = F(κ_{k+1} − η) − F(κ_k − η), F logistic, with
    F(−∞) = 0 and F(+∞) = 1 at the ends of the scale."""

    def logistic(x: float) -> float:
        return 1.0 / (1.0 + math.exp(-x))

    upper = 1.0 if k == len(cutpoints) else logistic(cutpoints[k] - eta)
    lower = 0.0 if k == 0 else logistic(cutpoints[k - 1] - eta)
    return math.log(upper - lower)


CUTPOINTS = [-1.3, -0.2, 0.4, 2.1]


@pytest.mark.parametrize("eta", [-2.5, 0.0, 0.7, 3.0])
@pytest.mark.parametrize("k", [0, 1, 2, 4])
def test_log_prob_matches_hand_computation(eta, k):
    with jax.enable_x64(True):
        got = graded_response_log_prob(jnp.array(eta), jnp.array(CUTPOINTS), jnp.array(k))
        assert float(got) == pytest.approx(_hand_log_prob(eta, CUTPOINTS, k), rel=1e-12)
        # The same as numpyro's own cumulative-logit distribution.
        reference = dist.OrderedLogistic(jnp.array(eta), jnp.array(CUTPOINTS)).log_prob(k)
        assert float(got) == pytest.approx(float(reference), rel=1e-9)


def test_padding_with_infinity_leaves_a_shorter_item_unchanged_and_sums_to_one():
    with jax.enable_x64(True):
        short = [-0.5, 0.8]
        padded = jnp.array(short + [jnp.inf, jnp.inf])
        eta = jnp.array(0.3)
        for k in range(3):
            got = graded_response_log_prob(eta, padded, jnp.array(k))
            assert float(got) == pytest.approx(_hand_log_prob(0.3, short, k), rel=1e-12)
        everything = graded_response_log_prob(jnp.full(5, 0.3), jnp.array(CUTPOINTS), jnp.arange(5))
        assert float(jnp.exp(everything).sum()) == pytest.approx(1.0, abs=1e-12)


def test_gradient_is_finite_at_both_ends_of_the_scale():
    with jax.enable_x64(True):
        cut = jnp.array(CUTPOINTS)
        for k in (0, 4):
            grad = jax.grad(
                lambda eta, c, k=k: graded_response_log_prob(eta, c, jnp.array(k)), (0, 1)
            )(jnp.array(0.5), cut)
            assert all(bool(jnp.all(jnp.isfinite(g))) for g in grad)


def test_far_tail_answer_stays_finite_in_float32():
    # The lowest answer 121.3 logits below its predictor: P = F(-121.3) ≈ e^-121.3 underflows
    # float32 to 0, yet log P = -softplus(121.3) ≈ -121.3 is computed directly.
    got = graded_response_log_prob(
        jnp.array(120.0, jnp.float32), jnp.array(CUTPOINTS, jnp.float32), jnp.array(0)
    )
    assert float(got) == pytest.approx(-121.3, rel=1e-6)


def _small_data(**overrides) -> dict:
    fields = dict(
        participant=np.array([0, 0, 1, 1]),
        arm=np.array([0, 1]),
        wave=np.array([0.0, 1.0, 0.0, 1.0]),
        item=np.array([0, 0, 0, 1]),
        response=np.array([0, 2, 1, 1]),
        categories=np.array([3, 2]),
        arm_names=("control", "treatment"),
    )
    fields.update(overrides)
    return fields


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"response": np.array([0, 3, 1, 1])}, "0 … K_j - 1"),
        ({"response": np.array([0, 2, 1, 2])}, "0 … K_j - 1"),
        ({"participant": np.array([0, 0, 1, 2])}, "index arm"),
        ({"item": np.array([0, 0, 0, 2])}, "index categories"),
        ({"arm": np.array([0, 2])}, "arm_names"),
        ({"arm_names": ("control",)}, "at least two"),
        ({"categories": np.array([3, 1])}, "two response categories"),
        ({"wave": np.array([0.0, -1.0, 0.0, 1.0])}, "at least 0"),
        ({"wave": np.array([0.0, np.nan, 0.0, 1.0])}, "finite"),
        ({"wave": np.array([0.0, 0.0, 0.0, 1.0])}, "twice"),
        ({"response": np.array([0.0, 2.0, 1.0, 1.0])}, "integers"),
        ({"item": np.array([0, 0, 0])}, "one entry per answer"),
    ],
)
def test_bad_data_raise_value_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        OrdinalData(**_small_data(**overrides))


def test_data_are_read_only_copies():
    response = np.array([0, 2, 1, 1])
    data = OrdinalData(**_small_data(response=response))
    response[0] = 1
    assert data.response[0] == 0
    with pytest.raises(ValueError):
        data.response[0] = 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"chains": 1}, "two chains"),
        ({"target_accept": 1.0}, "target_accept"),
        ({"draws": 2}, "four draws"),
    ],
)
def test_bad_fit_options_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ordinal_growth_fit(OrdinalData(**_small_data()), seed=1, **kwargs)


def test_arm_without_follow_up_is_refused():
    data = OrdinalData(
        **_small_data(wave=np.array([0.0, 1.0, 0.0, 0.0]), item=np.array([0, 0, 0, 1]))
    )
    with pytest.raises(ValueError, match="treatment.*after baseline"):
        ordinal_growth_fit(data, seed=1)


def test_from_frame_codes_answers_from_each_scale_minimum():
    frame = pd.DataFrame(
        {
            "participant": ["p2", "p2", "p1", "p1", "p1"],
            "arm": ["coach", "coach", "control", "control", "control"],
            "wave": [0, 1, 0, 0, 2],
            "item": ["who5_1", "who5_1", "who5_1", "swls_1", "swls_1"],
            "value": [5, 3, 0, 7, 1],
        }
    )
    data = ordinal_data_from_frame(
        frame, control="control", categories={"swls_1": (1, 7), "who5_1": (0, 5)}
    )
    assert data.arm_names == ("control", "coach")
    assert data.participant.tolist() == [0, 0, 1, 1, 1]
    assert data.arm.tolist() == [1, 0]
    assert data.item.tolist() == [1, 1, 1, 0, 0]  # ordered as in `categories`
    assert data.categories.tolist() == [7, 6]
    assert data.response.tolist() == [5, 3, 0, 6, 0]
    assert data.wave.tolist() == [0.0, 1.0, 0.0, 0.0, 2.0]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda f: f.assign(value=f.value.where(f.index != 0, 9)), "outside"),
        (lambda f: f.assign(value=f.value.astype(float).where(f.index != 0, 2.5)), "whole"),
        (lambda f: f.assign(item="other"), "No response scale"),
        (lambda f: f.assign(arm=["a", "b", "control", "control"]), "more than one arm"),
        (lambda f: f.assign(arm="coach"), "control arm"),
        (lambda f: f.assign(arm="control"), "two arms"),
        (lambda f: f.drop(columns="wave"), "wave"),
        (lambda f: f.iloc[:0], "no answers"),
    ],
)
def test_from_frame_bad_input_raises_value_error(change, message):
    frame = pd.DataFrame(
        {
            "participant": [1, 1, 2, 2],
            "arm": ["coach", "coach", "control", "control"],
            "wave": [0, 1, 0, 1],
            "item": ["q", "q", "q", "q"],
            "value": [1, 2, 3, 4],
        }
    )
    with pytest.raises(ValueError, match=message):
        ordinal_data_from_frame(change(frame), control="control", categories={"q": (1, 5)})


def test_simulator_uses_every_category_and_drops_out_monotonely():
    data, truth = simulate_ordinal(
        participants=400, waves=4, items=3, categories=5, effect=0.3, seed=3, dropout=0.2
    )
    assert set(np.unique(data.response)) == set(range(5))
    assert truth["gamma"] == 0.3
    answered = pd.DataFrame({"p": data.participant, "w": data.wave}).drop_duplicates()
    last = answered.groupby("p").w.max()
    count = answered.groupby("p").w.count()
    assert (count == last + 1).all()  # no gaps before drop-out
    assert 0 < (last < 3).mean() < 1


def test_recovers_a_known_growth_difference_on_the_cpu():
    # 200 participants × 4 waves × 5 five-category items, γ = 0.3 baseline SD per wave. Two
    # chains of 250 + 250 keep the test short, too few for the gates (the cutpoints' ESS stays
    # near 150): the result must say so and why.
    data, truth = simulate_ordinal(
        participants=200, waves=4, items=5, categories=5, effect=0.3, seed=11
    )
    result = ordinal_growth_fit(data, seed=5, chains=2, warmup=250, draws=250)
    (effect,) = result.effects
    assert effect.arm == "treatment"
    assert effect.ci_low < truth["gamma"] < effect.ci_high
    assert effect.mean > 0 and effect.prob_positive > 0.975
    assert result.platform == jax.default_backend()
    assert result.observations == data.observations
    gates = result.gates
    assert set(gates.per_quantity) == {"gamma", "beta1", "discrimination", "cutpoints"}
    assert gates.chains == 2 and gates.draws_per_chain == 250
    assert result.reportable == gates.passed
    assert gates.passed == (not gates.reasons)
    json.dumps(dataclasses.asdict(result))


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_mid_size_fit_runs_on_the_gpu_and_covers_the_truth():
    data, truth = simulate_ordinal(
        participants=20_000, waves=10, items=5, categories=5, effect=0.1, seed=21, dropout=0.05
    )
    result = ordinal_growth_fit(data, seed=3, warmup=500, draws=500)
    assert result.platform == "gpu"
    assert result.precision == "float32"
    (effect,) = result.effects
    assert effect.ci_low < truth["gamma"] < effect.ci_high
    assert result.reportable == result.gates.passed
