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

Inference
---------
:math:`\hat\sigma^2 = r^2 / (N - p)`, :math:`\widehat{\mathrm{Var}}(\hat\beta) = \hat\sigma^2
(X^\top W^{-1} X)^{-1}` at :math:`\hat\theta` (what lme4's ``vcov`` reports). The degrees of
freedom of a contrast :math:`c^\top\beta` are Satterthwaite's, computed as lmerTest does
(Kuznetsova et al. 2017): with :math:`f(\theta, \sigma) = \sigma^2 c^\top C(\theta)^{-1} c`,
:math:`\nu = 2 f^2 / (\nabla f^\top A \nabla f)`, :math:`A = 2 H^{-1}` and :math:`H` the
Hessian of the unprofiled REML deviance in :math:`(\theta, \sigma)`; :math:`\nabla f` is
analytic and :math:`H` the central difference of the analytic gradient.

References
----------
Bates, D., Mächler, M., Bolker, B., & Walker, S. (2015). Fitting linear mixed-effects models
using lme4. Journal of Statistical Software, 67(1), 1–48.
Harville, D. A. (1977). Maximum likelihood approaches to variance component estimation and to
related problems. JASA, 72, 320–338.
Kuznetsova, A., Brockhoff, P. B., & Christensen, R. H. B. (2017). lmerTest package: tests in
linear mixed effects models. Journal of Statistical Software, 82(13), 1–26.
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import optimize

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
    """Participants pooled by arm and :math:`A_i = Z_i^\\top Z_i` (exact, see the module doc).

    ``arm[g]`` the arm code; ``count[g]`` participants; ``design[g]`` = :math:`A_g` (2 × 2);
    ``sum_u[g]`` = :math:`\\sum u_i`; ``sum_uu[g]`` = :math:`\\sum u_i u_i^\\top`; ``sum_yy[g]``
    = :math:`\\sum y_i^\\top y_i`.
    """

    arm: np.ndarray
    count: np.ndarray
    design: np.ndarray
    sum_u: np.ndarray
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


def group_totals(arm: np.ndarray, statistics: np.ndarray) -> GroupTotals:
    """Pool participants that share arm and :math:`(n, \\sum t, \\sum t^2)`."""
    keys = np.column_stack([arm, statistics[:, :3]])
    # Rows sorted by (arm, n, Σt, Σt²); a group starts wherever the key changes. (np.unique
    # with axis=0 does the same through a generic row comparison, several times slower.)
    order = np.lexsort(keys.T[::-1])
    ordered = keys[order]
    starts = np.ones(len(keys), dtype=bool)
    starts[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    unique = ordered[starts]
    group = np.empty(len(keys), dtype=int)
    group[order] = np.cumsum(starts) - 1
    G = len(unique)

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(group, weights=values, minlength=G)

    sum_y, sum_ty = statistics[:, 3], statistics[:, 4]
    n, sum_t, sum_tt = unique[:, 1], unique[:, 2], unique[:, 3]
    yy, yt, tt = total(sum_y * sum_y), total(sum_y * sum_ty), total(sum_ty * sum_ty)
    return GroupTotals(
        arm=unique[:, 0].astype(int),
        count=total(np.ones(len(group))),
        design=np.stack([np.stack([n, sum_t], -1), np.stack([sum_t, sum_tt], -1)], -2),
        sum_u=np.column_stack([total(sum_y), total(sum_ty)]),
        sum_uu=np.stack([np.stack([yy, yt], -1), np.stack([yt, tt], -1)], -2),
        sum_yy=total(statistics[:, 5]),
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
    beta: np.ndarray  # (arms, 2): each arm's level and growth
    precision: np.ndarray  # (arms, 2, 2): S_a = Σ Q_i
    residual: float  # r²
    q: np.ndarray  # (G, 2, 2)
    ww: np.ndarray  # (G, 2, 2): Σ over the group of w_i w_iᵀ


def _state(theta: np.ndarray, totals: GroupTotals, n_arms: int, observations: float) -> _State:
    factor = _factor(theta)
    A, c = totals.design, totals.count
    inner = np.eye(2) + factor.T @ A @ factor  # M_g
    logdet = np.log(inner[:, 0, 0] * inner[:, 1, 1] - inner[:, 0, 1] ** 2)
    h = factor @ _sym_inverse(inner) @ factor.T  # H_g
    k = np.eye(2) - A @ h  # K_g
    q = A @ np.swapaxes(k, -1, -2)  # Q_g = A_g K_gᵀ, symmetric
    q = (q + np.swapaxes(q, -1, -2)) / 2
    G = len(c)
    # Sums over each arm's groups, as one product with the (arms, G) membership matrix.
    members = np.zeros((n_arms, G))
    members[totals.arm, np.arange(G)] = 1.0
    precision = (members @ (c[:, None] * q.reshape(G, 4))).reshape(n_arms, 2, 2)
    score = members @ (k @ totals.sum_u[:, :, None])[:, :, 0]
    beta = np.linalg.solve(precision, score[..., None])[..., 0]
    residual = float(totals.sum_yy.sum() - np.sum(h * totals.sum_uu) - np.sum(score * beta))
    p = 2 * n_arms
    free = observations - p
    deviance = (
        float(c @ logdet)
        + float(np.linalg.slogdet(precision)[1].sum())
        + free * (1 + np.log(2 * np.pi * residual / free))
    )
    # Σ_g w wᵀ = K (Σuuᵀ − Σu mᵀ − m Σuᵀ + c m mᵀ) Kᵀ with m = A β_a.
    m = (A @ beta[totals.arm][:, :, None])[:, :, 0]
    cross = totals.sum_u[:, :, None] * m[:, None, :]
    centred = (
        totals.sum_uu
        - cross
        - np.swapaxes(cross, -1, -2)
        + c[:, None, None] * m[:, :, None] * m[:, None, :]
    )
    ww = k @ centred @ np.swapaxes(k, -1, -2)
    covariance = np.linalg.inv(precision)[totals.arm]
    gamma = (c @ (q - q @ covariance @ q).reshape(G, 4)).reshape(2, 2) - free / residual * ww.sum(0)
    return _State(
        deviance=deviance,
        gradient=_packed(gamma, factor),
        beta=beta,
        precision=precision,
        residual=residual,
        q=q,
        ww=ww,
    )


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
    statistics = np.asarray(statistics, dtype=float)
    n_arms = len(arm_names)
    # Scores are centred at their mean first: the criterion and every estimate but the
    # intercept are unchanged (a constant lies in the span of X), and the sums of squares lose
    # far fewer digits to cancellation.
    observations = float(statistics[:, 0].sum())
    centre = statistics[:, 3].sum() / observations
    centred = statistics.copy()
    centred[:, 5] += -2 * centre * statistics[:, 3] + centre**2 * statistics[:, 0]
    centred[:, 4] -= centre * statistics[:, 1]
    centred[:, 3] -= centre * statistics[:, 0]
    totals = group_totals(arm, centred)
    if np.any(np.bincount(totals.arm, minlength=n_arms) == 0):
        raise ValueError("Every arm needs participants.")

    def criterion(theta: np.ndarray) -> tuple[float, np.ndarray]:
        state = _state(theta, totals, n_arms, observations)
        return state.deviance, state.gradient

    def gradient_at(theta: np.ndarray) -> np.ndarray:
        return criterion(theta)[1]

    result = optimize.minimize(
        criterion,
        _START,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iterations, "ftol": 1e-12, "gtol": 1e-6},
    )
    theta, step = _polished(result.x, gradient_at, min(_NEWTON_STEPS, max_iterations))
    theta = _positive_diagonal(theta)
    state = _state(theta, totals, n_arms, observations)
    gradient_max = float(np.max(np.abs(state.gradient)))
    newton_step = np.inf if step is None else float(np.max(np.abs(step)))
    free = observations - 2 * n_arms
    sigma2 = state.residual / free
    arm_covariance = sigma2 * np.linalg.inv(state.precision)
    names, transform = _treatment_coding(arm_names)
    beta = state.beta.copy()
    beta[:, 0] += centre
    fixed = transform @ beta.ravel()
    cell_covariance = np.zeros((2 * n_arms, 2 * n_arms))
    for a in range(n_arms):
        cell_covariance[2 * a : 2 * a + 2, 2 * a : 2 * a + 2] = arm_covariance[a]
    covariance = transform @ cell_covariance @ transform.T
    factor = _factor(theta)
    relative = factor @ factor.T
    df = _satterthwaite(theta, np.sqrt(sigma2), totals, n_arms, observations)
    contrasts = tuple(
        Contrast(
            arm=arm_names[a],
            estimate=float(beta[a, 1] - beta[0, 1]),
            std_error=float(np.sqrt(arm_covariance[a, 1, 1] + arm_covariance[0, 1, 1])),
            df=float(df[a - 1]),
        )
        for a in range(1, n_arms)
    )
    return RemlFit(
        arm_names=tuple(arm_names),
        names=names,
        fixed_effects=fixed,
        covariance=covariance,
        theta=theta,
        random_covariance=sigma2 * relative,
        sigma=float(np.sqrt(sigma2)),
        reml_criterion=state.deviance,
        contrasts=contrasts,
        converged=newton_step < STEP_TOLERANCE,
        newton_step=newton_step,
        gradient_max=gradient_max,
        message=str(result.message),
        evaluations=int(result.nfev),
        boundary=bool(np.linalg.eigvalsh(relative)[0] < singular_tolerance),
        participants=len(arm),
        observations=int(observations),
        groups=len(totals.count),
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


def _deviance_gradient(
    point: np.ndarray, totals: GroupTotals, n_arms: int, observations: float
) -> np.ndarray:
    """Gradient of the REML deviance with σ not profiled out, in (θ, σ) as lmerTest takes it:
    :math:`d = \\sum\\log|M_i| + \\sum\\log|S_a| + (N-p)\\log 2\\pi\\sigma^2 + r^2/\\sigma^2`."""
    theta, sigma = point[:3], point[3]
    state = _state(theta, totals, n_arms, observations)
    free = observations - 2 * n_arms
    # The profiled gradient weighs Σwwᵀ by (N − p)/r²; here it is 1/σ².
    correction = (free / state.residual - 1 / sigma**2) * state.ww.sum(0)
    theta_gradient = state.gradient + _packed(correction, _factor(theta))
    sigma_gradient = 2 * free / sigma - 2 * state.residual / sigma**3
    return np.append(theta_gradient, sigma_gradient)


def _satterthwaite(
    theta: np.ndarray, sigma: float, totals: GroupTotals, n_arms: int, observations: float
) -> np.ndarray:
    """Satterthwaite df of each arm's growth contrast (see the module doc)."""
    hessian = _jacobian(
        lambda point: _deviance_gradient(point, totals, n_arms, observations),
        np.append(theta, sigma),
    )
    # lmerTest inverts the Hessian through its positive eigenvalues, which also covers a
    # boundary fit (where the curvature across the boundary can be zero or negative).
    values, vectors = np.linalg.eigh(hessian)
    keep = values > 1e-8
    varpar_covariance = 2 * (vectors[:, keep] / values[keep]) @ vectors[:, keep].T
    state = _state(theta, totals, n_arms, observations)
    covariance = np.linalg.inv(state.precision)
    factor = _factor(theta)
    e = np.array([0.0, 1.0])
    df = []
    for a in range(1, n_arms):
        variance = 0.0
        gamma = np.zeros((2, 2))
        for b in (0, a):
            variance += covariance[b] @ e @ e
            mine = totals.arm == b
            # d(eᵀS⁻¹e) = Σ_i (Q_i S⁻¹e)ᵀ dΨ̃ (Q_i S⁻¹e)
            v = state.q[mine] @ (covariance[b] @ e)
            gamma += np.einsum("g,gi,gj->ij", totals.count[mine], v, v)
        f = sigma**2 * variance
        gradient = np.append(sigma**2 * _packed(gamma, factor), 2 * sigma * variance)
        df.append(2 * f**2 / (gradient @ varpar_covariance @ gradient))
    return np.array(df)
