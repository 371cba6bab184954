r"""Indices of careless (insufficient-effort) responding, as pure functions of answer matrices.

Careless respondents answer without regard to item content, either by repeating one answer
(straight-lining, a *non-random* pattern) or by answering at random (Meade & Craig, 2012). No
single index detects both patterns, so this module computes several and reports each one:

* **long-string**: the longest run of identical consecutive answers (Johnson, 2005), which
  detects straight-lining;
* **intra-individual response variability (IRV)**: the within-person standard deviation across
  items (Dunn et al., 2018), low for straight-lining and high for random answering;
* **Mahalanobis distance**: how unusual a respondent's whole answer vector is given the sample's
  means and covariances (Meade & Craig, 2012), which detects random answering on scales whose
  items correlate;
* **seconds per item**: answering faster than one can read (Huang et al., 2012).

:func:`careless_flags` turns one respondent's indices into flags with the conservative defaults in
:class:`QualityThresholds`. Flags are flags, never deletions: an attentive person can legitimately
give the same answer to every item of a short scale whose items are all keyed the same way, read
quickly, or hold an unusual combination of views. Decisions to exclude data belong to a
pre-registered analysis that looks at several indices together (Curran, 2016), not to this module.

Answers are passed as numbers in presentation order, with ``NaN`` for an unanswered item.

References
----------
Curran, P. G. (2016). Methods for the detection of carelessly invalid responses in survey data.
Journal of Experimental Social Psychology, 66, 4–19.

Dunn, A. M., Heggestad, E. D., Shanock, L. R., & Theilgard, N. (2018). Intra-individual response
variability as an indicator of insufficient effort responding: Comparison to other indicators and
relationships with individual differences. Journal of Business and Psychology, 33(1), 105–121.

Huang, J. L., Curran, P. G., Keeney, J., Poposki, E. M., & DeShon, R. P. (2012). Detecting and
deterring insufficient effort responding to surveys. Journal of Business and Psychology, 27(1),
99–114.

Johnson, J. A. (2005). Ascertaining the validity of individual protocols from Web-based
personality inventories. Journal of Research in Personality, 39(1), 103–129.

Meade, A. W., & Craig, S. B. (2012). Identifying careless responses in survey data. Psychological
Methods, 17(3), 437–455.
"""

import math
import operator
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

FLAG_LONGSTRING = "longstring"
FLAG_TOO_FAST = "too_fast"
FLAG_MAHALANOBIS = "mahalanobis"


@dataclass(frozen=True, eq=False)
class MahalanobisResult:
    r"""Squared Mahalanobis distances of respondents from the sample centroid.

    Attributes
    ----------
    d_squared : numpy.ndarray
        :math:`D^2_i` per respondent; ``NaN`` for respondents with an unanswered item.
    p_value : numpy.ndarray
        Upper-tail :math:`\chi^2_{df}` probability of ``d_squared``; ``NaN`` where it is.
    df : int
        Degrees of freedom: the rank of the sample covariance matrix, which is the number of
        items unless the covariance is singular.
    n_complete : int
        Number of respondents who answered every item; the mean and covariance come from them.
    """

    # eq=False: the generated __eq__ would compare arrays element-wise and raise.
    d_squared: np.ndarray
    p_value: np.ndarray
    df: int
    n_complete: int


