"""``load_instrument_pack FILE``: load a deploying organisation's licensed instruments."""

import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from surveys.services import instrument_pack_load


class Command(BaseCommand):
    help = (
        "Load licensed instruments (e.g. Harvard Flourish, PERMA-Profiler) from a JSON pack your "
        "organisation supplies. Their text is stored in the database only, never committed."
    )

    def add_arguments(self, parser):
        parser.add_argument("pack", type=Path, help="The pack's JSON file.")

    def handle(self, *args, pack: Path, **options):
        try:
            content = json.loads(pack.read_text(encoding="utf-8"))
        except OSError as error:
            raise CommandError(f"Cannot read {pack}: {error.strerror}.") from error
        except (UnicodeDecodeError, ValueError) as error:
            raise CommandError(f"{pack} is not JSON: {error}") from error
        try:
            loaded = instrument_pack_load(pack=content)
        except ValidationError as error:
            raise CommandError("Nothing was loaded:\n  " + "\n  ".join(error.messages)) from error
        for instrument in loaded:
            self.stdout.write(f"loaded {instrument.code} ({instrument.licence}): {instrument.name}")
