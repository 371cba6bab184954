"""The bound on what JAX keeps compiled in a long-lived process (``analytics.stats.compiled``).
The end-to-end check is the coverage study: 75 fits in each of its processes, about twice what
one process held before it failed with LLVM's "Cannot allocate memory"."""

import jax
import jax.numpy as jnp
import pytest

from analytics.stats import compiled

pytestmark = pytest.mark.unit


def test_every_tenth_fit_releases_the_samplers_and_jaxs_compiled_code():
    compiled.release()
    samplers = compiled.sampler_cache()
    samplers["shape"] = "a sampler"
    double = jax.jit(lambda x: 2 * x)
    double(jnp.ones(3))
    assert double._cache_size() == 1
    for _ in range(compiled.FITS_PER_RELEASE - 1):
        compiled.fit_finished()
    assert samplers == {"shape": "a sampler"} and double._cache_size() == 1
    compiled.fit_finished()
    assert samplers == {} and double._cache_size() == 0
