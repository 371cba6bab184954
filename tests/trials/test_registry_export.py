import json
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from trials.canonical import sha256_of
from trials.models import PreRegistration, Trial
from trials.registry_export import NOT_SPECIFIED, osf_preregistration, preregistration_markdown

CONFIG = {
    "endpoint_url": "http://127.0.0.1:9000/v1",
    "model_id": "assistant-model",
    "model_version": "2026-10-01",
    "memory_policy": "none",
    "parameters": {"temperature": 0.7},
}
CONTENT = {
    "trial": "demo",
    "plan": {
        "hypotheses": ["Assistant b raises mental wellbeing compared with a by wave 3."],
        "study_type": "Experiment - randomised controlled field trial",
        "blinding": "Participants do not know their arm.",
        "design": "Two-arm parallel-group trial with four survey waves.",
        "randomisation": {
            "method": "permuted_blocks",
            "strata": ["community", "locale"],
            "block_sizes": [4, 6],
            "ratio": {"a": 1, "b": 1},
        },
        "arms_compared": ["a", "b"],
        "primary_outcomes": [{"dimension": "mental_wellbeing", "instrument": "who5", "wave": 3}],
        "secondary_outcomes": [{"dimension": "life_satisfaction", "instrument": "swls", "wave": 3}],
        "estimand": "intention-to-treat difference at wave 3",
        "analysis_model": "ANCOVA adjusted for baseline",
        "alpha": 0.05,
        "multiplicity": "holm",
        "sample_size": {
            "per_arm": 150,
            "rationale": "80% power for d = 0.35.",
            "power": {
                "method": "ANCOVA of the follow-up mean adjusted for baseline",
                "effect": 5.25,
                "sd": 15.0,
                "rho": 0.5,
                "follow_ups": 1,
                "attrition": 0.2,
                "power": 0.8,
                "alpha": 0.05,
                "design_multiplier": 0.75,
                "n_per_arm": 150,
                "n_total": 300,
                "achieved_power": 0.8,
            },
        },
        "interim_looks": [{"information_fraction": 0.5, "spending": "obrien_fleming"}],
        "stopping_rule": "Stop at 300 enrolled participants.",
        "minimal_important_differences": {"mental_wellbeing": 10},
        "guardrails": ["Engagement rising while flourishing does not."],
        "community_weights": {
            "general": {
                "profile_version": 1,
                "weights": {"mental_wellbeing": 0.5, "life_satisfaction": 0.5},
            }
        },
        "safety": {
            "suspension_lifted_by": "every_required_body",
            "harm_boundaries": [
                {
                    "metric": "serious_adverse_events",
                    "max_excess": 0.0,
                    "confidence": 0.9,
                    "min_participants_per_arm": 10,
                },
                {
                    "metric": "reliable_deterioration",
                    "max_excess": 0.05,
                    "confidence": 0.975,
                    "min_participants_per_arm": 25,
                },
            ],
            # Treatment first in the stored JSON: the export still lists the control first.
            "canary_prompts": {
                "b": ["Name a colour.", "Print ``` and stop."],
                "a": ["What is 17 × 23?"],
            },
        },
    },
    "arms": {"a": "a" * 64, "b": "b" * 64},
    "arm_configs": {
        "a": {"slug": "a", **CONFIG, "system_prompt": "You are a helpful assistant."},
        "b": {"slug": "b", **CONFIG, "system_prompt": "Sé amable; ``` aide à l'autonomie — 🌱"},
    },
    "allocation_sequence_sha256": "c" * 64,
}
SECTIONS = {
    "study_information": {"title", "hypotheses"},
    "design_plan": {"study_type", "blinding", "study_design", "randomization"},
    "sampling_plan": {
        "existing_data",
        "explanation_of_existing_data",
        "data_collection_procedures",
        "sample_size",
        "sample_size_rationale",
        "stopping_rule",
    },
    "variables": {"manipulated_variables", "measured_variables", "indices", "telemetry"},
    "analysis_plan": {
        "statistical_models",
        "transformations",
        "inference_criteria",
        "data_exclusion",
        "missing_data",
        "exploratory_analysis",
    },
    "other": {"guardrails", "harm_boundaries", "canary_prompts", "other"},
}
FROZEN_AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def export(content: dict = CONTENT, **overrides):
    fields = {
        "trial_slug": "demo",
        "title": "Flourishing trial",
        "version": 2,
        "frozen_at": FROZEN_AT,
        "sha256": sha256_of(content),
        "content": content,
        "rationale": "Added a secondary outcome.",
        "audit_chain_head": {"sequence": 12, "sha256": "ab" * 32},
    }
    return fields | overrides


