"""The growth models on large simulated trials: the platform's exact REML beside lme4, and the
Bayesian model beside that REML and PyMC.

*REML scaling* (``--reml-sizes``, default 1k, 10k, 100k and 1M participants): panels of 12
waves and 2 arms from ``infra.benchmarks.growth_panel``, with waves skipped (15% each after
baseline) and drop-out, fitted by the platform's growth-model path (``stats.growth.mixedlm_growth``
from the long frame: checks, statistics, REML, Satterthwaite df) and by ``reml_growth_fit`` from
the per-participant statistics alone, each in a fresh process, and by lme4 (``lmer``, REML, tight
tolerances: ``infra/benchmarks/lme4_golden.R``) on the same data written to CSV, in the same run
when ``Rscript`` exists. Compared in CPU seconds (the machines these run on are shared): ours
from the frame or from the statistics against ``lmer()`` alone (R's ``proc.time``, reading the
CSV not counted). Peak memory is each process's peak RSS, its data included (ours generates the
frame in process, R reads the CSV), and for ours the peak of what the fit itself allocated
(``tracemalloc``, in a second, untimed fit). Without R the lme4 figures are the ones recorded in
``lme4_timings.json`` by an earlier run, and the table says so. The agreement column is the
largest relative difference between our and lme4's fixed effects and standard errors. From about
100k participants on it grows to about 1e-6, in the intercept's SE, and the gap is lme4's: its
derivative-free optimiser stops where the criterion's rounding hides further progress, and
numDeriv's gradient of lme4's own deviance function (``devFunOnly = TRUE``) at 100k was of
order 0.1–0.5 at lme4's θ and of order 0.01 (its noise) at ours.

    python -m infra.bench growth --reml-only                        # the REML scaling alone
    python -m infra.bench growth --reml-only --reml-sizes 1000,10000

The trial: 10,000 participants × 12 waves × 3 dimensions, 2 arms, 20% drop-out at random given
the last observed score (MAR), unclipped scores (so the true effect holds exactly). Reported:

- *cold*: wall time of the first fit in the process (sufficient statistics, JAX tracing and
  compilation, NUTS, extra draws until every arm × dimension effect passes the gates), with an
  empty persistent compilation cache so that nothing compiled by an earlier run is reused, and
  the part of it JAX reports spending on tracing, lowering and compiling; *warm*: a second fit
  on new data of the same size, reusing the sampler compiled for the first (the data are its
  arguments, and their sizes are rounded up to a few size classes). Baseline: the platform's
  exact REML (``stats.growth.mixedlm_growth``), one fit per dimension, and lme4 on the same rows
  where R exists, and the agreement |posterior mean − REML estimate| / REML SE per dimension (target
  < 0.2), with whether the true effect lies inside both 95% intervals.
- *PyMC*: the ordinary per-observation model with explicit participant effects, non-centred,
  sampled by ``pm.sample()`` with its defaults (PyMC's own NUTS, as nutpie is not installed; 1000
  tuning and 1000 draws; PyMC takes half the logical CPUs to be hyperthreads, so on 2 cores it
  runs 2 chains one after the other), at growing numbers of participants until a fit takes
  longer than ``--pymc-minutes``. It has the same likelihood and priors as ours on the same
  standardised scale: each arm's level and growth ~ N(0, 1), residual SDs and effect SDs ~
  HalfNormal(1), LKJ(2) on the correlation of the 2D effects; time is the raw wave. Its wall time
  includes compilation and its γ draws are put through the same gates (it does not draw more
  when they fail, so its time to the gates is then a lower bound). Ours is fitted to the same
  data both in a fresh process (cold, the figure compared) and in this one (warm). Ours runs its
  4 chains in parallel threads, as a worker does (``stats.compiled.chain_method``), so
  on 2 cores it uses both while PyMC's default uses one: CPU seconds are reported beside wall
  times.

Each PyMC fit, and each cold fit of ours, runs in a child process killed at the cap, so the cap
holds however slow a fit is. The PyMC children share one fresh PyTensor compile directory: only
the first pays for compiling PyTensor's own C modules, which favours PyMC over our cold fits.
Other work on the machine lengthens wall times: CPU seconds and load averages are reported too.

    python -m infra.bench growth --pymc-minutes 5
    python -m infra.bench growth --pymc-sizes 4000   # one comparison, at the size given
"""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

