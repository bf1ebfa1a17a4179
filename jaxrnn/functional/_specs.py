r"""Each cell's maths, written once: its elementwise step and that step's derivative.

A layer's step is ``W_ih x + b_ih`` (the input half, batched over the sequence), ``W_hh h + b_hh``
(the recurrent half, one matmul per step) and an elementwise update of the carry from both. A
``CellSpec`` holds that update and what an engine needs around it:

- ``gates``: how many H-sized row blocks the weights stack (1, 4 for i, f, g, o, 3 for r, z, n);
- ``fold_hh_bias``: the update reads ``xp`` and ``hh`` only through their sum, so
  ``b_ih + b_hh`` can join the input half as one bias (not the GRU: ``b_hn`` sits inside
  ``r * (W_hn h + b_hn)``);
- ``forward_step(xp, hh, carry) -> (carry', saved)``: the update and the activations its
  derivative reads;
- ``backward_step(saved, prev, new, d_new) -> (d xp, d hh, d prev)``: that derivative, written
  out from the saved activations (no transcendental function to recompute). d xp and d hh are
  tuples of ``blocks`` row blocks (a None block of d hh is d xp's block: stored once); d prev is
  the carry's cotangent without its path through ``W_hh`` (None where there is none), which the
  engine adds.

The carry is h alone, or ``LSTMState(h, c)`` (h first: the array ``W_hh`` multiplies).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class LSTMState(NamedTuple):
    """The carry of an LSTM: hidden state h (..., proj_size or hidden_size) and cell state c (..., hidden_size).

    (The same pair also holds the carry's shapes, or a cotangent with None for "no direct path".)
    """

    h: Any
    c: Any


@dataclasses.dataclass(frozen=True)
class CellSpec:
    """A cell as data plus maths (see the module docstring); ``blocks`` is how many row blocks its
    derivative is written in (1, or G where the blocks' hh cotangents differ, as the GRU's n)."""

    mode: str
    gates: int
    fold_hh_bias: bool
    blocks: int
    forward_step: Callable[[Array, Array, Any], tuple[Any, tuple[Array, ...]]]
    backward_step: Callable[[tuple[Array, ...], Any, Any, Any], tuple[tuple, tuple, Any]]

    def update(self, xp: Array, hh: Array, carry: Any) -> Any:
        """``forward_step``'s new carry: the step as autodiff (the scan reference) runs it."""
        return self.forward_step(xp, hh, carry)[0]

    def carry_shapes(self, lead: tuple[int, ...], hidden_size: int, state_size: int) -> Any:
        """The carry's shapes for leading axes ``lead``: h (lead + (state_size,)), and c for the LSTM."""
        if self.mode == "lstm":
            return LSTMState(lead + (state_size,), lead + (hidden_size,))
        return lead + (hidden_size,)

    def zero_carry(self, lead: tuple[int, ...], hidden_size: int, state_size: int, dtype) -> Any:
        """A carry of zeros of ``carry_shapes``."""
        shapes = self.carry_shapes(lead, hidden_size, state_size)
        if isinstance(shapes, LSTMState):
            return LSTMState(*(jnp.zeros(s, dtype) for s in shapes))
        return jnp.zeros(shapes, dtype)


# --------------------------------------------------------------------------- Elman


def _elman(mode: str, act: Callable[[Array], Array], act_grad: Callable[[Array], Array]) -> CellSpec:
    def forward_step(xp, hh, h):
        return act(xp + hh), ()

    def backward_step(saved, prev, new, d_new):
        return (d_new * act_grad(new),), (None,), None

    return CellSpec(mode, 1, True, 1, forward_step, backward_step)


# h' = tanh(a): tanh'(a) = 1 - h'^2; h' = relu(a): relu'(a) = [h' > 0] (torch's relu' at 0 is 0)
RNN_TANH = _elman("rnn_tanh", jnp.tanh, lambda y: 1 - y * y)
RNN_RELU = _elman("rnn_relu", jax.nn.relu, lambda y: (y > 0).astype(y.dtype))


# --------------------------------------------------------------------------- LSTM


def _lstm_forward(xp: Array, hh: Array, carry: LSTMState) -> tuple[LSTMState, tuple[Array, ...]]:
    """From ``xp = W_ih x + b_ih + b_hh`` and ``hh = W_hh h``: ``LSTMState(σ(o) tanh(c'), c')`` (h
    before any projection) and the activations ``(σ(i), σ(f), tanh(g), σ(o))``."""
    gates = xp + hh
    # σ over all four blocks, then slices: one vectorised pass (XLA's CPU loop runs σ of each
    # sliced block 1.5x slower); the g block's σ goes unused.
    i, f, _, o = jnp.split(jax.nn.sigmoid(gates), 4, axis=-1)
    g = jnp.tanh(jnp.split(gates, 4, axis=-1)[2])
    c = f * carry.c.astype(i.dtype) + i * g
    return LSTMState(o * jnp.tanh(c), c), (i, f, g, o)


def _lstm_backward(saved, prev: LSTMState, new: LSTMState, d_new: LSTMState):
    r"""With :math:`\tau = \tanh(c')` and :math:`\delta c = \bar c' + \bar h' o (1 - \tau^2)`:
    :math:`\bar a_i = \delta c\, g\, i(1-i)`, :math:`\bar a_f = \delta c\, c\, f(1-f)`,
    :math:`\bar a_g = \delta c\, i (1-g^2)`, :math:`\bar a_o = \bar h' \tau\, o(1-o)`,
    :math:`\bar c = \delta c\, f` (a the pre-activations). d xp = (ā,) (4H), d hh = d xp, and h
    reaches nothing but ``W_hh h``."""
    i, f, g, o = saved
    tau = jnp.tanh(new.c)
    dc = d_new.c + d_new.h * o * (1 - tau * tau)
    d_i, d_f, d_g = dc * g * i * (1 - i), dc * prev.c * f * (1 - f), dc * i * (1 - g * g)
    d_gates = jnp.concatenate([d_i, d_f, d_g, d_new.h * tau * o * (1 - o)], axis=-1)
    return (d_gates,), (None,), LSTMState(None, dc * f)


LSTM = CellSpec("lstm", 4, True, 1, _lstm_forward, _lstm_backward)


# --------------------------------------------------------------------------- GRU


def _gru_forward(xp: Array, hh: Array, h: Array) -> tuple[Array, tuple[Array, ...]]:
    """From ``xp = W_ih x + b_ih`` and ``hh = W_hh h + b_hh``: h' and ``(r, z, n, W_hn h + b_hn)``."""
    hidden = xp.shape[-1] // 3
    r, z = jnp.split(jax.nn.sigmoid(xp[..., : 2 * hidden] + hh[..., : 2 * hidden]), 2, axis=-1)
    hn = hh[..., 2 * hidden :]
    n = jnp.tanh(xp[..., 2 * hidden :] + r * hn)
    return (1 - z) * n + z * h.astype(n.dtype), (r, z, n, hn)


def _gru_backward(saved, prev: Array, new: Array, d_new: Array):
    r""":math:`\bar a_n = \bar h' (1-z)(1-n^2)`, :math:`\bar a_z = \bar h' (h - n) z(1-z)`,
    :math:`\bar a_r = \bar a_n (W_{hn} h + b_{hn}) r(1-r)`: d xp = (ā_r, ā_z, ā_n), d hh =
    (ā_r, ā_z, ā_n r) and d prev = h̄' z."""
    r, z, n, hn = saved
    dn = d_new * (1 - z) * (1 - n * n)
    dz = d_new * (prev - n) * z * (1 - z)
    dr = dn * hn * r * (1 - r)
    return (dr, dz, dn), (None, None, dn * r), d_new * z


# Three blocks: the n gate's hh cotangent (ā_n r) is not its xp cotangent, and XLA's CPU loop
# writes three (N, H) blocks faster than it slices one (N, 3H) row (benchmarks/NOTES.md, idea 8).
GRU = CellSpec("gru", 3, False, 3, _gru_forward, _gru_backward)

SPECS = {spec.mode: spec for spec in (RNN_TANH, RNN_RELU, LSTM, GRU)}
