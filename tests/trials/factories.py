"""Small trials built through the services, for the trials/ tests."""

from surveys.services import wave_create
from trials.models import ConsentDocument, ConsentScope, OversightBody, Trial
from trials.selectors import preregistration_current
from trials.services import (
    approval_record,
    arm_create,
    oversight_assign,
    preregistration_freeze,
    trial_create,
    trial_transition,
)

ARM = {
    "endpoint_url": "http://127.0.0.1:9000/v1",
    "model_id": "m",
    "model_version": "1",
    "system_prompt": "Be helpful.",
}


def valid_plan(**overrides) -> dict:
    return {
        "hypotheses": ["B raises mental wellbeing compared with A."],
        "arms_compared": ["a", "b"],
        "primary_outcomes": [{"dimension": "mental_wellbeing", "instrument": "who5", "wave": 2}],
        "alpha": 0.05,
        "multiplicity": "holm",
    } | overrides


def draft_trial(slug: str = "t", actor=None) -> Trial:
    """Two arms and three fortnightly WHO-5 waves (0 is baseline): what ``valid_plan`` names."""
    trial = trial_create(slug=slug, title=slug.upper(), actor=actor)
    arm_create(trial=trial, slug="a", name="A", is_control=True, **ARM)
    arm_create(trial=trial, slug="b", name="B", **ARM | {"system_prompt": "Be kind."})
    for index in range(3):
        wave_create(trial=trial, index=index, day_offset=14 * index, instrument_codes=["who5"])
    return trial


def bodies(*names: str) -> list[OversightBody]:
    return [
        OversightBody.objects.get_or_create(name=name, defaults={"kind": "ethics_board"})[0]
        for name in names
    ]


def enrolling_trial(slug: str = "t", plan: dict | None = None, actor=None) -> Trial:
    """Registered, approved by two bodies, enrolling, with a consent document for every scope."""
    trial = draft_trial(slug, actor=actor)
    preregistration_freeze(trial=trial, plan=plan or valid_plan())
    trial = trial_transition(trial=trial, to=Trial.State.REGISTERED)
    for body in bodies("Ethics", "Council"):
        oversight_assign(trial=trial, body=body)
        approval_record(body=body, preregistration=preregistration_current(trial))
    ConsentDocument.objects.create(
        trial=trial, version=1, text="Consent.", scopes=list(ConsentScope.values)
    )
    return trial_transition(trial=trial, to=Trial.State.ENROLLING)
