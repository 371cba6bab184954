r"""Reliability, factor structure and change statistics for multi-item survey instruments.

Everything here is pure (numpy, scipy, pandas, statsmodels; no Django), so analyses can be re-run
offline and checked against independent implementations:

* :func:`cronbach_alpha` — internal consistency with Feldt's exact interval.
* :func:`mcdonald_omega` — ω total from a one-factor maximum-likelihood CFA.
* :func:`cfa_fit` — maximum-likelihood confirmatory factor analysis with correlated factors,
  reporting the fit indices lavaan reports (χ², CFI, TLI, RMSEA, SRMR).
* :func:`measurement_invariance` — configural → metric → scalar multi-group CFA.
* :func:`icc_test_retest` — test–retest ICC(A,1) on unbalanced panels from REML variance
  components.
* :func:`reliable_change` — the Jacobson–Truax reliable change index.

α, ω, the CFA and the invariance tests depend on complete-case data only through each group's
count, mean vector and covariance matrix, so each also has a ``*_from_moments`` form that takes
:class:`ItemMoments` — which a database can compute as :math:`n`, :math:`\sum x_j` and
:math:`\sum x_j x_k` (:meth:`ItemMoments.from_sums`) without sending a row per respondent.

The CFA estimator follows lavaan's defaults (Rosseel 2012) so numbers can be compared with the
published lavaan tutorials: normal-theory ML on the biased (divide-by-N) sample covariance matrix,
the first loading of each factor fixed to 1, factor variances and covariances free, and a test
statistic of :math:`N \cdot F_{ML}` (``likelihood = "normal"``).
"""

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import linalg, optimize, stats

# ---------------------------------------------------------------------------------------------
# Complete-case moments
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemMoments:
    """Moments of the complete rows of some items: their count, mean vector and ML
    (divide-by-N) covariance matrix, in a fixed item order. With ``n`` = 0 the mean and
    covariance are NaN."""

    cov: np.ndarray
    mean: np.ndarray
    n: int

    @property
    def n_items(self) -> int:
        return len(self.mean)

    @classmethod
    def from_rows(cls, items: ArrayLike) -> "ItemMoments":
        """The moments of the rows of ``items`` (respondents × items) with no NaN."""
        x = _complete_rows(items)
        n, p = x.shape
        if n == 0:
            return cls(cov=np.full((p, p), np.nan), mean=np.full(p, np.nan), n=0)
        return cls(cov=np.cov(x, rowvar=False, bias=True).reshape(p, p), mean=x.mean(axis=0), n=n)

    @classmethod
    def from_sums(
        cls, n: int, sums: Sequence[object], cross_products: Sequence[Sequence[object]]
    ) -> "ItemMoments":
        r"""The moments from :math:`n`, :math:`\sum_i x_{ij}` and :math:`\sum_i x_{ij}x_{ik}`
        (a symmetric matrix). Given as exact numbers (``int``, ``Decimal`` or ``Fraction``,
        e.g. PostgreSQL ``numeric`` sums of integer answers), the covariance
        :math:`(n\sum x_jx_k - \sum x_j\sum x_k)/n^2` is computed exactly and rounded once,
        so it carries none of the cancellation error of the one-pass formula in floating point.
        """
        p = len(sums)
        if n == 0:
            return cls(cov=np.full((p, p), np.nan), mean=np.full(p, np.nan), n=0)
        s = [Fraction(v) for v in sums]
        cov = np.array(
            [
                [float((n * Fraction(cross_products[j][k]) - s[j] * s[k]) / n**2) for k in range(p)]
                for j in range(p)
            ],
            dtype=float,
        ).reshape(p, p)
        return cls(cov=cov, mean=np.array([float(v / n) for v in s], dtype=float), n=int(n))

    def subset(self, order: Sequence[int]) -> "ItemMoments":
        """The moments of the items at positions ``order``, in that order."""
        index = np.asarray(order, dtype=int)
        return ItemMoments(cov=self.cov[np.ix_(index, index)], mean=self.mean[index], n=self.n)


_Moments = ItemMoments

# ---------------------------------------------------------------------------------------------
# Cronbach's alpha
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlphaResult:
    """Cronbach's α with its Feldt confidence interval."""

    alpha: float
    ci_low: float
    ci_high: float
    n_respondents: int
    n_items: int


def cronbach_alpha(items: ArrayLike, confidence: float = 0.95) -> AlphaResult:
    r"""Cronbach's coefficient α with Feldt's (1965) F-based confidence interval.

    For :math:`k` items with sample variances :math:`s_j^2` and total-score variance
    :math:`s_X^2`,

    .. math:: \hat\alpha = \frac{k}{k-1}\left(1 - \frac{\sum_j s_j^2}{s_X^2}\right).

    Under normality :math:`(1-\alpha)/(1-\hat\alpha) \sim F(n-1, (n-1)(k-1))` (Feldt 1965), so
    a two-sided :math:`1-\gamma` interval is

    .. math::
        \left[1 - (1-\hat\alpha)\,F_{1-\gamma/2},\; 1 - (1-\hat\alpha)\,F_{\gamma/2}\right].

    α is a lower bound to reliability that equals it only for essentially tau-equivalent items;
    prefer :func:`mcdonald_omega` when loadings differ (McNeish 2018).

    Parameters
    ----------
    items : array_like, shape (n_respondents, n_items)
        Item scores, all keyed in the same direction. **Rows with any missing value (NaN) are
        dropped (listwise deletion)**; pingouin's default is pairwise deletion, which can give a
        different value on the same data.
    confidence : float
        Coverage of the interval, in (0, 1).

    Returns
    -------
    AlphaResult
        ``n_respondents`` counts the complete rows actually used.

    Raises
    ------
    ValueError
        If ``items`` is not 2-D, has fewer than 2 items or 2 complete rows, contains infinite
        values, has zero total-score variance, or ``confidence`` is outside (0, 1).

    References
    ----------
    Cronbach, L. J. (1951). Coefficient alpha and the internal structure of tests.
    Psychometrika, 16(3), 297–334.
    Feldt, L. S. (1965). The approximate sampling distribution of Kuder–Richardson reliability
    coefficient twenty. Psychometrika, 30(3), 357–370.
    McNeish, D. (2018). Thanks coefficient alpha, we'll take it from here. Psychological Methods,
    23(3), 412–433.
    """
    return cronbach_alpha_from_moments(ItemMoments.from_rows(items), confidence)


def cronbach_alpha_from_moments(moments: ItemMoments, confidence: float = 0.95) -> AlphaResult:
    r""":func:`cronbach_alpha` from the complete rows' moments: with :math:`S` their
    covariance matrix,

    .. math:: \hat\alpha = \frac{k}{k-1}(1 - \operatorname{tr}S / \mathbf 1^\top S\mathbf 1)

    (the divisor of :math:`S` cancels). Raises as :func:`cronbach_alpha` does."""
    _check_confidence(confidence)
    n, k = moments.n, moments.n_items
    if k < 2:
        raise ValueError("Cronbach's alpha needs at least 2 items.")
    if n < 2:
        raise ValueError("Cronbach's alpha needs at least 2 complete rows (respondents).")
    total_var = moments.cov.sum()
    if total_var <= 0:
        raise ValueError("The total score has zero variance; alpha is undefined.")
    alpha = k / (k - 1) * (1 - np.trace(moments.cov) / total_var)
    df1, df2 = n - 1, (n - 1) * (k - 1)
    tail = (1 - confidence) / 2
    return AlphaResult(
        alpha=float(alpha),
        ci_low=float(1 - (1 - alpha) * stats.f.isf(tail, df1, df2)),
        ci_high=float(1 - (1 - alpha) * stats.f.ppf(tail, df1, df2)),
        n_respondents=n,
        n_items=k,
    )


