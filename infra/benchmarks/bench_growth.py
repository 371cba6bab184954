"""The Bayesian growth model on a large simulated trial, beside statsmodels MixedLM and PyMC.

The trial: 10,000 participants × 12 waves × 3 dimensions, 2 arms, 20% drop-out at random given
the last observed score (MAR), unclipped scores (so the true effect holds exactly). Reported:

- *cold*: wall time of the first fit in the process (sufficient statistics, JAX tracing and
  compilation, NUTS, extra draws until every arm × dimension effect passes the gates), with an
  empty persistent compilation cache so that nothing compiled by an earlier run is reused, and
  the part of it JAX reports spending on tracing, lowering and compiling; *warm*: a second fit
  on new data of the same size, reusing what JAX cached from the first (parallel chains compile
  their sampling loop again, with the data in it). Baseline: statsmodels MixedLM
  (REML, L-BFGS), one fit per dimension, and the agreement |posterior mean − REML estimate| /
  REML SE per dimension (target < 0.2), with whether the true effect lies inside both 95%
  intervals.
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
import signal
import subprocess
import sys
import tempfile
import time
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
TREATMENT = "wave:C(arm, Treatment('control'))[T.treatment]"
REPO_DIR = Path(__file__).resolve().parents[2]


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
    later fits in the process reuse what the cache holds, as a worker's later fits do through
    the cache that the settings configure. numpyro builds its sampling loop anew for every run:
    vectorised chains find it in the cache, parallel ones compile it again (the data are
    constants in it).
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


def _mixedlm(frame: pd.DataFrame) -> tuple[float, dict[str, dict[str, float]]]:
    """REML per dimension, written independently of our code: the reference the posterior must
    agree with."""
    import statsmodels.formula.api as smf

    estimates = {}
    started = time.perf_counter()
    for dimension, rows in frame.groupby("dimension"):
        model = smf.mixedlm(
            "score ~ wave * C(arm, Treatment('control'))",
            rows,
            groups=rows["participant"],
            re_formula="~wave",
        )
        result = model.fit(reml=True, method=["lbfgs"])
        low, high = result.conf_int().loc[TREATMENT]
        estimates[str(dimension)] = {
            "estimate": float(result.params[TREATMENT]),
            "se": float(result.bse[TREATMENT]),
            "ci_low": float(low),
            "ci_high": float(high),
            "converged": bool(result.converged),
        }
    return time.perf_counter() - started, estimates


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
    print(f"  MixedLM (REML) {details['mixedlm_seconds']:.1f} s for {len(DIMENSIONS)} dimensions")
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


def run(pymc_minutes: float = 30.0, pymc_sizes: tuple[int, ...] | None = None) -> list[Measurement]:
    with tempfile.TemporaryDirectory(prefix="jax-cache-") as cache:
        _jax_cold(cache)
        return _measure(pymc_minutes, pymc_sizes or PYMC_SIZES)


def _measure(pymc_minutes: float, pymc_sizes: tuple[int, ...]) -> list[Measurement]:
    cap_s = pymc_minutes * 60
    load_before = os.getloadavg()[0]
    frame, truth = _trial(PARTICIPANTS, seed=1)
    _log(f"simulated {len(frame):,} scores; cold fit")
    cold = _ours(frame, seed=1)
    _log(f"cold fit {cold['seconds']:.1f} s; MixedLM")
    mixedlm_seconds, reml = _mixedlm(frame)
    _log(f"MixedLM {mixedlm_seconds:.1f} s; warm fit")
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
        "mixedlm_seconds": mixedlm_seconds,
        "mixedlm": reml,
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
            baseline_name=f"MixedLM, {len(DIMENSIONS)} dims",
            baseline_seconds=mixedlm_seconds,
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
    """A child's fit (see ``_child``): its result as JSON in ``out``."""
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
