r"""LSTM and GRU recurrences with a hand-written backward pass: ``_fused``'s plan for any gated cell.

The layer computes the input half of every step first, one GEMM for the whole sequence,
``xp(t) = W_ih x(t)``. What is left is the sequential part, for a cell given by its elementwise
``forward_step`` (``LSTMCell``, ``GRUCell``):

.. math::
    hh(t) = W_{hh} h(t-1) + b_{hh}, \qquad
    \text{carry}(t), \text{saved}(t) = \text{forward\_step}(xp(t) + b_{ih}, hh(t), \text{carry}(t-1))

(for the LSTM, whose step reads only the sum of its first two arguments, ``b_ih + b_hh`` is
added to xp(t) as one bias, the order of additions of the cell's own projection).
The biases join the step's elementwise work instead of a pass over the whole xp.
``h`` is the carry's first array (``LSTMState(h, c)`` for the LSTM, h alone for the GRU).

- forward: a loop of one matmul and the cell's elementwise step; it keeps every step's carry
  and what the step saves (its gates' activations) for the backward pass;
- backward (a ``jax.custom_vjp``): a loop carrying only the carry's cotangent, one matmul per
  step: the cell's ``backward_step`` (its step's derivative written out from the saved
  activations: no transcendental function in the loop, benchmarks/NOTES.md, idea 10) gives
  d xp(t), d hh(t) and the direct part of d carry(t-1); ``dh(t-1) += d hh(t) W_hh``. The
  weight gradient is then one GEMM over all steps, ``dW_hh = sum_t d hh(t)^T h(t-1)``, instead
  of T small outer products accumulated in the loop as autodiff of a scan does.

The forward maths is written once, in ``forward_step``: the cell's ``update``, which the scan
path (``impl='scan'``) runs under autodiff, is its first result. The float64 parity sweep
against torch (tests/test_lstm_gru_match_torch.py) holds both paths, and with them
``backward_step``, to 1e-10.

Layout: the arrays are time-major (time, batch, ·), or (batch, time, ·) with ``axis=1``; the
loops index the time axis where it lies, so batch-first data is never transposed. With a mask
(from ``seq_lengths``) the semantics are those of ``pack_padded_sequence``, as in ``_fused``.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from ._fused import _at, _previous_states, _put, _transposed, _valid_mask, _weight_grad

Array = jax.Array


class GatedCell(Protocol):
    """What the fused path needs of a cell (``LSTMCell``, ``GRUCell``): its step, elementwise, on a
    carry that is one array h or a NamedTuple of arrays with h first, and that step's derivative,
    ``(d xp, d hh, d prev)`` with d xp and d hh as parts (one, or G with ``fused_per_gate``) and
    None for a part of d hh that is d xp's (stored once)."""

    fold_hh_bias: bool
    fused_per_gate: bool

    @staticmethod
    def forward_step(xp: Array, hh: Array, carry: Any) -> tuple[Any, tuple[Array, ...]]: ...

    @staticmethod
    def backward_step(
        saved: tuple[Array, ...], prev: Any, new: Any, d_new: Any
    ) -> tuple[tuple[Array, ...], tuple[Array | None, ...], Any]: ...


def _add(a: Array, b: Array | None) -> Array:
    return a if b is None else a + b


def _sequence_of(like: Array, a: Any) -> Array | None:
    """Zeros for a sequence of ``a``'s steps, laid out as ``like`` (time and batch axes); None for None."""
    return None if a is None else jnp.zeros(like.shape[:-1] + a.shape[-1:], a.dtype)


# Sequences of gate rows are kept as ``parts``: one (..., G·H) array, or with ``fused_per_gate``
# G arrays (..., H). For the GRU's step, XLA's CPU loop reads a step's (N, 3H) row block and
# slices it into gates slower than it reads 3 separate (N, H) blocks and concatenates them
# (benchmarks/NOTES.md, idea 8).


def _read(parts: tuple, t, axis: int) -> Array:
    """Step t of per-gate sequences, as one (batch, G·H) row block."""
    return jnp.concatenate([_at(p, t, axis) for p in parts], axis=-1)


