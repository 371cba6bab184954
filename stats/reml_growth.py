r"""Exact REML for the linear growth model, from six statistics per participant.

Model
-----
Participant :math:`i` in arm :math:`a(i)` is observed at waves :math:`t_{ij}` (any subset: a
missed wave is an absent row),

.. math:: y_{ij} = \mu_{a(i)} + \lambda_{a(i)} t_{ij} + b_{0i} + b_{1i} t_{ij}
          + \varepsilon_{ij}, \qquad b_i \sim N(0, \Psi), \quad
          \varepsilon_{ij} \sim N(0, \sigma^2),

the model of ``lmer(score ~ wave * arm + (1 + wave | participant), REML = TRUE)``: the
treatment-coded fixed effects of ``score ~ wave * arm`` are the arms' levels :math:`\mu_a` and
growths :math:`\lambda_a` written as the control's and differences from it, an exact linear
reparameterisation with determinant 1, so estimates, covariances and the REML criterion are the
same in either coding.

Sufficient statistics
---------------------
With :math:`Z_i = [1, t_i]` the participant's fixed-effect design is :math:`X_i = Z_i E_{a(i)}`,
:math:`E_a` selecting arm :math:`a`'s level and growth, so :math:`Z_i^\top Z_i`,
:math:`Z_i^\top X_i`, :math:`X_i^\top X_i`, :math:`Z_i^\top y_i`, :math:`X_i^\top y_i` and
:math:`y_i^\top y_i` all follow from the arm and the six statistics
:math:`(n, \sum t, \sum t^2, \sum y, \sum ty, \sum y^2)` that the Bayesian growth model uses too
(:mod:`stats.bayes_growth`). Write :math:`A_i = Z_i^\top Z_i`, :math:`u_i = Z_i^\top y_i`, and,
as lme4 does, :math:`\Psi = \sigma^2 \Lambda\Lambda^\top` with :math:`\Lambda` lower triangular,
:math:`\theta = (\Lambda_{11}, \Lambda_{21}, \Lambda_{22})`, reported with
:math:`\Lambda_{jj} \ge 0` (optimised unbounded: see :func:`_positive_diagonal`). By the
Woodbury identity and the matrix determinant lemma (Harville 1977), with
:math:`V_i = \sigma^2 W_i`, :math:`M_i = I + \Lambda^\top A_i \Lambda`,
:math:`H_i = \Lambda M_i^{-1} \Lambda^\top` and :math:`K_i = I - A_i H_i`,

.. math:: \log|W_i| = \log|M_i|, \quad Z_i^\top W_i^{-1} Z_i = Q_i = A_i K_i^\top, \quad
          Z_i^\top W_i^{-1} r = K_i Z_i^\top r, \quad
          r^\top W_i^{-1} r = r^\top r - r^\top Z_i H_i Z_i^\top r .

So :math:`X^\top W^{-1} X` is block diagonal in the arms, :math:`S_a = \sum_{a(i) = a} Q_i`,
:math:`\hat\beta_a = S_a^{-1} \sum_{a(i)=a} K_i u_i`, and the profiled REML criterion (lme4's
``REMLcrit``, Bates et al. 2015, section 3.4) is

.. math:: d(\theta) = \sum_i \log|M_i| + \sum_a \log|S_a|
          + (N - p)\Bigl(1 + \log\frac{2\pi\, r^2(\theta)}{N - p}\Bigr), \qquad
          r^2 = \sum_i \bigl(y_i^\top y_i - u_i^\top H_i u_i\bigr)
                - \sum_a \hat\beta_a^\top S_a \hat\beta_a .

Its gradient is exact too: with :math:`\tilde\Psi = \Lambda\Lambda^\top`,
:math:`dQ_i = -Q_i\, d\tilde\Psi\, Q_i`, :math:`dH_i = K_i^\top d\tilde\Psi\, K_i` and, by the
envelope theorem at :math:`\hat\beta`, :math:`dr^2 = -\sum_i w_i^\top d\tilde\Psi\, w_i` with
:math:`w_i = K_i (u_i - A_i \hat\beta_{a(i)})`, so
:math:`\partial d / \partial \tilde\Psi = \Gamma` with

.. math:: \Gamma = \sum_i Q_i - \sum_i Q_i S_{a(i)}^{-1} Q_i
          - \frac{N - p}{r^2} \sum_i w_i w_i^\top, \qquad
          \partial d / \partial \Lambda = 2\,\Gamma \Lambda .

Participants of one arm with the same :math:`(n, \sum t, \sum t^2)` share :math:`A_i`, hence
:math:`M_i, H_i, K_i, Q_i`; only the sums of :math:`u_i`, :math:`u_i u_i^\top` and
:math:`y_i^\top y_i` over them enter. They are pooled once (exactly), so an evaluation costs
O(number of such groups), never more than O(participants): intermittent missing waves make more
groups, and the cost then follows the participants.

Participant-level design rows
-----------------------------
The arms' levels and growths are the special case :math:`w_i = e_{a(i)}` of a participant-level
design row :math:`w_i` (q columns: arm indicators, baseline covariates, moderators, arm ×
moderator products) entering both the level and the growth, :math:`X_i = Z_i \otimes w_i^\top`
(:func:`reml_design_fit`). Then :math:`X_i^\top W_i^{-1} X_i = Q_i \otimes w_i w_i^\top` and
:math:`X_i^\top W_i^{-1} y_i = K_i u_i \otimes w_i`, so within a group of shared
:math:`A_i` only :math:`\sum w w^\top`, :math:`\sum u w^\top`, :math:`\sum u u^\top` and
:math:`\sum y^\top y` enter, and :math:`S_a` above becomes :math:`C = \sum_g Q_g \otimes
\sum_g w w^\top`: :math:`\partial \log|C| / \partial\tilde\Psi = -\sum_g Q_g T_g Q_g` with
:math:`T_g[a, b] = \operatorname{tr}(C^{-1}_{ab} \sum_g w w^\top)`, and the envelope term
uses :math:`w_i = K_i (u_i - A_i B w_i)`, :math:`B` the 2 × q coefficients.

Inference
---------
:math:`\hat\sigma^2 = r^2 / (N - p)`, :math:`\widehat{\mathrm{Var}}(\hat\beta) = \hat\sigma^2
(X^\top W^{-1} X)^{-1}` at :math:`\hat\theta` (what lme4's ``vcov`` reports). The degrees of
freedom of a contrast :math:`c^\top\beta` are Satterthwaite's, computed as lmerTest does
(Kuznetsova et al. 2017): with :math:`f(\theta, \sigma) = \sigma^2 c^\top C(\theta)^{-1} c`,
:math:`\nu = 2 f^2 / (\nabla f^\top A \nabla f)`, :math:`A = 2 H^{-1}` and :math:`H` the
Hessian of the unprofiled REML deviance in :math:`(\theta, \sigma)`; :math:`\nabla f` is
analytic (:math:`d(c^\top C^{-1} c) = \operatorname{tr}(d\tilde\Psi \sum_g Q_g V \sum_g w
w^\top V^\top Q_g)`, :math:`V` = :math:`C^{-1}c` as 2 × q) and :math:`H` the central difference
of the analytic gradient. Any contrast :math:`c` of the growths has them
(:meth:`DesignFit.contrast`), and a joint F test of several (:meth:`DesignFit.joint_test`) the
denominator df of lmerTest's ``contestMD``.

References
----------
Bates, D., Mächler, M., Bolker, B., & Walker, S. (2015). Fitting linear mixed-effects models
using lme4. Journal of Statistical Software, 67(1), 1–48.
Harville, D. A. (1977). Maximum likelihood approaches to variance component estimation and to
related problems. JASA, 72, 320–338.
Kuznetsova, A., Brockhoff, P. B., & Christensen, R. H. B. (2017). lmerTest package: tests in
linear mixed effects models. Journal of Statistical Software, 82(13), 1–26.
"""

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy import optimize, stats

