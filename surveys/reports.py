"""The per-trial survey quality report: reliability, factor structure, invariance, test–retest
and reliable change for every score, from the stored responses (read-only).

Each figure comes from ``stats.psychometrics``; where the data cannot support one (too few
respondents, a group too small), the report says why instead of showing a number.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stats import psychometrics
from surveys.item_moments import GroupMoments, ScoreItemMoments, score_item_moments, score_values
from surveys.models import Instrument
from trials.models import Trial

# Fewer respondents than this per group make a CFA or an invariance test meaningless.
MIN_RESPONDENTS_FOR_CFA = 50
MIN_PER_GROUP_FOR_INVARIANCE = 30


@dataclass
class Figure:
    """One computed result, or the reason it could not be computed."""

    value: object | None = None
    reason: str = ""


@dataclass
class ScoreReport:
    instrument: str
    score: str
    items: list[str]
    validated: bool
    by_wave: list[dict] = field(default_factory=list)
    invariance: dict[str, Figure] = field(default_factory=dict)
    test_retest: Figure = field(default_factory=Figure)
    reliable_change: Figure = field(default_factory=Figure)


def _attempt(compute: Callable[[], object]) -> Figure:
    try:
        return Figure(value=compute())
    except (ValueError, RuntimeError, np.linalg.LinAlgError) as error:
        # Too little data, a singular matrix or an estimate that did not converge: say so.
        return Figure(reason=str(error))


def _wave_figures(group: GroupMoments, items: list[str]) -> dict:
    moments = group.moments
    figures = {
        "n": group.rows,
        "alpha": _attempt(lambda: psychometrics.cronbach_alpha_from_moments(moments)),
        "omega": _attempt(lambda: psychometrics.mcdonald_omega_from_moments(moments)),
    }
    if group.rows < MIN_RESPONDENTS_FOR_CFA:
        figures["cfa"] = Figure(reason=f"fewer than {MIN_RESPONDENTS_FOR_CFA} respondents")
    elif len(items) < 4:
        figures["cfa"] = Figure(reason="a one-factor model of 3 items fits perfectly (0 df)")
    else:
        figures["cfa"] = _attempt(
            lambda: psychometrics.cfa_fit_from_moments(moments, items, {"factor": items})
        )
    return figures


def _invariance(groups: dict[str, GroupMoments], items: list[str], group: str) -> Figure:
    """Groups of at least ``MIN_PER_GROUP_FOR_INVARIANCE`` responses (complete or not), modelled
    in the order their first complete response was stored; the first is the reference."""
    large = {label: g for label, g in groups.items() if g.rows >= MIN_PER_GROUP_FOR_INVARIANCE}
    if len(large) < 2:
        return Figure(reason=f"needs two {group} groups of at least {MIN_PER_GROUP_FOR_INVARIANCE}")
    if len(items) < 4:
        return Figure(reason="needs at least 4 items for a testable configural model")
    ordered = sorted(
        ((label, g) for label, g in large.items() if g.first is not None),
        key=lambda lg: lg[1].first,
    )
    return _attempt(lambda: _invariance_steps([(lb, g.moments) for lb, g in ordered], items))


def _invariance_steps(
    groups: list[tuple[str, psychometrics.ItemMoments]], items: list[str]
) -> dict:
    result = psychometrics.measurement_invariance_from_moments(groups, items, {"f": items})
    return {
        "groups": dict(zip(result.groups, result.n_per_group, strict=True)),
        "steps": [result.configural, result.metric, result.scalar],
    }


def trial_survey_report(trial: Trial, *, retest: bool = True) -> list[ScoreReport]:
    """Every score of every instrument the trial's waves ask, with its psychometrics.

    Reliability, the CFA and invariance come from item moments PostgreSQL computes
    (``surveys.item_moments``), so their cost does not grow with the rows fetched. The
    test–retest ICC and the reliable-change counts need each participant's score at every wave;
    without ``retest`` they are left out (an analysis run stores neither)."""
    instruments = Instrument.objects.filter(wave__trial=trial).distinct().order_by("code")
    reports = []
    for instrument in instruments:
        for score in instrument.definition.scores:
            report = ScoreReport(
                instrument=instrument.code,
                score=score.code,
                items=instrument.definition.scored_items(score),
                validated=instrument.validated,
            )
            _fill(report, score_item_moments(trial, instrument, report.items))
            if retest:
                _fill_retest(report, trial, instrument)
            else:
                report.test_retest = report.reliable_change = Figure(reason=NOT_ASKED)
            reports.append(report)
    return reports


NOT_ASKED = "not computed for this report"


def _fill(report: ScoreReport, moments: ScoreItemMoments) -> None:
    """Reliability per wave and invariance of one score, from its items' moments."""
    items = report.items
    for wave in sorted(moments.waves):
        report.by_wave.append({"wave": wave, **_wave_figures(moments.waves[wave], items)})
    first = min(moments.waves, default=None)
    report.invariance = {
        "language": _invariance(
            {lang: g for (w, lang), g in moments.languages.items() if w == first}, items, "language"
        ),
        "community": _invariance(
            {c: g for (w, c), g in moments.communities.items() if w == first}, items, "community"
        ),
        "wave": _invariance({str(w): g for w, g in moments.waves.items()}, items, "wave"),
    }