@dataclass(frozen=True)
class QualityThresholds:
    """Cut-offs that turn one respondent's indices into flags; the defaults are conservative.

    Attributes
    ----------
    longstring_min_items : int
        A long-string is only flagged when at least this many items were answered. Default 6:
        on shorter scales whose items are all keyed in one direction (e.g. WHO-5) an attentive
        respondent can plausibly choose the same answer throughout, so the pattern says little.
    longstring_share : float
        Flag ``"longstring"`` when the longest run covers at least this share of the answered
        items. Default 1.0, i.e. the same answer to every item in one unbroken run. Johnson (2005)
        and Meade & Craig (2012) derive cut-offs from the distribution in each sample rather than
        giving a universal one, and Curran (2016) offers half the scale length only as a loose
        rule of thumb; our scales are short and often keyed in one direction, where a half-scale
        run is common among attentive respondents, so the default demands the whole scale.
    min_seconds_per_item : float
        Flag ``"too_fast"`` below this many seconds per answered item. Default 2.0 s, the cut-off
        Huang et al. (2012) proposed as faster than an item can be read and answered.
    mahalanobis_alpha : float
        Flag ``"mahalanobis"`` when the :math:`D^2` p-value is below this. Default 0.001, the
        conventional criterion for multivariate outliers (Tabachnick & Fidell, 2013), stricter
        than the 0.01 implied by the default ``confidence = 0.99`` of R ``careless::mahad``.

    Notes
    -----
    There is deliberately no IRV cut-off: Dunn et al. (2018) interpret IRV relative to the
    sample's distribution, and an absolute value depends on the response scale. An IRV of zero
    is the same pattern the long-string flag already catches.

    References
    ----------
    Tabachnick, B. G., & Fidell, L. S. (2013). Using multivariate statistics (6th ed.). Pearson.
    """

    longstring_min_items: int = 6
    longstring_share: float = 1.0
    min_seconds_per_item: float = 2.0
    mahalanobis_alpha: float = 0.001

    def __post_init__(self) -> None:
        if isinstance(self.longstring_min_items, bool) or not isinstance(
            self.longstring_min_items, int
        ):
            raise ValueError("longstring_min_items must be an integer.")
        if self.longstring_min_items < 2:
            raise ValueError("longstring_min_items must be at least 2: one answer is no run.")
        if not 0 < self.longstring_share <= 1:
            raise ValueError("longstring_share must lie in (0, 1].")
        if not (math.isfinite(self.min_seconds_per_item) and self.min_seconds_per_item > 0):
            raise ValueError("min_seconds_per_item must be a positive number.")
        if not 0 < self.mahalanobis_alpha < 1:
            raise ValueError("mahalanobis_alpha must lie in (0, 1).")


DEFAULT_THRESHOLDS = QualityThresholds()


@dataclass(frozen=True)
class QualityIndices:
    """One respondent's careless-responding indices on one instrument, and the flags raised.

    Attributes
    ----------
    n_items : int
        Items presented.
    n_answered : int
        Items answered.
    longstring : int
        Longest run of identical consecutive answers (see :func:`long_string`).
    longstring_share : float
        ``longstring / n_answered``.
    irv : float or None
        Within-person standard deviation with ``ddof=1`` (see
        :func:`intra_individual_variability`); ``None`` with fewer than two answers.
    seconds_per_item : float or None
        Seconds spent per answered item; ``None`` when the time is unknown.
    mahalanobis_p : float or None
        p-value of the respondent's :math:`D^2` on this instrument, computed across the sample by
        :func:`mahalanobis_distance`; ``None`` when not supplied or not computable.
    flags : tuple of str
        Subset of ``("longstring", "too_fast", "mahalanobis")``, in that order. A flag marks a
        response for a closer look; it never removes it.
    """

    n_items: int
    n_answered: int
    longstring: int
    longstring_share: float
    irv: float | None
    seconds_per_item: float | None
    mahalanobis_p: float | None
    flags: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        """The indices as plain JSON types (``None`` for missing values, a list of flags)."""
        # The instance's fields, not dataclasses.asdict, whose deep copy of every value is most
        # of the cost when an import stores thousands of these (surveys.exchange); every value
        # is a scalar but the flags.
        data = dict(vars(self))
        data["flags"] = list(self.flags)
        return data


