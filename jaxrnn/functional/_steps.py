r"""One step of a cell from its torch weights: the input half, the biases, and the recurrent half.

``w`` is one layer and direction's parameters under their bare names (``weight_ih``,
``weight_hh``, ``bias_ih``, ``bias_hh``, ``weight_hr``), already in the compute dtype, as the
layers hand them down. The step is

.. math::
    xp = W_{ih} x + b_x, \quad hh = W_{hh} h + b_h, \quad
    \text{carry}' = \text{update}(xp, hh, \text{carry})

with :math:`b_x = b_{ih} + b_{hh}, b_h = 0` for a cell whose update reads only ``xp + hh``
(``fold_hh_bias``) and :math:`b_x = b_{ih}, b_h = b_{hh}` otherwise; a projected LSTM then sets
:math:`h' = W_{hr} h'`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ._specs import CellSpec, LSTMState

Array = jax.Array


def valid_mask(seq_lengths: Array | None, steps: int, axis: int = 0) -> Array | None:
    """Booleans (time, batch, 1), or (batch, time, 1) for ``axis=1``: True at each sequence's
    valid steps; None without lengths."""
    if seq_lengths is None:
        return None
    valid = jnp.arange(steps)[:, None] < seq_lengths[None, :]
    return (valid if axis == 0 else valid.T)[:, :, None]


def add_bias(y: Array, bias: Array | None) -> Array:
    """``y + bias`` on the last axis, without implicit rank promotion."""
    if bias is None:
        return y
    return y + bias.astype(y.dtype).reshape((1,) * (y.ndim - 1) + bias.shape)


def biases(spec: CellSpec, w: dict[str, Array]) -> tuple[Array | None, Array | None]:
    """``(b_x, b_h)``: the bias joined to the input half and the one joined to ``W_hh h``."""
    if "bias_ih" not in w:
        return None, None
    if spec.fold_hh_bias:  # one bias for the sum xp + hh, in the order torch's fused gates add them
        return w["bias_ih"] + w["bias_hh"], None
    return w["bias_ih"], w["bias_hh"]


def project(w_ih: Array, x: Array, precision: Any, blocks: int = 1) -> tuple[Array, ...]:
    """``W_ih x`` without biases for any leading shape, as ``blocks`` arrays of the gates' rows,
    each its own GEMM (one for the whole sequence when x is (time, batch, I))."""
    w_ih = w_ih.astype(x.dtype)
    return tuple(jnp.matmul(x, w_k.T, precision=precision) for w_k in jnp.split(w_ih, blocks))


def input_half(spec: CellSpec, w: dict[str, Array], x: Array, precision: Any) -> Array:
    """``W_ih x + b_x``: what ``step`` reads as ``xp``."""
    (xp,) = project(w["weight_ih"], x, precision)
    return add_bias(xp, biases(spec, w)[0])


def step(spec: CellSpec, w: dict[str, Array], carry: Any, xp: Array, precision: Any) -> tuple[Any, Array]:
    """The recurrent half on ``xp = input_half(x)``: returns ``(carry', h')``."""
    h = carry.h if isinstance(carry, LSTMState) else carry
    hh = add_bias(jnp.matmul(h, w["weight_hh"].astype(h.dtype).T, precision=precision), biases(spec, w)[1])
    new = spec.update(xp, hh, carry)
    if "weight_hr" in w:
        new = LSTMState(jnp.matmul(new.h, w["weight_hr"].astype(new.h.dtype).T, precision=precision), new.c)
    return new, (new.h if isinstance(new, LSTMState) else new)
