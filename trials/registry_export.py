"""Export a frozen pre-registration to the OSF Preregistration template and to Markdown.

Pure functions: they read the frozen ``content`` (a PreRegistration's ``record``) and never
the database, so an export can be re-made from the canonical JSON alone.

The JSON mirrors the OSF Preregistration template (osf.io ``osf-preregistration-3.json``): one
key per template page, one key per question, each named in snake_case after the question title.

``provenance``
    ``trial_slug``, ``title``, ``version``, ``frozen_at`` (ISO-8601), ``sha256``, ``hash_input``
    (what ``sha256`` is computed over), ``verify_with`` and ``amendment_rationale``.
``study_information``
    ``title``, ``hypotheses``.
``design_plan``
    ``study_type``, ``blinding``, ``study_design``, ``randomization``.
``sampling_plan``
    ``existing_data``, ``explanation_of_existing_data``, ``data_collection_procedures``,
    ``sample_size``, ``sample_size_rationale``, ``stopping_rule``.
``variables``
    ``manipulated_variables``, ``measured_variables``, ``indices``.
``analysis_plan``
    ``statistical_models``, ``transformations``, ``inference_criteria``, ``data_exclusion``,
    ``missing_data``, ``exploratory_analysis``.
``other``
    ``guardrails``, ``harm_boundaries`` (with who lifts a suspension), ``canary_prompts``,
    ``other``. The OSF template has no safety questions; the plan's safety section is answered
    here, next to the guardrails.

Every question is ``{"title": <OSF title>, "answer": <text for the OSF form>, "data": <the
structured plan content it came from, or null>}``. A narrative the plan leaves out is answered
``"Not specified"`` rather than dropped, so a reader sees what was not pre-registered.
"""

import json
import re
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from trials.audit import audit_chain_head
from trials.documents import error_messages
from trials.plan import FrozenRecord, Plan, Safety, Screening

NOT_SPECIFIED = "Not specified"
TEMPLATE = {"name": "OSF Preregistration", "version": 3}
HASH_INPUT = (
    "the UTF-8 canonical JSON of the frozen content (sorted keys, separators ',' and ':', "
    "non-ASCII characters kept)"
)
MULTIPLICITY = {
    "holm": "Holm step-down correction (family-wise error rate)",
    "bh": "Benjamini-Hochberg correction (false discovery rate)",
    "none": "no multiplicity correction",
}
RANDOMISATION_DESCRIPTIONS = {
    "permuted_blocks": "permuted-block randomisation with a concealed allocation sequence",
    "salted_hash": "deterministic allocation by SHA-256 of a secret per-trial salt and the "
    "participant id",
}
HARMS = {
    "serious_adverse_events": "a serious adverse event",
    "adverse_events": "an adverse event",
    "reliable_deterioration": "reliable deterioration (a reliable change index of a primary "
    "outcome below -1.96)",
}
SUSPENSION_LIFTED_BY = {
    "suspending_body": "the body that suspended it",
    "every_required_body": "every required oversight body",
}
CANARY_PROMPTS_INTRO = (
    "Sent to each arm's endpoint by the drift watch, which records the model and fingerprint "
    "the endpoint answers with, so that a model changed behind an endpoint is noticed."
)
ARM_COLUMNS = ("arm", "role", "model_id", "model_version", "memory_policy", "config_sha256")
OUTCOME_COLUMNS = ("role", "dimension", "instrument", "wave")


