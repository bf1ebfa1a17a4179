r"""The LSTM's time loop on the native CPU kernel (``jaxrnn.native``): the engine's other backend.

Same contract as ``_engine.run`` for one direction of an LSTM layer: the input half
``xp = W_ih x`` is one GEMM for the whole sequence through the kernel's library (:func:`project`;
its gradients ``d xp W_ih`` and ``d xp^T x`` too), then the kernel runs the loop

.. math::
    a(t) = xp(t) + b + W_{hh} h(t-1), \quad c(t) = \sigma(a_f) c(t-1) + \sigma(a_i) \tanh(a_g),
    \quad h(t) = \sigma(a_o) \tanh(c(t))

with ``b = b_ih + b_hh``, in x's layout (time-major, or batch-first with ``axis=1``) and with
``seq_lengths``' packed semantics. Its backward pass (a ``jax.custom_vjp``) is the kernel's
backward loop, which returns ``d a`` for every step and ``dW_hh = sum_t d a(t)^T h(t-1)``, one
GEMM over all steps; ``d b = sum_t d a(t)``.

Where the default runs it: :func:`applies` (float32, no projection, JAX's default backend the
CPU, the kernel loaded, a step large enough). Under ``vmap`` the calls run one after another over the mapped axis
(``vmap_method='sequential'``). Forward over reverse (``jax.hessian``) differentiates the
backward pass as autodiff's VJP of the XLA engine's loop, which computes the same function.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..native import _library
from . import _engine, _steps
from ._specs import LSTM, CellSpec, LSTMState

Array = jax.Array


def reason_not(spec: CellSpec, w: Mapping[str, Any], dtype: Any) -> str | None:
    """Why the native kernel cannot run this direction, or None when it can."""
    if spec is not LSTM:
        return f"the native kernel runs the LSTM only, not mode {spec.mode!r}"
    if "weight_hr" in w:
        return "the native kernel does not run a projected LSTM (proj_size > 0)"
    if jnp.dtype(dtype) != jnp.float32:
        return f"the native kernel runs float32 only, got {jnp.dtype(dtype).name}"
    if jax.default_backend() != "cpu":
        return f"the native kernel runs on the CPU only, JAX's default backend is {jax.default_backend()!r}"
    status = _library.status()
    return None if status.available else status.reason


MIN_STEP_MACS = 1 << 20
"""The default runs the kernel where a step's GEMM has at least this many multiply-adds
(batch * 4H * H, e.g. N16 H128): below it XLA's loop is as fast or faster (benchmarks/NOTES.md,
idea 16)."""


def applies(spec: CellSpec, w: Mapping[str, Any], dtype: Any, batch: int) -> bool:
    """Whether the default (``impl='fused'``) runs this direction on the kernel; says once why
    not where only the kernel's absence stands in the way."""
    if spec is not LSTM or "weight_hr" in w or jnp.dtype(dtype) != jnp.float32 or jax.default_backend() != "cpu":
        return False
    if batch * int(np.prod(w["weight_hh"].shape)) < MIN_STEP_MACS:
        return False
    if not _library.status().available:
        _library.warn_absent()
        return False
    return True


def _shapes(like: Array, *shape: int) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(shape, like.dtype)


def _forward_call(xp, w_hh, bias, h0, c0, lengths, *, reverse: bool, axis: int, save: bool):
    return _forward(xp, w_hh, bias, h0, c0, lengths, reverse, axis, save)


@functools.partial(jax.custom_jvp, nondiff_argnums=(6, 7, 8))
def _forward(xp, w_hh, bias, h0, c0, lengths, reverse, axis, save):
    """The kernel's forward loop: (ys, h_n, c_n, the activations, the c sequence), the last two
    empty without ``save``."""
    seq = xp.shape[:2] + (h0.shape[-1],)
    out = [_shapes(xp, *seq), _shapes(h0, *h0.shape), _shapes(h0, *h0.shape)]
    out += [_shapes(xp, *xp.shape), _shapes(xp, *seq)] if save else [_shapes(xp, 0), _shapes(xp, 0)]
    call = jax.ffi.ffi_call(_library.target(_library.FORWARD), out, vmap_method="sequential")
    return tuple(call(xp, w_hh, bias, h0, c0, lengths, batch_first=np.int64(axis), reverse=np.int64(reverse),
                      save=np.int64(save)))


