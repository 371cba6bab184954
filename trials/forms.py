"""Admin forms that turn a coordinator's typing into the structures the services take."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from stats.power import ancova_sample_size
from trials.models import (
    Arm,
    ConsentDocument,
    ConsentScope,
    FlourishingProfile,
    OversightBody,
    PreRegistration,
    ProtocolDeviation,
    Trial,
)
from trials.plan import (
    MULTIPLICITY_CORRECTIONS,
    NARRATIVE_SECTIONS,
    RANDOMISATION_METHODS,
    SPENDING_FUNCTIONS,
    STRATIFICATION_FACTORS,
    randomisation_settings,
)
from trials.services import AMENDABLE_STATES, ARM_CONFIG_FIELDS, profile_weights_errors

LINES = forms.Textarea(attrs={"rows": 3, "cols": 80})


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _pairs(text: str, what: str) -> list[tuple[str, str]]:
    pairs = []
    for line in _lines(text):
        key, sep, value = line.partition(":")
        if not sep:
            raise ValidationError(f"Write each {what} as “name: value” (got “{line}”).")
        pairs.append((key.strip(), value.strip()))
    return pairs


def _outcomes(text: str) -> list[dict[str, Any]]:
    outcomes = []
    for line in _lines(text):
        parts = [part.strip() for part in line.split(",")]
        if len(parts) != 3 or not parts[2].isdigit():
            raise ValidationError(
                f"Write each outcome as “dimension, instrument, wave number” (got “{line}”)."
            )
        outcomes.append({"dimension": parts[0], "instrument": parts[1], "wave": int(parts[2])})
    return outcomes


def _number(value: str, what: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValidationError(f"{what}: “{value}” is not a number.") from None


class PlanForm(forms.ModelForm):
    """A draft plan, section by section (the OSF Preregistration template's order)."""

    hypotheses = forms.CharField(widget=LINES, help_text="One hypothesis per line.")
    study_type = forms.CharField(required=False, initial="Experiment: randomised field trial")
    blinding = forms.CharField(required=False, widget=LINES)
    design = forms.CharField(required=False, widget=LINES, label="Study design")
    control_arm = forms.SlugField(help_text="Slug of the control arm.")
    treatment_arm = forms.SlugField(help_text="Slug of the arm compared with it.")
    randomisation_method = forms.ChoiceField(
        choices=[(m, m.replace("_", " ")) for m in sorted(RANDOMISATION_METHODS)]
    )
    strata = forms.MultipleChoiceField(
        choices=[(f, f) for f in sorted(STRATIFICATION_FACTORS)],
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    block_sizes = forms.CharField(initial="4, 6", help_text="Comma-separated, e.g. 4, 6.")
    primary_outcomes = forms.CharField(
        widget=LINES, help_text="One per line: dimension, instrument, wave number."
    )
    secondary_outcomes = forms.CharField(widget=LINES, required=False)
    estimand = forms.CharField(
        required=False, initial="Intention-to-treat difference between arms at the final wave"
    )
    analysis_model = forms.CharField(required=False, widget=LINES)
    alpha = forms.FloatField(initial=0.05, min_value=0.0001, max_value=0.5)
    multiplicity = forms.ChoiceField(choices=[(m, m) for m in sorted(MULTIPLICITY_CORRECTIONS)])
    minimal_important_differences = forms.CharField(
        widget=LINES, required=False, help_text="One per line: dimension: difference."
    )
    sample_size_per_arm = forms.IntegerField(required=False, min_value=1)
    sample_size_rationale = forms.CharField(required=False, widget=LINES)
    compute_sample_size = forms.BooleanField(
        required=False,
        help_text="Compute the per-arm size from the power inputs below "
        "(ANCOVA of the follow-up mean, Frison & Pocock 1992).",
    )
    power_effect = forms.FloatField(required=False, help_text="Smallest effect worth detecting.")
    power_sd = forms.FloatField(required=False, min_value=0, help_text="Between-person SD.")
    power_rho = forms.FloatField(
        required=False, min_value=0, max_value=0.99, help_text="Correlation between waves."
    )
    power_follow_ups = forms.IntegerField(required=False, min_value=1, initial=1)
    power_attrition = forms.FloatField(required=False, min_value=0, max_value=0.9, initial=0.2)
    power_target = forms.FloatField(required=False, min_value=0.5, max_value=0.99, initial=0.8)
    interim_looks = forms.CharField(
        required=False, help_text="Information fractions of the interim looks, e.g. 0.5."
    )
    spending = forms.ChoiceField(
        choices=[(s, s.replace("_", "–")) for s in sorted(SPENDING_FUNCTIONS)], required=False
    )
    stopping_rule = forms.CharField(required=False, widget=LINES)
    exclusions = forms.CharField(required=False, widget=LINES)
    missing_data = forms.CharField(required=False, widget=LINES)
    guardrails = forms.CharField(required=False, widget=LINES, help_text="One per line.")
    community_weights = forms.CharField(
        required=False, widget=LINES, help_text="One per line: community slug: profile version."
    )
    exploratory_analyses = forms.CharField(required=False, widget=LINES)
    other = forms.CharField(required=False, widget=LINES)

    class Meta:
        model = PreRegistration
        fields = ["trial", "rationale"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial.update(self._initial_from(self.instance.plan))

    @staticmethod
    def _initial_from(plan: dict[str, Any]) -> dict[str, Any]:
        randomisation = randomisation_settings(plan)
        sample = plan.get("sample_size") or {}
        power = sample.get("power") or {}
        looks = plan.get("interim_looks") or []
        outcome_lines = lambda key: "\n".join(  # noqa: E731
            f"{o['dimension']}, {o['instrument']}, {o['wave']}" for o in plan.get(key, [])
        )
        initial = {section: plan.get(section, "") for section in NARRATIVE_SECTIONS}
        compared = plan.get("arms_compared") or ["", ""]
        return initial | {
            "hypotheses": "\n".join(plan.get("hypotheses", [])),
            "control_arm": compared[0],
            "treatment_arm": compared[1],
            "randomisation_method": randomisation["method"],
            "strata": randomisation["strata"],
            "block_sizes": ", ".join(str(s) for s in randomisation["block_sizes"]),
            "primary_outcomes": outcome_lines("primary_outcomes"),
            "secondary_outcomes": outcome_lines("secondary_outcomes"),
            "alpha": plan.get("alpha", 0.05),
            "multiplicity": plan.get("multiplicity", "holm"),
            "minimal_important_differences": "\n".join(
                f"{k}: {v:g}" for k, v in plan.get("minimal_important_differences", {}).items()
            ),
            "sample_size_per_arm": sample.get("per_arm"),
            "sample_size_rationale": sample.get("rationale", ""),
            "power_effect": power.get("effect"),
            "power_sd": power.get("sd"),
            "power_rho": power.get("rho"),
            "power_follow_ups": power.get("follow_ups", 1),
            "power_attrition": power.get("attrition", 0.2),
            "power_target": power.get("power", 0.8),
            "interim_looks": ", ".join(f"{look['information_fraction']:g}" for look in looks),
            "spending": looks[0].get("spending", "obrien_fleming") if looks else "obrien_fleming",
            "guardrails": "\n".join(plan.get("guardrails", [])),
            "community_weights": "\n".join(
                f"{slug}: {v['profile_version'] if isinstance(v, dict) else v}"
                for slug, v in plan.get("community_weights", {}).items()
            ),
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        plan: dict[str, Any] = {s: data[s] for s in NARRATIVE_SECTIONS if data.get(s)}
        plan["hypotheses"] = _lines(data["hypotheses"])
        plan["arms_compared"] = [data["control_arm"], data["treatment_arm"]]
        try:
            sizes = [int(size) for size in data["block_sizes"].replace(" ", "").split(",")]
        except ValueError:
            raise ValidationError(
                {"block_sizes": "Write whole numbers separated by commas."}
            ) from None
        plan["randomisation"] = {
            "method": data["randomisation_method"],
            "strata": data["strata"],
            "block_sizes": sizes,
        }
        plan["primary_outcomes"] = _outcomes(data["primary_outcomes"])
        plan["secondary_outcomes"] = _outcomes(data.get("secondary_outcomes", ""))
        plan["alpha"] = data["alpha"]
        plan["multiplicity"] = data["multiplicity"]
        plan["minimal_important_differences"] = {
            key: _number(value, key)
            for key, value in _pairs(data.get("minimal_important_differences", ""), "MID")
        }
        plan["guardrails"] = _lines(data.get("guardrails", ""))
        plan["community_weights"] = {
            slug: int(_number(version, slug))
            for slug, version in _pairs(data.get("community_weights", ""), "community weight")
        }
        fractions = [
            _number(f, "interim look")
            for f in data.get("interim_looks", "").split(",")
            if f.strip()
        ]
        plan["interim_looks"] = [
            {"information_fraction": f, "spending": data.get("spending") or "obrien_fleming"}
            for f in fractions
        ]
        plan["sample_size"] = self._sample_size(data)
        if plan["sample_size"] is None:
            del plan["sample_size"]
        self.plan = plan
        return data

    def _sample_size(self, data: dict[str, Any]) -> dict[str, Any] | None:
        inputs = {
            "effect": data.get("power_effect"),
            "sd": data.get("power_sd"),
            "rho": data.get("power_rho"),
            "follow_ups": data.get("power_follow_ups"),
            "attrition": data.get("power_attrition"),
            "power": data.get("power_target"),
        }
        per_arm = data.get("sample_size_per_arm")
        power = None
        if data.get("compute_sample_size"):
            missing = [k for k, v in inputs.items() if v is None]
            if missing:
                raise ValidationError(f"To compute the sample size, fill in: {', '.join(missing)}.")
            try:
                result = ancova_sample_size(alpha=data["alpha"], **inputs)
            except ValueError as error:
                raise ValidationError(f"Power calculation: {error}") from None
            per_arm = result.n_control
            power = {
                "method": "ANCOVA of the follow-up mean adjusted for baseline "
                "(Frison & Pocock 1992), normal approximation",
                **inputs,
                "alpha": data["alpha"],
                "design_multiplier": result.design_multiplier,
                "n_per_arm": result.n_control,
                "n_total": result.n_total,
                "achieved_power": result.achieved_power,
            }
        elif self.instance.pk:
            power = (self.instance.plan.get("sample_size") or {}).get("power")
        if per_arm is None:
            return None
        sample = {"per_arm": per_arm, "rationale": data.get("sample_size_rationale", "")}
        if power:
            sample["power"] = power
        return sample


class ArmForm(forms.ModelForm):
    """An arm; after registration, saving it is an amendment and needs a rationale."""

    endpoint_url = forms.URLField(
        assume_scheme="https", help_text="OpenAI-compatible chat completions base URL."
    )
    amendment_rationale = forms.CharField(
        required=False,
        widget=LINES,
        help_text="Required once the trial is registered: the change becomes a new plan "
        "version and a recorded protocol deviation, and needs new approvals.",
    )

    class Meta:
        model = Arm
        fields = [
            "trial",
            "slug",
            "name",
            "is_control",
            "endpoint_url",
            "model_id",
            "model_version",
            "system_prompt",
            "flourishing_profile",
            "memory_policy",
            "parameters",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        arm, trial = self.instance, data.get("trial") or getattr(self.instance, "trial", None)
        if trial is None or trial.state == Trial.State.DRAFT or arm.pk is None:
            return data
        if set(self.changed_data) & ARM_CONFIG_FIELDS:
            if trial.state not in AMENDABLE_STATES:
                raise ValidationError(f"A {trial.get_state_display()} trial cannot be amended.")
            if not data.get("amendment_rationale", "").strip():
                raise ValidationError(
                    {"amendment_rationale": "This trial is registered: give the rationale."}
                )
        return data


class ProfileForm(forms.ModelForm):
    class Meta:
        model = FlourishingProfile
        fields = ["community", "weights", "priorities", "locale", "authored_by"]

    def clean_weights(self) -> dict[str, float]:
        weights = self.cleaned_data["weights"]
        errors = profile_weights_errors(weights)
        if errors:
            raise ValidationError(errors)
        return weights


class DeviationForm(forms.ModelForm):
    class Meta:
        model = ProtocolDeviation
        fields = ["trial", "description"]

    def clean_trial(self) -> Trial:
        trial = self.cleaned_data["trial"]
        if not trial.preregistrations.filter(frozen_at__isnull=False).exists():
            raise ValidationError("Deviations are recorded against a registered protocol.")
        return trial


class ConsentDocumentForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=ConsentScope.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = ConsentDocument
        fields = ["trial", "version", "locale", "text", "scopes", "withdrawal_rule"]

    def clean_scopes(self) -> list[str]:
        scopes = self.cleaned_data["scopes"]
        if ConsentScope.SURVEYS not in scopes:
            raise ValidationError("Taking part means answering surveys: include that scope.")
        return scopes


class OversightDecisionForm(forms.Form):
    """An oversight body's decision on a trial: approve the current version, or suspend."""

    body = forms.ModelChoiceField(queryset=OversightBody.objects.none())
    note = forms.CharField(widget=LINES, required=False, label="Note / reason")

    def __init__(self, *args, bodies, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["body"].queryset = bodies