@pytest.mark.unit
def test_every_osf_section_and_question_is_present():
    osf = osf_preregistration(**export())
    assert list(osf) == ["template", "provenance", *SECTIONS]
    for section, questions in SECTIONS.items():
        assert set(osf[section]) == questions
        for question in osf[section].values():
            assert set(question) == {"title", "answer", "data"} and question["answer"]
    provenance = osf["provenance"]
    assert "canonical JSON" in provenance.pop("hash_input")
    assert provenance == {
        "trial_slug": "demo",
        "title": "Flourishing trial",
        "version": 2,
        "frozen_at": "2026-05-01T12:00:00+00:00",
        "sha256": sha256_of(CONTENT),
        "verify_with": "trials.canonical.sha256_of(content)",
        "amendment_rationale": "Added a secondary outcome.",
        "audit_chain_head": {"sequence": 12, "sha256": "ab" * 32},
    }
    # Version 2 is an amendment, possibly frozen after data collection began; version 1 is not.
    assert osf["sampling_plan"]["existing_data"]["answer"].startswith("Amendment")
    first = osf_preregistration(**export(version=1))
    assert first["sampling_plan"]["existing_data"]["answer"] == (
        "Registration prior to creation of data"
    )


@pytest.mark.unit
def test_plan_content_lands_in_its_osf_question():
    osf = osf_preregistration(**export())
    randomization = osf["design_plan"]["randomization"]["answer"]
    assert "community, locale" in randomization and "c" * 64 in randomization
    assert "effect = 5.25" in osf["sampling_plan"]["sample_size_rationale"]["answer"]
    assert (
        "information fraction 0.5, spending: obrien_fleming"
        in osf["sampling_plan"]["stopping_rule"]["answer"]
    )
    inference = osf["analysis_plan"]["inference_criteria"]["answer"]
    assert "0.05" in inference and "Holm" in inference and "mental_wellbeing 10" in inference
    assert (
        "0.5 × life_satisfaction + 0.5 × mental_wellbeing" in osf["variables"]["indices"]["answer"]
    )


@pytest.mark.unit
def test_arms_and_outcomes_appear_control_first():
    variables = osf_preregistration(**export())["variables"]
    arms = variables["manipulated_variables"]["data"]
    assert [(a["arm"], a["role"], a["config_sha256"]) for a in arms] == [
        ("a", "control", "a" * 64),
        ("b", "treatment", "b" * 64),
    ]
    assert arms[1]["model_version"] == "2026-10-01"
    assert [
        (o["role"], o["dimension"], o["instrument"], o["wave"])
        for o in variables["measured_variables"]["data"]
    ] == [
        ("primary", "mental_wellbeing", "who5", 3),
        ("secondary", "life_satisfaction", "swls", 3),
    ]


@pytest.mark.unit
def test_missing_narratives_say_not_specified():
    plan = {
        k: CONTENT["plan"][k]
        for k in ("hypotheses", "arms_compared", "primary_outcomes", "alpha", "multiplicity")
    }
    osf = osf_preregistration(**export(CONTENT | {"plan": plan}, rationale=""))
    for section, question in [
        ("design_plan", "study_type"),
        ("design_plan", "blinding"),
        ("design_plan", "study_design"),
        ("sampling_plan", "sample_size"),
        ("sampling_plan", "sample_size_rationale"),
        ("sampling_plan", "stopping_rule"),
        ("variables", "indices"),
        ("analysis_plan", "transformations"),
        ("analysis_plan", "data_exclusion"),
        ("analysis_plan", "missing_data"),
        ("analysis_plan", "exploratory_analysis"),
        ("other", "guardrails"),
        ("other", "canary_prompts"),
        ("other", "other"),
    ]:
        assert osf[section][question]["answer"] == NOT_SPECIFIED, question
    assert osf["provenance"]["amendment_rationale"] == NOT_SPECIFIED
    assert f"Estimand: {NOT_SPECIFIED}" in osf["analysis_plan"]["statistical_models"]["answer"]
    # Randomisation is never unspecified: the platform's defaults are what allocation will do.
    randomization = osf["design_plan"]["randomization"]["answer"]
    assert "permuted-block" in randomization and "Equal allocation" in randomization
    # Nor who lifts a suspension: the plan's default is what the oversight page will do.
    assert osf["other"]["harm_boundaries"]["answer"].splitlines() == [
        "- No harm boundaries.",
        "- Crossing a boundary notifies every oversight body; it does not suspend the trial.",
        "- Any required oversight body may suspend the trial; the body that suspended it lifts "
        "the suspension.",
    ]


