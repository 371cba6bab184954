"""An analysis run on a large trial, at growing sizes: what ``manage.py analyze_trial`` costs at
10k, 100k or a million participants, and where that time and memory go.

For each size in ``--sizes`` (participants; default 1,000) a database of the run's own is made
(``bench_scale_<pid>_<random>`` on the server ``DATABASE_URL`` names, dropped at the end) and
filled by ``infra.benchmarks.scale_data``: a two-arm trial of 20 waves whose responses carry
five scores (WHO-5, the plan's primary outcome, SWLS, its secondary, the Flourishing Scale,
GAD-7 and PHQ-9), with skipped waves and drop-out, written with PostgreSQL's ``COPY``. Then
``analyze_trial`` runs the trial's confirmatory analysis in a fresh process, as a coordinator
runs it, and reports:

- wall time of the whole command (Python's start, Django's and JAX's imports included), its CPU
  seconds and its peak RSS (the kernel's accounting of that process, from ``wait4``); the
  PostgreSQL backend's CPU seconds on the command's connection and the time spent waiting in
  queries are both within that wall time;
- each step of ``analytics.analysis.analyse`` (its module-level functions, wrapped from outside
  in that process: the score frame, the mixed model per outcome, GEE, ANCOVA, the Bayesian fit,
  psychometrics, CONSORT, …) with its seconds and the process's peak RSS when it ended;
- the primary outcome's mixed-model estimate of the growth difference per wave beside the truth
  the data were simulated with (it must lie within 4 standard errors: clipping at the ends of
  the range, the only bias, is below a hundredth of a standard error at these spreads).

The command is killed if its RSS passes ``--memory-cap-gb`` (default 12) or it runs past
``--analysis-minutes`` (default 60); the table then says which step it was in. The baseline of
the ratio is one pass of PostgreSQL over the trial's scores (a ``GROUP BY`` of every score by
outcome, arm and wave, best of 3 after the load): reading the data once.

    make bench BENCH_ARGS="analysis_scale --sizes 10000,100000"
    python -m infra.bench analysis_scale --sizes 1000000 --memory-cap-gb 18
"""

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from infra.bench import REPO_DIR, Measurement, own_database, run_database_name

SIZES = (1_000,)
TOLERANCE_SE = 4.0
# analytics.analysis' module-level steps, wrapped in the analysing process; a nested one names
# the step it runs within.
STEPS = (
    ("trial_scores_frame", None),
    ("scores_digest", None),
    ("score_kinds", None),
    ("analysed_score_rows", None),
    ("planned_outcomes", None),
    ("_mixedlm", None),
    ("growth_statistics", "_mixedlm"),
    ("mixedlm_growth_from_statistics", "_mixedlm"),
    ("mixedlm_growth_adjusted", "_mixedlm"),
    ("_frequentist", None),
    ("gee_growth", "_frequentist"),
    ("gee_growth_from_statistics", "_frequentist"),
    ("ancova_rows", "_frequentist"),
    ("ancova", "_frequentist"),
    ("_adjust", None),
    ("_bayes_moderation", None),
    ("outcomes_statistics", None),
    ("growth_data_from_frame", None),
    ("growth_data_from_statistics", None),
    ("_community_weights", None),
    ("growth_fit", None),
    ("_bayes_estimates", None),
    ("_ordinal", None),
    ("allocated_per_arm", None),
    ("responded_per_wave", None),
    ("_trajectories", None),
    ("consort_counts", None),
    ("_interim", None),
    ("telemetry_engagement_releases", None),
    ("_divergence", None),
    ("_psychometrics", None),
    ("trial_survey_report", "_psychometrics"),
)
BASELINE_SQL = (
    "SELECT s.code, a.arm_id, w.index, count(*), avg(s.value) FROM surveys_score s "
    "JOIN surveys_response r ON r.id = s.response_id JOIN surveys_wave w ON w.id = r.wave_id "
    "JOIN trials_allocation a ON a.participant_id = r.participant_id "
    "GROUP BY s.code, a.arm_id, w.index"
)


