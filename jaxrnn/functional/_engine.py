r"""The time loop, written once for every cell, with a hand-written backward pass.

One direction of a layer: the input half of every step first, one GEMM for the whole sequence,
``xp(t) = W_ih x(t)``; then the sequential part for a cell spec (``_specs``):

.. math::
    hh(t) = W_{hh} h(t-1) + b_h, \qquad
    \text{carry}(t), \text{saved}(t) = \text{forward\_step}(xp(t) + b_x, hh(t), \text{carry}(t-1))

(``b_x``, ``b_h`` as ``_steps.biases`` folds them). The biases join the step's elementwise work
instead of a pass over the whole xp.

- forward: a loop of one matmul and the cell's elementwise step; it keeps every step's carry and
  what the step saves (its activations) for the backward pass;
- backward (a ``jax.custom_vjp``): a loop carrying only the carry's cotangent, one matmul per
  step: the spec's ``backward_step`` gives d xp(t), d hh(t) and the direct part of d carry(t-1);
  ``dh(t-1) += d hh(t) W_hh``. The weight gradient is then one GEMM over all steps,
  ``dW_hh = sum_t d hh(t)^T h(t-1)``, instead of T small outer products accumulated in the loop
  as autodiff of a scan does.

The arrays are time-major (time, batch, ·), or (batch, time, ·) with ``axis=1``: the loops index
the time axis where it lies, so batch-first data is never transposed. With ``seq_lengths`` the
semantics are those of ``pack_padded_sequence``: outputs at padded steps are zero, the forward
walk's final carry is each sequence's state at its own last valid step, and the reverse walk
starts there.

Autodiff: reverse mode (``jax.grad``, ``jax.vjp``, ``jax.jacrev``, grad of grad) runs the
hand-written backward; forward over reverse (``jax.hessian``, ``jax.jvp`` of ``jax.grad``)
differentiates the backward pass as autodiff's VJP of the forward loop (a ``custom_jvp`` on the
backward: the hand-written loop under a batched forward-mode trace made XLA's CPU compiler fail).
Forward mode of the forward pass (``jax.jvp``, ``jax.jacfwd``) is impossible on a ``custom_vjp``
and raises :data:`FORWARD_MODE`, which points to the scan reference (``_scan``).

Engine tuning lives here: W_hh^T is materialised once per call, so each step is a plain
row-major GEMM (XLA otherwise folds the transpose into every step's dot, 10-25% slower at
H = 128); a spec of several ``blocks`` keeps its projected input as one array per block.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from . import _scan, _steps
from ._specs import CellSpec

Array = jax.Array

FORWARD_MODE = (
    "forward-mode autodiff (jax.jvp, jax.jacfwd) of impl='fused' is not supported: its gradient is "
    "a hand-written jax.custom_vjp. Pass impl='scan' (the lax.scan reference, which supports every "
    "autodiff mode and computes the same values); reverse mode (jax.grad, jax.vjp, jax.jacrev, grad "
    "of grad) and forward over reverse (jax.hessian, jax.jvp of jax.grad) work on impl='fused'."
)
"""The error forward mode over the engine raises."""

_JVP_TRACERS: tuple[type, ...] = ()
try:  # what jax.jvp traces with; JAX has no public name for it (without it, JAX's own error stands)
    from jax._src.interpreters.ad import JVPTracer

    _JVP_TRACERS = (JVPTracer,)
except ImportError:  # pragma: no cover
    pass


def _at(a: Array, t, axis: int) -> Array:
    return jax.lax.dynamic_index_in_dim(a, t, axis, keepdims=False)


def _put(a: Array, value: Array, t, axis: int) -> Array:
    return jax.lax.dynamic_update_index_in_dim(a, value, t, axis)


def _shift(a: Array, first: Array, axis: int, reverse: bool) -> Array:
    """``a`` moved one step along the walk on ``axis``: ``first`` where the walk starts."""
    if reverse:
        rest = jax.lax.slice_in_dim(a, 1, a.shape[axis], axis=axis)
        return jnp.concatenate([rest, first], axis=axis)
    rest = jax.lax.slice_in_dim(a, 0, a.shape[axis] - 1, axis=axis)
    return jnp.concatenate([first, rest], axis=axis)


def _previous_states(ys: Array, h0: Array, mask: Array | None, reverse: bool, axis: int) -> Array:
    """The state each step started from, for every step of the walk: ys's shape.

    The walk's previous step is t-1 (t+1 when ``reverse``). Its state is that step's when it was
    valid; otherwise the walk has not reached a valid step yet, and the state is still h0. Only
    valid steps read the result, so its value at padded steps does not matter.
    """
    h0 = jnp.expand_dims(h0, axis)
    prev = _shift(ys, h0, axis, reverse)
    if mask is None:
        return prev
    none_valid = jnp.zeros_like(jax.lax.slice_in_dim(mask, 0, 1, axis=axis))
    return jnp.where(_shift(mask, none_valid, axis, reverse), prev, h0)


def _weight_grad(da: Array, h_prev: Array, precision: Any) -> Array:
    """Sum over steps and batch of da^T h(t-1), in torch's (rows, hidden) layout: one GEMM."""
    return jnp.matmul(da.reshape(-1, da.shape[-1]).T, h_prev.reshape(-1, h_prev.shape[-1]), precision=precision)