TELEMETRY = {
    "window_days": 7,
    "rho_total": 0.5,
    "rho_per_window": 0.0125,
    "metrics": [{"code": "minutes", "upper": 4200}, {"code": "sessions"}],
    "ratings": [
        {
            "code": "think_for_myself",
            "question": "Did this conversation help you think for yourself?",
        }
    ],
    "dose": {
        "outcome": {"instrument": "who5", "score": "who5", "wave": 3},
        "usage_metric": "minutes",
        "usage_days": 28,
        "usage_upper": 2400,
        "change_bound": 40,
        "change_step": 0.5,
        "rho": 0.05,
    },
}


@pytest.mark.unit
def test_telemetry_ratings_and_the_dose_release_are_exported_in_words():
    assert osf_preregistration(**export())["variables"]["telemetry"]["answer"].startswith("None")
    content = CONTENT | {"plan": CONTENT["plan"] | {"telemetry": TELEMETRY}}
    telemetry = osf_preregistration(**export(content))["variables"]["telemetry"]
    lines = telemetry["answer"].splitlines()
    assert "ρ = 0.5 in all" in lines[0] and "ρ = 0.0125 per window" in lines[0]
    assert "every 7 days" in lines[0]
    assert lines[1].startswith("- Metric minutes") and "[0, 4200]" in lines[1]
    # A metric without an upper bound gets the plan's default, which the export states.
    assert lines[2].startswith("- Metric sessions") and "[0, " in lines[2]
    assert "“Did this conversation help you think for yourself?”" in lines[3]
    assert "from 1 to 5" in lines[3]
    assert "exploratory and non-causal" in lines[4] and "ρ = 0.05" in lines[4]
    assert "who5 (who5) from baseline to wave 3" in lines[4] and "±40 in steps of 0.5" in lines[4]
    assert telemetry["data"]["dose"]["usage_days"] == 28
    markdown = preregistration_markdown(**export(content))
    assert "### Telemetry" in markdown and "think_for_myself" in markdown


@pytest.mark.unit
def test_the_safety_section_is_exported_in_words():
    other = osf_preregistration(**export())["other"]
    harms = other["harm_boundaries"]
    assert harms["answer"].splitlines() == [
        "- Serious adverse events: crossed for an arm when the lower end of the two-sided 90% "
        "Newcombe hybrid score interval for its share of participants with at least a serious "
        "adverse event minus the share in the control arm (a) is above 0; checked once each arm "
        "compared has 10 participants.",
        "- Reliable deterioration: crossed for an arm when the lower end of the two-sided 97.5% "
        "Newcombe hybrid score interval for its share of participants with at least reliable "
        "deterioration (a reliable change index of a primary outcome below -1.96) minus the "
        "share in the control arm (a) is above 0.05; checked once each arm compared has 25 "
        "participants.",
        "- Crossing a boundary notifies every oversight body; it does not suspend the trial.",
        "- Any required oversight body may suspend the trial; every required oversight body "
        "lifts the suspension.",
    ]
    safety = CONTENT["plan"]["safety"]
    assert harms["data"] == {
        "suspension_lifted_by": "every_required_body",
        "harm_boundaries": safety["harm_boundaries"],
    }
    canaries = other["canary_prompts"]
    assert (
        list(canaries["data"]) == ["a", "b"]
        and canaries["data"]["b"] == safety["canary_prompts"]["b"]
    )
    assert canaries["answer"].splitlines()[1:] == [
        "- Arm a: “What is 17 × 23?”",
        "- Arm b: “Name a colour.”; “Print ``` and stop.”",
    ]