# The order of the per-participant statistics, as in stats.bayes_growth.STATISTICS (that module
# imports JAX, which the frequentist path must not need).
STATISTICS = ("n", "sum_t", "sum_tt", "sum_y", "sum_ty", "sum_yy")
# lme4's starting point: Ψ = σ² I.
_START = np.array([1.0, 0.0, 1.0])
# Convergence is claimed only when this point is checked to be a minimum, independently of the
# optimiser's own stopping rule: the Hessian is positive definite and the Newton step to the
# optimum, H⁻¹g, is below this in every component of θ (lme4 warns at 2e-3 on the same scaled
# gradient). Newton steps from where L-BFGS-B stopped bring it to 1e-13 or less in our tests.
STEP_TOLERANCE = 1e-6
_NEWTON_STEPS = 10


class GroupTotals(NamedTuple):
    """Participants pooled by :math:`A_i = Z_i^\\top Z_i` (exact, see the module doc).

    ``count[g]`` participants; ``design[g]`` = :math:`A_g` (2 × 2); ``sum_ww[g]`` =
    :math:`\\sum w_i w_i^\\top` (q × q) over their design rows; ``sum_uw[g]`` =
    :math:`\\sum u_i w_i^\\top` (2 × q); ``sum_uu[g]`` = :math:`\\sum u_i u_i^\\top`;
    ``sum_yy[g]`` = :math:`\\sum y_i^\\top y_i`.
    """

    count: np.ndarray
    design: np.ndarray
    sum_ww: np.ndarray
    sum_uw: np.ndarray
    sum_uu: np.ndarray
    sum_yy: np.ndarray