def _as_matrix(responses: ArrayLike) -> np.ndarray:
    try:
        matrix = np.asarray(responses, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError("responses must be numeric (NaN for unanswered items).") from error
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError("responses must be a 2-D array of respondents × items, with ≥ 1 item.")
    if np.isinf(matrix).any():
        raise ValueError("responses must be finite numbers or NaN.")
    return matrix


def long_string(responses: ArrayLike) -> np.ndarray:
    r"""Longest run of identical consecutive answers of each respondent (long-string index).

    For respondent :math:`i` with answers :math:`x_{i1}, \dots, x_{ik}` in presentation order,
    the long-string index is the largest :math:`r` such that
    :math:`x_{i,j} = x_{i,j+1} = \dots = x_{i,j+r-1}` for some :math:`j` (Johnson, 2005; Meade &
    Craig, 2012). An unanswered item (``NaN``) ends a run and starts none, so a straight-liner
    who skipped one item shows two shorter runs; this matches treating a gap as "no answer"
    rather than guessing what it would have been.

    Parameters
    ----------
    responses : array_like of float, shape (n_respondents, n_items)
        Answers in presentation order; ``NaN`` for unanswered items.

    Returns
    -------
    numpy.ndarray of int, shape (n_respondents,)
        Longest run per respondent; 0 for a respondent who answered nothing.

    References
    ----------
    Johnson, J. A. (2005). Ascertaining the validity of individual protocols from Web-based
    personality inventories. Journal of Research in Personality, 39(1), 103–129.

    Meade, A. W., & Craig, S. B. (2012). Identifying careless responses in survey data.
    Psychological Methods, 17(3), 437–455.
    """
    matrix = _as_matrix(responses)
    answered = ~np.isnan(matrix)
    current = answered[:, 0].astype(np.int64)
    longest = current.copy()
    # One pass over items (scales are short), vectorised over respondents. NaN == x is False,
    # so a gap resets the run to 0 and the next answer starts a new run of 1.
    for j in range(1, matrix.shape[1]):
        same = matrix[:, j] == matrix[:, j - 1]
        current = np.where(same, current + 1, answered[:, j].astype(np.int64))
        np.maximum(longest, current, out=longest)
    return longest


def intra_individual_variability(responses: ArrayLike) -> np.ndarray:
    r"""Intra-individual response variability (IRV): each respondent's SD across items.

    .. math:: \mathrm{IRV}_i = \sqrt{\frac{1}{k_i - 1} \sum_{j} (x_{ij} - \bar{x}_i)^2}

    over the :math:`k_i` items respondent :math:`i` answered, i.e. the sample standard deviation
    with ``ddof=1``, as in R ``careless::irv`` (which applies ``stats::sd`` to each row) and
    Dunn et al. (2018). Unanswered items are left out rather than making the whole value
    missing. A very low IRV suggests straight-lining; a very high one, random answering.

    Parameters
    ----------
    responses : array_like of float, shape (n_respondents, n_items)
        Answers; ``NaN`` for unanswered items.

    Returns
    -------
    numpy.ndarray of float, shape (n_respondents,)
        IRV per respondent; ``NaN`` with fewer than two answers, where ``ddof=1`` is undefined.

    References
    ----------
    Dunn, A. M., Heggestad, E. D., Shanock, L. R., & Theilgard, N. (2018). Intra-individual
    response variability as an indicator of insufficient effort responding: Comparison to other
    indicators and relationships with individual differences. Journal of Business and Psychology,
    33(1), 105–121.
    """
    matrix = _as_matrix(responses)
    answered = ~np.isnan(matrix)
    n = answered.sum(axis=1)
    values = np.where(answered, matrix, 0.0)
    # Computed by hand rather than with nanstd so that rows with < 2 answers give NaN silently.
    mean = values.sum(axis=1) / np.maximum(n, 1)
    squares = np.where(answered, (matrix - mean[:, None]) ** 2, 0.0).sum(axis=1)
    irv = np.full(matrix.shape[0], np.nan)
    enough = n >= 2
    irv[enough] = np.sqrt(squares[enough] / (n[enough] - 1))
    return irv


def mahalanobis_distance(responses: ArrayLike) -> MahalanobisResult:
    r"""Squared Mahalanobis distance of each respondent from the sample centroid, with p-values.

    .. math:: D^2_i = (\mathbf{x}_i - \bar{\mathbf{x}})^\top S^{+} (\mathbf{x}_i - \bar{\mathbf{x}})

    where :math:`\bar{\mathbf{x}}` and :math:`S` (divisor :math:`m-1`) are the mean and
    covariance of the :math:`m` respondents who answered every item (Meade & Craig, 2012).
    Respondents with an unanswered item get ``NaN``; they do not enter the estimate because a
    covariance from partly different people need not be positive semi-definite.

    :math:`S^{+}` is the Moore–Penrose pseudo-inverse. :math:`S` is singular when an item got the
    same answer from everyone (common for short Likert scales in small samples) or items are
    exact linear combinations of others. Every respondent in the estimate then lies in the
    subspace the data span, so the pseudo-inverse gives the ordinary distance within that
    subspace and loses nothing. Eigenvalues below ``max eigenvalue × n_items × machine epsilon``
    (the tolerance of ``numpy.linalg.pinv`` and ``matrix_rank``) count as zero.

    The p-value is the upper tail of :math:`\chi^2` with ``df`` = rank of :math:`S` (the number
    of items unless :math:`S` is singular, when the distances live in fewer dimensions). This is
    the large-sample distribution under multivariate normality. In finite samples
    :math:`m D^2_i / (m-1)^2` follows Beta(df/2, (m-df-1)/2) exactly (Wilks, 1963), so
    :math:`D^2_i \le (m-1)^2/m`; the :math:`\chi^2` tail is heavier than that, so its p-values
    err towards not flagging, and in very small samples no one can be flagged at all.

    Parameters
    ----------
    responses : array_like of float, shape (n_respondents, n_items)
        Answers to one instrument; ``NaN`` for unanswered items.

    Returns
    -------
    MahalanobisResult

    Raises
    ------
    ValueError
        With fewer than ``n_items + 1`` complete respondents (below that :math:`S` is singular
        whatever the data) or when the complete respondents' answers do not vary at all.

    References
    ----------
    Meade, A. W., & Craig, S. B. (2012). Identifying careless responses in survey data.
    Psychological Methods, 17(3), 437–455.

    Wilks, S. S. (1963). Multivariate statistical outliers. Sankhyā, Series A, 25(4), 407–426.
    """
    matrix = _as_matrix(responses)
    n_items = matrix.shape[1]
    complete = ~np.isnan(matrix).any(axis=1)
    n_complete = int(complete.sum())
    if n_complete < n_items + 1:
        raise ValueError(
            f"Mahalanobis distance needs at least {n_items + 1} respondents who answered all "
            f"{n_items} items; got {n_complete}."
        )
    centred = matrix[complete] - matrix[complete].mean(axis=0)
    covariance = centred.T @ centred / (n_complete - 1)
    # The eigen-decomposition gives the pseudo-inverse and its rank from one tolerance, so the
    # df always matches the dimensions the distance was measured in.
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    largest = eigenvalues.max()
    if largest <= 0:
        raise ValueError("Every complete respondent gave identical answers; D² is undefined.")
    kept = eigenvalues > largest * n_items * np.finfo(float).eps
    scores = centred @ eigenvectors[:, kept]
    d_squared = np.full(matrix.shape[0], np.nan)
    d_squared[complete] = (scores**2 / eigenvalues[kept]).sum(axis=1)
    df = int(kept.sum())
    # Imported here: a submission's careless-responding flags need none of SciPy, so the web
    # process that scores submissions never loads it (tests/config/test_startup_imports.py).
    from scipy import stats

    p_value = np.full(matrix.shape[0], np.nan)
    p_value[complete] = stats.chi2.sf(d_squared[complete], df)
    return MahalanobisResult(d_squared=d_squared, p_value=p_value, df=df, n_complete=n_complete)


def seconds_per_item(total_seconds: float, n_answered: int) -> float:
    """Time spent per answered item, the quantity Huang et al. (2012) put a floor of 2 s on.

    Parameters
    ----------
    total_seconds : float
        Time from showing the instrument to submitting it; finite and non-negative.
    n_answered : int
        Items answered; at least 1.

    Returns
    -------
    float
        ``total_seconds / n_answered``.

    References
    ----------
    Huang, J. L., Curran, P. G., Keeney, J., Poposki, E. M., & DeShon, R. P. (2012). Detecting
    and deterring insufficient effort responding to surveys. Journal of Business and Psychology,
    27(1), 99–114.
    """
    if isinstance(n_answered, bool):
        raise ValueError("n_answered must be an integer.")
    try:
        count = operator.index(n_answered)
    except TypeError as error:
        raise ValueError("n_answered must be an integer.") from error
    if count < 1:
        raise ValueError("n_answered must be at least 1.")
    seconds = float(total_seconds)
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError("total_seconds must be a finite, non-negative number.")
    return seconds / count


def careless_flags(
    answers: ArrayLike,
    *,
    seconds: float | None = None,
    mahalanobis_p: float | None = None,
    thresholds: QualityThresholds = DEFAULT_THRESHOLDS,
) -> QualityIndices:
    """Careless-responding indices and flags for one respondent's answers to one instrument.

    Raises ``"longstring"`` when at least ``thresholds.longstring_min_items`` items were
    answered and the longest run covers at least ``thresholds.longstring_share`` of them;
    ``"too_fast"`` when ``seconds`` is given and works out below
    ``thresholds.min_seconds_per_item`` per answered item; ``"mahalanobis"`` when
    ``mahalanobis_p`` is given and below ``thresholds.mahalanobis_alpha``. See
    :class:`QualityThresholds` for the defaults and their sources. The flags mark responses for
    review and for sensitivity analyses; they never delete anything.

    Parameters
    ----------
    answers : array_like of float, shape (n_items,)
        The respondent's answers in presentation order; ``NaN`` for unanswered items.
    seconds : float, optional
        Time spent on the instrument.
    mahalanobis_p : float, optional
        This respondent's entry of :attr:`MahalanobisResult.p_value` for the instrument. ``NaN``
        (a respondent with unanswered items) is taken as not available.
    thresholds : QualityThresholds
        Cut-offs for the flags.

    Returns
    -------
    QualityIndices

    Raises
    ------
    ValueError
        When ``answers`` is not a non-empty 1-D numeric array with at least one answer, or
        ``seconds`` or ``mahalanobis_p`` is out of range.
    """
    try:
        row = np.asarray(answers, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError("answers must be numeric (NaN for unanswered items).") from error
    if row.ndim != 1 or row.size == 0:
        raise ValueError("answers must be a 1-D array of one respondent's answers.")
    matrix = _as_matrix(row[None, :])
    n_answered = int((~np.isnan(row)).sum())
    if n_answered == 0:
        raise ValueError("answers contains no answered item; there is nothing to assess.")
    longest = int(long_string(matrix)[0])
    irv = float(intra_individual_variability(matrix)[0])
    per_item = None if seconds is None else seconds_per_item(seconds, n_answered)
    p = None if mahalanobis_p is None else float(mahalanobis_p)
    if p is not None and math.isnan(p):
        p = None
    if p is not None and not 0 <= p <= 1:
        raise ValueError("mahalanobis_p must lie in [0, 1].")
    return _indices(int(row.size), n_answered, longest, irv, per_item, p, thresholds)


def careless_flags_rows(
    answers: ArrayLike, *, thresholds: QualityThresholds = DEFAULT_THRESHOLDS
) -> list[QualityIndices]:
    """:func:`careless_flags` of each respondent (row) of a respondents × items matrix, without
    timings or Mahalanobis p-values: the indices of every row from one call of each vectorised
    index function, the values :func:`careless_flags` gives row by row (for an import of
    thousands of responses at once, ``surveys.exchange``).

    Raises ``ValueError`` as :func:`careless_flags` does, for a row with no answered item too.
    """
    matrix = _as_matrix(answers)
    answered = (~np.isnan(matrix)).sum(axis=1)
    if np.any(answered == 0):
        raise ValueError("a row contains no answered item; there is nothing to assess.")
    longest = long_string(matrix)
    irv = intra_individual_variability(matrix)
    return [
        _indices(matrix.shape[1], int(n), int(run), float(variability), None, None, thresholds)
        for n, run, variability in zip(answered, longest, irv, strict=True)
    ]


def _indices(
    n_items: int,
    n_answered: int,
    longest: int,
    irv: float,
    per_item: float | None,
    p: float | None,
    thresholds: QualityThresholds,
) -> QualityIndices:
    share = longest / n_answered
    flags = []
    if n_answered >= thresholds.longstring_min_items and share >= thresholds.longstring_share:
        flags.append(FLAG_LONGSTRING)
    if per_item is not None and per_item < thresholds.min_seconds_per_item:
        flags.append(FLAG_TOO_FAST)
    if p is not None and p < thresholds.mahalanobis_alpha:
        flags.append(FLAG_MAHALANOBIS)
    return QualityIndices(
        n_items=n_items,
        n_answered=n_answered,
        longstring=longest,
        longstring_share=share,
        irv=None if math.isnan(irv) else irv,
        seconds_per_item=per_item,
        mahalanobis_p=p,
        flags=tuple(flags),
    )