def osf_preregistration(
    *,
    trial_slug: str,
    title: str,
    version: int,
    frozen_at: datetime,
    sha256: str,
    content: dict,
    rationale: str = "",
    audit_chain_head: dict | None = None,
) -> dict:
    """The pre-registration as OSF Preregistration sections (see the module docstring).
    ``audit_chain_head`` (position and hash of the trial's newest audit event when exported,
    see trials.audit) is published with it, so that a later verification can show that no
    event up to it was removed."""
    record = _record(content)
    plan = record.plan
    return {
        "template": TEMPLATE,
        "provenance": {
            "trial_slug": trial_slug,
            "title": title,
            "version": version,
            "frozen_at": frozen_at.isoformat(),
            "sha256": sha256,
            "hash_input": HASH_INPUT,
            "verify_with": "trials.canonical.sha256_of(content)",
            "amendment_rationale": rationale or NOT_SPECIFIED,
            "audit_chain_head": audit_chain_head,
        },
        "study_information": {
            "title": _q("Title", title),
            "hypotheses": _q(
                "Hypotheses",
                "\n".join(f"{n}. {h}" for n, h in enumerate(plan.hypotheses, 1)),
                plan.hypotheses,
            ),
        },
        "design_plan": {
            "study_type": _q("Study type", _text(plan.study_type)),
            "blinding": _q("Blinding", _text(plan.blinding)),
            "study_design": _q("Study design", _text(plan.design)),
            "randomization": _randomization(plan, record.allocation_sequence_sha256),
        },
        "sampling_plan": {
            # Version 1 is frozen before enrolment can open, so no data exist yet; a later
            # version is an amendment that may come after data collection started.
            "existing_data": _q(
                "Existing Data",
                "Registration prior to creation of data"
                if version == 1
                else "Amendment: data collection may have begun before this version",
            ),
            "explanation_of_existing_data": _q(
                "Explanation of existing data",
                "Not applicable: no data existed."
                if version == 1
                else "This version amends a registered protocol; the amendment rationale says "
                "why, and the earlier versions stay frozen and exportable.",
            ),
            "data_collection_procedures": _data_collection(plan),
            "sample_size": _sample_size(plan),
            "sample_size_rationale": _sample_size_rationale(plan),
            "stopping_rule": _stopping_rule(plan),
        },
        "variables": {
            "manipulated_variables": _manipulated(record),
            "measured_variables": _measured(plan),
            "indices": _indices(plan),
            "telemetry": _telemetry(plan),
        },
        "analysis_plan": {
            "statistical_models": _statistical_models(plan),
            "transformations": _q("Transformations", _text(plan.transformations)),
            "inference_criteria": _inference_criteria(plan),
            "data_exclusion": _q("Data exclusion", _text(plan.exclusions)),
            "missing_data": _q("Missing data", _text(plan.missing_data)),
            "exploratory_analysis": _q("Exploratory analysis", _text(plan.exploratory_analyses)),
        },
        "other": {
            "guardrails": _q(
                "Guardrails",
                "\n".join(f"- {g}" for g in plan.guardrails) or NOT_SPECIFIED,
                plan.guardrails or None,
            ),
            "harm_boundaries": _harm_boundaries(plan),
            "canary_prompts": _canary_prompts(plan),
            "other": _q("Other", _text(plan.other)),
        },
    }


def preregistration_markdown(
    *,
    trial_slug: str,
    title: str,
    version: int,
    frozen_at: datetime,
    sha256: str,
    content: dict,
    rationale: str = "",
    audit_chain_head: dict | None = None,
) -> str:
    """The same export as readable Markdown; equal inputs give byte-identical text."""
    osf = osf_preregistration(
        trial_slug=trial_slug,
        title=title,
        version=version,
        frozen_at=frozen_at,
        sha256=sha256,
        content=content,
        rationale=rationale,
        audit_chain_head=audit_chain_head,
    )
    p = osf["provenance"]
    lines = [
        f"# Pre-registration: {title}",
        "",
        *_table(
            ("field", "value"),
            [
                ("trial", p["trial_slug"]),
                ("version", p["version"]),
                ("frozen at", p["frozen_at"]),
                ("SHA-256", f"`{sha256}`"),
                ("amendment rationale", p["amendment_rationale"]),
                *(
                    [
                        (
                            "audit chain head",
                            f"event {audit_chain_head['sequence']}, `{audit_chain_head['sha256']}`",
                        )
                    ]
                    if audit_chain_head
                    else []
                ),
            ],
        ),
        "",
        f"The SHA-256 is computed over {HASH_INPUT}; verify it with "
        "`trials.canonical.sha256_of(content)`.",
    ]
    renderers = {
        "manipulated_variables": _arms_markdown,
        "measured_variables": _outcomes_markdown,
        "canary_prompts": _canary_prompts_markdown,
    }
    for key, section in osf.items():
        if key in ("template", "provenance"):
            continue
        lines += ["", f"## {key.replace('_', ' ').title()}"]
        for name, question in section.items():
            render = renderers.get(name)
            body = render(question["data"]) if render else [question["answer"]]
            lines += ["", f"### {question['title']}", "", *body]
    return "\n".join(lines) + "\n"


