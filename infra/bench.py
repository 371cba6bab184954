"""``make bench``: run the benchmarks in ``infra/benchmarks/`` (apart from the tests).

Each module ``bench_<name>.py`` defines ``run() -> list[Measurement]``; the options below that
``run`` names as keyword parameters are passed to it. A measurement is reported as a ratio to a
baseline timed in the same process, so results compare across machines. Results are printed and
written to ``bench-results/<UTC time>.json``.

    make bench                                       # all benchmarks
    make bench BENCH_ARGS=ancova                     # those whose module name contains "ancova"
    make bench BENCH_ARGS="survey --duration 10"     # a shorter run of the load benchmark
    make bench BENCH_ARGS="growth --pymc-minutes 5"  # the growth benchmark, PyMC capped at 5 min
    make bench BENCH_ARGS="growth --reml-only"       # exact REML against lme4, 1k to 1M
    make bench BENCH_ARGS=startup                    # manage.py check and the web server's start
    make bench BENCH_ARGS="front_door --people 60"   # people joining through the recruitment link
    make bench BENCH_ARGS="analysis_scale --sizes 10000,100000"  # analyze_trial at those sizes

After every benchmark has run, a summary: one table of every measurement (seconds, baseline,
ratio and the target the benchmark states, met or not), then a scaling table per analysis path
(participants × seconds × peak memory) from the measurements that report one
(``details["scaling"]``: a title and rows of path, participants, seconds and peak RSS bytes).
"""

import argparse
import importlib
import inspect
import json
import os
import pkgutil
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.client import HTTPConnection
from pathlib import Path
from types import ModuleType
from typing import IO
from urllib.parse import urlsplit, urlunsplit

from infra import benchmarks

REPO_DIR = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_DIR / "bench-results"


@dataclass(frozen=True)
class Measurement:
    name: str
    seconds: float
    baseline_name: str
    baseline_seconds: float
    note: str = ""
    # Whatever else the benchmark reports (throughputs, percentiles, row counts), for the JSON.
    details: dict = field(default_factory=dict)
    # The target the benchmark states, e.g. "ratio ≥ 0.2" or "< 2 s" (see stated_target).
    target: str = ""

    @property
    def ratio(self) -> float:
        """Baseline time over measured time: above 1 means faster than the baseline."""
        return self.baseline_seconds / self.seconds


def best_of(function, *, repeat: int = 5) -> float:
    """The fastest of ``repeat`` wall-clock timings: the least disturbed by other work."""
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return min(timings)


def run_database_name(prefix: str) -> str:
    """A database name of this run's alone (``prefix``, the process id and a random suffix), so
    that people benchmarking against one server at once never share, or drop, a database."""
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"


@contextmanager
def own_database(server_url: str, name: str) -> Iterator[str]:
    """The database ``name`` (from :func:`run_database_name`), created on the PostgreSQL server
    ``server_url`` names (never the developer's data) and dropped afterwards; yields its URL.
    Creating it fails if the name is taken: nothing is dropped that this run did not create."""
    import psycopg
    from psycopg import sql

    def execute(statement: sql.Composable) -> None:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(statement)

    execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    # FORCE ends this run's own lingering connections (its gunicorn workers'); the name is this
    # run's alone, so no one else's.
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    try:
        yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    finally:
        from django.db import connection, connections

        connections.close_all()
        connection.close_pool()
        execute(drop)


