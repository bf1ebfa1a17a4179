"""Strict, exact JAX for the whole suite: float64 available, highest matmul precision, no rank promotion.

x64 lets the parity tests compare against torch.float64 to ~1e-10; highest precision keeps the
same tests meaningful on GPU/TPU (no TF32/bf16 matmuls); rank promotion 'raise' turns a silent
mask broadcast into an error.

After each test module the compiled code is released (``jax.clear_caches``): on the CPU each
executable XLA keeps holds about ten memory mappings, and a worker that runs half the suite
reaches Linux's default limit of 65,530 (``vm.max_map_count``); XLA's next compile then cannot
map its code ("LLVM compilation error: Cannot allocate memory") and the worker dies, with a
segmentation fault or an abort.
"""

import gc

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_default_matmul_precision", "highest")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
    yield
    jax.clear_caches()
    gc.collect()