def _record(content: dict) -> FrozenRecord:
    try:
        record = FrozenRecord.model_validate(content)
    except ValidationError as error:
        raise ValueError(" ".join(error_messages(error, prefix="The frozen record: "))) from None
    # A factorial design may name the control (its reference cell) alone.
    needed = (1, 2) if record.plan.factorial is not None else (2,)
    if not (record.plan.hypotheses and len(record.plan.arms_compared) in needed):
        raise ValueError("The frozen plan has no hypotheses or no arms compared.")
    return record


def _q(title: str, answer: str, data: Any = None) -> dict:
    return {"title": title, "answer": answer, "data": data}


def _text(value: Any) -> str:
    text = value.strip() if isinstance(value, str) else _plain(value) if value else ""
    return text or NOT_SPECIFIED


def _join(parts: list[str]) -> str:
    return " ".join(parts) if parts else NOT_SPECIFIED


def _randomization(plan: Plan, sequence_sha256: str | None) -> dict:
    # With the platform's defaults filled in: what allocation will really do.
    r = plan.randomisation
    parts = [f"Method: {RANDOMISATION_DESCRIPTIONS[r.method]}."]
    if r.method == "permuted_blocks":  # strata and blocks mean nothing to salted hashing
        parts.append(f"Strata: {', '.join(r.strata) or 'none'}.")
        parts.append(f"Block sizes: {', '.join(map(str, r.block_sizes))}.")
    ratio = sorted((r.ratio or {}).items())
    parts.append(
        f"Allocation ratio {':'.join(a for a, _ in ratio)} = {':'.join(str(n) for _, n in ratio)}."
        if ratio
        else "Equal allocation across arms."
    )
    if sequence_sha256:
        parts.append(
            "The concealed allocation sequence was generated at registration; its SHA-256 is "
            f"{sequence_sha256}."
        )
    data = r.model_dump(mode="json") | {"allocation_sequence_sha256": sequence_sha256}
    return _q("Randomization", " ".join(parts), data)


def _outcomes(plan: Plan) -> list[dict]:
    return [
        {"role": role, **outcome.model_dump(mode="json", exclude_none=True)}
        for role, outcome in plan.outcomes
    ]


def _data_collection(plan: Plan) -> dict:
    # The OSF question asks for the inclusion and exclusion criteria here too.
    waves = sorted({(o.wave, o.instrument) for _, o in plan.outcomes})
    schedule = "; ".join(f"{instrument} at wave {wave}" for wave, instrument in waves)
    parts = [plan.data_collection_procedures] if plan.data_collection_procedures else []
    parts.append(f"Outcomes are collected by survey instruments at these waves: {schedule}.")
    parts.append(_eligibility(plan.screening))
    return _q("Data collection procedures", " ".join(parts), plan.screening.model_dump(mode="json"))


def _eligibility(screening: Screening) -> str:
    criteria = []
    if screening.min_age is not None or screening.max_age is not None:
        low = f"at least {screening.min_age}" if screening.min_age is not None else ""
        high = f"at most {screening.max_age}" if screening.max_age is not None else ""
        criteria.append(f"aged {' and '.join(filter(None, [low, high]))}")
    if screening.languages:
        criteria.append(f"speaks one of {', '.join(screening.languages)}")
    if screening.countries:
        criteria.append(f"lives in one of {', '.join(screening.countries)}")
    if screening.uses_ai_assistants != "any":
        negation = "" if screening.uses_ai_assistants == "yes" else "does not "
        criteria.append(f"{negation}currently use{'' if negation else 's'} an AI assistant")
    criteria += [f"answers {q.required_answer} to “{q.text}”" for q in screening.questions]
    if not criteria:
        return "Eligibility: everyone who consents; no screening criteria."
    return (
        "Eligibility, screened before consent (only the outcome and the reason are kept): "
        f"{'; '.join(criteria)}."
    )


