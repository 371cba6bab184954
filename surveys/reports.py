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
from surveys.models import Instrument, Response
from surveys.scoring import keyed_values
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


def instrument_item_frame(trial: Trial, instrument: Instrument) -> pd.DataFrame:
    """One row per response to ``instrument``: keyed item values (higher = more), with the
    participant, wave, language version and community."""
    items = instrument.definition.item_codes
    rows = []
    responses = Response.objects.filter(wave__trial=trial, wave__instruments=instrument).values(
        "participant_id", "participant__community__slug", "wave__index", "answers", "languages"
    )
    for response in responses:
        keyed = keyed_values(instrument.definition, response["answers"].get(instrument.code, {}))
        rows.append(
            {
                "participant": response["participant_id"],
                "wave": response["wave__index"],
                "language": response["languages"].get(instrument.code, "en"),
                "community": response["participant__community__slug"] or "none",
                **{item: keyed.get(item, np.nan) for item in items},
            }
        )
    columns = ["participant", "wave", "language", "community", *items]
    return pd.DataFrame(rows, columns=columns)


def _wave_figures(frame: pd.DataFrame, items: list[str]) -> dict:
    values = frame[items].to_numpy(dtype=float)
    figures = {
        "n": len(frame),
        "alpha": _attempt(lambda: psychometrics.cronbach_alpha(values)),
        "omega": _attempt(lambda: psychometrics.mcdonald_omega(values)),
    }
    if len(frame) < MIN_RESPONDENTS_FOR_CFA:
        figures["cfa"] = Figure(reason=f"fewer than {MIN_RESPONDENTS_FOR_CFA} respondents")
    elif len(items) < 4:
        figures["cfa"] = Figure(reason="a one-factor model of 3 items fits perfectly (0 df)")
    else:
        figures["cfa"] = _attempt(lambda: psychometrics.cfa_fit(frame, {"factor": items}))
    return figures


def _invariance(frame: pd.DataFrame, items: list[str], group: str) -> Figure:
    sizes = frame[group].value_counts()
    groups = sizes[sizes >= MIN_PER_GROUP_FOR_INVARIANCE].index
    if len(groups) < 2:
        return Figure(reason=f"needs two {group} groups of at least {MIN_PER_GROUP_FOR_INVARIANCE}")
    if len(items) < 4:
        return Figure(reason="needs at least 4 items for a testable configural model")
    subset = frame[frame[group].isin(groups)].copy()
    subset[group] = subset[group].astype(str)
    return _attempt(lambda: _invariance_steps(subset, items, group))


def _invariance_steps(frame: pd.DataFrame, items: list[str], group: str) -> dict:
    result = psychometrics.measurement_invariance(frame, {"f": items}, group)
    return {
        "groups": dict(zip(result.groups, result.n_per_group, strict=True)),
        "steps": [result.configural, result.metric, result.scalar],
    }


def _score_values(frame: pd.DataFrame, items: list[str]) -> pd.Series:
    # The scale mean of complete rows: test–retest and change do not depend on the multiplier.
    return frame[items].mean(axis=1, skipna=False)


def trial_survey_report(trial: Trial) -> list[ScoreReport]:
    """Every score of every instrument the trial's waves ask, with its psychometrics."""
    instruments = Instrument.objects.filter(wave__trial=trial).distinct().order_by("code")
    reports = []
    for instrument in instruments:
        frame = instrument_item_frame(trial, instrument)
        for score in instrument.definition.scores:
            report = ScoreReport(
                instrument=instrument.code,
                score=score.code,
                items=instrument.definition.scored_items(score),
                validated=instrument.validated,
            )
            _fill(report, frame)
            reports.append(report)
    return reports


def _fill(report: ScoreReport, frame: pd.DataFrame) -> None:
    """Every figure of one score, from its instrument's item frame."""
    items = report.items
    for wave, rows in frame.groupby("wave"):
        report.by_wave.append({"wave": wave, **_wave_figures(rows, items)})
    first_wave = frame[frame["wave"] == frame["wave"].min()] if len(frame) else frame
    report.invariance = {
        "language": _invariance(first_wave, items, "language"),
        "community": _invariance(first_wave, items, "community"),
        "wave": _invariance(frame, items, "wave"),
    }
    scored = frame.assign(score=_score_values(frame, items)).dropna(subset=["score"])
    report.test_retest = _attempt(
        lambda: psychometrics.icc_test_retest(scored, "participant", "wave", "score", n_boot=200)
    )
    report.reliable_change = _attempt(lambda: _reliable_change_counts(scored, report))


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
