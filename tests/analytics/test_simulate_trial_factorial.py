"""``simulate_trial --factorial``: a registered 3 × 3 trial whose real allocation balances the
nine cells, with the plan's contrasts and moderator, and clear errors for bad options."""

from collections import Counter

import pytest
from django.core.management import CommandError, call_command

from trials.models import Trial
from trials.selectors import preregistration_current

pytestmark = pytest.mark.django_db


def test_a_three_by_three_trial_is_simulated_balanced_over_its_cells():
    call_command(
        "simulate_trial",
        slug="fact",
        participants=54,
        waves=2,
        factorial="3x3",
        main_effects="1.0,0.5",
        interaction=0.5,
        moderator_effect=1.0,
        seed=3,
    )
    trial = Trial.objects.get(slug="fact")
    plan = preregistration_current(trial).plan
    design = plan.factorial
    assert design.cell_count == 9 and plan.arms_compared == ["l0-l0"]
    assert [c.title for c in design.contrasts] == [
        "main effect of f1",
        "main effect of f2",
        "interaction f1 × f2",
    ]
    assert [m.kind for m in plan.moderators] == ["language"]
    participants = trial.participants.select_related("allocation__arm")
    per_cell = Counter(p.allocation.arm.slug for p in participants)
    assert set(per_cell) == set(design.cells)
    # Blocks of 9 or 18 in the one stratum: no cell is more than one block's share (2) ahead.
    assert max(per_cell.values()) - min(per_cell.values()) <= 2
    assert Counter(p.locale for p in participants).keys() == {"de", "en"}
    assert all(p.responses.count() >= 1 for p in participants)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"factorial": "3by3"}, "level counts like 3x3"),
        ({"factorial": "3x1"}, "two levels or more per factor"),
        ({"factorial": "2x2", "main_effects": "1"}, r"one number per factor \(2\)"),
        ({"interaction": 0.5}, "need --factorial"),
    ],
)
def test_bad_design_options_are_refused_with_what_to_write(options, message):
    with pytest.raises(CommandError, match=message):
        call_command("simulate_trial", slug="bad", participants=8, waves=2, **options)
    assert not Trial.objects.filter(slug="bad").exists()