def _sample_size(plan: Plan) -> dict:
    per_arm = plan.sample_size.per_arm if plan.sample_size else None
    arms = plan.arms_compared
    answer = (
        f"Target {per_arm} participants per arm across {len(arms)} arms ({', '.join(arms)})."
        if per_arm is not None
        else NOT_SPECIFIED
    )
    return _q("Sample size", answer, {"per_arm": per_arm, "arms": arms})


def _sample_size_rationale(plan: Plan) -> dict:
    size = plan.sample_size
    power = size.power.model_dump(mode="json") if size and size.power else {}
    parts = [size.rationale] if size and size.rationale else []
    if power:
        inputs = "; ".join(f"{key} = {_plain(value)}" for key, value in sorted(power.items()))
        parts.append(f"Power calculation: {inputs}.")
    return _q("Sample size rationale", _join(parts), power or None)


def _stopping_rule(plan: Plan) -> dict:
    looks = [look.model_dump(mode="json") for look in plan.interim_looks]
    parts = [plan.stopping_rule] if plan.stopping_rule else []
    if looks:
        described = "; ".join(
            f"at information fraction {look.get('information_fraction')}"
            + "".join(f", {k}: {v}" for k, v in sorted(look.items()) if k != "information_fraction")
            for look in looks
        )
        parts.append(f"Interim looks: {described}.")
    return _q("Stopping rule", _join(parts), looks or None)


def _manipulated(record: FrozenRecord) -> dict:
    hashes, configs = record.arms, record.arm_configs
    slugs = list(dict.fromkeys([*record.plan.arms_compared, *sorted(hashes)]))
    arms = [
        {
            "arm": slug,
            "role": "control" if position == 0 else "treatment",
            "config_sha256": hashes.get(slug),
            **{k: v for k, v in configs.get(slug, {}).items() if k != "slug"},
        }
        for position, slug in enumerate(slugs)
    ]
    described = "; ".join(
        f"{a['arm']} ({a['role']}): model {a.get('model_id', NOT_SPECIFIED)} version "
        f"{a.get('model_version', NOT_SPECIFIED)}, configuration SHA-256 "
        f"{a['config_sha256'] or NOT_SPECIFIED}"
        for a in arms
    )
    answer = (
        f"The assistant configuration (arm), {len(arms)} levels: {described}. Each "
        "configuration (endpoint, model and pinned version, system prompt, memory policy, "
        "parameters) is fixed by its SHA-256; any change is an amendment."
    )
    return _q("Manipulated variables", answer, arms)


def _measured(plan: Plan) -> dict:
    answer = "\n".join(
        f"- {role.capitalize()}: {o.dimension}, measured with {o.instrument} at wave {o.wave}."
        for role, o in plan.outcomes
    )
    return _q("Measured variables", answer, _outcomes(plan))


def _indices(plan: Plan) -> dict:
    weights = {slug: w.model_dump(mode="json") for slug, w in plan.community_weights.items()}
    if not weights:
        return _q("Indices", NOT_SPECIFIED)
    lines = [
        "Community-weighted composites, each computed only with the community's own declared "
        "weights; every dimension is also reported on its own."
    ]
    for community, profile in sorted(weights.items()):
        terms = " + ".join(
            f"{w} × {dimension}" for dimension, w in sorted(profile["weights"].items())
        )
        lines.append(f"- {community} (profile v{profile['profile_version']}): {terms}")
    return _q("Indices", "\n".join(lines), weights)


