"""How our samplers run in a process: where their chains go, and what JAX keeps compiled.

Chains: see :func:`chain_method`.

Compiled code: numpyro builds a fresh jitted sampling loop on every ``MCMC.run``, and JAX keeps
every executable it compiles alive in its in-memory caches. A fit of the growth model leaves about
1,600 memory mappings behind (measured at 120 participants × 4 waves × 2 dimensions), so a
process that fits about forty times (a Celery worker, the test runner, the coverage study)
reaches Linux's default limit of 65,530 mappings and LLVM fails with "Cannot allocate memory".
After every ``FITS_PER_RELEASE`` fits the caches are dropped, together with the samplers built on
them; the next fit traces again (about 12 s at that size) and takes XLA's output from the
persistent compilation cache.
"""

import jax

FITS_PER_RELEASE = 10


def chain_method(chains: int, *, cpu_fallback: str) -> str:
    """How numpyro should run ``chains`` chains on JAX's default backend.

    On an accelerator the chains are vectorised: one batched program keeps the device busy. On
    the CPU they run in parallel, one thread each, when the process has a CPU device per chain
    (``JAX_NUM_CPU_DEVICES``, which the settings default to 4, read when JAX starts); otherwise
    ``cpu_fallback``. In parallel each chain also compiles as a single-chain program, which
    compiles in about half the time of the vectorised one (growth model at 1,500 participants on
    2 cores: cold fit 16.7 s with 7.3 s compiling, against 30.4 s with 15.6 s vectorised).
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
