"""The survey quality report computed from item moments in PostgreSQL (surveys.item_moments)
gives the figures the row-by-row computation gave: every response read into an item frame with
``surveys.scoring.keyed_values`` and fitted with the row-level functions of
``stats.psychometrics``, as the report did before. The reference below is that computation."""

import math

import numpy as np
import pandas as pd
import pytest

from stats import psychometrics
from surveys import reports
from surveys.item_moments import score_item_moments
from surveys.models import Instrument, Response
from surveys.reports import Figure, trial_survey_report
from surveys.scoring import keyed_values
from trials.models import Community

MIN_GROUP = 10  # small enough for the 40-participant trial to have language and community groups


def _reference_frame(trial, instrument) -> pd.DataFrame:
    items = instrument.definition.item_codes
    rows = []
    responses = (
        Response.objects.filter(wave__trial=trial, wave__instruments=instrument)
        .order_by("id")
        .values(
            "participant_id", "participant__community__slug", "wave__index", "answers", "languages"
        )
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
    return pd.DataFrame(rows, columns=["participant", "wave", "language", "community", *items])


def _attempt(compute) -> Figure:
    try:
        return Figure(value=compute())
    except (ValueError, RuntimeError, np.linalg.LinAlgError) as error:
        return Figure(reason=str(error))


def _reference_invariance(frame, items, group) -> Figure:
    sizes = frame[group].value_counts()
    groups = sizes[sizes >= MIN_GROUP].index
    if len(groups) < 2:
        return Figure(reason=f"needs two {group} groups of at least {MIN_GROUP}")
    if len(items) < 4:
        return Figure(reason="needs at least 4 items for a testable configural model")
    subset = frame[frame[group].isin(groups)].copy()
    subset[group] = subset[group].astype(str)

    def steps():
        result = psychometrics.measurement_invariance(subset, {"f": items}, group)
        return {
            "groups": dict(zip(result.groups, result.n_per_group, strict=True)),
            "steps": [result.configural, result.metric, result.scalar],
        }

    return _attempt(steps)


def _reference_report(trial, instrument, score) -> dict:
    """The figures of one score as the report computed them from the item frame."""
    frame = _reference_frame(trial, instrument)
    items = instrument.definition.scored_items(score)
    by_wave = []
    for wave, rows in frame.groupby("wave"):
        values = rows[items].to_numpy(dtype=float)
        figures = {
            "wave": wave,
            "n": len(rows),
            "alpha": _attempt(lambda v=values: psychometrics.cronbach_alpha(v)),
            "omega": _attempt(lambda v=values: psychometrics.mcdonald_omega(v)),
        }
        if len(rows) < reports.MIN_RESPONDENTS_FOR_CFA:
            figures["cfa"] = Figure(
                reason=f"fewer than {reports.MIN_RESPONDENTS_FOR_CFA} respondents"
            )
        elif len(items) < 4:
            figures["cfa"] = Figure(reason="a one-factor model of 3 items fits perfectly (0 df)")
        else:
            figures["cfa"] = _attempt(lambda r=rows: psychometrics.cfa_fit(r, {"factor": items}))
        by_wave.append(figures)
    first_wave = frame[frame["wave"] == frame["wave"].min()]
    invariance = {
        "language": _reference_invariance(first_wave, items, "language"),
        "community": _reference_invariance(first_wave, items, "community"),
        "wave": _reference_invariance(frame, items, "wave"),
    }
    scored = frame.assign(score=frame[items].mean(axis=1, skipna=False)).dropna(subset=["score"])
    icc = _attempt(
        lambda: psychometrics.icc_test_retest(scored, "participant", "wave", "score", n_boot=200)
    )
    return {"by_wave": by_wave, "invariance": invariance, "test_retest": icc, "scored": scored}


def _close(actual, expected, path="") -> None:
    """Equal up to floating-point noise, field by field."""
    if isinstance(expected, Figure):
        assert actual.reason == expected.reason, path
        _close(actual.value, expected.value, path)
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), path
        for key in expected:
            _close(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list | tuple):
        assert len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _close(a, e, f"{path}[{i}]")
    elif isinstance(expected, pd.DataFrame | pd.Series | np.ndarray):
        np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=1e-7, atol=1e-9)
    elif hasattr(expected, "__dataclass_fields__"):
        assert type(actual) is type(expected), path
        for name in expected.__dataclass_fields__:
            _close(getattr(actual, name), getattr(expected, name), f"{path}.{name}")
    elif isinstance(expected, float) and not isinstance(expected, bool):
        if math.isnan(expected):
            assert math.isnan(actual), path
        else:
            assert actual == pytest.approx(expected, rel=1e-7, abs=1e-9), path
    else:
        assert actual == expected, path