# The deployment's JAX environment, as a worker has it (a CPU device per chain): JAX reads it
# when it is first imported, here and in the children, which inherit it.
import config.settings.base  # noqa: F401
from analytics.simulate import DIMENSIONS, simulate_scores
from infra.bench import Measurement
from infra.benchmarks.growth_panel import arm_names, growth_panel, write_csv
from infra.benchmarks.lme4_golden import SCRIPT as LME4_SCRIPT

if TYPE_CHECKING:  # the fits import JAX and PyMC themselves, in the processes that run them
    from stats.diagnostics import GateReport

PARTICIPANTS = 10_000
WAVES = 12
DROPOUT = 0.2
# Score points per wave, every dimension: over 11 waves 0.15 baseline SD of WHO-5 and 0.4 of
# SWLS, effects a trial is powered for.
EFFECT = 0.2
PYMC_SIZES = (250, 500, 1000, 1500, 2000, 4000, 10_000)
# Time a child may take, beyond the fit's cap, to import PyMC or JAX and simulate its data.
START_ALLOWANCE_S = 90.0
AGREEMENT_TARGET_SE = 0.2
SECONDS_TARGET = 120.0
RATIO_TARGET = 20.0
REPO_DIR = Path(__file__).resolve().parents[2]
REML_SIZES = (1_000, 10_000, 100_000, 1_000_000)
REML_WAVES = 12
REML_ARMS = 2
REML_SEED = 1
# lme4's timings from the last run that had R, for runs without it.
LME4_TIMINGS = Path(__file__).with_name("lme4_timings.json")


def _trial(participants: int, seed: int) -> tuple[pd.DataFrame, dict[str, float]]:
    simulated = simulate_scores(
        n_participants=participants,
        n_waves=WAVES,
        effect=EFFECT,
        seed=seed,
        dropout=DROPOUT,
        missing="mar",
        dimensions=DIMENSIONS,
        clip=False,
    )
    frame = simulated.scores.assign(arm=simulated.scores["arm"].map({0: "control", 1: "treatment"}))
    return frame, simulated.true_effects


# (start, end) of each span JAX spent tracing, lowering or compiling, as time.time().
_COMPILE_SPANS: list[tuple[float, float]] = []


def _jax_cold(cache: str) -> None:
    """Start JAX with an empty persistent compilation cache in ``cache``, and clock its
    compilation to split it from sampling.

    The first fit compiles everything (a cache left by an earlier run would hide compile time);
    later fits in the process reuse the compiled sampler when their data fall in the same size
    class, as a worker's later fits do (stats.bayes_growth).
    """
    import jax

    os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.monitoring.register_event_time_span_listener(_compile_span)


def _compile_span(event: str, start: float, end: float, **_: object) -> None:
    if event.startswith("/jax/core/compile/"):
        _COMPILE_SPANS.append((start, end))


def _compile_seconds(since: float) -> float:
    """Wall seconds of compilation since ``since``; nested spans (tracing an outer function
    traces the inner ones) are counted once."""
    total, reached = 0.0, since
    for start, end in sorted(span for span in _COMPILE_SPANS if span[0] >= since):
        if end > reached:
            total += end - max(start, reached)
            reached = end
    return total


