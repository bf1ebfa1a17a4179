"""The reference backend: ``jax.lax.scan`` over the cell's step, differentiated by autodiff.

The same maths as the engine (``_steps.step`` runs the spec's ``update``), with no hand-written
derivative: every autodiff mode works here, forward mode (``jax.jvp``, ``jax.jacfwd``,
``jax.hessian``) included, and a projected LSTM (``weight_hr``) runs here on every backend.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from . import _steps
from ._specs import CellSpec

Array = jax.Array


def inputs(xp: Array, seq_lengths: Array | None) -> Any:
    """What a scan over time-major ``xp`` reads per step: xp(t), and with ``seq_lengths`` (xp(t), valid(t))."""
    return xp if seq_lengths is None else (xp, _steps.valid_mask(seq_lengths, xp.shape[0]))


def masked_step(step, carry: Any, inp: tuple[Array, Array]) -> tuple[Any, Array]:
    """``step(carry, xp_t) -> (carry', y)`` at a step that may be padding: a padded step leaves the
    carry untouched and outputs zeros, so the forward walk ends at each sequence's last valid step
    and the reverse walk starts there (packed semantics)."""
    xp_t, valid = inp
    new, y = step(carry, xp_t)
    return jax.tree.map(lambda n, o: jnp.where(valid, n, o), new, carry), jnp.where(valid, y, jnp.zeros_like(y))


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

    def step(carry, xp_t):
        return _steps.step(spec, w, carry, xp_t, precision)

    body = step if seq_lengths is None else functools.partial(masked_step, step)
    carry_n, ys = jax.lax.scan(body, carry0, inputs(xp, seq_lengths), reverse=reverse, unroll=unroll)
    return (jnp.swapaxes(ys, 0, 1) if axis == 1 else ys), carry_n