def _forward(cell, xs, w_hh, bx, bh, carry0, mask, reverse, precision, unroll, axis, save):
    """The forward loop over per-gate inputs ``xs``. Returns (sequences of every carry array, the
    sequences of what ``cell.forward_step`` saves, or None, final carry).

    Step t computes ``cell.forward_step(xp(t) + bx, h(t-1) W_hh^T + bh, carry(t-1))``: the biases
    are added here, where they join the step's fused elementwise work, not in a pass over the
    whole xp. Without ``save`` only h's sequence is kept (the output); the others are None.
    """
    w_t = _transposed(w_hh)
    steps = xs[0].shape[axis]
    leaves, treedef = jax.tree.flatten(carry0)

    def step(t, carry):
        x_t = _add(_read(xs, t, axis), bx)
        hh = _add(jnp.matmul(carry[0], w_t, precision=precision), bh)
        new, saved = cell.forward_step(x_t, hh, treedef.unflatten(carry))
        return jax.tree.leaves(new), saved

    seqs0 = [_sequence_of(xs[0], a) if (k == 0 or save) else None for k, a in enumerate(leaves)]
    saved0 = [_sequence_of(xs[0], a) for a in jax.eval_shape(step, 0, leaves)[1]] if save else None

    def body(i, state):
        carry, seqs, saved_seqs = state
        t = steps - 1 - i if reverse else i
        new, saved = step(t, carry)
        if mask is not None:
            valid = _at(mask, t, axis)
            new_carry = [jnp.where(valid, n, o) for n, o in zip(new, carry)]
            new = [jnp.where(valid, n, 0) for n in new]
        else:
            new_carry = new
        seqs = [s if s is None else _put(s, n, t, axis) for s, n in zip(seqs, new)]
        if saved_seqs is not None:
            saved_seqs = [_put(s, a, t, axis) for s, a in zip(saved_seqs, saved)]
        return new_carry, seqs, saved_seqs

    carry_n, seqs, saved = jax.lax.fori_loop(0, steps, body, (leaves, seqs0, saved0), unroll=unroll)
    return seqs, saved, treedef.unflatten(carry_n)


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8, 9, 10))
def _recurrence(xs, w_hh, bx, bh, carry0, mask, cell, reverse, precision, unroll, axis):
    seqs, _, carry_n = _forward(cell, xs, w_hh, bx, bh, carry0, mask, reverse, precision, unroll, axis, save=False)
    return seqs[0], carry_n


def _recurrence_fwd(xs, w_hh, bx, bh, carry0, mask, cell, reverse, precision, unroll, axis):
    seqs, saved, carry_n = _forward(cell, xs, w_hh, bx, bh, carry0, mask, reverse, precision, unroll, axis, save=True)
    return (seqs[0], carry_n), (w_hh, bx, bh, carry0, mask, seqs, saved)


def _recurrence_bwd(cell, reverse, precision, unroll, axis, residuals, cotangents):
    w_hh, bx, bh, carry0, mask, seqs, saved = residuals
    dys, dcarry_n = cotangents
    leaves0, treedef = jax.tree.flatten(carry0)
    # carry(t-1) for every step, each array: the state each step started from
    prevs = [_previous_states(s, a, mask, reverse, axis) for s, a in zip(seqs, leaves0)]
    steps = seqs[0].shape[axis]

    def step(t, dcarry):  # d xp(t) and d hh(t) as parts, d hh's None where it is d xp's part
        prev, new = (treedef.unflatten([_at(s, t, axis) for s in a]) for a in (prevs, seqs))
        d_new = treedef.unflatten([dcarry[0] + _at(dys, t, axis)] + dcarry[1:])
        dxp, dhh, dprev = cell.backward_step(tuple(_at(s, t, axis) for s in saved), prev, new, d_new)
        return list(dxp), list(dhh), jax.tree.leaves(dprev)

    def body(i, state):
        dcarry, dxs, dhhs = state
        t = i if reverse else steps - 1 - i  # the forward walk, backwards
        dxp, dhh, dprev = step(t, dcarry)
        row = jnp.concatenate([x if h is None else h for x, h in zip(dxp, dhh)], axis=-1)
        dprev[0] = dprev[0] + jnp.matmul(row, w_hh, precision=precision)
        if mask is not None:  # a padded step passes the carry's cotangent through untouched
            valid = _at(mask, t, axis)
            dprev = [jnp.where(valid, n, o) for n, o in zip(dprev, dcarry)]
            dxp = [jnp.where(valid, d, 0) for d in dxp]
            dhh = [None if d is None else jnp.where(valid, d, 0) for d in dhh]
        dxs = [_put(s, d, t, axis) for s, d in zip(dxs, dxp)]
        dhhs = [None if s is None else _put(s, d, t, axis) for s, d in zip(dhhs, dhh)]
        return dprev, dxs, dhhs

    dxp, dhh, _ = jax.eval_shape(step, 0, jax.tree.leaves(dcarry_n))
    dxs0, dhhs0 = ([_sequence_of(seqs[0], a) for a in parts] for parts in (dxp, dhh))
    start = (jax.tree.leaves(dcarry_n), dxs0, dhhs0)
    dcarry0, dxs, dhhs = jax.lax.fori_loop(0, steps, body, start, unroll=unroll)
    dhhs = [x if h is None else h for x, h in zip(dxs, dhhs)]
    dw = jnp.concatenate([_weight_grad(d, prevs[0], precision) for d in dhhs])  # a GEMM per part

    def bias_grad(parts, b):  # b is (1, G·H): the sum of the parts' rows over steps and batch
        return None if b is None else jnp.concatenate([jnp.sum(p, axis=(0, 1)) for p in parts]).reshape(b.shape)

    return tuple(dxs), dw, bias_grad(dxs, bx), bias_grad(dhhs, bh), treedef.unflatten(dcarry0), None