def _cpu_seconds() -> float:
    """CPU time of this process and of the children it has waited for (PyMC's chain workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _gates(report: "GateReport") -> dict:
    return {
        "passed": report.passed,
        "reasons": list(report.reasons),
        "max_rhat": round(report.max_rhat, 4),
        "min_ess_bulk": round(report.min_ess_bulk),
        "min_ess_tail": round(report.min_ess_tail),
        "divergences": report.divergences,
        "chains": report.chains,
        "draws_per_chain": report.draws_per_chain,
    }


def _ours(frame: pd.DataFrame, seed: int) -> dict:
    """Our fit from the long frame, timed from the frame (the statistics are part of the work)."""
    from stats.bayes_growth import growth_data_from_frame, growth_fit

    started, cpu, now = time.perf_counter(), _cpu_seconds(), time.time()
    data = growth_data_from_frame(frame, control="control")
    fit = growth_fit(data, seed=seed)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": _cpu_seconds() - cpu,
        "compile_seconds": _compile_seconds(now),
        "growth_fit_seconds": fit.seconds,
        "groups": fit.groups,
        "target_accept": fit.target_accept,
        "gates": _gates(fit.gates),
        "effects": {
            e.dimension: asdict(e.growth_difference_per_wave)
            for e in fit.effects
            if e.arm == "treatment"
        },
    }


def _pymc(frame: pd.DataFrame, seed: int) -> dict:
    """The per-observation non-centred model, sampled by ``pm.sample()`` with its defaults."""
    import pymc as pm

    from stats.diagnostics import convergence_gates

    dimensions = tuple(model.dimension for model in DIMENSIONS)
    D = len(dimensions)
    person, people = pd.factorize(frame["participant"])
    dimension = pd.Categorical(frame["dimension"], categories=dimensions).codes
    arm = (frame["arm"] == "treatment").to_numpy(int)
    wave = frame["wave"].to_numpy(float)
    baseline = frame[frame["wave"] == 0].groupby("dimension")["score"]
    centre = baseline.mean().reindex(dimensions).to_numpy()
    scale = baseline.std().reindex(dimensions).to_numpy()
    y = (frame["score"].to_numpy() - centre[dimension]) / scale[dimension]
    started, cpu = time.perf_counter(), _cpu_seconds()
    with pm.Model():
        level = pm.Normal("level", 0.0, 1.0, shape=(2, D))
        growth = pm.Normal("growth", 0.0, 1.0, shape=(2, D))
        sigma = pm.HalfNormal("sigma", 1.0, shape=D)
        chol, _, _ = pm.LKJCholeskyCov(
            "effects", n=2 * D, eta=2.0, sd_dist=pm.HalfNormal.dist(1.0, shape=2 * D)
        )
        z = pm.Normal("z", 0.0, 1.0, shape=(len(people), 2 * D))
        # b_i = diag(s) L_corr z_i: the Cholesky factor of the covariance is diag(s) L_corr.
        effects = z @ chol.T
        mean = (
            level[arm, dimension]
            + effects[person, 2 * dimension]
            + (growth[arm, dimension] + effects[person, 2 * dimension + 1]) * wave
        )
        pm.Normal("y", mean, sigma[dimension], observed=y)
        trace = pm.sample(random_seed=seed, progressbar=False)
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    draws = np.asarray(trace.posterior["growth"])
    gamma = (draws[:, :, 1] - draws[:, :, 0]) * scale
    stats = trace.sample_stats
    report = convergence_gates({"gamma": gamma}, divergences=int(np.sum(stats["diverging"])))
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "sampling_seconds": float(trace.posterior.attrs["sampling_time"]),
        "observations": len(frame),
        "gates": _gates(report),
        "mean_tree_depth": float(np.mean(stats["tree_depth"])),
        "gradients": int(np.sum(stats["n_steps"])),
        "effects": {
            name: {"mean": float(gamma[..., d].mean()), "sd": float(gamma[..., d].std(ddof=1))}
            for d, name in enumerate(dimensions)
        },
    }


def _child(fitter: str, participants: int, seed: int, timeout: float, compiledir: str) -> dict:
    """One fit in a fresh process, killed (with the chains it started) after ``timeout`` s."""
    environment = dict(os.environ)
    environment.pop("JAX_COMPILATION_CACHE_DIR", None)
    flags = [environment.get("PYTENSOR_FLAGS", ""), f"base_compiledir={compiledir}"]
    environment["PYTENSOR_FLAGS"] = ",".join(flag for flag in flags if flag)
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", __name__, fitter, str(participants), str(seed), out.name],
            cwd=REPO_DIR,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, so the chains' workers die with it
        )
        try:
            _, errors = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return {"killed_after_s": time.perf_counter() - started}
        if process.returncode:
            raise RuntimeError(f"The {fitter} fit of {participants} failed:\n{errors[-3000:]}")
        return json.loads(Path(out.name).read_text())


def _reml(frame: pd.DataFrame) -> tuple[float, dict[str, dict[str, float]]]:
    """The platform's exact REML per dimension: the reference the posterior must agree with."""
    from stats.growth import mixedlm_growth

    estimates = {}
    started = time.perf_counter()
    for dimension, rows in frame.groupby("dimension"):
        (contrast,) = mixedlm_growth(rows, control="control")
        estimates[str(dimension)] = {
            "estimate": contrast.estimate,
            "se": contrast.std_error,
            "ci_low": contrast.ci_low,
            "ci_high": contrast.ci_high,
            "converged": contrast.converged,
        }
    return time.perf_counter() - started, estimates