def _telemetry(plan: Plan) -> dict:
    """What devices report and what the platform releases of it, all under the plan's zCDP
    budget (trials.telemetry): metrics, per-conversation ratings and the dose release."""
    telemetry = plan.telemetry
    if telemetry is None:
        return _q("Telemetry", "None: no usage data are collected from devices.")
    lines = [
        "Collected on participants' devices with their telemetry consent; only per-arm sums "
        "with integer Gaussian noise leave the platform, one release every "
        f"{telemetry.window_days} days once every arm has {telemetry.min_replies_per_arm} "
        "usable replies. Privacy budget: "
        f"ρ = {telemetry.rho_total:.10g} in all (zero-concentrated DP, never refunded), "
        f"ρ = {telemetry.rho_per_window:.10g} per window, δ = {telemetry.delta:.10g} for the "
        "(ε, δ) equivalent.",
        *(
            f"- Metric {m.code} ({m.label}, {m.unit}): each participant's value per window "
            f"clipped to [{m.lower}, {m.upper}]."
            for m in telemetry.metrics
        ),
        *(
            f"- Rating {r.code}: “{r.question}”, asked after a conversation on a scale from "
            f"{r.lowest} to {r.highest}; released as each arm's mean rating and how many rated."
            for r in telemetry.ratings
        ),
    ]
    dose = telemetry.dose
    if dose is not None:
        lines.append(
            f"- Usage–outcome slope (exploratory and non-causal: usage is chosen after "
            f"randomisation): {dose.usage_metric} over the first {dose.usage_days} days "
            f"(clipped to [0, {dose.usage_upper}]) against the change of {dose.outcome.score} "
            f"({dose.outcome.instrument}) from baseline to wave {dose.outcome.wave} (clipped to "
            f"±{dose.change_bound:.10g} in steps of {dose.change_step:.10g}); each device "
            f"receives only its own participant's change, with both the telemetry and the survey "
            f"consent in force, and returns clipped products; one release per arm costs "
            f"ρ = {dose.rho:.10g}."
        )
    return _q("Telemetry", "\n".join(lines), telemetry.model_dump(mode="json"))


def _harm_boundaries(plan: Plan) -> dict:
    # The rule is trials.plan.HarmBoundary's; safety.harms evaluates it.
    safety, control = plan.safety, plan.control
    lines = [
        f"- {boundary.metric.replace('_', ' ').capitalize()}: crossed for an arm when the lower "
        f"end of the two-sided {boundary.confidence * 100:.10g}% Newcombe hybrid score interval "
        f"for its share of participants with at least {HARMS[boundary.metric]} minus the share "
        f"in the control arm ({control}) is above {boundary.max_excess:.10g}; checked once each "
        f"arm compared has {boundary.min_participants_per_arm} participants."
        for boundary in safety.harm_boundaries
    ] or ["- No harm boundaries."]
    lines += [
        "- Crossing a boundary notifies every oversight body; it does not suspend the trial.",
        f"- Any required oversight body may suspend the trial; "
        f"{SUSPENSION_LIFTED_BY[safety.suspension_lifted_by]} lifts the suspension.",
    ]
    data = safety.model_dump(mode="json", include={"suspension_lifted_by", "harm_boundaries"})
    return _q("Harm boundaries", "\n".join(lines), data)


def _canary_prompts(plan: Plan) -> dict:
    prompts = _prompts_by_arm(plan.safety, plan.arms_compared)
    if not prompts:
        return _q("Canary prompts", NOT_SPECIFIED)
    listed = [
        f"- Arm {slug}: {'; '.join(f'“{prompt}”' for prompt in texts)}"
        for slug, texts in prompts.items()
    ]
    return _q("Canary prompts", "\n".join([CANARY_PROMPTS_INTRO, *listed]), prompts)


def _prompts_by_arm(safety: Safety, arms_compared: list[str]) -> dict[str, list[str]]:
    # The arms compared first, then by slug: the order never depends on the stored JSON's.
    order = list(dict.fromkeys([*arms_compared, *sorted(safety.canary_prompts)]))
    return {slug: safety.canary_prompts[slug] for slug in order if slug in safety.canary_prompts}


def _statistical_models(plan: Plan) -> dict:
    control, *treatments = plan.arms_compared
    contrasts = ", ".join(f"{arm} vs {control}" for arm in treatments) or NOT_SPECIFIED
    answer = (
        f"Estimand: {_text(plan.estimand)}\n"
        f"Analysis model: {_text(plan.analysis_model)}\n"
        f"Confirmatory contrasts (control {control}): {contrasts}"
    )
    design = _design_lines(plan)
    data = (
        plan.model_dump(mode="json", include={"factorial", "covariates", "moderators"})
        if design
        else None
    )
    return _q("Statistical models", _markdown_lines("\n".join([answer, *design])), data)


