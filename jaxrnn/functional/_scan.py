"""The reference backend: ``jax.lax.scan`` over the cell's step, differentiated by autodiff.

The same maths as the engine (``_steps.step`` runs the spec's ``update``), with no hand-written
derivative: every autodiff mode works here, forward mode (``jax.jvp``, ``jax.jacfwd``,
``jax.hessian``) included, and a projected LSTM (``weight_hr``) runs here on every backend.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from . import _steps
from ._specs import CellSpec

Array = jax.Array


def run(
    spec: CellSpec,
    w: dict[str, Array],
    x: Array,
    carry0: Any,
    seq_lengths: Array | None,
    *,
    reverse: bool = False,
    axis: int = 0,
    precision: Any = None,
    unroll: int = 1,
) -> tuple[Array, Any]:
    """One direction of a layer, as ``_engine.run`` (same arguments and results)."""
    if axis == 1:
        x = jnp.swapaxes(x, 0, 1)
    xp = _steps.input_half(spec, w, x, precision)
    if seq_lengths is None:

        def body(carry, xp_t):
            return _steps.step(spec, w, carry, xp_t, precision)

        inputs: Any = xp
    else:

        def body(carry, inp):
            xp_t, valid = inp
            new, y = _steps.step(spec, w, carry, xp_t, precision)
            carry = jax.tree.map(lambda n, o: jnp.where(valid, n, o), new, carry)
            return carry, jnp.where(valid, y, jnp.zeros_like(y))

        inputs = (xp, (jnp.arange(x.shape[0])[:, None] < seq_lengths[None, :])[:, :, None])
    carry_n, ys = jax.lax.scan(body, carry0, inputs, reverse=reverse, unroll=unroll)
    return (jnp.swapaxes(ys, 0, 1) if axis == 1 else ys), carry_n