def run(
    sizes: tuple[int, ...] | None = None,
    memory_cap_gb: float = 12.0,
    analysis_minutes: float = 60.0,
) -> list[Measurement]:
    results = []
    for participants in sizes or SIZES:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as directory:
            out = Path(directory) / "result.json"
            child = subprocess.Popen(
                [sys.executable, "-m", "infra.benchmarks.bench_analysis_scale", "size",
                 str(participants), str(out), str(memory_cap_gb), str(analysis_minutes)],
                env=dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings.test"),
                cwd=REPO_DIR,
            )  # fmt: skip
            previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
            try:
                if child.wait():
                    raise RuntimeError(f"The {participants:,}-participant run failed.")
            finally:
                # Stopped from outside: the child drops its database on the way out.
                if child.poll() is None:
                    child.terminate()
                    child.wait()
                signal.signal(signal.SIGTERM, previous)
            results.append(json.loads(out.read_text()))
    for result in results:
        print(_steps_table(result), file=sys.stderr)
    return [_measurement(result) for result in results]


def _measurement(result: dict) -> Measurement:
    n = result["participants"]
    analysis = result["analysis"]
    check = result.get("check") or {}
    status = "finished" if analysis["finished"] else f"STOPPED: {analysis['stopped']}"
    note = (
        f"{status}; peak RSS {analysis['peak_rss_bytes'] / 2**30:.2f} GiB; "
        f"load {result['load']['seconds_total']:.0f} s"
    )
    if check:
        note += f"; primary {check['verdict']}"
    rows = [
        {
            "path": name,
            "participants": n,
            "seconds": step["seconds"],
            "cpu_seconds": step.get("cpu_seconds"),
            "peak_rss_bytes": step["peak_rss_bytes"],
        }
        for name, step in analysis["steps"].items()
    ]
    rows.append(
        {
            "path": "analyze_trial (whole command)",
            "participants": n,
            "seconds": analysis["wall_seconds"],
            "peak_rss_bytes": analysis["peak_rss_bytes"],
        }
    )
    rows.append(
        {
            "path": "COPY load (generate, copy, index)",
            "participants": n,
            "seconds": result["load"]["seconds_total"],
            "peak_rss_bytes": result["load"]["peak_rss_bytes"],
        }
    )
    return Measurement(
        name=f"analyze_trial, {n:,} participants × 20 waves × 5 scores",
        seconds=analysis["wall_seconds"],
        baseline_name="one GROUP BY of its scores",
        baseline_seconds=result["baseline_seconds"],
        note=note,
        details=result | {"scaling": {"title": "analysis run by step", "rows": rows}},
    )


def _steps_table(result: dict) -> str:
    analysis = result["analysis"]
    lines = [
        f"[analysis_scale] {result['participants']:,} participants: {result['responses']:,} "
        f"responses, {result['scores']:,} scores, database "
        f"{result['database_bytes'] / 2**30:.2f} GiB",
        "  load: " + ", ".join(f"{k} {v:.1f} s" for k, v in result["load"]["seconds"].items()),
        f"  analyze_trial: {analysis['wall_seconds']:.1f} s wall, {analysis['cpu_seconds']:.1f} s "
        f"CPU, peak RSS {analysis['peak_rss_bytes'] / 2**30:.2f} GiB; PostgreSQL backend CPU "
        f"{_maybe(analysis.get('postgres_cpu_seconds'))} s, waiting in "
        f"{analysis.get('queries', 0)} queries {_maybe(analysis.get('query_seconds'))} s",
    ]
    if not analysis["finished"]:
        lines.append(f"  STOPPED: {analysis['stopped']}")
    for name, step in analysis["steps"].items():
        lines.append(
            f"    {name:42} {step['calls']:4}× {step['seconds']:9.2f} s "
            f"({step.get('cpu_seconds', 0):8.2f} s CPU)  peak RSS "
            f"{step['peak_rss_bytes'] / 2**30:6.2f} GiB"
        )
    if result.get("check"):
        lines.append(f"  primary outcome: {result['check']['verdict']}")
    return "\n".join(lines)


def _maybe(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f}"