def _add(a: Array, b: Array | None) -> Array:
    return a if b is None else a + b


def _sequence_of(like: Array, a: Any) -> Array | None:
    """Zeros for a sequence of ``a``'s steps, laid out as ``like`` (time and batch axes); None for None."""
    return None if a is None else jnp.zeros(like.shape[:-1] + a.shape[-1:], a.dtype)


def _read(parts: tuple, t, axis: int) -> Array:
    """Step t of per-block sequences, as one (batch, G·H) row block."""
    if len(parts) == 1:
        return _at(parts[0], t, axis)
    return jnp.concatenate([_at(p, t, axis) for p in parts], axis=-1)


def _leaves(tree: Any) -> list:
    """A carry's arrays in order, None kept in its place (a cotangent with no direct path)."""
    return jax.tree.leaves(tree, is_leaf=lambda a: a is None)


def _forward(spec, xs, w_hh, bx, bh, carry0, mask, reverse, precision, unroll, axis, save):
    """The forward loop. Returns (the sequences of every carry array, or of h alone without
    ``save``; the sequences of what ``spec.forward_step`` saves, or None; the final carry)."""
    # W_hh^T as its own array, made once outside the loop: each step is then a plain GEMM
    w_t = jax.lax.optimization_barrier(jnp.swapaxes(w_hh, -1, -2))
    steps = xs[0].shape[axis]
    leaves, treedef = jax.tree.flatten(carry0)

    def step(t, carry):
        x_t = _add(_read(xs, t, axis), bx)
        hh = _add(jnp.matmul(carry[0], w_t, precision=precision), bh)
        new, saved = spec.forward_step(x_t, hh, treedef.unflatten(carry))
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
def _recurrence(xs, w_hh, bx, bh, carry0, mask, spec, reverse, precision, unroll, axis):
    seqs, _, carry_n = _forward(spec, xs, w_hh, bx, bh, carry0, mask, reverse, precision, unroll, axis, save=False)
    return seqs[0], carry_n


def _recurrence_fwd(xs, w_hh, bx, bh, carry0, mask, spec, reverse, precision, unroll, axis):
    seqs, saved, carry_n = _forward(spec, xs, w_hh, bx, bh, carry0, mask, reverse, precision, unroll, axis, save=True)
    return (seqs[0], carry_n), (xs, w_hh, bx, bh, carry0, mask, seqs, saved)


def _recurrence_bwd(spec, reverse, precision, unroll, axis, residuals, cotangents):
    return _backward(spec, reverse, precision, unroll, axis, residuals, cotangents)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2, 3, 4))