def _lme4_per_dimension(frame: pd.DataFrame, cap_s: float) -> dict | None:
    """lme4 on each dimension's rows, where R is installed: CPU seconds and the estimate."""
    if shutil.which("Rscript") is None:
        return None
    fits = {}
    with tempfile.TemporaryDirectory(prefix="lme4-") as directory:
        for dimension, rows in frame.groupby("dimension"):
            csv = Path(directory) / "rows.csv"
            write_csv(rows[["participant", "arm", "wave", "score"]], str(csv))
            fit = _lme4(csv, cap_s)
            if "killed_after_s" in fit:
                return {"killed_after_s": fit["killed_after_s"]}
            name = fit["names"].index("wave:armtreatment")
            fits[str(dimension)] = {
                "estimate": fit["fixed_effects"][name],
                "se": fit["std_errors"][name],
                "cpu_seconds": fit["cpu_seconds"],
            }
    return fits


def _agreement(ours: dict, reml: dict, truth: dict[str, float]) -> dict[str, dict]:
    return {
        dimension: {
            "bayes_mean": ours["effects"][dimension]["mean"],
            "reml": reference["estimate"],
            "reml_se": reference["se"],
            "difference_in_se": abs(ours["effects"][dimension]["mean"] - reference["estimate"])
            / reference["se"],
            "truth": truth[dimension],
            "truth_in_both_intervals": bool(
                ours["effects"][dimension]["ci_low"]
                <= truth[dimension]
                <= ours["effects"][dimension]["ci_high"]
                and reference["ci_low"] <= truth[dimension] <= reference["ci_high"]
            ),
        }
        for dimension, reference in reml.items()
    }