# ---------------------------------------------------------------------------------------------
# Maximum-likelihood CFA engine (single and multiple groups)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Estimates:
    """Model matrices of one group at the ML solution."""

    loadings: np.ndarray  # Λ, items × factors
    residual_variances: np.ndarray  # diag(Θ)
    factor_cov: np.ndarray  # Φ
    factor_means: np.ndarray | None  # κ
    implied_cov: np.ndarray  # Σ = ΛΦΛ' + Θ
    implied_mean: np.ndarray | None  # μ = ν + Λκ

    def in_marker_metric(self, scale: np.ndarray, markers: np.ndarray) -> "_Estimates":
        """The same solution for items multiplied by ``scale`` and each factor rescaled so its
        marker loads 1: with S = diag(scale) and D = diag of the markers' loadings on SΛ,
        Λ → SΛD⁻¹, Φ → DΦD, κ → Dκ, Θ → S²Θ, Σ → SΣS, μ → Sμ."""
        loadings = self.loadings * scale[:, None]
        d = loadings[markers, np.arange(len(markers))]
        return _Estimates(
            loadings=loadings / d[None, :],
            residual_variances=self.residual_variances * scale**2,
            factor_cov=self.factor_cov * np.outer(d, d),
            factor_means=None if self.factor_means is None else self.factor_means * d,
            implied_cov=self.implied_cov * np.outer(scale, scale),
            implied_mean=None if self.implied_mean is None else self.implied_mean * scale,
        )


@dataclass(frozen=True)
class _Fit:
    """What the engine returns: the minimised discrepancy and the per-group estimates."""

    chi2: float
    df: int
    baseline_chi2: float
    baseline_df: int
    n: int
    estimates: tuple[_Estimates, ...]
    srmr: float