def _size(participants: int, out: Path, memory_cap_gb: float, analysis_minutes: float) -> None:
    """In a database of its own: load the trial, analyse it in a child, time the baseline."""
    # Stopped from outside (a timeout), still drop the database on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with own_database(os.environ["DATABASE_URL"], run_database_name("bench_scale")) as url:
        os.environ["DATABASE_URL"] = url
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        from infra.benchmarks.scale_data import trial_load

        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        load = trial_load(
            participants=participants, log=lambda line: print(line, file=sys.stderr, flush=True)
        )
        load_seconds = time.perf_counter() - started
        print(
            f"[analysis_scale] loaded {participants:,} participants in {load_seconds:.0f} s "
            f"({load.database_bytes / 2**30:.2f} GiB)",
            file=sys.stderr,
            flush=True,
        )
        connection.close()
        analysis = _analyse_in_child(load.slug, url, memory_cap_gb, analysis_minutes)
        # After the analysis, so that its reads start from the cache the load left; not when
        # the analysis was stopped, which leaves no time to compare with.
        timings = [float("nan")]
        with connection.cursor() as cursor:
            for _ in range(3 if analysis["finished"] else 0):
                begun = time.perf_counter()
                cursor.execute(BASELINE_SQL)
                cursor.fetchall()
                timings.append(time.perf_counter() - begun)
        connection.close()
    check = _check(analysis.get("estimates", []), load.truth)
    out.write_text(
        json.dumps(
            {
                "participants": participants,
                "responses": load.responses,
                "scores": load.scores,
                "database_bytes": load.database_bytes,
                "load": {
                    "seconds": load.seconds,
                    "seconds_total": load_seconds,
                    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                },
                "baseline_seconds": min(timings[1:], default=timings[0]),
                "truth": load.truth,
                "analysis": analysis,
                "check": check,
            }
        )
    )


