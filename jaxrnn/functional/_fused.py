r"""The Elman recurrence as pure JAX functions with a hand-written backward pass.

The layer computes the input half of every step first, one GEMM for the whole sequence:
``xp(t) = W_ih x(t)``. What is left is the sequential part, with b = b_ih + b_hh,

.. math::
    h(t) = \tanh(xp(t) + b + W_{hh} h(t-1))

(``relu`` with ``nonlinearity='relu'``), and that is what this module runs:

- forward: a loop whose body is one matmul and one fused add-add-activation, carrying only
  h; W_hh^T is made once before the loop, so each step is a plain row-major GEMM, and the bias
  is added in the loop (free there) instead of in a pass over the whole xp;
- backward (a ``jax.custom_vjp``): a loop carrying only ``dh``, one matmul per step,
  ``da(t) = (dh(t) + dy(t)) * act'(h(t))``, ``dh(t-1) = da(t) W_hh``; the weight gradient is
  then one GEMM over all steps, ``dW_hh = sum_t da(t)^T h(t-1)``, instead of T small outer
  products accumulated in the loop as autodiff of a scan does;
- ``elman_bidirectional``: both directions of a layer in one loop (the forward walk at t and
  the reverse walk at T-1-t in the same iteration, a batched matmul of 2). Measured no faster
  than one loop per direction on the CPU, so the layer does not use it by default.

Shapes are time-major: xp (time, batch, hidden), h0 (batch, hidden); ``w_hh`` has torch's
layout (hidden, hidden). With ``seq_lengths`` (batch,) the semantics are those of
``torch.nn.utils.rnn.pack_padded_sequence``: outputs at padded positions are zero, the
forward walk's h_n is each sequence's state at its own last valid step, and the reverse walk
starts at each sequence's own last valid step.

The gradients are exact (same maths, summed in a different order): the float64 parity sweep
against ``torch.nn.RNN`` (tests/test_fused_matches_torch.py) holds them to 1e-10.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array

_ACTIVATIONS = ("tanh", "relu")


def _act(nonlinearity: str, a: Array) -> Array:
    return jnp.tanh(a) if nonlinearity == "tanh" else jnp.maximum(a, 0)


def _act_grad(nonlinearity: str, y: Array) -> Array:
    """act'(a) from y = act(a): 1 - y^2 for tanh, [y > 0] for relu (torch's relu' at 0 is 0)."""
    if nonlinearity == "tanh":
        return 1 - y * y
    return (y > 0).astype(y.dtype)


def _valid_mask(seq_lengths: Array | None, steps: int, axis: int = 0) -> Array | None:
    """Booleans (time, batch, 1), or (batch, time, 1) for ``axis=1``: True at each sequence's
    valid steps; None without lengths."""
    if seq_lengths is None:
        return None
    valid = jnp.arange(steps)[:, None] < seq_lengths[None, :]
    return (valid if axis == 0 else valid.T)[:, :, None]


def _shift(a: Array, first: Array, axis: int, reverse: bool) -> Array:
    """``a`` moved one step along the walk on ``axis``: ``first`` where the walk starts."""
    if reverse:
        rest = jax.lax.slice_in_dim(a, 1, a.shape[axis], axis=axis)
        return jnp.concatenate([rest, first], axis=axis)
    rest = jax.lax.slice_in_dim(a, 0, a.shape[axis] - 1, axis=axis)
    return jnp.concatenate([first, rest], axis=axis)


def _previous_states(ys: Array, h0: Array, mask: Array | None, reverse: bool, axis: int = 0) -> Array:
    """h(t-1) for every step of the walk: the state each step started from, ys's shape.

    The walk's previous step is t-1 (t+1 when ``reverse``). Its output is that state when it
    was a valid step; otherwise the walk has not reached a valid step yet (padding comes
    first only for a walk over time-reversed padded input), and the state is still h0. Only
    valid steps read the result, so its value at padded steps does not matter.
    """
    h0 = jnp.expand_dims(h0, axis)
    prev = _shift(ys, h0, axis, reverse)
    if mask is None:
        return prev
    none_valid = jnp.zeros_like(jax.lax.slice_in_dim(mask, 0, 1, axis=axis))
    return jnp.where(_shift(mask, none_valid, axis, reverse), prev, h0)


