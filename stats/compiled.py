"""How our samplers run in a process: where their chains go, and what JAX keeps compiled.

Chains: see :func:`chain_method`.

Compiled code: numpyro's ``MCMC`` builds a fresh jitted sampling loop on every run (the ordinal
model uses it; the growth model compiles its own sampler once per shape, ``stats.bayes_growth``),
and JAX keeps every executable it compiles alive in its in-memory caches. A fit that compiles
leaves more than a thousand memory mappings behind, so a process that fits a few dozen times (a
Celery worker, the test runner, the coverage study) reaches Linux's default limit of 65,530
mappings (``vm.max_map_count``) and LLVM fails with "Cannot allocate memory". After every
``FITS_PER_RELEASE`` fits the caches are dropped, together with the samplers built on them; the
next fit traces again and takes XLA's output from the persistent compilation cache.
"""

import jax

FITS_PER_RELEASE = 10


def chain_method(chains: int, *, cpu_fallback: str) -> str:
    """How numpyro should run ``chains`` chains on JAX's default backend.

    On an accelerator the chains are vectorised: one batched program keeps the device busy. On
    the CPU they run in parallel, one thread each, when the process has a CPU device per chain
    (``JAX_NUM_CPU_DEVICES``, which the settings default to 4, read when JAX starts); otherwise
    ``cpu_fallback``. In parallel each chain also compiles as a single-chain program, which
    compiles faster than the vectorised one (``make bench BENCH_ARGS=growth`` reports the cold
    fit and its compile time).
    """
    if jax.default_backend() != "cpu":
        return "vectorized"
    if jax.local_device_count() >= chains:
        return "parallel"
    return cpu_fallback


# Module state on purpose: the caches it bounds are per process too.
_sampler_caches: list[dict] = []
_fits_since_release = 0


def sampler_cache() -> dict:
    """A module's cache of compiled samplers, emptied whenever JAX's caches are."""
    cache: dict = {}
    _sampler_caches.append(cache)
    return cache


def fit_finished() -> None:
    """Count a finished (or failed) fit; every ``FITS_PER_RELEASE`` fits, release."""
    global _fits_since_release
    _fits_since_release += 1
    if _fits_since_release >= FITS_PER_RELEASE:
        release()


def release() -> None:
    """Drop every compiled executable and sampler this process holds."""
    global _fits_since_release
    for cache in _sampler_caches:
        cache.clear()
    jax.clear_caches()
    _fits_since_release = 0