@pytest.fixture
def varied_trial(small_trial):
    """The small trial with the AI-assistant items (reverse-keyed, some left unanswered) added to
    every response, a German version for some, and two communities."""
    assistant = Instrument.objects.get(code="ai_assistant")
    definition = assistant.definition
    for wave in small_trial.waves.all():
        wave.instruments.add(assistant)
    other = Community.objects.create(slug="riverside", name="Riverside")
    rng = np.random.default_rng(11)
    participants = list(small_trial.participants.order_by("id"))
    for participant in participants[::2]:
        participant.community = other
        participant.save(update_fields=["community"])
    for response in Response.objects.filter(participant__trial=small_trial).order_by("id"):
        trait = rng.normal()
        answers = {}
        for item in definition.items:
            if rng.random() < 0.06:
                continue  # unanswered: the row is not complete for the scores using it
            low, high = definition.answer_range(item)
            value = int(
                np.clip(np.rint(3 + trait * (-1 if item.reverse else 1) + rng.normal()), low, high)
            )
            answers[item.code] = value
        response.answers = {**response.answers, "ai_assistant": answers}
        german = rng.random() < 0.45
        response.languages = {
            **response.languages,
            **({"ai_assistant": "de", "who5": "de"} if german else {}),
        }
        response.save(update_fields=["answers", "languages"])
    return small_trial


@pytest.mark.django_db
def test_the_report_from_moments_gives_the_figures_of_the_row_by_row_computation(
    varied_trial, monkeypatch
):
    monkeypatch.setattr(reports, "MIN_PER_GROUP_FOR_INVARIANCE", MIN_GROUP)
    report = trial_survey_report(varied_trial)
    instruments = {i.code: i for i in Instrument.objects.all()}
    assert {(r.instrument, r.score) for r in report} >= {
        ("ai_assistant", "ai_independence"),
        ("ai_assistant", "ai_candour"),
        ("who5", "who5"),
        ("swls", "swls"),
    }
    figures_seen = set()
    for score_report in report:
        instrument = instruments[score_report.instrument]
        expected = _reference_report(
            varied_trial, instrument, instrument.definition.score(score_report.score)
        )
        _close(score_report.by_wave, expected["by_wave"], score_report.score)
        _close(score_report.invariance, expected["invariance"], score_report.score)
        _close(score_report.test_retest, expected["test_retest"], score_report.score)
        _close(
            score_report.reliable_change,
            _attempt(
                lambda e=expected, r=score_report: reports._reliable_change_counts(e["scored"], r)
            ),
            score_report.score,
        )
        for group, figure in score_report.invariance.items():
            figures_seen.add((group, figure.value is not None))
    # The comparison covered fitted invariance models, not only reasons for their absence.
    assert {("language", True), ("community", True), ("wave", True)} <= figures_seen


@pytest.mark.django_db
def test_moments_count_only_complete_rows_and_mirror_reverse_keyed_items(varied_trial):
    assistant = Instrument.objects.get(code="ai_assistant")
    items = assistant.definition.scored_items(assistant.definition.score("ai_independence"))
    moments = score_item_moments(varied_trial, assistant, items)
    frame = _reference_frame(varied_trial, assistant)
    for wave, rows in frame.groupby("wave"):
        complete = rows[items].dropna().to_numpy(dtype=float)
        found = moments.waves[wave]
        assert found.rows == len(rows) and found.moments.n == len(complete) < len(rows)
        np.testing.assert_allclose(found.moments.mean, complete.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(
            found.moments.cov, np.cov(complete, rowvar=False, bias=True), rtol=1e-10, atol=1e-12
        )
    # The reference mirrors reverse-keyed items (keyed_values); rel_1 is one of them.
    assert assistant.definition.item("rel_1").reverse


@pytest.mark.django_db
def test_a_report_without_retest_leaves_out_only_the_icc_and_reliable_change(varied_trial):
    full = {(r.instrument, r.score): r for r in trial_survey_report(varied_trial)}
    quick = {(r.instrument, r.score): r for r in trial_survey_report(varied_trial, retest=False)}
    assert full.keys() == quick.keys()
    for key, report in quick.items():
        assert report.test_retest.value is None and report.reliable_change.value is None
        _close(report.by_wave, full[key].by_wave)
        _close(report.invariance, full[key].invariance)


@pytest.mark.django_db
def test_sqlite_s_path_in_python_gives_the_moments_and_scores_postgresql_gives(
    varied_trial, monkeypatch
):
    from django.db import connection

    from surveys.item_moments import score_values

    assistant = Instrument.objects.get(code="ai_assistant")
    items = assistant.definition.scored_items(assistant.definition.score("ai_candour"))
    in_sql = score_item_moments(varied_trial, assistant, items)
    values_sql = [row for rows in score_values(varied_trial, assistant, items) for row in rows]
    monkeypatch.setattr(connection, "vendor", "sqlite")
    in_python = score_item_moments(varied_trial, assistant, items)
    values_python = [row for rows in score_values(varied_trial, assistant, items) for row in rows]
    assert values_python == values_sql and len(values_sql) > 50
    for grouping in ("waves", "languages", "communities"):
        expected, actual = getattr(in_sql, grouping), getattr(in_python, grouping)
        assert actual.keys() == expected.keys() and len(expected) >= 2
        for key, group in expected.items():
            assert (actual[key].rows, actual[key].first) == (group.rows, group.first)
            assert actual[key].moments.n == group.moments.n
            np.testing.assert_array_equal(actual[key].moments.mean, group.moments.mean)
            np.testing.assert_array_equal(actual[key].moments.cov, group.moments.cov)