def _weight_grad(da: Array, h_prev: Array, precision: Any) -> Array:
    """sum over steps and batch of da^T h(t-1), in torch's (rows, hidden) layout.

    One (R, T*N) x (T*N, H) GEMM per direction (R = da's width: H here, a gate block's H in
    ``_fused_gated``); with a direction axis, (time, D, batch, ·) arrays give (D, R, H).
    """
    if da.ndim == 3:
        return jnp.matmul(da.reshape(-1, da.shape[-1]).T, h_prev.reshape(-1, h_prev.shape[-1]), precision=precision)
    return jnp.einsum("tdnh,tdnk->dhk", da, h_prev, precision=precision)


# --------------------------------------------------------------------------- the recurrence
# The core runs one walk (forward, or reverse with ``reverse``) over xp of shape
# (time, batch, hidden), or over (time, D, batch, hidden) with weights (D, hidden, hidden) and
# h0 (D, batch, hidden): D independent recurrences in one loop, their matmuls batched.


# The forward loop multiplies by W_hh^T. Written as ``h @ w.T``, XLA folds the transpose into
# the dot, and the CPU runs a transposed-operand GEMM every step: 10-25% slower than a plain one
# at H = 128 (benchmarks/NOTES.md, idea 6). The barrier keeps W_hh^T as its own array, made
# once per call outside the loop, so each step is a plain row-major GEMM. ``_PRETRANSPOSE`` is
# switched off only to measure the difference.
_PRETRANSPOSE = True


def _transposed(w: Array) -> Array:
    """W_hh^T (batched over a leading direction axis), materialized once when ``_PRETRANSPOSE``."""
    w_t = jnp.swapaxes(w, -1, -2)
    return jax.lax.optimization_barrier(w_t) if _PRETRANSPOSE else w_t


def _matmul(g: Array, w: Array, precision: Any) -> Array:
    """g @ w, batched over a leading direction axis of both when w has one: a plain GEMM per step."""
    if w.ndim == 2:
        return jnp.matmul(g, w, precision=precision)
    return jnp.einsum("dnh,dhk->dnk", g, w, precision=precision)


# Both loops walk the time axis of arrays laid out (time, batch, ...) or, with ``axis=1``,
# (batch, time, ...): step t reads and writes slice t of that axis in place, so batch-first
# data needs no transposes on the way in or out (1.5x for a training step at N=64, T=100,
# H=256 against transposing to time-major and back; benchmarks/NOTES.md, idea 6).


def _at(a: Array, t, axis: int) -> Array:
    return jax.lax.dynamic_index_in_dim(a, t, axis, keepdims=False)


def _put(a: Array, value: Array, t, axis: int) -> Array:
    return jax.lax.dynamic_update_index_in_dim(a, value, t, axis)


def _forward(xp, b, w_hh, h0, mask, reverse, nonlinearity, precision, unroll, axis=0):
    w_t = _transposed(w_hh)
    steps = xp.shape[axis]

    def body(i, carry):
        h, ys = carry
        t = steps - 1 - i if reverse else i
        a = _at(xp, t, axis)
        if b is not None:  # (xp + b) + W_hh h: the cell's order of additions
            a = a + b
        h_new = _act(nonlinearity, a + _matmul(h, w_t, precision))
        if mask is None:
            return h_new, _put(ys, h_new, t, axis)
        valid = _at(mask, t, axis)
        return jnp.where(valid, h_new, h), _put(ys, jnp.where(valid, h_new, 0), t, axis)

    h_n, ys = jax.lax.fori_loop(0, steps, body, (h0, jnp.zeros_like(xp)), unroll=unroll)
    return ys, h_n