def participant_statistics(
    participant: np.ndarray, wave: np.ndarray, score: np.ndarray, participants: int
) -> np.ndarray:
    """The six :data:`STATISTICS` of each participant, shape (participants, 6).

    ``participant`` holds integer codes 0 … participants − 1, one per observation, beside the
    observation's ``wave`` and ``score``.
    """
    t = np.asarray(wave, dtype=float)
    y = np.asarray(score, dtype=float)
    columns = (None, t, t * t, y, t * y, y * y)
    return np.column_stack(
        [np.bincount(participant, weights=w, minlength=participants) for w in columns]
    )


def arm_rows(arm: np.ndarray, n_arms: int) -> np.ndarray:
    """Each participant's design row for the arms' own levels and growths: the indicator of
    their arm (``arm`` holds codes 0 … n_arms − 1)."""
    rows = np.zeros((len(arm), n_arms))
    rows[np.arange(len(arm)), arm] = 1.0
    return rows


def group_totals(rows: np.ndarray, statistics: np.ndarray) -> GroupTotals:
    """Pool participants that share :math:`(n, \\sum t, \\sum t^2)`, summing what their design
    rows ``rows`` (participants × q) and scores contribute."""
    keys = statistics[:, :3]
    # Rows sorted by (n, Σt, Σt²); a group starts wherever the key changes. (np.unique with
    # axis=0 does the same through a generic row comparison, several times slower.)
    order = np.lexsort(keys.T[::-1])
    ordered = keys[order]
    starts = np.ones(len(keys), dtype=bool)
    starts[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    unique = ordered[starts]
    first = np.flatnonzero(starts)
    bounds = np.append(first, len(keys))
    # Sums of products within each group, as one matrix product per group over its rows (in
    # group order): never a participants × q × q array.
    w = rows[order]
    uy = statistics[order][:, [3, 4]]
    sums = [
        (w[a:b].T @ w[a:b], uy[a:b].T @ w[a:b], uy[a:b].T @ uy[a:b])
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    n, sum_t, sum_tt = unique[:, 0], unique[:, 1], unique[:, 2]
    return GroupTotals(
        count=np.diff(bounds).astype(float),
        design=np.stack([np.stack([n, sum_t], -1), np.stack([sum_t, sum_tt], -1)], -2),
        sum_ww=np.array([ww for ww, _, _ in sums]),
        sum_uw=np.array([uw for _, uw, _ in sums]),
        sum_uu=np.array([uu for _, _, uu in sums]),
        sum_yy=np.add.reduceat(statistics[order, 5], first),
    )


def _factor(theta: np.ndarray) -> np.ndarray:
    return np.array([[theta[0], 0.0], [theta[1], theta[2]]])


def _packed(matrix_gradient: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """∂d/∂θ from ∂d/∂Ψ̃ = Γ (symmetric): ∂d/∂Λ = 2ΓΛ, at Λ's free entries."""
    gradient = 2 * matrix_gradient @ factor
    return np.array([gradient[0, 0], gradient[1, 0], gradient[1, 1]])


def _sym_inverse(m: np.ndarray) -> np.ndarray:
    """Inverses of a stack of 2 × 2 matrices, in closed form."""
    det = m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]
    inverse = np.empty_like(m)
    inverse[..., 0, 0], inverse[..., 1, 1] = m[..., 1, 1], m[..., 0, 0]
    inverse[..., 0, 1], inverse[..., 1, 0] = -m[..., 0, 1], -m[..., 1, 0]
    return inverse / det[..., None, None]


@dataclass(frozen=True)
class _State:
    """Everything the criterion, its gradient and the estimates need at one θ."""

    deviance: float
    gradient: np.ndarray  # ∂d/∂θ of the profiled criterion
    beta: np.ndarray  # (2, q): the level and growth coefficients of each design column
    precision: np.ndarray  # (2q, 2q): X'W⁻¹X = Σ Q_g ⊗ Σ w wᵀ
    residual: float  # r²
    q: np.ndarray  # (G, 2, 2)
    ww: np.ndarray  # (G, 2, 2): Σ over the group of w̃_i w̃_iᵀ (the score residuals)


def _state(theta: np.ndarray, totals: GroupTotals, observations: float) -> _State:
    factor = _factor(theta)
    A, c = totals.design, totals.count
    inner = np.eye(2) + factor.T @ A @ factor  # M_g
    logdet = np.log(inner[:, 0, 0] * inner[:, 1, 1] - inner[:, 0, 1] ** 2)
    h = factor @ _sym_inverse(inner) @ factor.T  # H_g
    k = np.eye(2) - A @ h  # K_g
    q = A @ np.swapaxes(k, -1, -2)  # Q_g = A_g K_gᵀ, symmetric
    q = (q + np.swapaxes(q, -1, -2)) / 2
    columns = totals.sum_ww.shape[1]
    p = 2 * columns
    # X'W⁻¹X and X'W⁻¹y with X_i = Z_i ⊗ w_iᵀ, ordered (level, growth) × design column.
    precision = np.einsum("gab,gij->aibj", q, totals.sum_ww).reshape(p, p)
    score = np.einsum("gab,gbi->ai", k, totals.sum_uw).reshape(p)
    factor_p = np.linalg.cholesky(precision)
    beta = np.linalg.solve(factor_p.T, np.linalg.solve(factor_p, score))
    residual = float(totals.sum_yy.sum() - np.sum(h * totals.sum_uu) - score @ beta)
    free = observations - p
    deviance = (
        float(c @ logdet)
        + 2 * float(np.log(np.diag(factor_p)).sum())
        + free * (1 + np.log(2 * np.pi * residual / free))
    )
    B = beta.reshape(2, columns)
    # Σ_g w̃ w̃ᵀ = K (Σuuᵀ − Σu mᵀ − m Σuᵀ + Σ m mᵀ) Kᵀ with m_i = A B w_i.
    cross = totals.sum_uw @ B.T @ A
    fitted = A @ B @ totals.sum_ww @ B.T @ A
    centred = totals.sum_uu - cross - np.swapaxes(cross, -1, -2) + fitted
    ww = k @ centred @ np.swapaxes(k, -1, -2)
    # ∂ log|X'W⁻¹X| / ∂Ψ̃ = −Σ_g Q_g T_g Q_g, T_g[a, b] = tr(P_ab Σ_g w wᵀ), P = (X'W⁻¹X)⁻¹.
    inverse = np.linalg.inv(precision).reshape(2, columns, 2, columns)
    t = np.einsum("aibj,gij->gab", inverse, totals.sum_ww)
    gamma = (
        np.einsum("g,gab->ab", c, q)
        - np.einsum("gab,gbc,gcd->ad", q, t, q)
        - free / residual * ww.sum(0)
    )
    return _State(
        deviance=deviance,
        gradient=_packed(gamma, factor),
        beta=B,
        precision=precision,
        residual=residual,
        q=q,
        ww=ww,
    )


def _criterion(
    theta: np.ndarray, totals: GroupTotals, observations: float
) -> tuple[float, np.ndarray]:
    """The REML deviance and its gradient for the optimiser. Far from the optimum (|θ| in the
    tens of thousands, where a line search on a large trial's steep criterion can step),
    X'W⁻¹X can lose its positive definiteness to rounding; the criterion is then infinite,
    which sends the line search back towards the last point instead of stopping the fit."""
    try:
        state = _state(theta, totals, observations)
    except np.linalg.LinAlgError:
        return np.inf, np.full(len(theta), np.nan)
    return state.deviance, state.gradient


def _positive_diagonal(theta: np.ndarray) -> np.ndarray:
    """The same Ψ̃ = ΛΛᵀ with Λ's diagonal made non-negative, as lme4 reports θ.

    θ is optimised unbounded: flipping the sign of a column of Λ leaves ΛΛᵀ unchanged, so the
    criterion is even in each diagonal entry. With the diagonal bounded at 0 instead, as lme4
    does, a gradient method that steps onto the bound stays there: the derivative of an even
    function is 0 at 0, whatever the curvature, and L-BFGS-B stopped on such saddles.
    """
    theta = theta.copy()
    if theta[0] < 0:
        theta[:2] = -theta[:2]
    theta[2] = abs(theta[2])
    return theta


def _jacobian(function, point: np.ndarray) -> np.ndarray:
    """Central differences of a vector function: the Hessian when ``function`` is a gradient."""
    columns = []
    for j in range(len(point)):
        step = 1e-4 * max(abs(point[j]), 1e-2)
        up, down = point.copy(), point.copy()
        up[j] += step
        down[j] -= step
        columns.append((function(up) - function(down)) / (2 * step))
    jacobian = np.column_stack(columns)
    return (jacobian + jacobian.T) / 2


def _newton_step(theta: np.ndarray, gradient_at) -> np.ndarray | None:
    """H⁻¹g, or None where the Hessian is not positive definite (not a minimum)."""
    try:
        factor = np.linalg.cholesky(_jacobian(gradient_at, theta))
    except np.linalg.LinAlgError:
        return None
    return np.linalg.solve(factor.T, np.linalg.solve(factor, gradient_at(theta)))


def _polished(theta: np.ndarray, gradient_at, steps: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Newton steps from where the optimiser stopped, while they shrink (the gradient is
    exact, so this pins the optimum far below the criterion's own rounding noise); returns the
    point and the Newton step that remains there."""
    step = _newton_step(theta, gradient_at)
    for _ in range(steps):
        if step is None or np.max(np.abs(step)) < 1e-12:
            break
        candidate = theta - step
        following = _newton_step(candidate, gradient_at)
        if following is None or np.max(np.abs(following)) >= np.max(np.abs(step)):
            break
        theta, step = candidate, following
    return theta, step


@dataclass(frozen=True)
class Contrast:
    """Arm ``arm``'s growth minus the control's: estimate, SE, Satterthwaite df."""

    arm: str
    estimate: float
    std_error: float
    df: float


@dataclass(frozen=True)
class LinearContrast:
    """:math:`\\ell^\\top\\beta` with its SE and Satterthwaite df."""

    estimate: float
    std_error: float
    df: float


@dataclass(frozen=True)
class JointTest:
    """The F test of :math:`L\\beta = 0` (``df_numerator`` rows) with Satterthwaite's
    denominator df, as lmerTest's ``contestMD``."""

    f_statistic: float
    df_numerator: int
    df_denominator: float
    p_value: float


@dataclass(frozen=True)
class DesignFit:
    """The REML fit of the growth model with participant-level design rows (see the module doc).

    ``columns`` name the design rows' columns; ``names`` the fixed effects, each column's level
    then each column's growth (``wave:<column>``); ``fixed_effects`` and ``covariance``
    (:math:`\\hat\\sigma^2 (X^\\top W^{-1} X)^{-1}`) follow that order. The other fields are
    as :class:`RemlFit`'s. :meth:`contrast` and :meth:`joint_test` give Satterthwaite inference
    on linear combinations of the growth coefficients.
    """

    columns: tuple[str, ...]
    names: tuple[str, ...]
    fixed_effects: np.ndarray
    covariance: np.ndarray
    theta: np.ndarray
    random_covariance: np.ndarray
    sigma: float
    reml_criterion: float
    converged: bool
    newton_step: float
    gradient_max: float
    message: str
    evaluations: int
    boundary: bool
    participants: int
    observations: int
    groups: int
    # What Satterthwaite's df need: the pooled totals, Q_g at θ̂ and the covariance of (θ̂, σ̂).
    totals: GroupTotals = field(repr=False)
    q: np.ndarray = field(repr=False)
    varpar_covariance: np.ndarray = field(repr=False)

    @property
    def growth(self) -> np.ndarray:
        """The growth coefficient of each design column."""
        return self.fixed_effects[len(self.columns) :]

    def _growth_vector(self, weights: np.ndarray) -> np.ndarray:
        weights = np.asarray(weights, dtype=float)
        if weights.shape != (len(self.columns),):
            raise ValueError(f"weights need one value per design column ({len(self.columns)}).")
        return np.concatenate([np.zeros(len(self.columns)), weights])

    def _gradient(self, vector: np.ndarray) -> tuple[float, np.ndarray]:
        """:math:`f = \\sigma^2 \\ell^\\top C^{-1}\\ell` and its gradient in (θ, σ):
        :math:`d(\\ell^\\top C^{-1}\\ell) = \\operatorname{tr}(d\\tilde\\Psi
        \\sum_g Q_g V \\Sigma_g V^\\top Q_g)` with :math:`V` = :math:`C^{-1}\\ell` as 2 × q and
        :math:`\\Sigma_g = \\sum w w^\\top`."""
        sigma2 = self.sigma**2
        relative = self.covariance / sigma2  # C⁻¹
        v = (relative @ vector).reshape(2, len(self.columns))
        variance = float(vector @ relative @ vector)
        r = v @ self.totals.sum_ww @ v.T
        gamma = np.einsum("gab,gbc,gcd->ad", self.q, r, self.q)
        gradient = np.append(
            sigma2 * _packed(gamma, _factor(self.theta)), 2 * self.sigma * variance
        )
        return sigma2 * variance, gradient

    def contrast(self, weights: np.ndarray) -> LinearContrast:
        """:math:`\\sum_j \\text{weights}_j \\lambda_j` over the columns' growths, with
        Satterthwaite's df :math:`\\nu = 2 f^2 / (\\nabla f^\\top A \\nabla f)` (module doc)."""
        vector = self._growth_vector(weights)
        f, gradient = self._gradient(vector)
        return LinearContrast(
            estimate=float(vector @ self.fixed_effects),
            std_error=float(np.sqrt(f)),
            df=float(2 * f**2 / (gradient @ self.varpar_covariance @ gradient)),
        )

    def joint_test(self, weights: np.ndarray) -> JointTest:
        """F test that every row of ``weights`` (rows × columns, full row rank) has growth
        contrast 0. As lmerTest's ``contestMD`` (Kuznetsova et al. 2017): the rows are rotated
        to the eigenvectors of their covariance, so :math:`F = \\sum_k t_k^2 / m` over
        independent t statistics with Satterthwaite df :math:`\\nu_k`, and the denominator df
        are :math:`2E/(E - m)`, :math:`E = \\sum_k \\nu_k / (\\nu_k - 2)` (2 when a
        :math:`\\nu_k \\le 2`)."""
        weights = np.atleast_2d(np.asarray(weights, dtype=float))
        vectors = np.array([self._growth_vector(row) for row in weights])
        covariance = vectors @ self.covariance @ vectors.T
        values, rotation = np.linalg.eigh(covariance)
        if values[0] <= 1e-10 * values[-1]:
            raise ValueError("the contrasts of a joint test must be linearly independent.")
        rotated = rotation.T @ vectors
        t = rotated @ self.fixed_effects / np.sqrt(values)
        m = len(weights)
        nu = np.array(
            [2 * f**2 / (g @ self.varpar_covariance @ g) for f, g in map(self._gradient, rotated)]
        )
        if m == 1:
            df = float(nu[0])
        elif np.all(nu > 2):
            expected = float(np.sum(nu / (nu - 2)))
            df = 2 * expected / (expected - m)
        else:
            df = 2.0
        statistic = float(np.sum(t**2) / m)
        return JointTest(
            f_statistic=statistic,
            df_numerator=m,
            df_denominator=df,
            p_value=float(stats.f.sf(statistic, m, df)),
        )


def reml_design_fit(
    rows: np.ndarray,
    statistics: np.ndarray,
    columns: tuple[str, ...],
    *,
    singular_tolerance: float = 1e-6,
    max_iterations: int = 2000,
) -> DesignFit:
    """Fit the growth model with fixed effects :math:`X_i = Z_i \\otimes w_i^\\top` by exact REML.

    Each participant's design row :math:`w_i` (their arm's indicator, covariates, moderators,
    arm × moderator products, …) enters both the level and the growth, so the model is
    ``score ~ (w_1 + … + w_q) * wave - 1`` with random intercepts and slopes per participant.
    Then :math:`X_i^\\top W_i^{-1} X_i = Q_i \\otimes w_i w_i^\\top` and
    :math:`X_i^\\top W_i^{-1} y_i = K_i u_i \\otimes w_i`, so participants sharing
    :math:`(n, \\sum t, \\sum t^2)` pool into sums of :math:`w w^\\top`,
    :math:`u w^\\top`, :math:`u u^\\top` and :math:`y^\\top y` and the criterion, its gradient
    and the df below are those of the module doc with :math:`S_a` replaced by
    :math:`\\sum_g Q_g \\otimes \\sum_g w w^\\top`.

    Parameters
    ----------
    rows : array, shape (P, q)
        Each participant's design row; the constant must lie in their span (an intercept
        column, or indicators of a partition such as the arms).
    statistics : array, shape (P, 6)
        :data:`STATISTICS` per participant, with the wave as the time variable; n ≥ 1 each.
    columns : tuple of str
        The names of the q columns.
    singular_tolerance, max_iterations
        As for :func:`reml_growth_fit`.

    Raises
    ------
    ValueError
        If the shapes disagree, a value is not finite, the constant is not in the span of the
        rows, or the fixed effects are not identified (collinear columns, or a column whose
        participants are all observed at one wave).
    """
    rows = np.asarray(rows, dtype=float)
    statistics = np.asarray(statistics, dtype=float)
    if rows.ndim != 2 or statistics.shape != (len(rows), 6) or rows.shape[1] != len(columns):
        raise ValueError("rows (P × q), statistics (P × 6) and the q column names must agree.")
    if not (np.isfinite(rows).all() and np.isfinite(statistics).all()):
        raise ValueError("design rows and statistics must be finite.")
    if np.any(statistics[:, 0] < 1):
        raise ValueError("every participant needs at least one observation.")
    q = len(columns)
    # Scores are centred at their mean first: the criterion and every estimate but the levels'
    # share of the constant are unchanged (the constant lies in the span of X), and the sums of
    # squares lose far fewer digits to cancellation. ``unit`` is the level coefficients of the
    # constant: the rows' combination that is 1 for everyone.
    sum_ww = rows.T @ rows
    unit, *_ = np.linalg.lstsq(sum_ww, rows.sum(axis=0), rcond=None)
    if not np.allclose(rows @ unit, 1.0, atol=1e-8):
        raise ValueError("the design rows must span the constant (an intercept or arm indicators).")
    observations = float(statistics[:, 0].sum())
    centre = statistics[:, 3].sum() / observations
    centred = statistics.copy()
    centred[:, 5] += -2 * centre * statistics[:, 3] + centre**2 * statistics[:, 0]
    centred[:, 4] -= centre * statistics[:, 1]
    centred[:, 3] -= centre * statistics[:, 0]
    totals = group_totals(rows, centred)
    # Identified ⇔ Σ_g A_g ⊗ Σ w wᵀ (X'X) is positive definite.
    gram = np.einsum("gab,gij->aibj", totals.design, totals.sum_ww).reshape(2 * q, 2 * q)
    eigenvalues = np.linalg.eigvalsh(gram)
    if eigenvalues[0] <= 1e-10 * eigenvalues[-1] or observations <= 2 * q:
        raise ValueError(
            "the fixed effects are not identified: design columns are collinear, or a column's "
            "participants are all observed at one wave."
        )

    def gradient_at(theta: np.ndarray) -> np.ndarray:
        return _state(theta, totals, observations).gradient

    result = optimize.minimize(
        _criterion,
        _START,
        args=(totals, observations),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iterations, "ftol": 1e-12, "gtol": 1e-6},
    )
    theta, step = _polished(result.x, gradient_at, min(_NEWTON_STEPS, max_iterations))
    theta = _positive_diagonal(theta)
    state = _state(theta, totals, observations)
    newton_step = np.inf if step is None else float(np.max(np.abs(step)))
    sigma2 = state.residual / (observations - 2 * q)
    beta = state.beta.copy()
    beta[0] += centre * unit
    factor = _factor(theta)
    relative = factor @ factor.T
    return DesignFit(
        columns=tuple(columns),
        names=(*columns, *(f"wave:{c}" for c in columns)),
        fixed_effects=beta.ravel(),
        covariance=sigma2 * np.linalg.inv(state.precision),
        theta=theta,
        random_covariance=sigma2 * relative,
        sigma=float(np.sqrt(sigma2)),
        reml_criterion=state.deviance,
        converged=newton_step < STEP_TOLERANCE,
        newton_step=newton_step,
        gradient_max=float(np.max(np.abs(state.gradient))),
        message=str(result.message),
        evaluations=int(result.nfev),
        boundary=bool(np.linalg.eigvalsh(relative)[0] < singular_tolerance),
        participants=len(rows),
        observations=int(observations),
        groups=len(totals.count),
        totals=totals,
        q=state.q,
        varpar_covariance=_varpar_covariance(theta, np.sqrt(sigma2), totals, observations),
    )


@dataclass(frozen=True)
class RemlFit:
    """The REML fit, in lme4's terms.

    ``names`` are patsy's treatment-coded names for ``score ~ wave * arm`` (``Intercept``,
    ``arm[T.b]``, …, ``wave``, ``wave:arm[T.b]``, …); ``fixed_effects`` and ``covariance``
    (their estimated covariance, :math:`\\hat\\sigma^2 (X^\\top W^{-1} X)^{-1}`) follow that
    order. ``theta`` is lme4's :math:`\\theta`, ``random_covariance`` :math:`\\hat\\Psi`
    (intercept, slope), ``sigma`` the residual SD, ``reml_criterion`` lme4's ``REMLcrit``.
    ``converged`` holds only when the point is checked to be a minimum: the Hessian is positive
    definite and the Newton step that remains, ``newton_step`` (max |H⁻¹g| over θ), is below
    :data:`STEP_TOLERANCE`; ``gradient_max`` is the largest component of the gradient and
    ``message`` the optimiser's own (L-BFGS-B; Newton steps follow it). ``boundary`` is true
    when the smallest eigenvalue of :math:`\\Psi/\\sigma^2` is below ``singular_tolerance``.
    ``design`` is the same fit in the arms' own levels and growths (:class:`DesignFit`, one
    column per arm), for any other contrast of the arms' growths.
    """

    arm_names: tuple[str, ...]
    names: tuple[str, ...]
    fixed_effects: np.ndarray
    covariance: np.ndarray
    theta: np.ndarray
    random_covariance: np.ndarray
    sigma: float
    reml_criterion: float
    contrasts: tuple[Contrast, ...]
    converged: bool
    newton_step: float
    gradient_max: float
    message: str
    evaluations: int
    boundary: bool
    participants: int
    observations: int
    groups: int
    design: DesignFit = field(repr=False)


def reml_growth_fit(
    arm: np.ndarray,
    statistics: np.ndarray,
    arm_names: tuple[str, ...],
    *,
    singular_tolerance: float = 1e-6,
    max_iterations: int = 2000,
) -> RemlFit:
    """Fit the growth model by exact REML from per-participant statistics.

    Parameters
    ----------
    arm : array of int, shape (P,)
        Each participant's arm, a code into ``arm_names`` (0 = the control).
    statistics : array, shape (P, 6)
        :data:`STATISTICS` per participant (:func:`participant_statistics`), with the wave as
        the time variable (0 = baseline). Every participant needs n ≥ 1.
    arm_names : tuple of str
        Control first; every arm needs participants observed at two distinct waves or more,
        or its growth is not identified.
    singular_tolerance : float
        Smallest eigenvalue of :math:`\\Psi/\\sigma^2` below which the fit is a boundary fit.
    max_iterations : int
        Iterations of L-BFGS-B; Newton steps after it, at most :data:`_NEWTON_STEPS` and at
        most this many.
    """
    arm = np.asarray(arm, dtype=int)
    n_arms = len(arm_names)
    if np.any(np.bincount(arm, minlength=n_arms) == 0):
        raise ValueError("Every arm needs participants.")
    design = reml_design_fit(
        arm_rows(arm, n_arms),
        statistics,
        tuple(arm_names),
        singular_tolerance=singular_tolerance,
        max_iterations=max_iterations,
    )
    names, transform = _treatment_coding(arm_names)
    # The design's order is (level, growth) × arm; the treatment coding takes arm × (level, growth).
    order = np.arange(2 * n_arms).reshape(2, n_arms).T.ravel()
    fixed = transform @ design.fixed_effects[order]
    covariance = transform @ design.covariance[np.ix_(order, order)] @ transform.T
    contrasts = []
    for a in range(1, n_arms):
        weights = np.zeros(n_arms)
        weights[[a, 0]] = 1.0, -1.0
        contrast = design.contrast(weights)
        contrasts.append(Contrast(arm_names[a], contrast.estimate, contrast.std_error, contrast.df))
    return RemlFit(
        arm_names=tuple(arm_names),
        names=names,
        fixed_effects=fixed,
        covariance=covariance,
        theta=design.theta,
        random_covariance=design.random_covariance,
        sigma=design.sigma,
        reml_criterion=design.reml_criterion,
        contrasts=tuple(contrasts),
        converged=design.converged,
        newton_step=design.newton_step,
        gradient_max=design.gradient_max,
        message=design.message,
        evaluations=design.evaluations,
        boundary=design.boundary,
        participants=design.participants,
        observations=design.observations,
        groups=design.groups,
        design=design,
    )


def _treatment_coding(arm_names: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray]:
    """Patsy's names for ``score ~ wave * arm`` and the matrix taking the arms' (level,
    growth) pairs, stacked, to those coefficients."""
    others = arm_names[1:]
    names = (
        "Intercept",
        *(f"arm[T.{a}]" for a in others),
        "wave",
        *(f"wave:arm[T.{a}]" for a in others),
    )
    K = len(arm_names)
    transform = np.zeros((2 * K, 2 * K))
    for column in (0, 1):  # level, growth
        base = 0 if column == 0 else K
        transform[base, column] = 1.0
        for a in range(1, K):
            transform[base + a, 2 * a + column] = 1.0
            transform[base + a, column] = -1.0
    return names, transform


def _deviance_gradient(point: np.ndarray, totals: GroupTotals, observations: float) -> np.ndarray:
    """Gradient of the REML deviance with σ not profiled out, in (θ, σ) as lmerTest takes it:
    :math:`d = \\sum\\log|M_i| + \\log|X^\\top W^{-1} X| + (N-p)\\log 2\\pi\\sigma^2
    + r^2/\\sigma^2`."""
    theta, sigma = point[:3], point[3]
    state = _state(theta, totals, observations)
    free = observations - state.precision.shape[0]
    # The profiled gradient weighs Σwwᵀ by (N − p)/r²; here it is 1/σ².
    correction = (free / state.residual - 1 / sigma**2) * state.ww.sum(0)
    theta_gradient = state.gradient + _packed(correction, _factor(theta))
    sigma_gradient = 2 * free / sigma - 2 * state.residual / sigma**3
    return np.append(theta_gradient, sigma_gradient)


def _varpar_covariance(
    theta: np.ndarray, sigma: float, totals: GroupTotals, observations: float
) -> np.ndarray:
    """The asymptotic covariance of (θ̂, σ̂), :math:`A = 2H^{-1}` (see the module doc)."""
    hessian = _jacobian(
        lambda point: _deviance_gradient(point, totals, observations), np.append(theta, sigma)
    )
    # lmerTest inverts the Hessian through its positive eigenvalues, which also covers a
    # boundary fit (where the curvature across the boundary can be zero or negative).
    values, vectors = np.linalg.eigh(hessian)
    keep = values > 1e-8
    return 2 * (vectors[:, keep] / values[keep]) @ vectors[:, keep].T
