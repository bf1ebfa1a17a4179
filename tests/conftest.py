"""Strict, exact JAX for the whole suite: float64 available, highest matmul precision, no rank promotion.

x64 lets the parity tests compare against torch.float64 to ~1e-10; highest precision keeps the
same tests meaningful on GPU/TPU (no TF32/bf16 matmuls); rank promotion 'raise' turns a silent
mask broadcast into an error.

The suite's shapes are tiny, so its time is XLA's compiling, not running: LLVM's optimisation
level 0 without its expensive passes compiles each test's program about 30% faster (measured on
the RNN parity sweep and the CLI's ``all`` run). It changes how the machine code is scheduled, not
the HLO's arithmetic (XLA does not reassociate floats at any level), so every tolerance stands.
"""

import os

os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true"]
).strip()

import jax  # noqa: E402  (after XLA_FLAGS: the backend reads them when it starts)

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_default_matmul_precision", "highest")
jax.config.update("jax_numpy_rank_promotion", "raise")
