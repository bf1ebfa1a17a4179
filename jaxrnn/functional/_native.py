r"""The LSTM's time loop on the native CPU kernel (``jaxrnn.native``): the engine's other backend.

Same contract as ``_engine.run`` for one direction of an LSTM layer: the input half
``xp = W_ih x`` is one XLA GEMM for the whole sequence, then the kernel runs the loop

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


MIN_STEP_MACS = 1 << 18
"""The default runs the kernel where a step's GEMM has at least this many multiply-adds
(batch * 4H * H): below it XLA's loop is faster (benchmarks/NOTES.md, idea 16)."""


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


def run(spec: CellSpec, w: dict[str, Array], x: Array, carry0: Any, seq_lengths: Array | None, *,
        reverse: bool = False, axis: int = 0, precision: Any = None, unroll: int = 1) -> tuple[Array, Any]:
    """One direction of an LSTM layer on the native kernel: ``_engine.run``'s arguments and result
    (``precision`` applies to the input half, ``unroll`` to nothing: the kernel's loop is C++).
    Raises ValueError where the kernel cannot run it (:func:`reason_not`)."""
    why = reason_not(spec, w, x.dtype)
    if why is not None:
        raise ValueError(f"impl='native': {why}; impl='fused' picks the XLA engine there")
    (xp,) = _steps.project(w["weight_ih"], x, precision, spec.blocks)
    bias, _ = _steps.biases(spec, w)
    bias = jnp.zeros(xp.shape[-1], xp.dtype) if bias is None else bias
    batch, steps = x.shape[1 - axis], x.shape[axis]
    lengths = (jnp.full((batch,), steps, jnp.int32) if seq_lengths is None
               else jnp.asarray(seq_lengths).astype(jnp.int32))
    if any(isinstance(a, _engine._JVP_TRACERS) for a in jax.tree.leaves((xp, w["weight_hh"], bias, carry0))):
        raise TypeError(_engine.FORWARD_MODE)
    h0, c0 = carry0
    return _recurrence(xp, w["weight_hh"], bias, h0, c0, lengths, bool(reverse), int(axis), seq_lengths is not None)