def _fill_retest(report: ScoreReport, trial: Trial, instrument: Instrument) -> None:
    """Test–retest and reliable change from the scale mean of each complete response (the
    multiplier changes neither), read a chunk of rows at a time."""
    scored = _scored(trial, instrument, report.items)
    report.test_retest = _attempt(
        lambda: psychometrics.icc_test_retest(scored, "participant", "wave", "score", n_boot=200)
    )
    report.reliable_change = _attempt(lambda: _reliable_change_counts(scored, report))


def _scored(trial: Trial, instrument: Instrument, items: list[str]) -> pd.DataFrame:
    """participant, wave, score per complete response; participants are numbered in order of
    first appearance (as ``pandas.factorize`` numbers them), so a chunk's pseudonyms are
    dropped as soon as it is read and the frame holds three numbers per response."""
    codes: dict[str, int] = {}
    parts = [(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), np.empty(0))]
    for rows in score_values(trial, instrument, items):
        who, wave, score = zip(*rows, strict=True)
        local, uniques = pd.factorize(pd.Index(who))
        mapping = np.array([codes.setdefault(u, len(codes)) for u in uniques], dtype=np.int64)
        parts.append((mapping[local], np.array(wave, dtype=np.int64), np.array(score, dtype=float)))
    participant, wave, score = (np.concatenate(column) for column in zip(*parts, strict=True))
    return pd.DataFrame({"participant": participant, "wave": wave, "score": score})


def _reliable_change_counts(scored: pd.DataFrame, report: ScoreReport) -> dict:
    """Baseline → last wave, Jacobson–Truax, with the baseline α as the reliability."""
    if not report.by_wave or report.by_wave[0]["alpha"].value is None:
        raise ValueError("no baseline reliability to base it on")
    waves = sorted(scored["wave"].unique())
    if len(waves) < 2:
        raise ValueError("needs a baseline and a later wave")
    wide = scored.pivot_table(index="participant", columns="wave", values="score")
    pairs = wide[[waves[0], waves[-1]]].dropna()
    baseline_sd = float(scored.loc[scored["wave"] == waves[0], "score"].std(ddof=1))
    reliability = report.by_wave[0]["alpha"].value.alpha
    change = psychometrics.reliable_change(
        pairs[waves[0]], pairs[waves[-1]], baseline_sd, reliability
    )
    return {
        "from_wave": int(waves[0]),
        "to_wave": int(waves[-1]),
        "n": len(pairs),
        "improved": int(np.sum(change.reliable_improvement)),
        "deteriorated": int(np.sum(change.reliable_deterioration)),
        "s_diff": change.s_diff,
    }