class _FactorModel:
    r"""A (multi-group) common-factor model :math:`\Sigma_g = \Lambda_g\Phi_g\Lambda_g' + \Theta_g`,
    :math:`\mu_g = \nu_g + \Lambda_g\kappa_g`, fitted by normal-theory maximum likelihood.

    The optimiser works in a better-conditioned but equivalent parametrisation: items divided
    by their pooled SD (one scale for all groups, so equality constraints survive) and factor
    variances fixed to 1 in the reference group, with every loading free. Groups with loadings
    constrained equal to the reference group's get free factor variances, and with intercepts
    also equal, free latent means. The solution is then mapped to lavaan's marker metric
    (:meth:`_Estimates.in_marker_metric`); F, χ² and SRMR do not depend on the
    parametrisation. A weak marker item made the marker parametrisation itself fail to
    converge on simulated data. The parameters of every group live in one flat vector and
    equality constraints are groups sharing indices into it, so the gradient is a scatter-add.
    """

    def __init__(
        self,
        pattern: np.ndarray,
        markers: np.ndarray,
        moments: Sequence[_Moments],
        *,
        meanstructure: bool,
        equal_loadings: bool = False,
        equal_intercepts: bool = False,
    ) -> None:
        self.pattern = pattern
        self.markers = markers
        self.meanstructure = meanstructure
        p, m = pattern.shape
        self.p, self.m = p, m
        n_total = sum(mo.n for mo in moments)
        self.n_total = n_total
        self.weights = np.array([mo.n / n_total for mo in moments])
        pooled_var = sum(w * np.diag(mo.cov) for w, mo in zip(self.weights, moments, strict=True))
        self.scale = np.sqrt(pooled_var)
        self.moments = tuple(
            _Moments(
                cov=mo.cov / np.outer(self.scale, self.scale), mean=mo.mean / self.scale, n=mo.n
            )
            for mo in moments
        )
        self.lam_rows, self.lam_cols = np.nonzero(pattern)

        count = 0

        def new(size: int) -> np.ndarray:
            nonlocal count
            block = np.arange(count, count + size)
            count += size
            return block

        self.lam_idx, self.theta_idx, self.phi_pos, self.phi_idx = [], [], [], []
        self.nu_idx, self.kappa_idx = [], []
        for g in range(len(self.moments)):
            linked = g > 0 and equal_loadings
            self.lam_idx.append(self.lam_idx[0] if linked else new(len(self.lam_rows)))
            self.theta_idx.append(new(p))
            # Factor variances are fixed to 1 unless the loadings are borrowed from group 1.
            phi_pos = np.tril_indices(m, 0 if linked else -1)
            self.phi_pos.append(phi_pos)
            self.phi_idx.append(new(len(phi_pos[0])))
            if meanstructure:
                self.nu_idx.append(self.nu_idx[0] if g > 0 and equal_intercepts else new(p))
                # With equal intercepts the latent means become identified relative to group 1.
                self.kappa_idx.append(new(m) if g > 0 and equal_intercepts else np.full(m, -1))
        self.n_params = count

        moments_per_group = p * (p + 1) // 2 + (p if meanstructure else 0)
        self.df = len(self.moments) * moments_per_group - self.n_params
        if self.df < 0:
            raise ValueError(
                f"The model is not identified: it has {self.n_params} free parameters but only "
                f"{len(self.moments) * moments_per_group} sample moments (df = {self.df})."
            )
        self.logdet_s = [np.linalg.slogdet(mo.cov)[1] for mo in self.moments]

    def _unpack(self, params: np.ndarray, g: int) -> _Estimates:
        lam = np.zeros((self.p, self.m))
        lam[self.lam_rows, self.lam_cols] = params[self.lam_idx[g]]
        theta = params[self.theta_idx[g]]
        phi = np.eye(self.m)
        phi[self.phi_pos[g]] = params[self.phi_idx[g]]
        phi = np.tril(phi) + np.tril(phi, -1).T
        sigma = lam @ phi @ lam.T + np.diag(theta)
        kappa = mu = None
        if self.meanstructure:
            kappa = np.where(self.kappa_idx[g] >= 0, params[self.kappa_idx[g]], 0.0)
            mu = params[self.nu_idx[g]] + lam @ kappa
        return _Estimates(lam, theta, phi, kappa, sigma, mu)

    def objective(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        r""":math:`F = \sum_g \frac{N_g}{N} F_g` and its analytic gradient, where

        .. math:: F_g = \log|\Sigma_g| + \operatorname{tr}(S_g\Sigma_g^{-1}) - \log|S_g| - p
                  + (\bar x_g - \mu_g)'\Sigma_g^{-1}(\bar x_g - \mu_g).
        """
        value = 0.0
        grad = np.zeros(self.n_params)
        for g, (mo, w) in enumerate(zip(self.moments, self.weights, strict=True)):
            est = self._unpack(params, g)
            try:
                chol = linalg.cho_factor(est.implied_cov, lower=True)
            except linalg.LinAlgError:
                # Outside the admissible region: an infinite value makes the line search
                # step back.
                return np.inf, np.zeros(self.n_params)
            sigma_inv = linalg.cho_solve(chol, np.eye(self.p))
            logdet = 2.0 * np.log(np.diag(chol[0])).sum()
            f_g = logdet + np.trace(mo.cov @ sigma_inv) - self.logdet_s[g] - self.p
            outer = mo.cov
            if self.meanstructure:
                d = mo.mean - est.implied_mean
                sd = sigma_inv @ d
                f_g += d @ sd
                outer = mo.cov + np.outer(d, d)
            value += w * f_g
            # dF/dΣ = Σ⁻¹ − Σ⁻¹(S + dd')Σ⁻¹, then the chain rule through Λ, Φ, Θ (and ν, κ).
            g_sigma = sigma_inv - sigma_inv @ outer @ sigma_inv
            d_lam = 2.0 * g_sigma @ est.loadings @ est.factor_cov
            d_phi = est.loadings.T @ g_sigma @ est.loadings
            d_phi = 2.0 * d_phi - np.diag(np.diag(d_phi))
            if self.meanstructure:
                h = -2.0 * sd
                d_lam += np.outer(h, est.factor_means)
                np.add.at(grad, self.nu_idx[g], w * h)
                has_kappa = self.kappa_idx[g] >= 0
                np.add.at(grad, self.kappa_idx[g][has_kappa], w * (est.loadings.T @ h)[has_kappa])
            np.add.at(grad, self.lam_idx[g], w * d_lam[self.lam_rows, self.lam_cols])
            np.add.at(grad, self.theta_idx[g], w * np.diag(g_sigma))
            np.add.at(grad, self.phi_idx[g], w * d_phi[self.phi_pos[g]])
        return value, grad

    def start(self) -> np.ndarray:
        """Starting values per group, averaged over groups for shared parameters.

        Loadings start at 0.9 × the first principal component of each factor's items (the
        items are on unit scale here), which also gets their signs right; residual variances
        at half the observed variance, as lavaan does; factor variances at 1 and covariances
        and latent means at 0.
        """
        total = np.zeros(self.n_params)
        hits = np.zeros(self.n_params)
        for g, mo in enumerate(self.moments):
            lam = np.zeros((self.p, self.m))
            for f in range(self.m):
                rows = np.flatnonzero(self.pattern[:, f])
                eigval, eigvec = np.linalg.eigh(mo.cov[np.ix_(rows, rows)])
                component = eigvec[:, -1] * np.sqrt(eigval[-1])
                # Orient the component so the marker loads positively.
                lam[rows, f] = 0.9 * component * np.sign(component[rows == self.markers[f]])
            values = [
                (self.lam_idx[g], lam[self.lam_rows, self.lam_cols]),
                (self.theta_idx[g], 0.5 * np.diag(mo.cov)),
                (self.phi_idx[g], np.eye(self.m)[self.phi_pos[g]]),
            ]
            if self.meanstructure:
                values.append((self.nu_idx[g], mo.mean))
            for idx, val in values:
                np.add.at(total, idx, val)
                np.add.at(hits, idx, 1.0)
        # Latent means (never written above) start at 0.
        return np.divide(total, hits, out=np.zeros(self.n_params), where=hits > 0)

    def fit(self) -> _Fit:
        result = optimize.minimize(
            self.objective,
            self.start(),
            jac=True,
            # BFGS's line search backs off from an infinite value (a step leaving the positive
            # definite region); L-BFGS-B's gives up there.
            method="BFGS",
            # Well-posed fits need tens to a few hundred iterations; runaway (Heywood) ones never
            # stop, so fail fast.
            options={"maxiter": 2_000, "gtol": 1e-9},
        )
        grad_norm = np.max(np.abs(result.jac))
        if not np.isfinite(result.fun) or grad_norm > 1e-5:
            raise RuntimeError(
                f"The CFA did not converge (max |gradient| = {grad_norm:.2e}; {result.message}). "
                "The data may not identify the model, e.g. a factor whose items barely correlate "
                "in some group, driving a residual variance negative without bound."
            )
        estimates = [self._unpack(result.x, g) for g in range(len(self.moments))]
        if any(np.any(est.residual_variances < 0) for est in estimates):
            # As lavaan does: the fit is reported, but it is an improper solution.
            warnings.warn(
                "Some residual variances are negative (a Heywood case); the solution is improper.",
                RuntimeWarning,
                stacklevel=3,
            )
        baseline = sum(
            mo.n * (np.log(np.diag(mo.cov)).sum() - self.logdet_s[g])
            for g, mo in enumerate(self.moments)
        )
        return _Fit(
            chi2=float(self.n_total * result.fun),
            df=int(self.df),
            baseline_chi2=float(baseline),
            baseline_df=len(self.moments) * self.p * (self.p - 1) // 2,
            n=self.n_total,
            estimates=tuple(est.in_marker_metric(self.scale, self.markers) for est in estimates),
            srmr=self._srmr(estimates),
        )

    def _srmr(self, estimates: Sequence[_Estimates]) -> float:
        r"""lavaan's default SRMR (Bentler's): residuals scaled by the *observed* SDs,
        :math:`(s_{ij} - \hat\sigma_{ij})/\sqrt{s_{ii}s_{jj}}` over the lower triangle including
        the diagonal, plus :math:`(\bar x_i - \hat\mu_i)/\sqrt{s_{ii}}` when there is a mean
        structure; root mean square per group, then averaged with weights :math:`N_g/N`.
        """
        rows, cols = np.tril_indices(self.p)
        per_group = []
        for mo, est in zip(self.moments, estimates, strict=True):
            sd = np.sqrt(np.diag(mo.cov))
            resid = ((mo.cov - est.implied_cov) / np.outer(sd, sd))[rows, cols]
            if self.meanstructure:
                resid = np.concatenate([resid, (mo.mean - est.implied_mean) / sd])
            per_group.append(np.sqrt(np.mean(resid**2)))
        return float(np.dot(self.weights, per_group))


def _pattern(
    factors: Mapping[str, Sequence[str]],
) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Validate a ``{factor: [items]}`` specification; return factor names, items, the
    items × factors loading pattern and each factor's marker (its first item) as an index."""
    if not isinstance(factors, Mapping) or not factors:
        raise ValueError("factors must be a non-empty mapping {factor name: [item columns]}.")
    names = list(factors)
    items: list[str] = []
    for name, columns in factors.items():
        if isinstance(columns, str) or len(columns) < 2:
            raise ValueError(f"Factor {name!r} needs a list of at least 2 item columns.")
        if len(set(columns)) != len(columns):
            raise ValueError(f"Factor {name!r} lists an item twice.")
        items.extend(c for c in columns if c not in items)
    pattern = np.zeros((len(items), len(names)), dtype=bool)
    for f, columns in enumerate(factors.values()):
        pattern[[items.index(c) for c in columns], f] = True
    markers = [items.index(columns[0]) for columns in factors.values()]
    if len(set(markers)) != len(markers):
        raise ValueError("Each factor's first item (its marker, loading fixed to 1) must differ.")
    return names, items, pattern, np.array(markers)


def _numeric_items(data: pd.DataFrame, items: Sequence[str]) -> pd.DataFrame:
    if not isinstance(data, pd.DataFrame):
        raise ValueError("data must be a pandas DataFrame.")
    missing = [c for c in items if c not in data.columns]
    if missing:
        raise ValueError(f"Columns not in data: {missing}.")
    frame = data[list(items)]
    if not all(pd.api.types.is_numeric_dtype(frame[c]) for c in items):
        raise ValueError("All item columns must be numeric.")
    return frame.astype(float)


def _moments(x: np.ndarray, label: str) -> ItemMoments:
    n, p = x.shape
    if n <= p:
        _checked(ItemMoments(cov=np.zeros((p, p)), mean=np.zeros(p), n=n), label)
    cov = np.cov(x, rowvar=False, bias=True)  # ML estimate (divide by N), as lavaan
    return _checked(ItemMoments(cov=cov, mean=x.mean(axis=0), n=n), label)


def _checked(moments: ItemMoments, label: str) -> ItemMoments:
    """``moments`` if a factor model can be fitted to them: more rows than items and a
    non-singular covariance matrix."""
    n, p = moments.n, moments.n_items
    if n <= p:
        raise ValueError(
            f"{label} has {n} complete rows for {p} items; a CFA needs more rows than items."
        )
    if np.linalg.eigvalsh(moments.cov)[0] <= 1e-12 * np.trace(moments.cov) / p:
        raise ValueError(f"The sample covariance matrix of {label} is singular.")
    return moments


def _in_model_order(moments: ItemMoments, columns: Sequence[str], items: Sequence[str]):
    """``moments`` of ``columns`` rearranged to the model's item order."""
    if len(columns) != moments.n_items:
        raise ValueError("columns must name each item of the moments, in their order.")
    missing = [c for c in items if c not in columns]
    if missing:
        raise ValueError(f"Columns not in data: {missing}.")
    return moments.subset([list(columns).index(c) for c in items])


def _fit_indices(fit: _Fit, n_groups: int) -> dict[str, float]:
    r"""χ² p-value, CFI, TLI and RMSEA exactly as lavaan computes them from the test statistic.

    CFI (Bentler 1990) :math:`= 1 - \max(\chi^2-d, 0)/\max(\chi^2-d, \chi^2_b-d_b, 0)`;
    TLI (Tucker & Lewis 1973) :math:`= 1 - \frac{(\chi^2-d)\,d_b}{(\chi^2_b-d_b)\,d}`;
    RMSEA (Steiger 1990) :math:`= \sqrt{G}\sqrt{\max(\chi^2/(N d) - 1/N, 0)}` with lavaan's
    multi-group factor :math:`\sqrt{G}` (Steiger 1998) and :math:`N`, not :math:`N-1`.
    """
    chi2, df, chi2_b, df_b, n = fit.chi2, fit.df, fit.baseline_chi2, fit.baseline_df, fit.n
    t1 = max(chi2 - df, 0.0)
    t2 = max(chi2 - df, chi2_b - df_b, 0.0)
    cfi = 1.0 if t2 == 0 else 1.0 - t1 / t2
    tli_denominator = (chi2_b - df_b) * df
    tli = 1.0 - (chi2 - df) * df_b / tli_denominator if tli_denominator != 0 else 1.0
    rmsea = np.sqrt(n_groups) * np.sqrt(max(chi2 / (n * df) - 1.0 / n, 0.0)) if df > 0 else 0.0
    p_value = float(stats.chi2.sf(chi2, df)) if df > 0 else float("nan")
    return {"p_value": p_value, "cfi": float(cfi), "tli": float(tli), "rmsea": float(rmsea)}


# ---------------------------------------------------------------------------------------------
# Single-group CFA and omega
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CfaResult:
    """Fit of a confirmatory factor model (ML, lavaan's default identification).

    ``loadings`` are unstandardized (items × factors, 0 where an item does not load, 1 for each
    factor's marker); ``standardized_loadings`` are lavaan's ``std.all``. ``p_value`` is NaN
    for a just-identified model (df = 0).
    """

    chi2: float
    df: int
    p_value: float
    cfi: float
    tli: float
    rmsea: float
    srmr: float
    loadings: pd.DataFrame
    n: int
    standardized_loadings: pd.DataFrame
    residual_variances: pd.Series
    factor_covariance: pd.DataFrame


def cfa_fit(data: pd.DataFrame, factors: dict[str, list[str]]) -> CfaResult:
    r"""Maximum-likelihood confirmatory factor analysis with correlated factors.

    The model is :math:`\Sigma = \Lambda\Phi\Lambda' + \Theta` with :math:`\Theta` diagonal.
    Identification is lavaan's default: the first item listed for each factor has its loading
    fixed to 1; factor variances and covariances are free. Parameters minimise

    .. math:: F_{ML} = \log|\Sigma| + \operatorname{tr}(S\Sigma^{-1}) - \log|S| - p,

    with :math:`S` the divide-by-N covariance matrix, and the test statistic is
    :math:`\chi^2 = N\,F_{ML}` on :math:`p(p+1)/2 - q` degrees of freedom (lavaan's
    ``likelihood = "normal"``). The baseline for CFI/TLI is the independence model
    :math:`\chi^2_b = N(\sum_i \log s_{ii} - \log|S|)` on :math:`p(p-1)/2` df. SRMR is lavaan's
    default (Bentler's; see ``_FactorModel._srmr``) and RMSEA divides by :math:`N` (see
    ``_fit_indices``). Conventional cut-offs for good fit are CFI and TLI ≥ .95, RMSEA ≤ .06
    and SRMR ≤ .08 (Hu & Bentler 1999).

    Parameters
    ----------
    data : pandas.DataFrame
        One row per respondent. **Rows with a missing value on any modelled item are dropped
        (listwise deletion)**; there is no FIML.
    factors : dict of str to list of str
        ``{factor: [item columns]}``, the marker item first. An item listed under several
        factors cross-loads. Each factor needs at least 2 items, and the whole model
        non-negative degrees of freedom (e.g. a one-factor model needs 3 items).

    Returns
    -------
    CfaResult

    Raises
    ------
    ValueError
        On a malformed specification, missing or non-numeric columns, an unidentified model,
        no more complete rows than items, or a singular covariance matrix.
    RuntimeError
        If the optimiser does not reach a stationary point (typically no finite ML solution).

    Warns
    -----
    RuntimeWarning
        If a residual variance is negative (a Heywood case; the fit is improper).

    References
    ----------
    Jöreskog, K. G. (1969). A general approach to confirmatory maximum likelihood factor
    analysis. Psychometrika, 34(2), 183–202.
    Bentler, P. M. (1990). Comparative fit indexes in structural models. Psychological
    Bulletin, 107(2), 238–246.
    Tucker, L. R., & Lewis, C. (1973). A reliability coefficient for maximum likelihood factor
    analysis. Psychometrika, 38(1), 1–10.
    Steiger, J. H. (1990). Structural model evaluation and modification: An interval estimation
    approach. Multivariate Behavioral Research, 25(2), 173–180.
    Hu, L., & Bentler, P. M. (1999). Cutoff criteria for fit indexes in covariance structure
    analysis. Structural Equation Modeling, 6(1), 1–55.
    Rosseel, Y. (2012). lavaan: An R package for structural equation modeling. Journal of
    Statistical Software, 48(2), 1–36.
    """
    names, items, pattern, markers = _pattern(factors)
    x = _numeric_items(data, items).dropna().to_numpy()
    return _cfa(names, items, pattern, markers, _moments(x, "data"))


def cfa_fit_from_moments(
    moments: ItemMoments, columns: Sequence[str], factors: dict[str, list[str]]
) -> CfaResult:
    """:func:`cfa_fit` from the complete rows' moments of the items ``columns`` (in the order
    of ``moments``); every item the factors name must be among them, others are ignored."""
    names, items, pattern, markers = _pattern(factors)
    mo = _checked(_in_model_order(moments, columns, items), "data")
    return _cfa(names, items, pattern, markers, mo)


def _cfa(
    names: list[str],
    items: list[str],
    pattern: np.ndarray,
    markers: np.ndarray,
    moments: ItemMoments,
) -> CfaResult:
    model = _FactorModel(pattern, markers, [moments], meanstructure=False)
    fit = model.fit()
    est = fit.estimates[0]
    implied_sd = np.sqrt(np.diag(est.implied_cov))
    factor_sd = np.sqrt(np.clip(np.diag(est.factor_cov), 0.0, None))
    return CfaResult(
        chi2=fit.chi2,
        df=fit.df,
        srmr=fit.srmr,
        **_fit_indices(fit, n_groups=1),
        loadings=pd.DataFrame(est.loadings, index=items, columns=names),
        n=fit.n,
        standardized_loadings=pd.DataFrame(
            est.loadings * factor_sd[None, :] / implied_sd[:, None], index=items, columns=names
        ),
        residual_variances=pd.Series(est.residual_variances, index=items),
        factor_covariance=pd.DataFrame(est.factor_cov, index=names, columns=names),
    )


@dataclass(frozen=True)
class OmegaResult:
    """McDonald's ω total with the one-factor solution it came from (factor variance 1)."""

    omega: float
    loadings: np.ndarray
    residual_variances: np.ndarray
    n_respondents: int


def mcdonald_omega(items: ArrayLike) -> OmegaResult:
    r"""McDonald's ω total from a one-factor maximum-likelihood CFA.

    Fitting :math:`\Sigma = \lambda\lambda' + \Theta` (factor variance 1) by ML, as in
    :func:`cfa_fit`, the reliability of the unit-weighted sum score is

    .. math:: \omega = \frac{(\sum_j \lambda_j)^2}{(\sum_j \lambda_j)^2 + \sum_j \theta_j}

    (McDonald 1999, eq. 6.20b). Unlike α it does not assume equal loadings, but it does assume
    a single factor and uncorrelated errors; for ordinal items with few categories a polychoric
    version is preferable (Flora 2020).

    Parameters
    ----------
    items : array_like, shape (n_respondents, n_items)
        Item scores keyed in the same direction (a negative loading lowers ω). **Rows with any
        missing value are dropped (listwise deletion).**

    Returns
    -------
    OmegaResult
        ``loadings`` and ``residual_variances`` in item order, on the items' raw scale with the
        factor variance fixed to 1.

    Raises
    ------
    ValueError
        Fewer than 3 items (a one-factor model with 2 items is not identified), no more
        complete rows than items, non-finite values or a singular covariance matrix.
    RuntimeError
        If the CFA does not converge.

    Warns
    -----
    RuntimeWarning
        If a residual variance is negative (a Heywood case); ω is then not meaningful.

    References
    ----------
    McDonald, R. P. (1999). Test theory: A unified treatment. Erlbaum.
    Flora, D. B. (2020). Your coefficient alpha is probably wrong, but which coefficient omega
    is right? Advances in Methods and Practices in Psychological Science, 3(4), 484–501.
    """
    x = _complete_rows(items)
    if x.shape[1] < 3:
        raise ValueError(
            "Omega needs at least 3 items (a 2-item one-factor model is unidentified)."
        )
    return _omega(_moments(x, "items"))


def mcdonald_omega_from_moments(moments: ItemMoments) -> OmegaResult:
    """:func:`mcdonald_omega` from the complete rows' moments; raises as it does."""
    if moments.n_items < 3:
        raise ValueError(
            "Omega needs at least 3 items (a 2-item one-factor model is unidentified)."
        )
    return _omega(_checked(moments, "items"))


def _omega(moments: ItemMoments) -> OmegaResult:
    model = _FactorModel(
        np.ones((moments.n_items, 1), dtype=bool),
        np.array([0]),
        [moments],
        meanstructure=False,
    )
    est = model.fit().estimates[0]
    # Rescale from the marker metric (λ₁ = 1, var(f) = φ) to var(f) = 1.
    loadings = est.loadings[:, 0] * np.sqrt(est.factor_cov[0, 0])
    common = loadings.sum() ** 2
    return OmegaResult(
        omega=float(common / (common + est.residual_variances.sum())),
        loadings=loadings,
        residual_variances=est.residual_variances,
        n_respondents=moments.n,
    )


# ---------------------------------------------------------------------------------------------
# Measurement invariance
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvarianceStep:
    """Fit of one model in the invariance sequence and, from metric on, its comparison with the
    previous (less constrained) model. Differences are *this model minus the previous one*."""

    model: str
    chi2: float
    df: int
    p_value: float
    cfi: float
    tli: float
    rmsea: float
    srmr: float
    delta_chi2: float | None = None
    delta_df: int | None = None
    delta_p_value: float | None = None
    delta_cfi: float | None = None
    delta_rmsea: float | None = None
    holds: bool | None = None


@dataclass(frozen=True)
class InvarianceResult:
    """Configural, metric and scalar multi-group fits; groups in the order they were modelled
    (the first is the reference group whose latent means are fixed to 0)."""

    configural: InvarianceStep
    metric: InvarianceStep
    scalar: InvarianceStep
    groups: tuple[str, ...]
    n_per_group: tuple[int, ...]


def measurement_invariance(
    data: pd.DataFrame,
    factors: dict[str, list[str]],
    group: str,
    *,
    max_cfi_drop: float = 0.010,
    max_rmsea_rise: float = 0.015,
) -> InvarianceResult:
    r"""Configural → metric → scalar measurement invariance by multi-group ML CFA.

    All groups are fitted jointly with a mean structure, minimising
    :math:`F = \sum_g \frac{N_g}{N} F_g` where

    .. math:: F_g = \log|\Sigma_g| + \operatorname{tr}(S_g\Sigma_g^{-1}) - \log|S_g| - p
              + (\bar x_g - \mu_g)'\Sigma_g^{-1}(\bar x_g - \mu_g),

    so :math:`\chi^2 = \sum_g N_g F_g` as in lavaan. The three nested models are

    * **configural** — same loading pattern, every parameter free in every group (latent means
      fixed to 0, intercepts free);
    * **metric** (weak) — loadings equal across groups;
    * **scalar** (strong) — loadings and intercepts equal; latent means free in all groups but
      the first.

    This matches lavaan's ``cfa(..., group = group, group.equal = ...)`` with
    ``c("loadings")`` and ``c("loadings", "intercepts")``. The baseline for CFI/TLI is the
    independence model in every group (free means and variances), RMSEA carries lavaan's
    :math:`\sqrt{G}` factor and SRMR includes the standardized mean residuals, weighted over
    groups by :math:`N_g/N`. Each step after configural reports :math:`\Delta\chi^2` with its
    p-value and ΔCFI, ΔRMSEA; it ``holds`` when ΔCFI ≥ −``max_cfi_drop`` (Cheung & Rensvold
    2002) and ΔRMSEA ≤ ``max_rmsea_rise`` (Chen 2007). The flag uses the fit indices only; the
    χ² difference test is reported alongside because with large N it rejects trivial misfit.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per respondent. Rows with a missing group or item value are dropped
        (listwise deletion).
    factors : dict of str to list of str
        ``{factor: [item columns]}``, marker first, as in :func:`cfa_fit`; for a single scale
        pass ``{"f": columns}``.
    group : str
        Column holding the group (language, arm, wave...). Groups are ordered by category order
        for a categorical column, otherwise by first appearance (as lavaan).
    max_cfi_drop, max_rmsea_rise : float
        Thresholds for ``holds``.

    Returns
    -------
    InvarianceResult

    Raises
    ------
    ValueError
        On a malformed specification, a missing group column, fewer than 2 groups, or a group
        with no more complete rows than items (its covariance matrix would be singular).
    RuntimeError
        If a model does not converge.

    Warns
    -----
    RuntimeWarning
        If a residual variance is negative in some group (a Heywood case).

    References
    ----------
    Meredith, W. (1993). Measurement invariance, factor analysis and factorial invariance.
    Psychometrika, 58(4), 525–543.
    Cheung, G. W., & Rensvold, R. B. (2002). Evaluating goodness-of-fit indexes for testing
    measurement invariance. Structural Equation Modeling, 9(2), 233–255.
    Chen, F. F. (2007). Sensitivity of goodness of fit indexes to lack of measurement
    invariance. Structural Equation Modeling, 14(3), 464–504.
    """
    names, items, pattern, markers = _pattern(factors)
    frame = _numeric_items(data, items)
    if group not in data.columns:
        raise ValueError(f"Group column {group!r} not in data.")
    frame = frame.assign(_group=data[group]).dropna()
    labels = frame["_group"]
    if isinstance(labels.dtype, pd.CategoricalDtype):
        levels = [c for c in labels.cat.categories if (labels == c).any()]
    else:
        levels = list(pd.unique(labels))
    if len(levels) < 2:
        raise ValueError("Measurement invariance needs at least 2 groups with complete data.")
    moments = [
        _moments(frame.loc[labels == level, items].to_numpy(), f"group {level!r}")
        for level in levels
    ]
    return _invariance(
        pattern, markers, levels, moments, max_cfi_drop=max_cfi_drop, max_rmsea_rise=max_rmsea_rise
    )


def measurement_invariance_from_moments(
    groups: Sequence[tuple[object, ItemMoments]],
    columns: Sequence[str],
    factors: dict[str, list[str]],
    *,
    max_cfi_drop: float = 0.010,
    max_rmsea_rise: float = 0.015,
) -> InvarianceResult:
    """:func:`measurement_invariance` from each group's complete-row moments of the items
    ``columns``, given as ``(group, moments)`` in the order the groups are to be modelled (the
    first is the reference group). Groups with no complete row are left out, as there."""
    names, items, pattern, markers = _pattern(factors)
    present = [(level, mo) for level, mo in groups if mo.n > 0]
    if len(present) < 2:
        raise ValueError("Measurement invariance needs at least 2 groups with complete data.")
    moments = [
        _checked(_in_model_order(mo, columns, items), f"group {level!r}") for level, mo in present
    ]
    return _invariance(
        pattern,
        markers,
        [level for level, _ in present],
        moments,
        max_cfi_drop=max_cfi_drop,
        max_rmsea_rise=max_rmsea_rise,
    )


def _invariance(
    pattern: np.ndarray,
    markers: np.ndarray,
    levels: Sequence[object],
    moments: Sequence[ItemMoments],
    *,
    max_cfi_drop: float,
    max_rmsea_rise: float,
) -> InvarianceResult:
    steps: list[InvarianceStep] = []
    for model_name, equal_loadings, equal_intercepts in (
        ("configural", False, False),
        ("metric", True, False),
        ("scalar", True, True),
    ):
        fit = _FactorModel(
            pattern,
            markers,
            moments,
            meanstructure=True,
            equal_loadings=equal_loadings,
            equal_intercepts=equal_intercepts,
        ).fit()
        step = InvarianceStep(
            model=model_name,
            chi2=fit.chi2,
            df=fit.df,
            srmr=fit.srmr,
            **_fit_indices(fit, n_groups=len(levels)),
        )
        if steps:
            previous = steps[-1]
            delta_chi2 = step.chi2 - previous.chi2
            delta_df = step.df - previous.df
            delta_cfi = step.cfi - previous.cfi
            delta_rmsea = step.rmsea - previous.rmsea
            step = replace(
                step,
                delta_chi2=delta_chi2,
                delta_df=delta_df,
                delta_p_value=float(stats.chi2.sf(max(delta_chi2, 0.0), delta_df)),
                delta_cfi=delta_cfi,
                delta_rmsea=delta_rmsea,
                holds=bool(delta_cfi >= -max_cfi_drop and delta_rmsea <= max_rmsea_rise),
            )
        steps.append(step)
    return InvarianceResult(
        configural=steps[0],
        metric=steps[1],
        scalar=steps[2],
        groups=tuple(str(level) for level in levels),
        n_per_group=tuple(mo.n for mo in moments),
    )


# ---------------------------------------------------------------------------------------------
# Test–retest ICC on unbalanced panels
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IccResult:
    """Test–retest ICC(A,1) with its parametric-bootstrap interval and the variance components
    it is built from (``occasion_variance`` is the bias-corrected spread of occasion means)."""

    icc: float
    ci_low: float
    ci_high: float
    n_subjects: int
    n_observations: int
    method: str
    subject_variance: float
    occasion_variance: float
    residual_variance: float


@dataclass(frozen=True)
class _PanelDesign:
    """Which subject was scored on which occasion, in a subjects × occasions design with gaps."""

    observed: np.ndarray  # n_subjects × k indicator of which occasions each subject has
    subject: np.ndarray  # subject code of each observation
    occasion: np.ndarray  # occasion code of each observation

    @property
    def sizes(self) -> np.ndarray:
        return self.observed.sum(axis=1)


def _gls_pieces(
    design: _PanelDesign, y: np.ndarray, ratio: float
) -> tuple[np.ndarray, np.ndarray, float]:
    r"""GLS cross-products for :math:`y_{ij} = \beta_j + u_i + e_{ij}` at variance ratio
    :math:`\lambda = \sigma^2_u/\sigma^2_e`.

    With :math:`V_i = \sigma^2_e(I + \lambda\mathbf{1}\mathbf{1}')` and
    :math:`c_i = \lambda/(1 + n_i\lambda)`,
    :math:`\sigma^2_e V_i^{-1} = I - c_i\mathbf{1}\mathbf{1}'`. With cell-means coding, where
    :math:`a_i` marks subject i's occasions and :math:`t_i` is its total,
    :math:`A = \sum_i(\operatorname{diag}(a_i) - c_i a_i a_i')`,
    :math:`b = \sum_i(X_i'y_i - c_i t_i a_i)` and
    :math:`q = \sum_i(y_i'y_i - c_i t_i^2)` are :math:`\sigma^2_e` times
    :math:`X'V^{-1}X`, :math:`X'V^{-1}y` and :math:`y'V^{-1}y`.
    """
    n_subjects, k = design.observed.shape
    c = ratio / (1.0 + design.sizes * ratio)
    totals = np.bincount(design.subject, weights=y, minlength=n_subjects)
    a_mat = (
        np.diag(design.observed.sum(axis=0)) - (design.observed * c[:, None]).T @ design.observed
    )
    b_vec = np.bincount(design.occasion, weights=y, minlength=k) - design.observed.T @ (c * totals)
    q = float(y @ y - c @ totals**2)
    return a_mat, b_vec, q


def _reml_variance_ratio(design: _PanelDesign, y: np.ndarray) -> tuple[float, float]:
    r"""REML estimates :math:`(\hat\sigma^2_u, \hat\sigma^2_e)` of the random-intercept model with
    fixed occasion means, by maximising the REML likelihood profiled over :math:`\sigma^2_e`:

    .. math:: -2\ell_R(\lambda) = (N-k)\log\frac{q - b'A^{-1}b}{N-k}
              + \sum_i\log(1 + n_i\lambda) + \log|A| + \text{const}

    over :math:`\rho = \lambda/(1+\lambda) \in [0, 1)`. Vectorised over subjects, it makes a
    bootstrap replicate cost microseconds instead of a full MixedLM fit.
    """
    n_obs, k = len(y), design.observed.shape[1]

    def neg2_loglik(rho: float) -> float:
        ratio = rho / (1.0 - rho)
        a_mat, b_vec, q = _gls_pieces(design, y, ratio)
        rss = q - b_vec @ np.linalg.solve(a_mat, b_vec)
        return (
            (n_obs - k) * np.log(rss / (n_obs - k))
            + np.log1p(design.sizes * ratio).sum()
            + np.linalg.slogdet(a_mat)[1]
        )

    rho = optimize.minimize_scalar(
        neg2_loglik, bounds=(0.0, 1.0 - 1e-9), method="bounded", options={"xatol": 1e-10}
    ).x
    ratio = rho / (1.0 - rho)
    a_mat, b_vec, q = _gls_pieces(design, y, ratio)
    residual = (q - b_vec @ np.linalg.solve(a_mat, b_vec)) / (n_obs - k)
    return ratio * residual, residual


def _icc_from_components(
    design: _PanelDesign, y: np.ndarray, subject_var: float, residual_var: float
) -> tuple[float, float]:
    r"""ICC(A,1) and the occasion variance :math:`\hat\theta^2_c` for given variance components.

    The occasion means :math:`\hat\beta` are the GLS estimates with covariance
    :math:`\sigma^2_e A^{-1}`; their spread is corrected for that sampling noise,

    .. math:: \hat\theta^2_c = \frac{\sum_j(\hat\beta_j - \bar{\hat\beta})^2
              - \operatorname{tr}(C\,\widehat{\operatorname{Var}}(\hat\beta))}{k-1},
              \quad C = I - \tfrac{1}{k}\mathbf{1}\mathbf{1}',

    which on balanced data equals McGraw & Wong's :math:`(MS_C - MS_E)/n`.
    """
    k = design.observed.shape[1]
    a_mat, b_vec, _ = _gls_pieces(design, y, subject_var / residual_var)
    beta = np.linalg.solve(a_mat, b_vec)
    cov_beta = residual_var * np.linalg.inv(a_mat)
    noise = np.trace(cov_beta) - cov_beta.sum() / k
    occasion_var = (np.sum((beta - beta.mean()) ** 2) - noise) / (k - 1)
    return subject_var / (subject_var + occasion_var + residual_var), occasion_var


def icc_test_retest(
    frame: pd.DataFrame,
    subject: str,
    occasion: str,
    score: str,
    *,
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: int | None = 0,
) -> IccResult:
    r"""Test–retest reliability as ICC(A,1) from REML variance components; handles gaps.

    The model is :math:`y_{ij} = \beta_j + u_i + e_{ij}`, :math:`u_i \sim N(0, \sigma^2_u)`,
    :math:`e_{ij} \sim N(0, \sigma^2_e)`, with subject i, occasion j fixed. Variance components
    come from REML fitted by statsmodels ``MixedLM`` (random intercept per subject, one fixed
    mean per occasion), which uses every observation, so subjects who missed an occasion still
    contribute. The coefficient is McGraw & Wong's (1996) **ICC(A,1)** — "two-way mixed effects,
    absolute agreement, single measurement" (their Case 3A, whose estimator coincides with
    Shrout & Fleiss's ICC(2,1)); this is the form Koo & Li (2016) recommend for test–retest:

    .. math:: \rho = \frac{\sigma^2_u}{\sigma^2_u + \theta^2_c + \sigma^2_e},
              \qquad \theta^2_c = \frac{\sum_j(\beta_j - \bar\beta)^2}{k-1},

    so systematic shifts between occasions (practice effects, drift) count against agreement.
    :math:`\theta^2_c` is estimated from the fixed effects with a correction for their sampling
    variance (see ``_icc_from_components``); on balanced data the whole estimate equals the
    ANOVA estimator of ICC(A,1) (pingouin's ``ICC2``) whenever :math:`\hat\sigma^2_u > 0`.

    The interval is a **parametric percentile bootstrap** (as for repeatabilities in rptR,
    Stoffel et al. 2017): ``n_boot`` data sets are simulated from the fitted model with the
    observed pattern of gaps, the variance components re-estimated by REML (the same likelihood,
    profiled and vectorised; see ``_reml_variance_ratio``) and the ICC recomputed. This assumes
    normal random effects and errors and missingness unrelated to the scores (MCAR). Like the
    model, it treats the occasions as fixed: it is an interval for these waves. McGraw & Wong's
    F-based interval (pingouin's ``CI95`` for ``ICC2``) instead treats occasions as a random
    sample, so when occasion means differ it is much wider (θ²_c then rests on k − 1 df); with
    no occasion effect the two agree closely. In simulations (40 subjects × 3 waves balanced;
    100 × 3 with 30 % missing) the bootstrap interval covered the true ICC(A,1) 94.7 % and
    95.5 % of the time.

    Parameters
    ----------
    frame : pandas.DataFrame
        Long format, one row per subject and occasion. Rows with a missing score are dropped.
    subject, occasion, score : str
        Column names. ``score`` must be numeric.
    confidence : float
        Coverage of the interval, in (0, 1).
    n_boot : int
        Bootstrap replicates (at least 100 for a usable percentile interval).
    seed : int or None
        Seed of the bootstrap; fixed by default so re-running an analysis reproduces its
        interval.

    Returns
    -------
    IccResult

    Raises
    ------
    ValueError
        Missing or non-numeric columns, a subject scored twice on one occasion, fewer than 2
        occasions, fewer than 3 subjects, fewer than 2 subjects with repeated measurements,
        ``n_boot < 100`` or ``confidence`` outside (0, 1).

    References
    ----------
    McGraw, K. O., & Wong, S. P. (1996). Forming inferences about some intraclass correlation
    coefficients. Psychological Methods, 1(1), 30–46.
    Koo, T. K., & Li, M. Y. (2016). A guideline of selecting and reporting intraclass
    correlation coefficients for reliability research. Journal of Chiropractic Medicine, 15(2),
    155–163.
    Stoffel, M. A., Nakagawa, S., & Schielzeth, H. (2017). rptR: repeatability estimation and
    variance decomposition by generalized linear mixed-effects models. Methods in Ecology and
    Evolution, 8(11), 1639–1644.
    """
    _check_confidence(confidence)
    if n_boot < 100:
        raise ValueError("n_boot must be at least 100 for a percentile interval.")
    if not isinstance(frame, pd.DataFrame):
        raise ValueError("frame must be a pandas DataFrame.")
    missing = [c for c in (subject, occasion, score) if c not in frame.columns]
    if missing:
        raise ValueError(f"Columns not in frame: {missing}.")
    if not pd.api.types.is_numeric_dtype(frame[score]):
        raise ValueError(f"Column {score!r} must be numeric.")
    long = frame[[subject, occasion, score]].dropna()
    if not np.all(np.isfinite(long[score].to_numpy(dtype=float))):
        raise ValueError(f"Column {score!r} has infinite values.")
    if long.duplicated([subject, occasion]).any():
        raise ValueError("Each subject may have at most one score per occasion.")
    subject_codes, subjects = pd.factorize(long[subject])
    occasion_codes, occasions = pd.factorize(long[occasion], sort=True)
    n_subjects, k = len(subjects), len(occasions)
    if k < 2:
        raise ValueError("Test-retest reliability needs at least 2 occasions.")
    if n_subjects < 3:
        raise ValueError("Test-retest reliability needs at least 3 subjects.")
    observed = np.zeros((n_subjects, k))
    observed[subject_codes, occasion_codes] = 1.0
    design = _PanelDesign(observed=observed, subject=subject_codes, occasion=occasion_codes)
    if np.sum(design.sizes >= 2) < 2:
        raise ValueError("At least 2 subjects must be scored on 2 or more occasions.")
    y = long[score].to_numpy(dtype=float)

    # Imported here: the survey reports import this module in the web process, which must not
    # load statsmodels at start-up (tests/config/test_startup_imports.py).
    import statsmodels.api as sm

    # Cell-means coding: one fixed mean per occasion, so the fixed effects are the β_j.
    # statsmodels' default gtol (1e-5) leaves errors of ~1e-5 in the ICC; 1e-8 lands on the
    # REML optimum (the ANOVA value on balanced data) and still converges on large panels.
    fit = sm.MixedLM(y, np.eye(k)[occasion_codes], groups=subject_codes).fit(reml=True, gtol=1e-8)
    subject_var = float(np.asarray(fit.cov_re)[0, 0])
    residual_var = float(fit.scale)
    if not residual_var > 0:
        raise ValueError("Scores do not vary within subjects; the ICC is undefined.")
    icc, occasion_var = _icc_from_components(design, y, subject_var, residual_var)

    rng = np.random.default_rng(seed)
    means = np.asarray(fit.fe_params)[occasion_codes]
    replicates = np.empty(n_boot)
    for b in range(n_boot):
        y_star = (
            means
            + rng.normal(0.0, np.sqrt(subject_var), n_subjects)[subject_codes]
            + rng.normal(0.0, np.sqrt(residual_var), len(y))
        )
        components = _reml_variance_ratio(design, y_star)
        replicates[b], _ = _icc_from_components(design, y_star, *components)
    tail = (1 - confidence) / 2
    low, high = np.quantile(replicates, [tail, 1 - tail])
    return IccResult(
        icc=float(icc),
        ci_low=float(low),
        ci_high=float(high),
        n_subjects=n_subjects,
        n_observations=len(y),
        method=(
            "ICC(A,1) (McGraw & Wong 1996): two-way mixed, absolute agreement, single "
            f"measurement; REML variance components (statsmodels MixedLM); {confidence:.0%} "
            f"parametric percentile bootstrap CI, {n_boot} replicates"
        ),
        subject_variance=subject_var,
        occasion_variance=float(occasion_var),
        residual_variance=residual_var,
    )


# ---------------------------------------------------------------------------------------------
# Reliable change
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReliableChangeResult:
    """Jacobson–Truax reliable change; arrays have the broadcast shape of ``before``/``after``."""

    rci: np.ndarray
    sem: float
    s_diff: float
    reliable_improvement: np.ndarray
    reliable_deterioration: np.ndarray


def reliable_change(
    before: ArrayLike,
    after: ArrayLike,
    sd_baseline: float,
    reliability: float,
    *,
    higher_is_better: bool = True,
    critical: float = 1.96,
) -> ReliableChangeResult:
    r"""Reliable change index of Jacobson & Truax (1991), vectorised over participants.

    .. math:: SEM = SD_1\sqrt{1 - r_{xx}}, \quad S_{diff} = \sqrt{2}\,SEM, \quad
              RCI = \frac{x_2 - x_1}{S_{diff}},

    and a change is reliable when :math:`|RCI| >` ``critical`` (1.96: a change that large
    arises by measurement error alone with probability < 5 %). :math:`S_{diff}` assumes equal
    error variance at both occasions; other standard errors (e.g. Maassen 2004) classify
    differently, so report which one was used.

    Parameters
    ----------
    before, after : array_like of float
        Scores at the two occasions; broadcast against each other. A NaN gives a NaN index and
        neither flag.
    sd_baseline : float
        Standard deviation of the baseline scores in a reference (normative or pre-treatment)
        sample, > 0.
    reliability : float
        Reliability of the score, in [0, 1) — e.g. test–retest ICC or ω.
    higher_is_better : bool
        Direction of improvement; ``False`` for symptom scales.
    critical : float
        Two-sided critical value, > 0.

    Returns
    -------
    ReliableChangeResult

    Raises
    ------
    ValueError
        If ``sd_baseline`` ≤ 0, ``reliability`` is outside [0, 1), ``critical`` ≤ 0 or the
        scores do not broadcast.

    References
    ----------
    Jacobson, N. S., & Truax, P. (1991). Clinical significance: A statistical approach to
    defining meaningful change in psychotherapy research. Journal of Consulting and Clinical
    Psychology, 59(1), 12–19.
    Maassen, G. H. (2004). The standard error in the Jacobson and Truax Reliable Change Index.
    Journal of the International Neuropsychological Society, 10(6), 888–893.
    """
    if not (np.isfinite(sd_baseline) and sd_baseline > 0):
        raise ValueError("sd_baseline must be a positive number.")
    if not 0 <= reliability < 1:
        raise ValueError("reliability must lie in [0, 1).")
    if not critical > 0:
        raise ValueError("critical must be positive.")
    x1 = np.asarray(before, dtype=float)
    x2 = np.asarray(after, dtype=float)
    try:
        x1, x2 = np.broadcast_arrays(x1, x2)
    except ValueError as error:
        raise ValueError("before and after must have broadcastable shapes.") from error
    sem = sd_baseline * np.sqrt(1 - reliability)
    s_diff = np.sqrt(2) * sem
    rci = (x2 - x1) / s_diff
    signed = rci if higher_is_better else -rci
    # NaN compares False, so a missing score is never flagged.
    return ReliableChangeResult(
        rci=rci,
        sem=float(sem),
        s_diff=float(s_diff),
        reliable_improvement=signed > critical,
        reliable_deterioration=signed < -critical,
    )


# ---------------------------------------------------------------------------------------------
# Shared input checks
# ---------------------------------------------------------------------------------------------


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError("confidence must lie in (0, 1).")


def _complete_rows(items: ArrayLike) -> np.ndarray:
    """A float respondents × items matrix with rows containing NaN removed."""
    try:
        x = np.asarray(items, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError("items must be numeric.") from error
    if x.ndim != 2:
        raise ValueError("items must be 2-D (respondents × items).")
    if np.isinf(x).any():
        raise ValueError("items contains infinite values.")
    return x[~np.isnan(x).any(axis=1)]