def _backward(spec, reverse, precision, unroll, axis, residuals, cotangents):
    _, w_hh, bx, bh, carry0, mask, seqs, saved = residuals
    dys, dcarry_n = cotangents
    leaves0, treedef = jax.tree.flatten(carry0)
    # carry(t-1) for every step, each array: the state each step started from
    prevs = [_previous_states(s, a, mask, reverse, axis) for s, a in zip(seqs, leaves0)]
    steps = seqs[0].shape[axis]

    def step(t, dcarry):  # d xp(t) and d hh(t) as blocks, d hh's None where it is d xp's block
        prev, new = (treedef.unflatten([_at(s, t, axis) for s in a]) for a in (prevs, seqs))
        d_new = treedef.unflatten([dcarry[0] + _at(dys, t, axis)] + dcarry[1:])
        dxp, dhh, dprev = spec.backward_step(tuple(_at(s, t, axis) for s in saved), prev, new, d_new)
        return list(dxp), list(dhh), _leaves(dprev) if dprev is not None else [None]

    def body(i, state):
        dcarry, dxs, dhhs = state
        t = i if reverse else steps - 1 - i  # the forward walk, backwards
        dxp, dhh, dprev = step(t, dcarry)
        row = jnp.concatenate([x if h is None else h for x, h in zip(dxp, dhh)], axis=-1)
        dprev[0] = _add(jnp.matmul(row, w_hh, precision=precision), dprev[0])
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
    dw = jnp.concatenate([_weight_grad(d, prevs[0], precision) for d in dhhs])  # a GEMM per block

    def bias_grad(parts, b):  # b is (1, G·H): the sum of the blocks' rows over steps and batch
        return None if b is None else jnp.concatenate([jnp.sum(p, axis=(0, 1)) for p in parts]).reshape(b.shape)

    return tuple(dxs), dw, bias_grad(dxs, bx), bias_grad(dhhs, bh), treedef.unflatten(dcarry0), None


@_backward.defjvp
def _backward_jvp(spec, reverse, precision, unroll, axis, primals, tangents):
    """Forward mode over the backward pass (``jax.hessian``, ``jax.jvp`` of ``jax.grad``): the
    tangent of autodiff's VJP of the forward loop, which the hand-written backward equals."""
    (xs, w_hh, bx, bh, carry0, mask, _, _), cotangents = primals
    (dxs, dw_hh, dbx, dbh, dcarry0, _, _, _), dcotangents = tangents

    def vjp(xs, w_hh, bx, bh, carry0, cotangents):
        def forward(xs, w_hh, bx, bh, carry0):
            seqs, _, carry_n = _forward(spec, xs, w_hh, bx, bh, carry0, mask, reverse, precision, unroll, axis,
                                        save=False)
            return seqs[0], carry_n

        return (*jax.vjp(forward, xs, w_hh, bx, bh, carry0)[1](cotangents), None)

    return jax.jvp(vjp, (xs, w_hh, bx, bh, carry0, cotangents), (dxs, dw_hh, dbx, dbh, dcarry0, dcotangents))


_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


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
    r"""One direction of a layer: ``carry(t) = update(W_ih x(t) + b_x, W_hh h(t-1) + b_h, carry(t-1))``.

    Args:
      spec: the cell (``_specs.RNN_TANH``, ``RNN_RELU``, ``LSTM``, ``GRU``).
      w: the direction's parameters under bare torch names, in x's dtype: ``weight_ih`` (G·H, I),
        ``weight_hh`` (G·H, H), optional ``bias_ih``/``bias_hh`` (G·H,). A projected LSTM's
        ``weight_hr`` puts a matmul inside the step, which this loop does not run: that direction
        runs the scan reference.
      x: (time, batch, I), or (batch, time, I) with ``axis=1``.
      carry0: the carry before the walk's first step, each array (batch, ·), in x's dtype.
      seq_lengths: optional int array (batch,) with values in [0, time]: packed semantics.
      reverse: walk t = time-1 .. 0 (the backward direction of a bidirectional layer).
      axis: x's time axis, where the loops step.
      precision, unroll: of every matmul, and steps per iteration of the compiled loops.

    Returns:
      ``(ys, carry_n)``: ys in x's layout, h after each step (zeros at padded steps), and the
      carry after the walk's last valid step.
    """
    if "weight_hr" in w:
        return _scan.run(spec, w, x, carry0, seq_lengths, reverse=reverse, axis=axis, precision=precision,
                         unroll=unroll)
    xs = _steps.project(w["weight_ih"], x, precision, spec.blocks)
    bx, bh = (None if b is None else b.reshape(1, -1) for b in _steps.biases(spec, w))
    mask = _steps.valid_mask(seq_lengths, x.shape[axis], axis)
    if any(isinstance(a, _JVP_TRACERS) for a in jax.tree.leaves((xs, w["weight_hh"], bx, bh, carry0))):
        raise TypeError(FORWARD_MODE)  # under jit, JAX itself would only fail when lowering
    try:
        return _recurrence(xs, w["weight_hh"], bx, bh, carry0, mask, spec, bool(reverse), precision, unroll, axis)
    except TypeError as error:
        if "custom_vjp" not in str(error):
            raise
        raise TypeError(FORWARD_MODE) from error