def _backward_loop(dys, ys, w_hh, dh_n, mask, reverse, nonlinearity, precision, unroll, axis=0):
    """The sequential part of the backward pass, carrying dh only. Returns (da, dh0)."""
    steps = ys.shape[axis]

    def body(i, carry):
        dh, da = carry
        t = i if reverse else steps - 1 - i  # the forward walk, backwards
        da_t = (dh + _at(dys, t, axis)) * _act_grad(nonlinearity, _at(ys, t, axis))
        if mask is None:
            return _matmul(da_t, w_hh, precision), _put(da, da_t, t, axis)
        valid = _at(mask, t, axis)
        da_t = jnp.where(valid, da_t, 0)
        return jnp.where(valid, _matmul(da_t, w_hh, precision), dh), _put(da, da_t, t, axis)

    dh0, da = jax.lax.fori_loop(0, steps, body, (dh_n, jnp.zeros_like(ys)), unroll=unroll)
    return da, dh0


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7, 8, 9))
def _recurrence(xp, b, w_hh, h0, mask, reverse, nonlinearity, precision, unroll, axis):
    return _forward(xp, b, w_hh, h0, mask, reverse, nonlinearity, precision, unroll, axis)


def _recurrence_fwd(xp, b, w_hh, h0, mask, reverse, nonlinearity, precision, unroll, axis):
    ys, h_n = _forward(xp, b, w_hh, h0, mask, reverse, nonlinearity, precision, unroll, axis)
    return (ys, h_n), (ys, b, w_hh, h0, mask)


def _recurrence_bwd(reverse, nonlinearity, precision, unroll, axis, residuals, cotangents):
    ys, b, w_hh, h0, mask = residuals
    dys, dh_n = cotangents
    da, dh0 = _backward_loop(dys, ys, w_hh, dh_n, mask, reverse, nonlinearity, precision, unroll, axis)
    dw = _weight_grad(da, _previous_states(ys, h0, mask, reverse, axis), precision)
    # b broadcasts over time and batch: (hidden,) -> (1, hidden), or (D, 1, hidden) with directions
    db = None if b is None else jnp.sum(da, axis=(0, da.ndim - 2), keepdims=True).reshape(b.shape)
    return da, db, dw, dh0, None


_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


# --------------------------------------------------------------------------- public functions


def _check(name, xp, w_hh, h0, seq_lengths, nonlinearity, unroll, directions, bias=None, batch_first=False):
    if nonlinearity not in _ACTIVATIONS:
        raise ValueError(f"{name}: `nonlinearity` must be one of {_ACTIVATIONS}, got {nonlinearity!r}")
    if not isinstance(unroll, int) or isinstance(unroll, bool) or unroll < 1:
        raise ValueError(f"{name}: `unroll` must be a positive int, got {unroll!r}")
    layout = "(batch, time, features)" if batch_first else "(time, batch, features)"
    if xp.ndim != 3:
        raise ValueError(f"{name}: expected xp of shape {layout}, got {xp.shape}")
    steps, batch, features = (xp.shape[1], xp.shape[0], xp.shape[2]) if batch_first else xp.shape
    if steps == 0:
        raise ValueError(f"{name}: xp has no time steps (xp.shape={xp.shape})")
    if features % directions:
        raise ValueError(f"{name}: xp's last axis ({features}) must be {directions} * hidden")
    hidden = features // directions
    lead = (directions,) if directions > 1 else ()
    if w_hh.shape != lead + (hidden, hidden):
        raise ValueError(f"{name}: expected w_hh of shape {lead + (hidden, hidden)}, got {w_hh.shape}")
    if h0.shape != lead + (batch, hidden):
        raise ValueError(f"{name}: expected h0 of shape {lead + (batch, hidden)}, got {h0.shape}")
    if bias is not None and bias.shape != lead + (hidden,):
        raise ValueError(f"{name}: expected bias of shape {lead + (hidden,)}, got {bias.shape}")
    if seq_lengths is not None:
        if not jnp.issubdtype(seq_lengths.dtype, jnp.integer):
            raise TypeError(f"{name}: `seq_lengths` must be an integer array, got {seq_lengths.dtype}")
        if seq_lengths.shape != (batch,):
            raise ValueError(f"{name}: expected `seq_lengths` of shape ({batch},), got {seq_lengths.shape}")


