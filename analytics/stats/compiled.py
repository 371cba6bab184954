"""What JAX keeps compiled in a long-lived process, bounded.

numpyro builds a fresh jitted sampling loop on every ``MCMC.run``, and JAX keeps every
executable it compiles alive in its in-memory caches. A fit of the growth model leaves about
1,600 memory mappings behind (measured at 120 participants × 4 waves × 2 dimensions), so a
process that fits about forty times (a Celery worker, the test runner, the coverage study)
reaches Linux's default limit of 65,530 mappings and LLVM fails with "Cannot allocate memory".
After every ``FITS_PER_RELEASE`` fits the caches are dropped, together with the samplers built on
them; the next fit traces again (about 12 s at that size) and takes XLA's output from the
persistent compilation cache.
"""

import jax

FITS_PER_RELEASE = 10

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