@_forward.defjvp
def _forward_jvp(reverse, axis, save, primals, tangents):
    """Forward mode through the kernel's forward loop (forward over reverse: ``jax.hessian``): the
    tangent of the XLA engine's loop, which computes the same function."""
    xp, w_hh, bias, h0, c0, lengths = primals
    mask = _steps.valid_mask(lengths, xp.shape[axis], axis)

    def loop(xp, w_hh, bias, h0, c0):
        seqs, saved, carry = _engine._forward(LSTM, (xp,), w_hh, bias.reshape(1, -1), None, LSTMState(h0, c0), mask,
                                              reverse, None, 1, axis, save=True)
        gates = jnp.where(mask, jnp.concatenate(saved, axis=-1), 0)  # the kernel's zeros at padded steps
        return (seqs[0], carry.h, carry.c) + ((gates, seqs[1]) if save else (jnp.zeros(0, xp.dtype),) * 2)

    _, tangent = jax.jvp(loop, primals[:5], tangents[:5])
    return _forward(*primals, reverse, axis, save), tangent


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8))
def _recurrence(xp, w_hh, bias, h0, c0, lengths, reverse, axis, masked):
    ys, h_n, c_n, _, _ = _forward_call(xp, w_hh, bias, h0, c0, lengths, reverse=reverse, axis=axis, save=False)
    return ys, LSTMState(h_n, c_n)


def _recurrence_fwd(xp, w_hh, bias, h0, c0, lengths, reverse, axis, masked):
    ys, h_n, c_n, gates, cs = _forward_call(xp, w_hh, bias, h0, c0, lengths, reverse=reverse, axis=axis, save=True)
    return (ys, LSTMState(h_n, c_n)), (xp, w_hh, bias, h0, c0, lengths, ys, gates, cs)


def _recurrence_bwd(reverse, axis, masked, residuals, cotangents):
    return _backward(reverse, axis, masked, residuals, cotangents)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def _backward(reverse, axis, masked, residuals, cotangents):
    _, w_hh, _, h0, c0, lengths, ys, gates, cs = residuals
    dys, (dh_n, dc_n) = cotangents
    out = [_shapes(gates, *gates.shape), _shapes(w_hh, *w_hh.shape), _shapes(h0, *h0.shape), _shapes(h0, *h0.shape)]
    call = jax.ffi.ffi_call(_library.target(_library.BACKWARD), out, vmap_method="sequential")
    da, dw_hh, dh0, dc0 = call(w_hh, h0, c0, lengths, ys, gates, cs, dys, dh_n, dc_n, batch_first=np.int64(axis),
                               reverse=np.int64(reverse))
    return da, dw_hh, jnp.sum(da, axis=(0, 1)), dh0, dc0, None


@_backward.defjvp
def _backward_jvp(reverse, axis, masked, primals, tangents):
    """Forward mode over the backward pass: the tangent of autodiff's VJP of the XLA engine's loop."""
    (xp, w_hh, bias, h0, c0, lengths, _, _, _), cotangents = primals
    (dxp, dw_hh, dbias, dh0, dc0, _, _, _, _), dcotangents = tangents
    mask = _steps.valid_mask(lengths, xp.shape[axis], axis) if masked else None

    def vjp(xp, w_hh, bias, h0, c0, cotangents):
        def forward(xp, w_hh, bias, h0, c0):
            seqs, _, carry_n = _engine._forward(LSTM, (xp,), w_hh, bias.reshape(1, -1), None, LSTMState(h0, c0), mask,
                                                reverse, None, 1, axis, save=False)
            return seqs[0], carry_n

        return (*jax.vjp(forward, xp, w_hh, bias, h0, c0)[1](cotangents), None)

    return jax.jvp(vjp, (xp, w_hh, bias, h0, c0, cotangents), (dxp, dw_hh, dbias, dh0, dc0, dcotangents))