def _promote(xp, bias, w_hh, h0):
    """One compute dtype, as the layer does: xp's, bias's and w_hh's promoted; h0 is cast to it."""
    dtype = jnp.result_type(xp, w_hh) if bias is None else jnp.result_type(xp, bias, w_hh)
    cast = None if bias is None else bias.astype(dtype)
    return xp.astype(dtype), cast, w_hh.astype(dtype), h0.astype(dtype)


def elman(
    xp: Array,
    w_hh: Array,
    h0: Array,
    seq_lengths: Array | None = None,
    *,
    bias: Array | None = None,
    reverse: bool = False,
    nonlinearity: str = "tanh",
    precision: Any = None,
    unroll: int = 1,
    batch_first: bool = False,
) -> tuple[Array, Array]:
    r"""One direction of an Elman layer over projected inputs: ``h(t) = act(xp(t) + b + W_hh h(t-1))``.

    Args:
      xp: (time, batch, hidden), or (batch, time, hidden) with ``batch_first``: the input half
        of every step, ``W_ih x(t)``, with or without the biases.
      w_hh: (hidden, hidden) in torch's layout (the step computes ``h @ w_hh.T``).
      h0: (batch, hidden), the state before the walk's first step.
      seq_lengths: optional int array (batch,) with values in [1, time]: steps at or past a
        sequence's length leave its state alone and output zeros.
      bias: optional (hidden,), ``b_ih + b_hh``, added inside the loop (where it costs nothing:
        the step's add and activation are one fused loop) rather than in a pass over xp.
      reverse: walk t = time-1 .. 0 (the backward direction of a bidirectional layer).
      nonlinearity: ``'tanh'`` or ``'relu'``.
      precision: passed to every matmul (``jax.lax.Precision``).
      unroll: steps per iteration of the compiled loops, forward and backward.
      batch_first: xp and ys are (batch, time, hidden); the loops step along axis 1 in place.

    Returns:
      ``(ys, h_n)``: ys in xp's layout, the state after each step (zeros at padded steps), and
      h_n (batch, hidden), the state after the walk's last valid step.

    xp, bias and w_hh are promoted to one dtype, and h0 is cast to it.

    >>> import jax, jax.numpy as jnp
    >>> from jaxrnn.functional._fused import elman
    >>> xp = jax.random.normal(jax.random.key(0), (15, 32, 20))  # (time, batch, hidden)
    >>> w_hh = 0.1 * jax.random.normal(jax.random.key(1), (20, 20))
    >>> ys, h_n = elman(xp, w_hh, jnp.zeros((32, 20)))
    >>> ys.shape, h_n.shape, bool(jnp.all(ys[-1] == h_n))
    ((15, 32, 20), (32, 20), True)
    """
    _check("elman", xp, w_hh, h0, seq_lengths, nonlinearity, unroll, 1, bias, batch_first)
    xp, bias, w_hh, h0 = _promote(xp, bias, w_hh, h0)
    b = None if bias is None else bias.reshape(1, -1)  # broadcasts over the batch of one step
    axis = 1 if batch_first else 0
    mask = _valid_mask(seq_lengths, xp.shape[axis], axis)
    return _recurrence(xp, b, w_hh, h0, mask, bool(reverse), nonlinearity, precision, unroll, axis)


