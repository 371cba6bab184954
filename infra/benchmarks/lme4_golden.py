"""Regenerate ``tests/stats/lme4_golden.json``: lme4's fit of the growth model on panels from
:mod:`infra.benchmarks.growth_panel`, the reference that ``tests/stats/test_reml_growth.py``
holds :mod:`stats.reml_growth` to. Needs R with lme4, lmerTest, jsonlite and data.table
(Debian: ``apt-get install r-base-core r-cran-lme4 r-cran-lmertest r-cran-jsonlite
r-cran-data.table``).

    .venv/bin/python -m infra.benchmarks.lme4_golden
"""

import json
import subprocess
import tempfile
from pathlib import Path

from infra.benchmarks.growth_panel import growth_panel, write_csv

REPO_DIR = Path(__file__).resolve().parents[2]
SCRIPT = REPO_DIR / "infra" / "benchmarks" / "lme4_golden.R"
GOLDEN = REPO_DIR / "tests" / "stats" / "lme4_golden.json"
# (name, participants, waves, arms, seed): three arms on a short panel, two on a long one, a
# small trial, and one whose REML estimate of the slopes' variance is on the boundary (a
# singular covariance: lme4's θ₃ = 0).
DATASETS = (
    ("three_arms", 500, 8, 3, 11),
    ("two_arms", 3000, 12, 2, 12),
    ("small", 40, 4, 2, 13),
    ("boundary", 60, 3, 2, 54),
)


def lme4_fit(csv: Path, *, with_df: bool = True) -> dict:
    """lme4's fit of the panel in ``csv`` (``lme4_golden.R``'s JSON)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = ["Rscript", str(SCRIPT), str(csv), out.name]
        subprocess.run([*command, *([] if with_df else ["--no-df"])], check=True)
        return json.loads(Path(out.name).read_text())


def main() -> None:
    golden = {}
    with tempfile.TemporaryDirectory(prefix="lme4-golden-") as directory:
        for name, participants, waves, arms, seed in DATASETS:
            csv = Path(directory) / f"{name}.csv"
            write_csv(growth_panel(participants, waves, arms, seed), str(csv))
            fit = lme4_fit(csv)
            for timing in ("seconds", "cpu_seconds"):
                fit.pop(timing)
            golden[name] = {
                "panel": {"participants": participants, "waves": waves, "arms": arms, "seed": seed}
            } | fit
    GOLDEN.write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    main()
