"""Strict, exact JAX for the whole suite: float64 available, highest matmul precision, no rank promotion.

x64 lets the parity tests compare against torch.float64 to ~1e-10; highest precision keeps the
same tests meaningful on GPU/TPU (no TF32/bf16 matmuls); rank promotion 'raise' turns a silent
mask broadcast into an error.
"""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_default_matmul_precision", "highest")
jax.config.update("jax_numpy_rank_promotion", "raise")