_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _gemm(a: Array, b: Array, trans_a: bool, trans_b: bool) -> Array:
    """``op(a) op(b)`` for float32 matrices on the kernel's GEMM (op: ``.T`` where asked)."""
    m = a.shape[1] if trans_a else a.shape[0]
    n = b.shape[0] if trans_b else b.shape[1]
    call = jax.ffi.ffi_call(_library.target(_library.GEMM), _shapes(a, m, n), vmap_method="sequential")
    return call(a, b, trans_a=np.int64(trans_a), trans_b=np.int64(trans_b))


@_gemm.defjvp
def _gemm_jvp(trans_a, trans_b, primals, tangents):
    """Forward mode (forward over reverse): the product rule, its two terms XLA GEMMs."""
    a, b = primals
    da, db = tangents
    op_a, op_b = (a.T if trans_a else a), (b.T if trans_b else b)
    tangent = (da.T if trans_a else da) @ op_b + op_a @ (db.T if trans_b else db)
    return _gemm(a, b, trans_a, trans_b), tangent


@jax.custom_vjp
def _projection(x: Array, w_ih: Array) -> Array:
    return _gemm(x, w_ih, False, True)


def _projection_fwd(x, w_ih):
    return _gemm(x, w_ih, False, True), (x, w_ih)


def _projection_bwd(residuals, dxp):
    x, w_ih = residuals
    return _gemm(dxp, w_ih, False, False), _gemm(dxp, x, True, False)


_projection.defvjp(_projection_fwd, _projection_bwd)


def project(w_ih: Array, x: Array) -> Array:
    """``xp = x W_ih^T`` for x (..., I) and W_ih (4H, I): one GEMM over all rows of x on the
    kernel's library and threads, and so are its gradients ``dx = dxp W_ih``, ``dW_ih = dxp^T x``.

    >>> import jax, jax.numpy as jnp
    >>> w = jax.random.normal(jax.random.key(0), (8, 3), jnp.float32)
    >>> x = jax.random.normal(jax.random.key(1), (5, 4, 3), jnp.float32)
    >>> bool(jnp.allclose(project(w, x), x @ w.T, atol=1e-5)) if _library.status().available else True
    True
    """
    w_ih = w_ih.astype(x.dtype)
    return _projection(x.reshape(-1, x.shape[-1]), w_ih).reshape(*x.shape[:-1], w_ih.shape[0])


def run(spec: CellSpec, w: dict[str, Array], x: Array, carry0: Any, seq_lengths: Array | None, *,
        reverse: bool = False, axis: int = 0, precision: Any = None, unroll: int = 1) -> tuple[Array, Any]:
    """One direction of an LSTM layer on the native kernel: ``_engine.run``'s arguments and result
    (``precision`` and ``unroll`` apply to nothing: the kernel computes in float32, its loop is C++).
    Raises ValueError where the kernel cannot run it (:func:`reason_not`)."""
    why = reason_not(spec, w, x.dtype)
    if why is not None:
        raise ValueError(f"impl='native': {why}; impl='fused' picks the XLA engine there")
    if any(isinstance(a, _engine._JVP_TRACERS) for a in jax.tree.leaves((x, w, carry0))):
        raise TypeError(_engine.FORWARD_MODE)
    xp = project(w["weight_ih"], x)
    bias, _ = _steps.biases(spec, w)
    bias = jnp.zeros(xp.shape[-1], xp.dtype) if bias is None else bias
    batch, steps = x.shape[1 - axis], x.shape[axis]
    lengths = (jnp.full((batch,), steps, jnp.int32) if seq_lengths is None
               else jnp.asarray(seq_lengths).astype(jnp.int32))
    h0, c0 = carry0
    return _recurrence(xp, w["weight_hh"], bias, h0, c0, lengths, bool(reverse), int(axis), seq_lengths is not None)