def _design_lines(plan: Plan) -> list[str]:
    """The factorial design, its confirmatory contrasts (each as the estimates it gives) and the
    baseline covariates and moderators: nothing for a plan without them."""
    lines = []
    design = plan.factorial
    if design is not None:
        factors = "; ".join(
            f"{f.name} ({', '.join(f.levels)}; reference {f.levels[0]})" for f in design.factors
        )
        cells = "; ".join(
            f"{arm} = {', '.join(f'{k} {v}' for k, v in cell.items())}"
            for arm, cell in design.cells.items()
        )
        lines += [
            f"Factorial design, {design.cell_count} cells: {factors}",
            f"Cells (arm = levels): {cells}",
        ]
        for contrast in design.contrasts:
            estimates = "; ".join(row.label for row in design.weighted_contrasts(contrast))
            lines.append(f"Confirmatory {contrast.title} on growth per wave: {estimates}")
    if plan.covariates:
        names = ", ".join(v.name for v in plan.covariates)
        lines.append(
            f"Baseline covariates (precision adjustment, with their × wave terms): {names}"
        )
    if plan.moderators:
        names = ", ".join(v.name for v in plan.moderators)
        lines.append(f"Confirmatory moderators (arm × moderator on growth per wave): {names}")
    return lines


def _inference_criteria(plan: Plan) -> dict:
    mids = plan.minimal_important_differences
    mid_text = ", ".join(f"{d} {v:g}" for d, v in sorted(mids.items())) or NOT_SPECIFIED
    multiplicity = plan.multiplicity
    answer = (
        f"Alpha: {plan.alpha}\n"
        f"Multiplicity: {MULTIPLICITY[multiplicity]}\n"
        f"Minimal important differences: {mid_text}"
    )
    data = {
        "alpha": plan.alpha,
        "multiplicity": multiplicity,
        "minimal_important_differences": mids,
    }
    return _q("Inference criteria", _markdown_lines(answer), data)


def _markdown_lines(text: str) -> str:
    # One fact per line, as a list, so the text reads the same in the OSF form and in Markdown.
    return "\n".join(f"- {line}" for line in text.splitlines())


def _plain(value: Any) -> str:
    return (
        value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    )


def _arms_markdown(arms: list[dict]) -> list[str]:
    lines = _table(ARM_COLUMNS, [[a.get(c) for c in ARM_COLUMNS] for a in arms])
    for arm in arms:
        parameters = json.dumps(
            arm.get("parameters") or {}, indent=2, sort_keys=True, ensure_ascii=False
        )
        lines += [
            "",
            f"#### Arm {arm['arm']}",
            "",
            f"Endpoint: {arm.get('endpoint_url', NOT_SPECIFIED)}",
            "",
            "System prompt:",
            "",
            *_fenced(arm.get("system_prompt") or NOT_SPECIFIED, "text"),
            "",
            "Parameters:",
            "",
            *_fenced(parameters, "json"),
        ]
    return lines


def _canary_prompts_markdown(prompts: dict[str, list[str]] | None) -> list[str]:
    if not prompts:
        return [NOT_SPECIFIED]
    lines = [CANARY_PROMPTS_INTRO]
    for slug, texts in prompts.items():
        lines += ["", f"#### Arm {slug}"]
        for text in texts:
            lines += ["", *_fenced(text, "text")]
    return lines


def _outcomes_markdown(outcomes: list[dict]) -> list[str]:
    return _table(OUTCOME_COLUMNS, [[o[c] for c in OUTCOME_COLUMNS] for o in outcomes])


def _table(header: tuple[str, ...], rows: list) -> list[str]:
    def cell(value: Any) -> str:
        text = NOT_SPECIFIED if value is None else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows),
    ]


def _fenced(text: str, language: str) -> list[str]:
    # Longer than any backtick run inside, so a prompt cannot close its own fence.
    fence = "`" * max(3, 1 + max(map(len, re.findall("`+", text)), default=0))
    return [f"{fence}{language}", text, fence]


def export_arguments(prereg) -> dict:
    """The keyword arguments of the two exporters, read from a stored PreRegistration."""
    head_sequence, head_hash = audit_chain_head(prereg.trial)
    return {
        "trial_slug": prereg.trial.slug,
        "title": prereg.trial.title,
        "version": prereg.version,
        "frozen_at": prereg.frozen_at,
        "sha256": prereg.sha256,
        "content": prereg.record,
        "rationale": prereg.rationale,
        "audit_chain_head": {"sequence": head_sequence, "sha256": head_hash},
    }
