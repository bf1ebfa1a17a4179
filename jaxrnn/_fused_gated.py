r"""LSTM and GRU recurrences with a hand-written backward pass: ``_fused``'s plan for any gated cell.

The layer computes the input half of every step first, one GEMM for the whole sequence,
``xp(t) = W_ih x(t)``. What is left is the sequential part, for a cell given by its elementwise
``update``:

.. math::
    hh(t) = W_{hh} h(t-1) + b_{hh}, \qquad
    \text{carry}(t) = \text{update}(xp(t) + b_{ih}, hh(t), \text{carry}(t-1))

(for the LSTM, whose update reads only the sum of its first two arguments, ``b_ih + b_hh`` is
added to xp(t) as one bias, the order of additions of the cell's own projection).
The biases join the step's elementwise work instead of a pass over the whole xp.
``h`` is the carry's first array (``LSTMState(h, c)`` for the LSTM, h alone for the GRU).

- forward: a loop of one matmul and the cell's elementwise update; it keeps every step's
  carry and hh (the LSTM: xp + hh) for the backward pass;
- backward (a ``jax.custom_vjp``): a loop carrying only the carry's cotangent, one matmul per
  step: the derivative of ``update`` at step t (``jax.vjp`` of the elementwise function, from
  the saved xp(t), hh(t) and carry(t-1)) gives d xp(t), d hh(t) and the direct part of
  d carry(t-1); ``dh(t-1) += d hh(t) W_hh``. The weight gradient is then one GEMM over all
  steps, ``dW_hh = sum_t d hh(t)^T h(t-1)``, instead of T small outer products accumulated
  in the loop as autodiff of a scan does.

The cell's maths is written once, in ``LSTMCell.update`` / ``GRUCell.update``; the scan path
(``impl='scan'``) calls the same functions, and the float64 parity sweep against torch
(tests/test_lstm_gru_match_torch.py) holds both paths to 1e-10.

Layout: the arrays are time-major (time, batch, ·), or (batch, time, ·) with ``axis=1``; the
loops index the time axis where it lies, so batch-first data is never transposed. With a mask
(from ``seq_lengths``) the semantics are those of ``pack_padded_sequence``, as in ``_fused``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from ._fused import _at, _previous_states, _put, _transposed, _valid_mask, _weight_grad

Array = jax.Array

# update(xp_t, hh_t, carry) -> carry, elementwise, carry a NamedTuple of arrays whose first is h
Update = Callable[[Array, Array, Any], Any]


def _add(a: Array, b: Array | None) -> Array:
    return a if b is None else a + b


# Sequences of gate rows are kept as ``parts``: one (..., G·H) array, or with ``per_gate`` G arrays
# (..., H). For the GRU's update, XLA's CPU loop reads a step's (N, 3H) row block and slices it
# into gates slower than it reads 3 separate (N, H) blocks and concatenates them
# (benchmarks/NOTES.md, idea 8).


def _read(parts: tuple, t, axis: int) -> Array:
    """Step t of per-gate sequences, as one (batch, G·H) row block."""
    return jnp.concatenate([_at(p, t, axis) for p in parts], axis=-1)


def _write(parts: tuple, value: Array, t, axis: int) -> tuple:
    """Per-gate sequences with step t set to the (batch, G·H) row block ``value``."""
    return tuple(_put(p, v, t, axis) for p, v in zip(parts, jnp.split(value, len(parts), axis=-1)))


def _forward(update, additive, xs, w_hh, bx, bh, carry0, mask, reverse, precision, unroll, axis, save):
    """The forward loop over per-gate inputs ``xs``. Returns (sequences of every carry array, the
    saved per-gate pre-activations or None, final carry).

    Step t computes ``update(xp(t) + bx, h(t-1) W_hh^T + bh, carry(t-1))``: the biases are added
    here, where they join the step's fused elementwise work, not in a pass over the whole xp.
    Without ``save`` only h's sequence is kept (the output); the others are None. With it, the
    loop also keeps hh(t), or for an ``additive`` cell (one that reads xp and hh only as their
    sum, the LSTM) that sum, so its backward pass has one array less to read and write.
    """
    w_t = _transposed(w_hh)
    steps = xs[0].shape[axis]
    leaves, treedef = jax.tree.flatten(carry0)

    def seq_like(a):
        return jnp.zeros(xs[0].shape[:-1] + a.shape[-1:], a.dtype)

    seqs0 = [seq_like(a) if (k == 0 or save) else None for k, a in enumerate(leaves)]
    pres0 = tuple(jnp.zeros_like(x) for x in xs) if save else None

    def body(i, state):
        carry, seqs, pres = state
        t = steps - 1 - i if reverse else i
        x_t = _add(_read(xs, t, axis), bx)
        hh = _add(jnp.matmul(carry[0], w_t, precision=precision), bh)
        new = jax.tree.leaves(update(x_t, hh, treedef.unflatten(carry)))
        if mask is not None:
            valid = _at(mask, t, axis)
            new_carry = [jnp.where(valid, n, o) for n, o in zip(new, carry)]
            new = [jnp.where(valid, n, 0) for n in new]
        else:
            new_carry = new
        seqs = [s if s is None else _put(s, n, t, axis) for s, n in zip(seqs, new)]
        if pres is not None:
            pres = _write(pres, x_t + hh if additive else hh, t, axis)
        return new_carry, seqs, pres

    carry_n, seqs, pres = jax.lax.fori_loop(0, steps, body, (leaves, seqs0, pres0), unroll=unroll)
    return seqs, pres, treedef.unflatten(carry_n)


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8, 9, 10, 11))
def _recurrence(xs, w_hh, bx, bh, carry0, mask, update, additive, reverse, precision, unroll, axis):
    args = (xs, w_hh, bx, bh, carry0, mask, reverse, precision, unroll, axis)
    seqs, _, carry_n = _forward(update, additive, *args, save=False)
    return seqs[0], carry_n


def _recurrence_fwd(xs, w_hh, bx, bh, carry0, mask, update, additive, reverse, precision, unroll, axis):
    args = (xs, w_hh, bx, bh, carry0, mask, reverse, precision, unroll, axis)
    seqs, pres, carry_n = _forward(update, additive, *args, save=True)
    return (seqs[0], carry_n), (None if additive else xs, w_hh, bx, bh, carry0, mask, seqs, pres)


def _recurrence_bwd(update, additive, reverse, precision, unroll, axis, residuals, cotangents):
    xs, w_hh, bx, bh, carry0, mask, seqs, pres = residuals
    dys, dcarry_n = cotangents
    leaves0, treedef = jax.tree.flatten(carry0)
    # carry(t-1) for every step, each array: the state each step started from
    prevs = [_previous_states(s, a, mask, reverse, axis) for s, a in zip(seqs, leaves0)]
    steps = pres[0].shape[axis]

    def body(i, state):
        dcarry, dxs, dhhs = state
        t = i if reverse else steps - 1 - i  # the forward walk, backwards
        prev = treedef.unflatten([_at(p, t, axis) for p in prevs])
        d_out = treedef.unflatten([dcarry[0] + _at(dys, t, axis)] + dcarry[1:])
        if additive:  # d xp(t) = d hh(t) = d(xp + hh)(t): one array
            _, vjp = jax.vjp(lambda a, c: update(a, jnp.zeros((), a.dtype), c), _read(pres, t, axis), prev)
            dhh_t, dprev = vjp(d_out)
            dxp_t = None
        else:
            _, vjp = jax.vjp(update, _add(_read(xs, t, axis), bx), _read(pres, t, axis), prev)
            dxp_t, dhh_t, dprev = vjp(d_out)
        dprev = jax.tree.leaves(dprev)
        dprev[0] = dprev[0] + jnp.matmul(dhh_t, w_hh, precision=precision)
        if mask is not None:  # a padded step passes the carry's cotangent through untouched
            valid = _at(mask, t, axis)
            dprev = [jnp.where(valid, n, o) for n, o in zip(dprev, dcarry)]
            dxp_t = None if additive else jnp.where(valid, dxp_t, 0)
            dhh_t = jnp.where(valid, dhh_t, 0)
        dxs = None if additive else _write(dxs, dxp_t, t, axis)
        return dprev, dxs, _write(dhhs, dhh_t, t, axis)

    zeros = tuple(jnp.zeros_like(p) for p in pres)
    start = (jax.tree.leaves(dcarry_n), None if additive else zeros, zeros)
    dcarry0, dxs, dhhs = jax.lax.fori_loop(0, steps, body, start, unroll=unroll)
    if additive:
        dxs = dhhs
    dw = jnp.concatenate([_weight_grad(d, prevs[0], precision) for d in dhhs])  # a GEMM per part

    def bias_grad(parts, b):  # b is (1, G·H): the sum of the parts' rows over steps and batch
        return None if b is None else jnp.concatenate([jnp.sum(p, axis=(0, 1)) for p in parts]).reshape(b.shape)

    return dxs, dw, bias_grad(dxs, bx), bias_grad(dhhs, bh), treedef.unflatten(dcarry0), None


_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


def gated(
    update: Update,
    xp: Array,
    w_hh: Array,
    carry0: Any,
    seq_lengths: Array | None = None,
    *,
    bias_ih: Array | None = None,
    bias_hh: Array | None = None,
    additive: bool = False,
    per_gate: bool = False,
    reverse: bool = False,
    precision: Any = None,
    unroll: int = 1,
    batch_first: bool = False,
) -> tuple[Array, Any]:
    r"""One direction of a gated layer over projected inputs: ``carry(t) = update(xp(t), W_hh h(t-1) + b, carry(t-1))``.

    Args:
      update: the cell's elementwise step, ``LSTMCell.update`` or ``GRUCell.update``:
        ``(xp_t, hh_t, carry) -> carry``, the carry a NamedTuple of arrays with h first, or one array.
      xp: (time, batch, G·H), or (batch, time, G·H) with ``batch_first``: the input half of every
        step, ``W_ih x(t)``, without the biases.
      w_hh: (G·H, H) in torch's layout (the step computes ``h @ w_hh.T``).
      carry0: the carry before the walk's first step, each array (batch, ·).
      seq_lengths: optional int array (batch,) with values in [1, time]: ``pack_padded_sequence``
        semantics, as ``_fused.elman``.
      bias_ih: optional (G·H,), added to xp(t) inside the step.
      bias_hh: optional (G·H,), added to ``W_hh h`` inside the step (GRU: ``b_hn`` sits inside
        ``r * (W_hn h + b_hn)``).
      additive: ``update`` reads xp and hh only through ``xp + hh`` (the LSTM): the step adds
        ``b_ih + b_hh`` to xp(t), as torch's fused gates do, and the loops keep that sum, one
        array, instead of hh; then d xp = d hh.
      per_gate: keep xp and the saved pre-activations as G per-gate arrays (benchmarks/NOTES.md,
        idea 8): faster for the GRU, slower for the LSTM, whose update slices only after a
        whole-row σ.
      reverse: walk t = T-1 .. 0.
      precision: passed to every matmul.
      unroll: steps per iteration of the compiled loops, forward and backward.
      batch_first: xp and the output are (batch, time, ·).

    Returns:
      ``(ys, carry_n)``: ys in xp's layout, h after each step (zeros at padded steps), and the
      carry after the walk's last valid step.

    >>> import jax, jax.numpy as jnp
    >>> from jaxrnn import GRUCell
    >>> xp = jax.random.normal(jax.random.key(0), (15, 32, 3 * 20))
    >>> w_hh = jax.random.normal(jax.random.key(1), (3 * 20, 20)) * 0.1
    >>> ys, h_n = gated(GRUCell.update, xp, w_hh, jnp.zeros((32, 20)))
    >>> ys.shape, h_n.shape, bool(jnp.all(ys[-1] == h_n))
    ((15, 32, 20), (32, 20), True)
    """
    axis = 1 if batch_first else 0
    mask = _valid_mask(seq_lengths, xp.shape[axis], axis)
    dtype = xp.dtype
    bx, bh = (None if b is None else b.astype(dtype).reshape(1, -1) for b in (bias_ih, bias_hh))
    if additive and bh is not None:  # one bias for the sum xp + hh, in the projection's order
        bx, bh = bh if bx is None else bx + bh, None
    carry0 = jax.tree.map(lambda a: a.astype(dtype), carry0)
    parts = w_hh.shape[0] // w_hh.shape[1] if per_gate else 1
    xs = tuple(jnp.split(xp, parts, axis=-1))  # per-gate arrays (benchmarks/NOTES.md, idea 8)
    args = (xs, w_hh.astype(dtype), bx, bh, carry0, mask, update, additive, bool(reverse), precision, unroll, axis)
    return _recurrence(*args)