def _check(estimates: list[dict], truth: dict[str, float]) -> dict | None:
    """The primary outcome's mixed-model growth difference against the simulated truth."""
    from infra.benchmarks.scale_data import PRIMARY

    found = [
        e
        for e in estimates
        if e["outcome"] == PRIMARY and e["method"] == "mixedlm" and e["arm"] == "b"
    ]
    if not found:
        return None
    (estimate,) = found
    true = truth[PRIMARY]
    gap = (estimate["estimate"] - true) / estimate["std_error"]
    ok = abs(gap) <= TOLERANCE_SE
    return {
        "outcome": PRIMARY,
        "estimate": estimate["estimate"],
        "std_error": estimate["std_error"],
        "truth": true,
        "gap_se": gap,
        "within": ok,
        "verdict": f"{estimate['estimate']:.4f} ± {estimate['std_error']:.4f} against truth "
        f"{true:.4f} ({gap:+.2f} SE: {'ok' if ok else 'OUTSIDE ' + str(TOLERANCE_SE) + ' SE'})",
    }


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _analyse_in_child(slug: str, url: str, memory_cap_gb: float, minutes: float) -> dict:
    """``analyze_trial`` in a fresh process (:func:`_analyse`), watched: killed past the memory
    cap or the time limit. Its wall and CPU seconds and peak RSS are the kernel's (``wait4``)."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-run-") as directory:
        out = Path(directory) / "analysis.json"
        progress = Path(directory) / "progress.json"
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.benchmarks.bench_analysis_scale", "analyse", slug,
             str(out), str(progress)],
            env=dict(os.environ, DATABASE_URL=url), cwd=REPO_DIR, start_new_session=True,
        )  # fmt: skip
        stopped = ""
        cap = memory_cap_gb * 2**30
        shown = None
        try:
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                elapsed = time.perf_counter() - started
                rss = _rss_bytes(process.pid)
                if rss > cap or elapsed > minutes * 60:
                    stopped = (
                        f"RSS {rss / 2**30:.1f} GiB over the {memory_cap_gb:g} GiB cap"
                        if rss > cap
                        else f"still running after {minutes:g} min"
                    ) + f" at {elapsed:.0f} s"
                    os.killpg(process.pid, signal.SIGKILL)
                    _, status, usage = os.wait4(process.pid, 0)
                    break
                shown = _show_progress(progress, shown, elapsed, rss)
                time.sleep(0.2)
        finally:
            if process.returncode is None and _rss_bytes(process.pid):
                os.killpg(process.pid, signal.SIGKILL)
        wall = time.perf_counter() - started
        result = json.loads(out.read_text()) if out.exists() else {}
        if not result and progress.exists():
            result = json.loads(progress.read_text() or "{}")
        if not stopped and not out.exists():
            stopped = f"exited with status {os.waitstatus_to_exitcode(status)}"
        if stopped and result.get("current"):
            stopped += f", in {result['current']}"
        if not stopped and result.get("status") != "finished":
            # The command ran to its end, but the run it made failed (analysis_run_execute
            # stores the error); the step it was in is the last one entered.
            stopped = f"the run {result.get('status')}: {result.get('error')}"
            if result.get("last_step"):
                stopped += f", in {result['last_step']}"
    return result | {
        "finished": not stopped,
        "stopped": stopped,
        "wall_seconds": wall,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_bytes": usage.ru_maxrss * 1024,
        "steps": result.get("steps", {}),
    }


def _show_progress(progress: Path, shown: str | None, elapsed: float, rss: int) -> str | None:
    """Say on stderr when the analysing process enters a step (a long run's log then shows
    where it is, even if it is stopped from outside); the step now shown."""
    try:
        current = json.loads(progress.read_text())["current"]
    except (OSError, ValueError, KeyError):
        return shown
    if current != shown:
        print(
            f"[analysis_scale] {elapsed:7.0f} s, RSS {rss / 2**30:5.2f} GiB: {current or '-'}",
            file=sys.stderr,
            flush=True,
        )
    return current


class _Steps:
    """Wraps ``analytics.analysis``' steps: the seconds in each, the calls, and the process's
    peak RSS when each last ended; written to ``progress`` as each starts and ends, so a killed
    run still says where it was."""

    def __init__(self, progress: Path) -> None:
        self.progress = progress
        self.steps: dict[str, dict] = {}
        self.current: list[str] = []
        self.last = ""

    def install(self, module) -> None:
        for name, parent in STEPS:
            if hasattr(module, name):
                label = name if parent is None else f"  {name} (in {parent})"
                setattr(module, name, self._wrapped(label, getattr(module, name)))

    def _wrapped(self, label: str, function):
        def timed(*args, **kwargs):
            self.current.append(label.strip())
            self.last = " > ".join(self.current)
            self._write()
            started, cpu = time.perf_counter(), _cpu_seconds()
            try:
                return function(*args, **kwargs)
            finally:
                step = self.steps.setdefault(
                    label, {"seconds": 0.0, "cpu_seconds": 0.0, "calls": 0, "peak_rss_bytes": 0}
                )
                step["seconds"] += time.perf_counter() - started
                step["cpu_seconds"] += _cpu_seconds() - cpu
                step["calls"] += 1
                step["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                self.current.pop()
                self._write()

        return timed

    def _write(self) -> None:
        # Whole or not at all: the process may be killed at any moment.
        part = self.progress.with_suffix(".part")
        part.write_text(json.dumps({"steps": self.steps, "current": " > ".join(self.current)}))
        os.replace(part, self.progress)


def _cpu_seconds() -> float:
    """This process's CPU seconds so far, all its threads (JAX's chains among them)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _analyse(slug: str, out: Path, progress: Path) -> None:
    """``analyze_trial SLUG --json`` in this process, its steps timed."""
    import django

    django.setup()
    import io

    from django.core.management import call_command
    from django.db import connection

    import analytics.analysis

    steps = _Steps(progress)
    steps.install(analytics.analysis)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    queries = {"count": 0, "seconds": 0.0}

    def timed_query(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            queries["count"] += 1
            queries["seconds"] += time.perf_counter() - started

    output = io.StringIO()
    started = time.perf_counter()
    with connection.execute_wrapper(timed_query):
        call_command("analyze_trial", slug, "--json", stdout=output)
    command_seconds = time.perf_counter() - started
    document = json.loads(output.getvalue())
    out.write_text(
        json.dumps(
            {
                "status": document["status"],
                "last_step": steps.last,
                "error": document["error"],
                "estimates": document["estimates"],
                "command_seconds": command_seconds,
                "steps": steps.steps,
                "queries": queries["count"],
                "query_seconds": queries["seconds"],
                "postgres_cpu_seconds": _process_cpu_seconds(backend),
                "rows": document["diagnostics"].get("rows"),
            }
        )
    )


def _process_cpu_seconds(pid: int) -> float | None:
    """User and system CPU seconds of a local process (the PostgreSQL backend), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    if sys.argv[1] == "size":
        _size(int(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    elif sys.argv[1] == "analyse":
        _analyse(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
