"""Each stratum remembers the block its next position lies in, so allocation walks on from there
instead of from the first block (``trials.randomisation.block_holding``).

The new fields are filled for every existing stratum by walking its blocks once, under the
randomisation of its trial's latest frozen version (what allocation reads). The walk uses
``trials.randomisation`` and ``trials.plan`` themselves: the sequence they define is committed to
by every frozen plan, so it cannot change without breaking those commitments. No allocation
changes; a stratum left at block 0 would still allocate correctly, only walking from the first
block once.
"""

from django.db import migrations, models

from trials.plan import Randomisation
from trials.randomisation import block_holding, block_layout


def _locate(apps, schema_editor):
    AllocationStratum = apps.get_model("trials", "AllocationStratum")
    PreRegistration = apps.get_model("trials", "PreRegistration")
    Arm = apps.get_model("trials", "Arm")
    for stratum in AllocationStratum.objects.select_related("trial"):
        current = (
            PreRegistration.objects.filter(trial_id=stratum.trial_id, frozen_at__isnull=False)
            .order_by("-version")
            .first()
        )
        if current is None:
            continue
        # Read as allocation reads it (PreRegistration.plan), defaults included.
        randomisation = Randomisation.model_validate(
            current.record["plan"].get("randomisation", {})
        )
        if randomisation.method != "permuted_blocks":
            continue
        ratio = randomisation.ratio_for(
            list(Arm.objects.filter(trial_id=stratum.trial_id).values_list("slug", flat=True))
        )
        sizes = randomisation.block_sizes
        cursor, _arms = block_holding(
            stratum.trial.allocation_salt, stratum.key, stratum.next_position, ratio, sizes
        )
        stratum.block_number, stratum.block_start = cursor.number, cursor.start
        stratum.block_layout = block_layout(ratio, sizes)
        stratum.save(update_fields=["block_number", "block_start", "block_layout"])


class Migration(migrations.Migration):
    dependencies = [("trials", "0007_trialevent_kind_choices")]

    operations = [
        migrations.AddField(
            model_name="allocationstratum",
            name="block_number",
            field=models.PositiveIntegerField(
                default=0,
                help_text="The number of a block that starts at or before the next position.",
            ),
        ),
        migrations.AddField(
            model_name="allocationstratum",
            name="block_start",
            field=models.PositiveIntegerField(
                default=0, help_text="The position of that block's first arm."
            ),
        ),
        migrations.AddField(
            model_name="allocationstratum",
            name="block_layout",
            field=models.CharField(
                blank=True,
                default="",
                max_length=64,
                help_text="SHA-256 of the ratio and block sizes the block was found under "
                "(trials.randomisation.block_layout); under any other the walk starts again at "
                "block 0.",
            ),
        ),
        migrations.RunPython(_locate, migrations.RunPython.noop),
    ]
