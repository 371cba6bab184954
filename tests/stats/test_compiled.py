"""How samplers run in a process (``stats.compiled``): where their chains go, and the
bound on what JAX keeps compiled. The end-to-end check of the bound is the coverage study: 75
fits in each of its processes, about twice what one process held before it failed with LLVM's
"Cannot allocate memory"."""

import os

import jax
import jax.numpy as jnp
import pytest

from stats import compiled

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


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="accelerators vectorise the chains")
def test_chains_run_in_parallel_when_the_process_has_a_cpu_device_for_each():
    # The settings give the process (this one, as a worker) its CPU devices before JAX starts.
    devices = jax.local_device_count()
    assert devices == int(os.environ["JAX_NUM_CPU_DEVICES"])
    assert compiled.chain_method(devices, cpu_fallback="sequential") == "parallel"
    assert compiled.chain_method(devices + 1, cpu_fallback="sequential") == "sequential"
