"""Importing a long responses file (``surveys.exchange.responses_import``, what
``import_responses`` and the admin's import page run) beside PostgreSQL's ``COPY`` of the same
file's rows into a scratch table.

The import reads and checks every row before it writes anything, then stores each response with
its scores and quality indices; ``COPY`` only parses the rows and appends them to a table of the
file's columns. The ratio is the import's cost over the bare load of the same bytes (target:
within 5×, ratio ≥ 0.20).

The data: a trial of ``PARTICIPANTS`` participants (inserted in bulk, with their allocations and
their consent to surveys) who answered its ``WAVES`` waves of WHO-5 and SWLS, ten items a wave,
written as the export writes them (``trials.spreadsheet``). Each import starts from no stored
responses; the re-import of the same file (every response unchanged) is timed too. It happens in
a database of its own, ``bench_import_<pid>_<random>``, on the server ``DATABASE_URL`` names, in
a process of its own (its own Django settings), and the database is dropped at the end.

    make bench BENCH_ARGS=import
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from infra.bench import Measurement, own_database, run_database_name

PARTICIPANTS = 1_000
WAVES = 3
REPEATS = 3
# Rows per bulk insert while preparing: set-up, not what is measured.
BATCH = 5_000
TARGET_RATIO = 0.20
SCRATCH_TABLE = "bench_import_copy"


def run() -> list[Measurement]:
    with tempfile.TemporaryDirectory(prefix="bench-import-") as directory:
        out = Path(directory) / "result.json"
        subprocess.run(
            [sys.executable, "-m", "infra.benchmarks.bench_import", str(out)],
            env=dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings.test"),
            check=True,
        )
        result = json.loads(out.read_text())
    rows = result["rows"]
    return [
        Measurement(
            name=f"response import, {rows:,} item rows",
            seconds=result["import_seconds"],
            baseline_name="COPY of the same rows",
            baseline_seconds=result["copy_seconds"],
            note=f"target ratio ≥ {TARGET_RATIO}; {result['responses']:,} responses, best of "
            f"{REPEATS}",
            details=result,
        ),
        Measurement(
            name=f"response re-import, {rows:,} rows unchanged",
            seconds=result["reimport_seconds"],
            baseline_name="COPY of the same rows",
            baseline_seconds=result["copy_seconds"],
            note="the same file again: checked, nothing written",
            details=result,
        ),
    ]


def _prepare(path: Path) -> tuple[object, int]:
    """A trial whose ``PARTICIPANTS`` participants consented to surveys, and the long file of
    their answers to every wave at ``path``; the trial and the file's number of rows."""
    import numpy as np
    from django.db import transaction
    from django.utils import timezone

    from analytics.seeding import WAVE_SPACING_DAYS, synthetic_trial_create
    from surveys.exchange import RESPONSE_COLUMNS
    from trials.models import (
        Allocation,
        Arm,
        ConsentDocument,
        ConsentGrant,
        ConsentScope,
        Participant,
    )
    from trials.spreadsheet import csv_file

    trial = synthetic_trial_create(slug="import", participants=4, waves=WAVES, effect=0, seed=1)
    document = ConsentDocument.objects.get(trial=trial)
    arms = list(Arm.objects.filter(trial=trial).order_by("slug"))
    enrolled = timezone.now() - timedelta(days=WAVE_SPACING_DAYS * WAVES + 7)
    with transaction.atomic():
        cohort = Participant.objects.bulk_create(
            (Participant(trial=trial, enrolled_at=enrolled) for _ in range(PARTICIPANTS)),
            batch_size=BATCH,
        )
        Allocation.objects.bulk_create(
            (
                Allocation(participant=p, arm=arms[number % len(arms)], allocated_at=enrolled)
                for number, p in enumerate(cohort)
            ),
            batch_size=BATCH,
        )
        ConsentGrant.objects.bulk_create(
            (
                ConsentGrant(
                    participant=p,
                    document=document,
                    scope=ConsentScope.SURVEYS,
                    granted_at=enrolled,
                )
                for p in cohort
            ),
            batch_size=BATCH,
        )
    rng = np.random.default_rng(7)
    waves = list(trial.waves.prefetch_related("instruments").order_by("index"))
    rows = []
    for number, participant in enumerate(cohort):
        arm = arms[number % len(arms)].slug
        for wave in waves:
            submitted = enrolled + timedelta(days=wave.day_offset, hours=number % 48 + 1)
            for instrument in sorted(wave.instruments.all(), key=lambda i: i.code):
                definition = instrument.definition
                low, high = definition.scale.min, definition.scale.max
                for item in definition.item_codes:
                    value = int(rng.integers(low, high + 1))
                    rows.append(
                        (trial.slug, participant.pk, arm, wave.index, instrument.code, item,
                         value, "en", submitted.isoformat())
                    )  # fmt: skip
    return trial, csv_file(path, RESPONSE_COLUMNS, rows)


def _copy_seconds(path: Path) -> float:
    """Best of ``REPEATS``: ``COPY`` of the file into an empty scratch table of its columns, in
    one committed transaction, as the import's writes are."""
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {SCRATCH_TABLE} (trial text, participant text, arm text, wave integer, "
            "instrument text, item text, value integer, language text, "
            "submitted_at timestamptz)"
        )
    data = path.read_bytes()
    timings = []
    for _ in range(REPEATS):
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {SCRATCH_TABLE}")
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            statement = f"COPY {SCRATCH_TABLE} FROM STDIN WITH (FORMAT csv, HEADER true)"
            with cursor.cursor.copy(statement) as copy:
                copy.write(data)
        timings.append(time.perf_counter() - started)
    return min(timings)


def _measure(out: Path) -> None:
    """In this process's own database: prepare, time the import and ``COPY``, check the rows."""
    with own_database(os.environ["DATABASE_URL"], run_database_name("bench_import")) as url:
        os.environ["DATABASE_URL"] = url
        import django

        django.setup()
        from django.core.management import call_command

        from surveys.exchange import responses_import
        from surveys.models import Response, Score

        call_command("migrate", verbosity=0)
        with tempfile.TemporaryDirectory(prefix="bench-import-") as directory:
            path = Path(directory) / "responses.csv"
            started = time.perf_counter()
            trial, rows = _prepare(path)
            print(
                f"[import] {rows:,} rows prepared in {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
            timings = []
            for _ in range(REPEATS):
                Response.objects.filter(wave__trial=trial).delete()
                started = time.perf_counter()
                report = responses_import(trial=trial, path=path)
                timings.append(time.perf_counter() - started)
            expected = PARTICIPANTS * WAVES
            scores = Score.objects.filter(response__wave__trial=trial).count()
            if report.created != expected or scores != 2 * expected:
                raise RuntimeError(
                    f"Imported {report.created} responses and {scores} scores, expected "
                    f"{expected} and {2 * expected}."
                )
            started = time.perf_counter()
            again = responses_import(trial=trial, path=path)
            reimport = time.perf_counter() - started
            if (again.created, again.unchanged) != (0, expected):
                raise RuntimeError(f"The re-import changed something: {again}.")
            copy = _copy_seconds(path)
    out.write_text(
        json.dumps(
            {
                "rows": rows,
                "responses": expected,
                "scores": scores,
                "import_seconds": min(timings),
                "import_timings": timings,
                "reimport_seconds": reimport,
                "copy_seconds": copy,
                "ratio": copy / min(timings),
            }
        )
    )


if __name__ == "__main__":
    _measure(Path(sys.argv[1]))