def elman_bidirectional(
    xp: Array,
    w_hh: Array,
    h0: Array,
    seq_lengths: Array | None = None,
    *,
    bias: Array | None = None,
    nonlinearity: str = "tanh",
    precision: Any = None,
    unroll: int = 1,
) -> tuple[Array, Array]:
    r"""Both directions of a bidirectional Elman layer in one loop.

    Iteration i advances the forward walk at t = i and the reverse walk at t = time-1-i, one
    batched matmul for both. The result equals ``elman`` run once per direction (the reverse
    one with ``reverse=True``) with the outputs concatenated.

    Args:
      xp: (time, batch, 2 * hidden): the forward direction's projected inputs, then the reverse
        direction's, on the last axis (one GEMM of x with both ``W_ih`` stacked gives this).
      w_hh: (2, hidden, hidden), forward then reverse, each in torch's layout.
      h0: (2, batch, hidden), forward then reverse.
      bias: optional (2, hidden), each direction's ``b_ih + b_hh``.
      seq_lengths, nonlinearity, precision, unroll: as for ``elman``; with lengths, the reverse
        walk starts at each sequence's own last valid step.

    Returns:
      ``(ys, h_n)``: ys (time, batch, 2 * hidden), forward and reverse states concatenated on
      the last axis, the next layer's input as it is; h_n (2, batch, hidden).

    >>> import jax, jax.numpy as jnp
    >>> from jaxrnn.functional._fused import elman_bidirectional
    >>> xp = jax.random.normal(jax.random.key(0), (15, 32, 40))  # (time, batch, 2 * hidden)
    >>> w_hh = 0.1 * jax.random.normal(jax.random.key(1), (2, 20, 20))
    >>> ys, h_n = elman_bidirectional(xp, w_hh, jnp.zeros((2, 32, 20)))
    >>> ys.shape, h_n.shape
    ((15, 32, 40), (2, 32, 20))
    """
    _check("elman_bidirectional", xp, w_hh, h0, seq_lengths, nonlinearity, unroll, 2, bias)
    xp, bias, w_hh, h0 = _promote(xp, bias, w_hh, h0)
    b = None if bias is None else bias[:, None, :]  # (2, 1, hidden): per direction, over the batch
    steps, batch, features = xp.shape
    hidden = features // 2
    # walk order: both directions forward in i, the reverse one over time-flipped inputs
    halves = xp.reshape(steps, batch, 2, hidden)
    walk_xp = jnp.stack([halves[:, :, 0], jnp.flip(halves[:, :, 1], axis=0)], axis=1)  # (T, 2, N, H)
    mask = _valid_mask(seq_lengths, steps)
    walk_mask = None if mask is None else jnp.stack([mask, jnp.flip(mask, axis=0)], axis=1)  # (T, 2, N, 1)
    walk_ys, h_n = _recurrence(walk_xp, b, w_hh, h0, walk_mask, False, nonlinearity, precision, unroll, 0)
    ys = jnp.concatenate([walk_ys[:, 0], jnp.flip(walk_ys[:, 1], axis=0)], axis=-1)
    return ys, h_n


# --------------------------------------------------------------------------- a whole stack


def _project(x: Array, weights: list[dict], precision: Any) -> Array:
    """``W_ih x`` for all steps and the given directions, one GEMM: (..., D * hidden)."""
    w_ih = weights[0]["weight_ih"] if len(weights) == 1 else jnp.concatenate([w["weight_ih"] for w in weights])
    dtype = jnp.result_type(x, w_ih)
    return jnp.matmul(x.astype(dtype), w_ih.astype(dtype).T, precision=precision)


