"""statsmodels MixedLM as the cross-check of ``stats.reml_growth``: an independent REML fit of
the growth model, per observation, with its own optimiser."""

from typing import Any

import numpy as np
import pandas as pd
from statsmodels.regression.mixed_linear_model import MixedLM


class SignSafeMixedLM(MixedLM):
    r"""MixedLM whose score is correct when a diagonal entry of the Cholesky factor is negative.

    The optimiser works on a packed lower-triangular :math:`L` with :math:`D/\sigma^2 = LL^\top`.
    statsmodels (0.15 when this was written) differentiates with respect to the Cholesky factor
    of :math:`LL^\top` recomputed with a positive diagonal, so once a step makes a diagonal entry
    negative the gradient has the wrong sign in that column: L-BFGS then stops in a failed line
    search or, worse, reports convergence several log-likelihood units short of the optimum.
    Flipping those columns, :math:`LS` with :math:`S = \operatorname{diag}(\pm 1)`, leaves
    :math:`LL^\top` and the likelihood unchanged, so the gradient at :math:`L` is the gradient at
    the positive-diagonal factor :math:`LS` times :math:`S`, whatever statsmodels does there.
    """

    def score(self, params: Any, profile_fe: bool = True) -> np.ndarray:
        if not isinstance(params, np.ndarray):
            return super().score(params, profile_fe=profile_fe)
        rows, cols = np.tril_indices(self.k_re)
        diagonal = params[: self.k_re2][rows == cols]
        flip = np.ones(len(params))
        flip[: self.k_re2] = np.where(diagonal < 0, -1.0, 1.0)[cols]
        return super().score(params * flip, profile_fe=profile_fe) * flip


def statsmodels_reml(frame: pd.DataFrame, control: str) -> Any:
    """``score ~ wave * arm`` with a random intercept and slope per participant, by REML
    (L-BFGS, then BFGS from where it stopped), treatment-coded against ``control``."""
    others = sorted(set(frame["arm"]) - {control})
    data = frame.assign(arm=pd.Categorical(frame["arm"], categories=[control, *others]))
    model = SignSafeMixedLM.from_formula(
        "score ~ wave * arm", data, groups="participant", re_formula="~wave"
    )
    return model.fit(reml=True, method=["lbfgs", "bfgs"])