@contextmanager
def gunicorn(
    port: int,
    *,
    env: dict,
    log: IO,
    workers: int = 2,
    app: str = "config.wsgi:application",
    start_timeout: float = 60.0,
) -> Iterator[None]:
    """The product's WSGI app (or ``app``) under gunicorn on 127.0.0.1:``port``, from when
    ``/healthz`` answers until the block ends. Two sync workers by default, as the
    production-like stack runs on these two-core machines."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", app, "--bind",
         f"127.0.0.1:{port}", "--workers", str(workers), "--no-control-socket"],
        cwd=REPO_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                log.seek(0)
                raise RuntimeError(f"gunicorn did not start:\n{log.read()[-3000:]}")
            probe = HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                probe.request("GET", "/healthz")
                probe.getresponse().read()
                break
            except OSError:
                time.sleep(0.2)
            finally:
                probe.close()
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


# A target written in a measurement's note: "target ratio ≥ 0.2", "target < 30 s".
_TARGET_IN_NOTE = re.compile(r"target:?\s*((?:ratio\s*)?[<>≥≤]=?\s*[0-9.]+(?:\s*(?:ms|s)\b)?)")
_TARGET_PARTS = re.compile(r"^(ratio)?\s*([<>≥≤]=?)\s*([0-9.]+)\s*(ms|s)?$")


def stated_target(m: Measurement) -> str:
    """The measurement's target: its own, else the one its details (``ratio_target``) or its
    note state; empty where it states none."""
    if m.target:
        return m.target
    if isinstance(m.details.get("ratio_target"), int | float):
        return f"ratio ≥ {m.details['ratio_target']:g}"
    found = _TARGET_IN_NOTE.search(m.note)
    return re.sub(r"\s+", " ", found.group(1)).strip() if found else ""


def target_met(m: Measurement, target: str) -> bool | None:
    """Whether the measurement meets ``target`` (a ratio's bound, or one on its seconds); None
    where the target is not one of those."""
    parts = _TARGET_PARTS.match(target.strip())
    if parts is None:
        return None
    on_ratio, sign, number, unit = parts.groups()
    bound = float(number) / (1000 if unit == "ms" else 1)
    value = m.ratio if on_ratio else m.seconds
    if on_ratio is None and unit is None:
        return None
    return {"<": value < bound, "<=": value <= bound, "≤": value <= bound, ">": value > bound,
            ">=": value >= bound, "≥": value >= bound}[sign]  # fmt: skip


def summary(measurements: list[Measurement]) -> str:
    """The closing tables: every measurement's seconds, baseline, ratio and target, then one
    scaling table per path of the measurements that report ``details["scaling"]``."""
    lines = [
        "Summary",
        f"{'measurement':60} {'seconds':>10} {'baseline (s)':>13} {'ratio':>8}  target",
    ]
    for m in measurements:
        target = stated_target(m)
        met = target_met(m, target) if target else None
        verdict = "" if met is None else (" (met)" if met else " (NOT met)")
        lines.append(
            f"{m.name[:60]:60} {m.seconds:10.3f} {m.baseline_seconds:13.3f} {m.ratio:8.3f}  "
            f"{target or '-'}{verdict}"
        )
    tables: dict[str, dict[str, dict[int, dict]]] = {}
    for m in measurements:
        scaling = m.details.get("scaling")
        if not scaling:
            continue
        paths = tables.setdefault(scaling["title"], {})
        for row in scaling["rows"]:
            paths.setdefault(row["path"], {})[row["participants"]] = row
    for title, paths in tables.items():
        sizes = sorted({n for rows in paths.values() for n in rows})
        lines += ["", f"Scaling: {title} (seconds / peak RSS GiB)"]
        lines.append(f"{'path':45}" + "".join(f"{n:>20,}" for n in sizes))
        for path, rows in paths.items():
            cells = []
            for n in sizes:
                row = rows.get(n)
                if row is None:
                    cells.append(f"{'-':>20}")
                    continue
                rss = row.get("peak_rss_bytes")
                memory = "?" if rss is None else f"{rss / 2**30:.2f}"
                cells.append(f"{row['seconds']:>12.2f} / {memory:>5}")
            lines.append(f"{path[:45]:45}" + "".join(cells))
    return "\n".join(lines)


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(size) for size in text.split(","))


def _run(module: ModuleType, options: argparse.Namespace) -> list[Measurement]:
    accepted = inspect.signature(module.run).parameters
    return module.run(**{k: v for k, v in vars(options).items() if k in accepted})


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.bench", description="Run the benchmarks in infra/benchmarks/."
    )
    parser.add_argument("wanted", nargs="?", default="", help="part of a benchmark module's name")
    parser.add_argument(
        "--duration",
        type=float,
        default=60.0,
        help="seconds of sustained load per side, for the load benchmarks (default 60)",
    )
    parser.add_argument(
        "--pymc-minutes",
        type=float,
        default=30.0,
        help="cap on each PyMC fit of the growth benchmark, in minutes (default 30)",
    )
    parser.add_argument(
        "--pymc-sizes",
        type=lambda text: tuple(int(size) for size in text.split(",")),
        default=None,
        help="participants of the growth benchmark's PyMC comparisons, comma-separated "
        "(default: growing sizes until a fit passes the cap)",
    )
    parser.add_argument(
        "--reml-sizes",
        type=lambda text: tuple(int(size) for size in text.split(",")),
        default=None,
        help="participants of the growth benchmark's REML-vs-lme4 scaling, comma-separated "
        "(default 1000,10000,100000,1000000)",
    )
    parser.add_argument(
        "--reml-only",
        action="store_true",
        help="run only the growth benchmark's REML-vs-lme4 scaling",
    )
    parser.add_argument(
        "--lme4-minutes",
        type=float,
        default=30.0,
        help="cap on each lme4 fit (and each of ours) in the growth benchmark, in minutes "
        "(default 30)",
    )
    parser.add_argument(
        "--people",
        type=int,
        default=500,
        help="people arriving through the recruitment link, for the front-door benchmark "
        "(default 500)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=60.0,
        help="seconds within which they arrive, for the front-door benchmark (default 60)",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=None,
        help="participants of the analysis scaling benchmark, comma-separated (default 1000)",
    )
    parser.add_argument(
        "--memory-cap-gb",
        type=float,
        default=12.0,
        help="the analysis scaling benchmark stops a run whose RSS passes this (default 12)",
    )
    parser.add_argument(
        "--analysis-minutes",
        type=float,
        default=60.0,
        help="the analysis scaling benchmark stops a run after this long (default 60)",
    )
    options = parser.parse_args(argv)
    wanted = options.wanted
    names = [
        m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_")
    ]
    measurements: list[Measurement] = []
    for name in sorted(n for n in names if wanted in n):
        module = importlib.import_module(f"infra.benchmarks.{name}")
        measurements.extend(_run(module, options))
    if not measurements:
        print(f"No benchmark matches {wanted!r}; available: {', '.join(sorted(names))}")
        return 1
    print(f"{'benchmark':45} {'seconds':>10} {'baseline':>30} {'ratio':>8}")
    for m in measurements:
        print(
            f"{m.name:45} {m.seconds:10.4f} {m.baseline_name:>21} {m.baseline_seconds:8.4f} "
            f"{m.ratio:8.2f}  {m.note}"
        )
    print()
    print(summary(measurements))
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{stamp}.json"
    path.write_text(json.dumps([asdict(m) | {"ratio": m.ratio} for m in measurements], indent=2))
    print(f"Written to {path.relative_to(RESULTS_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