def elman_layer(
    weights: list[dict],
    x: Array,
    h0: Array,
    seq_lengths: Array | None = None,
    *,
    bias: bool = True,
    nonlinearity: str = "tanh",
    precision: Any = None,
    unroll: int = 1,
    fuse_directions: bool = False,
    batch_first: bool = False,
) -> tuple[Array, Array]:
    """One layer of ``torch.nn.RNN`` on x (time, batch, features), or (batch, time, features)
    with ``batch_first`` (no transposes: the projection and the loops work in x's layout).

    Args:
      weights: one dict per direction (forward, then reverse), with torch's names and shapes:
        ``weight_ih`` (H, I), ``weight_hh`` (H, H), and with ``bias``, ``bias_ih``/``bias_hh`` (H,).
      x: (time, batch, I), or (batch, time, I) with ``batch_first``; h0: (D, batch, H).
      fuse_directions: with two directions, run both in one loop (``elman_bidirectional``,
        time-major: batch-first x is transposed for it) instead of one loop each. Off by
        default: it measured no faster on the CPU (benchmarks/NOTES.md), and one loop per
        direction is the simpler program.

    Returns:
      ``(ys, h_n)``: ys in x's layout with D * H features, h_n (D, batch, H).
    """
    kw = dict(nonlinearity=nonlinearity, precision=precision, unroll=unroll)
    biases = [w["bias_ih"] + w["bias_hh"] for w in weights] if bias else [None] * len(weights)
    if len(weights) == 2 and fuse_directions and batch_first:
        ys, h_n = elman_layer(
            weights,
            jnp.swapaxes(x, 0, 1),
            h0,
            seq_lengths,
            bias=bias,
            nonlinearity=nonlinearity,
            precision=precision,
            unroll=unroll,
            fuse_directions=True,
        )
        return jnp.swapaxes(ys, 0, 1), h_n
    if len(weights) == 2 and fuse_directions:
        w_hh = jnp.stack([w["weight_hh"] for w in weights])
        b = None if not bias else jnp.stack([w["bias_ih"] + w["bias_hh"] for w in weights])
        return elman_bidirectional(_project(x, weights, precision), w_hh, h0, seq_lengths, bias=b, **kw)
    outputs, finals = [], []
    for direction, (w, b) in enumerate(zip(weights, biases)):  # a GEMM and a loop per direction
        xp = _project(x, [w], precision)
        ys, h_n = elman(
            xp,
            w["weight_hh"],
            h0[direction],
            seq_lengths,
            bias=b,
            reverse=bool(direction),
            batch_first=batch_first,
            **kw,
        )
        outputs.append(ys)
        finals.append(h_n)
    return (outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs, axis=-1)), jnp.stack(finals)


def elman_stack(
    params: dict,
    x: Array,
    h0: Array | None = None,
    seq_lengths: Array | None = None,
    *,
    num_layers: int = 1,
    bidirectional: bool = False,
    nonlinearity: str = "tanh",
    bias: bool = True,
    batch_first: bool = False,
    precision: Any = None,
    unroll: int = 1,
    fuse_directions: bool = False,
) -> tuple[Array, Array]:
    """``jaxrnn.RNN``'s forward (without dropout) as a function of its ``params`` tree.

    ``params['l{k}']`` (``'l{k}_reverse'``) hold layer k's weights under torch's names, as
    ``jaxrnn.RNN.init`` and ``jaxrnn.from_torch`` give them. x, h0, seq_lengths and the results
    are as for ``jaxrnn.RNN``: x (time, batch, I), (batch, time, I) with ``batch_first``, or
    unbatched (time, I); h0 and h_n (num_layers * D, batch, H).

    >>> import jax
    >>> from jaxrnn import RNN
    >>> from jaxrnn.functional._fused import elman_stack
    >>> rnn = RNN(input_size=10, hidden_size=20, num_layers=2, batch_first=True)
    >>> x = jax.random.normal(jax.random.key(0), (32, 15, 10))  # (batch, seq, features)
    >>> params = rnn.init(jax.random.key(1), x)["params"]
    >>> output, h_n = elman_stack(params, x, num_layers=2, batch_first=True)
    >>> output.shape, h_n.shape
    ((32, 15, 20), (2, 32, 20))
    """
    directions = 2 if bidirectional else 1
    batched = x.ndim == 3
    if not batched:  # (T, I) -> (T, 1, I), time-major
        x = x[:, None]
        h0 = None if h0 is None else h0[:, None]
    batch_first = batch_first and batched
    hidden = params["l0"]["weight_hh"].shape[0]
    if h0 is None:
        h0 = jnp.zeros((num_layers * directions, x.shape[0 if batch_first else 1], hidden), x.dtype)
    finals = []
    for layer in range(num_layers):
        names = [f"l{layer}", f"l{layer}_reverse"][:directions]
        x, h_n = elman_layer(
            [params[n] for n in names],
            x,
            h0[layer * directions : (layer + 1) * directions],
            seq_lengths,
            bias=bias,
            nonlinearity=nonlinearity,
            precision=precision,
            unroll=unroll,
            fuse_directions=fuse_directions,
            batch_first=batch_first,
        )
        finals.append(h_n)
    h_n = jnp.concatenate(finals)
    if not batched:
        return x[:, 0], h_n[:, 0]
    return x, h_n
