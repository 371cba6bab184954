"""Convergence gates for MCMC draws: a posterior is reported only if they pass."""

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

MAX_RHAT = 1.01
MIN_ESS = 400
TAIL_PROBABILITIES = (0.05, 0.95)


@dataclass(frozen=True)
class GateReport:
    """The worst diagnostics over the gated quantities and whether they pass.

    ``reasons`` lists, in words an analyst can act on, every gate that failed; it is empty exactly
    when ``passed`` is true. ``per_quantity`` maps each gated name to its own worst R̂ and ESS.
    """

    passed: bool
    reasons: tuple[str, ...]
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    chains: int
    draws_per_chain: int
    per_quantity: dict[str, dict[str, float]]


def convergence_gates(
    draws: Mapping[str, np.ndarray],
    *,
    divergences: int,
    max_rhat: float = MAX_RHAT,
    min_ess: float = MIN_ESS,
) -> GateReport:
    r"""Check rank-normalised split-R̂, bulk and tail ESS and divergences (Vehtari et al. 2021).

    Every scalar inside every array is gated: a quantity passes when its rank-normalised
    split-:math:`\hat R \le` ``max_rhat`` and both its bulk ESS and its tail ESS (the smaller of
    the ESS of the 5% and 95% quantile indicators) are at least ``min_ess``; the run passes when
    every quantity does and no post-warm-up transition diverged. The thresholds are the ones the
    paper recommends for reporting: :math:`\hat R \le 1.01` and an ESS of 400 (100 per chain
    with four chains). Computed by ``arviz_stats`` (ArviZ 1.x).

    Parameters
    ----------
    draws : mapping of str to ndarray
        Name → array shaped ``(chains, draws, ...)``; at least two chains of at least four draws.
    divergences : int
        Number of divergent post-warm-up transitions over all chains.

    References
    ----------
    Vehtari, A., Gelman, A., Simpson, D., Carpenter, B., & Bürkner, P.-C. (2021).
    Rank-normalization, folding, and localization: an improved R̂ for assessing convergence of
    MCMC. Bayesian Analysis, 16(2), 667–718.
    """
    if not draws:
        raise ValueError("Pass at least one quantity to gate.")
    shapes = {np.shape(value)[:2] for value in draws.values()}
    if len(shapes) != 1:
        raise ValueError("Every quantity needs the same number of chains and draws.")
    ((chains, per_chain),) = shapes
    if chains < 2 or per_chain < 4:
        raise ValueError("Gates need at least two chains of at least four draws.")
    if divergences < 0:
        raise ValueError("divergences cannot be negative.")
    # Imported here: the dashboards read this module's thresholds in the web process, and
    # arviz_stats loads JAX (tests/config/test_startup_imports.py).
    from arviz_stats import ess, rhat

    per_quantity: dict[str, dict[str, float]] = {}
    for name, value in draws.items():
        flat = np.asarray(value, dtype=float).reshape(chains, per_chain, -1)
        if not np.all(np.isfinite(flat)):
            raise ValueError(f"{name} has non-finite draws.")
        per_quantity[name] = {
            "rhat": float(np.max(rhat(flat, method="rank"))),
            "ess_bulk": float(np.min(ess(flat, method="bulk"))),
            "ess_tail": float(np.min(ess(flat, method="tail", prob=TAIL_PROBABILITIES))),
        }
    worst_rhat = max(q["rhat"] for q in per_quantity.values())
    worst_bulk = min(q["ess_bulk"] for q in per_quantity.values())
    worst_tail = min(q["ess_tail"] for q in per_quantity.values())
    reasons = []
    if not worst_rhat <= max_rhat:  # also catches NaN from constant chains
        names = [n for n, q in per_quantity.items() if not q["rhat"] <= max_rhat]
        reasons.append(f"R̂ {worst_rhat:.3f} > {max_rhat} ({', '.join(names)})")
    if not worst_bulk >= min_ess:
        names = [n for n, q in per_quantity.items() if not q["ess_bulk"] >= min_ess]
        reasons.append(f"bulk ESS {worst_bulk:.0f} < {min_ess:g} ({', '.join(names)})")
    if not worst_tail >= min_ess:
        names = [n for n, q in per_quantity.items() if not q["ess_tail"] >= min_ess]
        reasons.append(f"tail ESS {worst_tail:.0f} < {min_ess:g} ({', '.join(names)})")
    if divergences:
        reasons.append(f"{divergences} divergent transition(s) after warm-up")
    return GateReport(
        passed=not reasons,
        reasons=tuple(reasons),
        max_rhat=worst_rhat,
        min_ess_bulk=worst_bulk,
        min_ess_tail=worst_tail,
        divergences=int(divergences),
        chains=int(chains),
        draws_per_chain=int(per_chain),
        per_quantity=per_quantity,
    )