_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


def gated(
    cell: type[GatedCell],
    xp: Array | tuple[Array, ...],
    w_hh: Array,
    carry0: Any,
    seq_lengths: Array | None = None,
    *,
    bias_ih: Array | None = None,
    bias_hh: Array | None = None,
    reverse: bool = False,
    precision: Any = None,
    unroll: int = 1,
    batch_first: bool = False,
) -> tuple[Array, Any]:
    r"""One direction of a gated layer over projected inputs: ``carry(t) = update(xp(t), W_hh h(t-1) + b, carry(t-1))``.

    Args:
      cell: ``LSTMCell`` or ``GRUCell`` (the class): its ``forward_step`` and ``backward_step``,
        on a carry that is a NamedTuple of arrays with h first, or one array; ``fold_hh_bias``
        (the step reads xp and hh only through their sum, the LSTM: ``b_ih + b_hh`` is added
        to xp(t) as one bias, as torch's fused gates do) and ``fused_per_gate`` (xp kept as G
        per-gate arrays, benchmarks/NOTES.md, idea 8: faster for the GRU, slower for the LSTM,
        whose step slices only after a whole-row σ).
      xp: (time, batch, G·H), or (batch, time, G·H) with ``batch_first``: the input half of every
        step, ``W_ih x(t)``, without the biases; or for a ``fused_per_gate`` cell, a tuple of its G
        gates' (·, ·, H) arrays (``cell.project_parts``).
      w_hh: (G·H, H) in torch's layout (the step computes ``h @ w_hh.T``).
      carry0: the carry before the walk's first step, each array (batch, ·).
      seq_lengths: optional int array (batch,) with values in [1, time]: ``pack_padded_sequence``
        semantics, as ``_fused.elman``.
      bias_ih: optional (G·H,), added to xp(t) inside the step.
      bias_hh: optional (G·H,), added to ``W_hh h`` inside the step (GRU: ``b_hn`` sits inside
        ``r * (W_hn h + b_hn)``).
      reverse: walk t = T-1 .. 0.
      precision: passed to every matmul.
      unroll: steps per iteration of the compiled loops, forward and backward.
      batch_first: xp and the output are (batch, time, ·).

    Returns:
      ``(ys, carry_n)``: ys in xp's layout, h after each step (zeros at padded steps), and the
      carry after the walk's last valid step.

    >>> import jax, jax.numpy as jnp
    >>> from jaxrnn import GRUCell
    >>> from jaxrnn.functional._fused_gated import gated
    >>> xp = jax.random.normal(jax.random.key(0), (15, 32, 3 * 20))
    >>> w_hh = jax.random.normal(jax.random.key(1), (3 * 20, 20)) * 0.1
    >>> ys, h_n = gated(GRUCell, xp, w_hh, jnp.zeros((32, 20)))
    >>> ys.shape, h_n.shape, bool(jnp.all(ys[-1] == h_n))
    ((15, 32, 20), (32, 20), True)
    """
    axis = 1 if batch_first else 0
    parts = w_hh.shape[0] // w_hh.shape[1] if cell.fused_per_gate else 1
    xs = tuple(xp) if isinstance(xp, tuple) else tuple(jnp.split(xp, parts, axis=-1))
    mask = _valid_mask(seq_lengths, xs[0].shape[axis], axis)
    dtype = xs[0].dtype
    bx, bh = (None if b is None else b.astype(dtype).reshape(1, -1) for b in (bias_ih, bias_hh))
    if cell.fold_hh_bias and bh is not None:  # one bias for the sum xp + hh, in the projection's order
        bx, bh = bh if bx is None else bx + bh, None
    carry0 = jax.tree.map(lambda a: a.astype(dtype), carry0)
    args = (xs, w_hh.astype(dtype), bx, bh, carry0, mask, cell, bool(reverse), precision, unroll, axis)
    return _recurrence(*args)