def _log(message: str) -> None:
    # Stderr while it runs: the whole benchmark takes up to an hour.
    print(f"[growth] {message} (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)


def _scaling(cap_s: float, compiledir: str, sizes: tuple[int, ...]) -> list[dict]:
    """PyMC, then ours cold and warm, on the same data at growing sizes, until PyMC passes the
    cap. That size is kept and marked, with our fits of it: PyMC took at least the cap there, so
    the ratio at that size is a lower bound."""
    rows = []
    for participants in sizes:
        seed = 100 + participants
        pymc = _child("pymc", participants, seed, cap_s + START_ALLOWANCE_S, compiledir)
        within = "seconds" in pymc and pymc["seconds"] <= cap_s
        row = {"participants": participants, "seed": seed, "pymc": pymc, "within_cap": within}
        _log(f"PyMC, P={participants}: {_seconds(pymc)}")
        cold = _child("ours", participants, seed, cap_s + START_ALLOWANCE_S, compiledir)
        if "seconds" not in cold:
            raise RuntimeError(f"Our cold fit of {participants} outlasted PyMC's cap.")
        warm = _ours(_trial(participants, seed)[0], seed)
        pymc_seconds = pymc["seconds"] if within else cap_s
        row |= {
            "ours_cold": cold,
            "ours_warm": warm,
            # Over the cap these are lower bounds: PyMC took longer than ``cap_s``.
            "ratio_cold": pymc_seconds / cold["seconds"],
            "ratio_warm": pymc_seconds / warm["seconds"],
        }
        if within:
            # The same model and priors, so the posteriors should match: |Δ mean| / PyMC SD.
            row["max_difference_vs_pymc_sd"] = max(
                abs(cold["effects"][name]["mean"] - effect["mean"]) / effect["sd"]
                for name, effect in pymc["effects"].items()
            )
        _log(
            f"ours, P={participants}: cold {row['ours_cold']['seconds']:.1f} s, "
            f"warm {row['ours_warm']['seconds']:.1f} s"
        )
        rows.append(row)
        if not within:
            break
    return rows


def _seconds(result: dict) -> str:
    if "seconds" in result:
        return f"{result['seconds']:.1f} s"
    return f"killed after {result['killed_after_s']:.0f} s"


def _print_summary(details: dict) -> None:
    cold, warm = details["cold"], details["warm"]
    print(
        f"\nGrowth model, {PARTICIPANTS:,} participants × {WAVES} waves × {len(DIMENSIONS)} "
        f"dimensions, 2 arms, {DROPOUT:.0%} MAR drop-out, {os.cpu_count()} CPU cores"
    )
    for label, fit in (("cold", cold), ("warm", warm)):
        gates = fit["gates"]
        verdict = "passed" if gates["passed"] else "FAILED " + "; ".join(gates["reasons"])
        print(
            f"  {label}: {fit['seconds']:.1f} s ({fit['compile_seconds']:.1f} s compiling), "
            f"{fit['cpu_seconds']:.1f} CPU s, gates {verdict}"
            f": R̂ ≤ {gates['max_rhat']}, ESS bulk ≥ {gates['min_ess_bulk']}, tail ≥ "
            f"{gates['min_ess_tail']}, {gates['divergences']} divergences, "
            f"{gates['chains']}×{gates['draws_per_chain']} draws"
        )
    met = "met" if cold["seconds"] < SECONDS_TARGET else "NOT met"
    print(f"  cold fit target < {SECONDS_TARGET:g} s: {met}")
    print(f"  REML (exact) {details['reml_seconds']:.1f} s for {len(DIMENSIONS)} dimensions")
    lme4 = details["lme4"]
    if lme4 is None:
        print("  lme4: R is not installed")
    elif "killed_after_s" in lme4:
        print(f"  lme4: killed after {lme4['killed_after_s']:.0f} s")
    else:
        seconds = sum(fit["cpu_seconds"] for fit in lme4.values())
        gap = max(
            abs(lme4[d]["estimate"] - details["reml"][d]["estimate"]) / lme4[d]["se"] for d in lme4
        )
        print(f"  lme4 {seconds:.1f} CPU s for the same fits; max |REML − lme4| {gap:.1e} SE")
    print(f"  {'dimension':18} {'Bayes':>8} {'REML':>8} {'SE':>7} {'|Δ|/SE':>7} truth inside")
    for dimension, row in details["agreement"].items():
        print(
            f"  {dimension:18} {row['bayes_mean']:8.4f} {row['reml']:8.4f} {row['reml_se']:7.4f} "
            f"{row['difference_in_se']:7.3f} {'both' if row['truth_in_both_intervals'] else 'NO'}"
        )
    print(f"  PyMC default sampler vs ours on the same data (cap {details['pymc_cap_s']:.0f} s):")
    print(
        f"  {'P':>6} {'obs':>7} {'PyMC s':>7} {'CPU s':>7} {'sampling':>8} {'depth':>5} "
        f"{'gates':>6} {'ours cold':>9} {'compile':>7} {'CPU s':>6} {'warm':>5} {'ratio cold':>10} "
        f"{'warm':>6} {'Δ/SD':>5}"
    )
    for row in details["scaling"]:
        pymc = row["pymc"]
        ours = (
            f" {row['ours_cold']['seconds']:9.1f} {row['ours_cold']['compile_seconds']:7.1f} "
            f"{row['ours_cold']['cpu_seconds']:6.1f} {row['ours_warm']['seconds']:5.1f}"
        )
        if not row["within_cap"]:
            bound = f"> {row['ratio_cold']:.1f}"
            print(
                f"  {row['participants']:6} {'':7} {'> cap':>7} {'':7} {'':8} {'':5} {'':6}{ours} "
                f"{bound:>10} {'> ' + format(row['ratio_warm'], '.1f'):>6}   ({_seconds(pymc)})"
            )
            continue
        line = (
            f"  {row['participants']:6} {pymc['observations']:7} {pymc['seconds']:7.1f} "
            f"{pymc['cpu_seconds']:7.1f} {pymc['sampling_seconds']:8.1f} "
            f"{pymc['mean_tree_depth']:5.1f} {'passed' if pymc['gates']['passed'] else 'FAILED':>6}"
        )
        line += (
            f"{ours} {row['ratio_cold']:10.1f} {row['ratio_warm']:6.1f} "
            f"{row['max_difference_vs_pymc_sd']:5.2f}"
        )
        print(line)
        if not pymc["gates"]["passed"]:
            print(f"         PyMC gates: {'; '.join(pymc['gates']['reasons'])}")
    for row in details["scaling"]:
        ratio = row["ratio_cold"]
        bound = "" if row["within_cap"] else "more than "
        print(
            f"  PyMC / ours (cold) at P={row['participants']:,}: {bound}{ratio:.1f} "
            f"(target ≥ {RATIO_TARGET:g}: {'met' if ratio >= RATIO_TARGET else 'NOT met'})"
        )
    worst = max(row["difference_in_se"] for row in details["agreement"].values())
    met = "met" if worst < AGREEMENT_TARGET_SE else "NOT met"
    print(f"  max |Bayes − REML| {worst:.3f} SE (target < {AGREEMENT_TARGET_SE:g}: {met})")
    print(
        f"  1-min load average {details['load_average']['before']:.1f} → "
        f"{details['load_average']['after']:.1f} on {os.cpu_count()} cores"
    )


def run(
    pymc_minutes: float = 30.0,
    pymc_sizes: tuple[int, ...] | None = None,
    reml_sizes: tuple[int, ...] | None = None,
    reml_only: bool = False,
    lme4_minutes: float = 30.0,
) -> list[Measurement]:
    measurements = _reml_scaling(reml_sizes or REML_SIZES, lme4_minutes * 60)
    if reml_only:
        return measurements
    with tempfile.TemporaryDirectory(prefix="jax-cache-") as cache:
        _jax_cold(cache)
        return measurements + _measure(pymc_minutes, pymc_sizes or PYMC_SIZES)


def _timed_process(command: list[str], timeout: float) -> dict:
    """Run ``command`` in its own process group, killed after ``timeout`` s: its CPU seconds
    and peak RSS (the kernel's accounting for this child alone, from ``wait4``)."""
    with tempfile.TemporaryFile("w+") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=REPO_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - started > timeout:
                os.killpg(process.pid, signal.SIGKILL)
                _, _, usage = os.wait4(process.pid, 0)
                process.returncode = -signal.SIGKILL
                return {
                    "killed_after_s": time.perf_counter() - started,
                    "process_cpu_seconds": usage.ru_utime + usage.ru_stime,
                    "peak_rss_mb": usage.ru_maxrss / 1024,
                }
            time.sleep(0.1)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            log.seek(0)
            raise RuntimeError(f"{' '.join(command)} failed:\n{log.read()[-3000:]}")
    return {
        "wall_seconds": time.perf_counter() - started,
        "process_cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def _lme4(csv: Path, cap_s: float) -> dict:
    """lme4's fit of the panel in ``csv`` in an R process of its own (``lme4_golden.R``):
    ``cpu_seconds`` is ``lmer()`` alone, ``process_cpu_seconds`` R's whole run."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        usage = _timed_process(["Rscript", str(LME4_SCRIPT), str(csv), out.name, "--no-df"], cap_s)
        if "killed_after_s" in usage:
            return usage
        return json.loads(Path(out.name).read_text()) | usage


def _reml_fits(participants: int, seed: int) -> dict:
    """In a fresh process (see ``_main``): the panel, then the platform's path from the frame
    and the fit from the statistics alone, in CPU seconds, and what the fit allocates."""
    from stats.growth import mixedlm_growth
    from stats.reml_growth import participant_statistics, reml_growth_fit

    frame = growth_panel(participants, REML_WAVES, REML_ARMS, seed)
    names = arm_names(REML_ARMS)
    cpu = time.process_time()
    (contrast,) = mixedlm_growth(frame, control="control")
    frame_cpu = time.process_time() - cpu
    cpu = time.process_time()
    participant = frame["participant"].to_numpy()  # the panel's ids are 0 … participants − 1
    arm = np.empty(participants, dtype=int)
    arm[participant] = pd.Categorical(frame["arm"], categories=names).codes
    statistics = participant_statistics(
        participant, frame["wave"].to_numpy(), frame["score"].to_numpy(), participants
    )
    statistics_cpu = time.process_time() - cpu
    cpu = time.process_time()
    fit = reml_growth_fit(arm, statistics, names)
    fit_cpu = time.process_time() - cpu
    tracemalloc.start()
    reml_growth_fit(arm, statistics, names)
    fit_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "observations": len(frame),
        "groups": fit.groups,
        "frame_cpu_seconds": frame_cpu,
        "statistics_cpu_seconds": statistics_cpu,
        "fit_cpu_seconds": fit_cpu,
        "fit_peak_mb": fit_peak / 2**20,
        "converged": fit.converged and contrast.converged,
        "newton_step": fit.newton_step,
        "evaluations": fit.evaluations,
        "names": list(fit.names),
        "fixed_effects": fit.fixed_effects.tolist(),
        "std_errors": np.sqrt(np.diag(fit.covariance)).tolist(),
        "contrast": {"estimate": contrast.estimate, "se": contrast.std_error, "df": contrast.df},
    }


def _lme4_agreement(ours: dict, lme4: dict) -> float:
    """The largest relative difference between our and lme4's fixed effects and SEs."""
    gaps = []
    for i, name in enumerate(ours["names"]):
        j = lme4["names"].index(
            {"Intercept": "(Intercept)"}.get(name, name.replace("[T.", "").replace("]", ""))
        )
        for key in ("fixed_effects", "std_errors"):
            gaps.append(abs(ours[key][i] - lme4[key][j]) / abs(lme4[key][j]))
    return max(gaps)


def _reml_scaling(sizes: tuple[int, ...], cap_s: float) -> list[Measurement]:
    """Ours and lme4 on the same panels, size by size (see the module doc)."""
    has_r = shutil.which("Rscript") is not None
    recorded = json.loads(LME4_TIMINGS.read_text()) if LME4_TIMINGS.exists() else {}
    rows = []
    for participants in sizes:
        seed = REML_SEED + participants
        command = [sys.executable, "-m", __name__, "reml", str(participants), str(seed)]
        with tempfile.TemporaryDirectory(prefix="reml-") as directory:
            out = Path(directory) / "ours.json"
            usage = _timed_process([*command, str(out)], cap_s)
            if "killed_after_s" in usage:
                raise RuntimeError(f"Our REML fits of {participants:,} outlasted {cap_s:.0f} s.")
            ours = json.loads(out.read_text()) | usage
            _log(f"REML, P={participants:,}: {ours['frame_cpu_seconds']:.2f} CPU s from the frame")
            if has_r:
                csv = Path(directory) / "panel.csv"
                write_csv(growth_panel(participants, REML_WAVES, REML_ARMS, seed), str(csv))
                lme4 = _lme4(csv, cap_s)
                if "killed_after_s" not in lme4:
                    recorded[str(participants)] = {
                        k: lme4[k]
                        for k in ("cpu_seconds", "process_cpu_seconds", "peak_rss_mb", "versions")
                    } | {"seed": seed}
                _log(f"lme4, P={participants:,}: {lme4.get('cpu_seconds', 'killed')} CPU s")
            else:
                lme4 = recorded.get(str(participants), {}) | {"recorded": True}
        rows.append({"participants": participants, "seed": seed, "ours": ours, "lme4": lme4})
    if has_r:
        LME4_TIMINGS.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
    _print_reml(rows, has_r)
    measurements = []
    for row in rows:
        ours, lme4 = row["ours"], row["lme4"]
        killed = "killed_after_s" in lme4
        # Killed at the cap, the CPU seconds R had spent by then are a lower bound.
        baseline = lme4.get("cpu_seconds", lme4.get("process_cpu_seconds", float("nan")))
        from_statistics = ours["statistics_cpu_seconds"] + ours["fit_cpu_seconds"]
        measurements.append(
            Measurement(
                name=f"REML growth P={row['participants']:,} (CPU s)",
                seconds=ours["frame_cpu_seconds"],
                baseline_name="lme4 lmer()" + (" recorded" if lme4.get("recorded") else ""),
                baseline_seconds=baseline,
                note=(
                    f"from statistics {from_statistics:.2f} CPU s; peak RSS "
                    f"{ours['peak_rss_mb']:.0f} MB vs R "
                    f"{lme4.get('peak_rss_mb', float('nan')):.0f} MB"
                    + ("; lme4 killed at the cap: a lower bound" if killed else "")
                ),
                details=row,
            )
        )
    return measurements


def _print_reml(rows: list[dict], has_r: bool) -> None:
    source = (
        "lme4 timed in this run"
        if has_r
        else "R is not installed here: lme4's figures are those RECORDED by an earlier run"
    )
    print(
        f"\nREML growth model, {REML_WAVES} waves, {REML_ARMS} arms, waves skipped and drop-out; "
        f"CPU seconds; {source}"
    )
    print(
        f"  {'P':>9} {'obs':>10} {'groups':>6} {'ours frame':>10} {'ours stats':>10} "
        f"{'lme4':>8} {'lme4/frame':>10} {'lme4/stats':>10} {'RSS ours':>9} {'fit MB':>7} "
        f"{'RSS R':>7} {'max rel Δ':>9}"
    )
    for row in rows:
        ours, lme4 = row["ours"], row["lme4"]
        from_statistics = ours["statistics_cpu_seconds"] + ours["fit_cpu_seconds"]
        if "cpu_seconds" in lme4:
            seconds = lme4["cpu_seconds"]
            lme4_text = f"{seconds:8.2f}"
            ratios = (
                f"{seconds / ours['frame_cpu_seconds']:10.1f} {seconds / from_statistics:10.1f}"
            )
        elif "killed_after_s" in lme4:
            seconds = lme4["process_cpu_seconds"]
            lme4_text = f"{'>' + format(seconds, '.0f'):>8}"
            ratios = (
                f"{'>' + format(seconds / ours['frame_cpu_seconds'], '.0f'):>10} "
                f"{'>' + format(seconds / from_statistics, '.0f'):>10}"
            )
        else:
            lme4_text, ratios = f"{'—':>8}", f"{'—':>10} {'—':>10}"
        agreement = f"{_lme4_agreement(ours, lme4):9.1e}" if "names" in lme4 else f"{'—':>9}"
        print(
            f"  {row['participants']:9,} {ours['observations']:10,} {ours['groups']:6} "
            f"{ours['frame_cpu_seconds']:10.2f} {from_statistics:10.2f} {lme4_text} {ratios} "
            f"{ours['peak_rss_mb']:9.0f} {ours['fit_peak_mb']:7.0f} "
            f"{lme4.get('peak_rss_mb', float('nan')):7.0f} {agreement}"
        )
    print(
        "  ours frame: stats.growth.mixedlm_growth from the long frame; ours stats: statistics "
        "and reml_growth_fit; lme4: lmer() alone (>: killed at the cap, R's CPU seconds by "
        "then); ratios above 1: ours faster; RSS: each process's peak with its data (MB); fit "
        "MB: what our fit allocated (tracemalloc)"
    )


def _measure(pymc_minutes: float, pymc_sizes: tuple[int, ...]) -> list[Measurement]:
    cap_s = pymc_minutes * 60
    load_before = os.getloadavg()[0]
    frame, truth = _trial(PARTICIPANTS, seed=1)
    _log(f"simulated {len(frame):,} scores; cold fit")
    cold = _ours(frame, seed=1)
    _log(f"cold fit {cold['seconds']:.1f} s; REML")
    reml_seconds, reml = _reml(frame)
    lme4 = _lme4_per_dimension(frame, cap_s)
    _log(f"REML {reml_seconds:.1f} s; warm fit")
    warm = _ours(_trial(PARTICIPANTS, seed=2)[0], seed=2)
    with tempfile.TemporaryDirectory(prefix="pytensor-") as compiledir:
        scaling = _scaling(cap_s, compiledir, pymc_sizes)
    details = {
        "participants": PARTICIPANTS,
        "waves": WAVES,
        "dimensions": len(DIMENSIONS),
        "scores": len(frame),
        "effect_per_wave": EFFECT,
        "cpu_cores": os.cpu_count(),
        "cold": cold,
        "warm": warm,
        "reml_seconds": reml_seconds,
        "reml": reml,
        "lme4": lme4,
        "agreement": _agreement(cold, reml, truth),
        "pymc_cap_s": cap_s,
        "scaling": scaling,
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
    }
    _print_summary(details)
    worst = max(row["difference_in_se"] for row in details["agreement"].values())
    measurements = [
        Measurement(
            name=f"bayes_growth {PARTICIPANTS // 1000}k×{WAVES}×{len(DIMENSIONS)} (cold)",
            seconds=cold["seconds"],
            baseline_name=f"exact REML, {len(DIMENSIONS)} dims",
            baseline_seconds=reml_seconds,
            note=(
                f"incl. compile; gates {'passed' if cold['gates']['passed'] else 'FAILED'}; "
                f"warm {warm['seconds']:.1f} s; max |Bayes−REML| {worst:.3f} SE"
            ),
            details=details,
        )
    ]
    for row in scaling:
        within = row["within_cap"]
        measurements.append(
            Measurement(
                name=f"bayes_growth vs PyMC default, P={row['participants']:,} (cold)",
                seconds=row["ours_cold"]["seconds"],
                baseline_name="PyMC pm.sample()" if within else "PyMC, killed at the cap",
                baseline_seconds=row["pymc"]["seconds"] if within else cap_s,
                note=(
                    f"PyMC gates {'passed' if row['pymc']['gates']['passed'] else 'FAILED'}; "
                    f"warm ratio {row['ratio_warm']:.0f}"
                    if within
                    else "PyMC did not finish: the ratio is a lower bound"
                ),
                details={"scaling": scaling} if row is scaling[-1] else {},
            )
        )
    return measurements


def _main(fitter: str, participants: str, seed: str, out: str) -> None:
    """A child's fit (see ``_child`` and ``_reml_scaling``): its result as JSON in ``out``."""
    if fitter == "reml":
        Path(out).write_text(json.dumps(_reml_fits(int(participants), int(seed))))
        return
    frame, _ = _trial(int(participants), int(seed))
    if fitter == "ours":
        with tempfile.TemporaryDirectory(prefix="jax-cache-") as cache:
            _jax_cold(cache)
            result = _ours(frame, int(seed))
    else:
        result = _pymc(frame, int(seed))
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    _main(*sys.argv[1:])