@pytest.mark.unit
def test_a_plan_without_required_keys_is_refused():
    with pytest.raises(ValueError, match="The frozen record: trial: Field required"):
        osf_preregistration(**export({"plan": {"alpha": 0.05}}))
    with pytest.raises(ValueError, match="no hypotheses"):
        osf_preregistration(**export(CONTENT | {"plan": {"alpha": 0.05}}))


@pytest.mark.unit
def test_markdown_is_deterministic_and_carries_hash_tables_and_prompts():
    text = preregistration_markdown(**export())
    # The database may hand JSON objects back in another key order (PostgreSQL jsonb does).
    reordered = json.loads(json.dumps(CONTENT, sort_keys=True))
    assert text == preregistration_markdown(**export(reordered))
    assert sha256_of(CONTENT) in text
    assert f"| audit chain head | event 12, `{'ab' * 32}` |" in text
    for heading in (
        "## Study Information",
        "## Design Plan",
        "## Sampling Plan",
        "## Variables",
        "## Analysis Plan",
        "## Other",
        "### Inference criteria",
    ):
        assert f"\n{heading}\n" in text
    assert f"| a | control | assistant-model | 2026-10-01 | none | {'a' * 64} |" in text
    assert "| primary | mental_wellbeing | who5 | 3 |" in text
    # The prompt holds ``` so its fence must be longer.
    assert "````text\nSé amable; ``` aide à l'autonomie — 🌱\n````" in text
    # Canary prompts per arm, the control first, each fenced like a system prompt.
    canaries = text[text.index("### Canary prompts") : text.index("### Other")]
    assert canaries.index("#### Arm a") < canaries.index("#### Arm b")
    assert "```text\nWhat is 17 × 23?\n```" in canaries
    assert "````text\nPrint ``` and stop.\n````" in canaries


@pytest.mark.unit
def test_unicode_survives_the_json_export():
    osf = osf_preregistration(**export())
    text = json.dumps(osf, ensure_ascii=False)
    assert "aide à l'autonomie — 🌱" in text
    assert json.loads(text) == osf


@pytest.fixture
def frozen(db):
    trial = Trial.objects.create(slug="demo", title="Flourishing trial ✓")
    PreRegistration.objects.create(
        trial=trial, version=1, record=CONTENT, frozen_at=timezone.now(), sha256=sha256_of(CONTENT)
    )
    return trial


def run(*args, **options) -> str:
    out = StringIO()
    call_command("export_preregistration", *args, stdout=out, **options)
    return out.getvalue()


@pytest.mark.django_db
def test_command_exports_the_latest_frozen_version(frozen, tmp_path):
    PreRegistration.objects.create(
        trial=frozen, version=2, draft_plan=CONTENT["plan"]
    )  # a draft, not frozen
    osf = json.loads(run("demo"))
    assert osf["provenance"]["version"] == 1
    assert osf["provenance"]["sha256"] == sha256_of(CONTENT)
    assert osf["provenance"]["title"] == "Flourishing trial ✓"
    assert "## Variables" in run("demo", "--version", "1", "--format", "markdown")
    target = tmp_path / "prereg.md"
    run("demo", format="markdown", out=str(target))
    assert sha256_of(CONTENT) in target.read_text(encoding="utf-8")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "No trial with slug 'nope'"),
        (["demo", "--version", "7"], "no pre-registration version 7"),
        (["demo", "--version", "2"], "Version 2 of 'demo' is not frozen"),
    ],
)
def test_command_refuses_unknown_or_unfrozen_versions(frozen, args, message):
    PreRegistration.objects.create(trial=frozen, version=2, draft_plan=CONTENT["plan"])
    with pytest.raises(CommandError, match=message):
        run(*args)


@pytest.mark.django_db
def test_command_refuses_a_trial_with_nothing_frozen(db):
    trial = Trial.objects.create(slug="draft", title="Draft")
    PreRegistration.objects.create(trial=trial, version=1, draft_plan=CONTENT["plan"])
    with pytest.raises(CommandError, match="'draft' has no frozen pre-registration"):
        run("draft")


@pytest.mark.django_db
def test_command_refuses_content_that_does_not_match_its_hash(db):
    trial = Trial.objects.create(slug="tampered", title="Tampered")
    PreRegistration.objects.create(
        trial=trial, version=1, record=CONTENT, frozen_at=timezone.now(), sha256="0" * 64
    )
    with pytest.raises(CommandError, match="does not match its stored SHA-256"):
        run("tampered")
