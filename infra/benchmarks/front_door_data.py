"""The database side of the front-door benchmark: the trials prepared before it and the rows
checked afterwards. Imported once Django is set up with ``front_door_settings``."""

from collections import Counter, defaultdict

from django.db.models.functions import Lower
from django.utils import timezone

from surveys.services import instruments_sync, wave_create
from trials.models import (
    Allocation,
    AllocationStratum,
    Community,
    ConsentDocument,
    ConsentScope,
    EligibilityScreening,
    OversightBody,
    ParticipantContact,
    Trial,
)
from trials.services import (
    approval_record,
    arm_create,
    oversight_assign,
    preregistration_freeze,
    trial_create,
    trial_transition,
)

COMMUNITIES = {"north": "North", "south": "South"}


def _enrolling_trial(slug: str, screening: dict, bodies: list[OversightBody]) -> Trial:
    """Two arms, three fortnightly WHO-5 waves, a plan with ``screening`` and permuted blocks
    stratified by community (the plan's default), approved by ``bodies``, a consent document
    with every data stream; enrolling."""
    trial = trial_create(slug=slug, title=f"Front door {slug}")
    for arm, prompt, control in (("a", "Be helpful.", True), ("b", "Be kind.", False)):
        arm_create(
            trial=trial,
            slug=arm,
            name=arm.upper(),
            is_control=control,
            endpoint_url="http://127.0.0.1:9000/v1",
            model_id="m",
            model_version="1",
            system_prompt=prompt,
        )
    for index in range(3):
        wave_create(trial=trial, index=index, day_offset=14 * index, instrument_codes=["who5"])
    plan = {
        "hypotheses": ["B raises mental wellbeing compared with A."],
        "arms_compared": ["a", "b"],
        "primary_outcomes": [{"dimension": "mental_wellbeing", "instrument": "who5", "wave": 2}],
        "alpha": 0.05,
        "multiplicity": "holm",
        "screening": screening,
    }
    preregistration = preregistration_freeze(trial=trial, plan=plan)
    trial = trial_transition(trial=trial, to=Trial.State.REGISTERED)
    for body in bodies:
        oversight_assign(trial=trial, body=body)
        approval_record(body=body, preregistration=preregistration)
    ConsentDocument.objects.create(
        trial=trial, version=1, text="Consent.", scopes=list(ConsentScope.values)
    )
    return trial_transition(trial=trial, to=Trial.State.ENROLLING)


def trials_prepare(*, slugs: tuple[str, str], screening: dict) -> tuple[Trial, Trial]:
    """The trial people join, and one of the same shape whose rows the baseline view inserts."""
    instruments_sync()
    for slug, name in COMMUNITIES.items():
        Community.objects.create(slug=slug, name=name)
    bodies = [
        OversightBody.objects.create(name=name, kind=OversightBody.Kind.ETHICS_BOARD)
        for name in ("Ethics", "Council")
    ]
    first, second = (_enrolling_trial(slug, screening, bodies) for slug in slugs)
    return first, second


def baseline_prepare(*, trial: Trial, people: list) -> list[dict]:
    """The forms the baseline view is posted, one per person of ``people``: what their
    enrolment stores, with the stratum, position and arm the load generator assigns and a
    screening row each, made here."""
    document = ConsentDocument.objects.get(trial=trial)
    arms = list(trial.arms.order_by("slug").values_list("pk", flat=True))
    communities = dict(Community.objects.values_list("slug", "pk"))
    strata = {
        slug: AllocationStratum.objects.create(trial=trial, key=f"community={slug}")
        for slug in communities
    }
    now = timezone.now()
    screenings = EligibilityScreening.objects.bulk_create(
        EligibilityScreening(trial=trial, screened_at=now, eligible=True) for _ in people
    )
    positions: Counter = Counter()
    forms = []
    for person, screening in zip(people, screenings, strict=True):
        position = positions[person.community]
        positions[person.community] += 1
        forms.append(
            {
                "trial": trial.pk,
                "community": communities[person.community],
                "email": person.address,
                "name": "A Person",
                "document": document.pk,
                "scopes": list(person.scopes),
                "arm": arms[position % len(arms)],
                "stratum": strata[person.community].pk,
                "position": position,
                "screening": screening.pk,
            }
        )
    return forms


def rows_check(*, trial: Trial, confirmed: set[str]) -> dict:
    """The enrolments of ``trial`` against the (lower-cased) addresses that confirmed: how many
    were lost, enrolled twice or enrolled without confirming, and whether each stratum's
    allocation positions run 0..n-1 with no gap or repeat."""
    addresses = Counter(
        ParticipantContact.objects.filter(trial=trial)
        .annotate(address=Lower("email"))
        .values_list("address", flat=True)
    )
    positions: dict[str, list[int]] = defaultdict(list)
    for key, position in Allocation.objects.filter(participant__trial=trial).values_list(
        "stratum__key", "position"
    ):
        positions[key].append(position)
    return {
        "enrolled": trial.participants.count(),
        "lost": len(confirmed - addresses.keys()),
        "twice": sum(1 for n in addresses.values() if n > 1),
        "unexpected": len(addresses.keys() - confirmed),
        "strata": {key: len(found) for key, found in sorted(positions.items())},
        "contiguous": all(sorted(found) == list(range(len(found))) for found in positions.values()),
    }
