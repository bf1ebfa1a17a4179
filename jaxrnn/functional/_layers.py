"""A whole recurrent layer: checks, layout, lengths, dtype, stacking, dropout, directions.

This is the one place where each of these lives; every face (``jaxrnn.functional``, the linen
layers) calls ``forward``, and a backend runs each direction's time loop:

    x -> checks -> unbatched / batch_first layout -> one dtype -> for each layer: for each
    direction: backend.run (engine: native | xla; scan; a face's own) -> concatenate -> dropout -> output
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from . import _checks, _engine, _native, _params, _scan
from ._packed import PackedSequence
from ._specs import CellSpec

Array = jax.Array


class Backend(NamedTuple):
    """How one direction's time loop runs: ``run(spec, w, x, carry0, seq_lengths, *, reverse, axis,
    name)`` -> ``(ys, carry_n)`` (``name`` is torch's ``l{k}[_reverse]``), and whether it steps along
    a batch-first x in place (else the layers hand it time-major x)."""

    run: Callable[..., tuple[Array, Any]]
    batch_first: bool
    pure: bool = False  # a function of its arguments alone (no face's state): eager calls may jit it


IMPLS = ("fused", "xla", "native", "scan")


def backend_for(impl: str, precision: Any = None, unroll: int = 1) -> Backend:
    """``'fused'``: the engine, a time loop with a hand-written backward pass, on the native CPU
    kernel where it runs (``_native.applies``) and as an XLA loop (``_engine``) elsewhere;
    ``'xla'`` and ``'native'``: the engine on that loop alone; ``'scan'``: the ``jax.lax.scan``
    reference with autodiff (``_scan``). One object per (impl, precision, unroll), so that eager
    calls find their compiled layer again."""
    try:
        return _cached_backend(impl, precision, unroll)
    except TypeError:  # an unhashable precision: a backend of its own
        return _backend(impl, precision, unroll)


def _backend(impl: str, precision: Any, unroll: int) -> Backend:
    def run(spec, w, x, carry0, seq_lengths, *, reverse, axis, name):
        loop = time_loop(impl, spec, w, x.dtype, x.shape[1 - axis])
        module = {"scan": _scan, "native": _native, "xla": _engine}[loop]
        return module.run(spec, w, x, carry0, seq_lengths, reverse=reverse, axis=axis, precision=precision,
                          unroll=unroll)

    return Backend(run, batch_first=impl != "scan", pure=True)


def time_loop(impl: str, spec: CellSpec, w: Mapping[str, Any], dtype: Any, batch: int) -> str:
    """The loop ``impl`` runs for one direction (parameters ``w`` under bare names, ``batch``
    sequences): ``'native'``, ``'xla'`` or ``'scan'``."""
    if impl == "scan" or "weight_hr" in w:  # a projected LSTM's step holds a matmul: the scan reference
        return "scan"
    if impl == "native" or (impl == "fused" and _native.applies(spec, w, dtype, batch)):
        return "native"
    return "xla"


_cached_backend = functools.cache(_backend)


def check_options(owner: str, *, input_size, hidden_size, num_layers, dropout, unroll, impl,
                  nonlinearity: str | None = None, proj_size: int | None = None) -> None:
    """A layer's constructor arguments, as every face checks them (torch's messages), and torch's
    warning for dropout with a single layer (there is no layer between to drop from)."""
    _checks.positive_int("input_size", input_size, owner)
    _checks.positive_int("hidden_size", hidden_size, owner)
    _checks.positive_int("num_layers", num_layers, owner)
    _checks.probability("dropout", dropout, owner)
    _checks.positive_int("unroll", unroll, owner)
    _checks.one_of("impl", impl, IMPLS, owner)
    if nonlinearity is not None:
        _checks.one_of("nonlinearity", nonlinearity, ("tanh", "relu"), owner)
    if proj_size is not None:
        _checks.proj_size(proj_size, hidden_size, owner)
    if dropout > 0 and num_layers == 1:
        warnings.warn(
            "dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
            f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
            stacklevel=4,
        )


def dropout_between(x: Array, rate: float, key: Array) -> Array:
    """torch's dropout in training mode: each entry zeroed with probability ``rate``, the rest
    scaled by 1 / (1 - rate)."""
    if rate >= 1.0:
        return jnp.zeros_like(x)
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / jnp.asarray(1.0 - rate, x.dtype), jnp.zeros_like(x))


def forward(
    spec: CellSpec,
    params: Mapping[str, Array],
    x: Array | PackedSequence,
    hx: Any,
    *,
    owner: str,
    hx_name: str,
    backend: Backend,
    batch_first: bool = False,
    seq_lengths: Array | None = None,
    dropout: float = 0.0,
    dropout_key: Array | None = None,
    dtype: Any = None,
) -> tuple[Any, Any]:  # (Array, carry), or (PackedSequence, carry) for a PackedSequence x
    """torch's ``RNN``/``LSTM``/``GRU`` forward on a params dict with torch's keys.

    x: (time, batch, I), (batch, time, I) with ``batch_first``, or unbatched (time, I). hx: the
    spec's carry with leading axis num_layers * D (and batch), or None for zeros. Returns
    ``(output, h_n)``: output in x's layout with D * P features, h_n shaped as hx. The compute
    dtype is ``dtype``, or the promotion of x's and every parameter's dtype; x, hx and the
    parameters are cast to it once, here.

    A ``PackedSequence`` x runs on its ``padded`` (time, batch, I) with ``seq_lengths`` its
    lengths, time-major whatever ``batch_first`` says (torch ignores batch_first for packed
    input; hx and h_n are (L * D, batch, ·) in the original batch order), and the output comes
    back as a PackedSequence with the same lengths and indices.
    """
    packed = x if isinstance(x, PackedSequence) else None
    if packed is not None:
        if seq_lengths is not None:
            raise TypeError(f"{owner}: got `seq_lengths` and a PackedSequence x, whose lengths come with it; "
                            "pass one (a padded x with seq_lengths, or the PackedSequence alone)")
        if jnp.ndim(packed.padded) != 3:
            raise ValueError(f"{owner}: a PackedSequence x must hold a batch, padded (time, batch, input_size), "
                             f"got padded of shape {jnp.shape(packed.padded)}")
        x, seq_lengths, batch_first = packed.padded, packed.lengths, False
    layout = _params.layout(params, spec, owner)
    params = {k: _checks.array(f"params[{k!r}]", v, owner) for k, v in params.items()}
    _checks.probability("dropout", dropout, owner)
    rows = layout.num_layers * layout.num_directions
    x, hx, seq_lengths = _checks.recurrent_call(
        x, hx, seq_lengths, input_size=layout.input_size, batch_first=batch_first,
        carry_shapes=lambda lead: spec.carry_shapes((rows,) + lead, layout.hidden_size, layout.state_size),
        hx_name=hx_name, owner=owner,
    )
    # float64 from numpy is float32 where x64 is off, as a Flax layer casts it
    dtype = jax.dtypes.canonicalize_dtype(jnp.result_type(x, *params.values()) if dtype is None else dtype)
    args = (params, x, hx, seq_lengths, dropout_key)
    static = dict(spec=spec, layout=layout, backend=backend, batch_first=batch_first, dropout=dropout, dtype=dtype)
    concrete = backend.pure and not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(args))
    # an eager call runs the layer as one compiled program, compiled once per configuration (else
    # every call would retrace and recompile each direction's loop); under a transform, inline
    x, h_n = (_compiled if concrete else _stack)(*args, **static)
    return (packed.replace(x), h_n) if packed is not None else (x, h_n)


def _stack(params, x, hx, seq_lengths, dropout_key, *, spec: CellSpec, layout: _params.Layout, backend: Backend,
           batch_first: bool, dropout: float, dtype: Any) -> tuple[Array, Any]:
    """The layers on checked inputs: one dtype, the layout, then each layer's directions, dropout
    between layers, and the outputs back in x's layout."""
    rows = layout.num_layers * layout.num_directions
    x = jnp.asarray(x, dtype)
    params = {k: jnp.asarray(v, dtype) for k, v in params.items()}
    batched = x.ndim == 3
    if not batched:  # torch: (T, I) -> (T, 1, I); batch_first does not apply
        x = x[:, None]
        hx = None if hx is None else jax.tree.map(lambda a: a[:, None], hx)
        seq_lengths = None if seq_lengths is None else jnp.reshape(seq_lengths, (1,))
    axis = 1 if (batched and batch_first) else 0
    if axis == 1 and not backend.batch_first:
        x, axis = jnp.swapaxes(x, 0, 1), 0
    batch = x.shape[1 - axis]
    if hx is None:
        hx = spec.zero_carry((rows, batch), layout.hidden_size, layout.state_size, dtype)
    hx = jax.tree.map(lambda a: jnp.asarray(a, dtype), hx)

    finals = []
    for layer in range(layout.num_layers):
        outputs = []
        for direction in range(layout.num_directions):
            row = layer * layout.num_directions + direction
            ys, carry_n = backend.run(
                spec, layout.direction(params, layer, direction), x, jax.tree.map(lambda a: a[row], hx), seq_lengths,
                reverse=bool(direction), axis=axis, name=_params.suffix(layer, direction),
            )
            outputs.append(ys)
            finals.append(carry_n)
        x = outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs, axis=-1)
        if dropout > 0 and dropout_key is not None and layer < layout.num_layers - 1:
            x = dropout_between(x, dropout, jax.random.fold_in(dropout_key, layer))  # layer k's mask: key k

    h_n = jax.tree.map(lambda *rows: jnp.stack(rows), *finals)
    if not batched:
        return x[:, 0], jax.tree.map(lambda a: a[:, 0], h_n)
    if batch_first and axis == 0:
        x = jnp.swapaxes(x, 0, 1)
    return x, h_n


_compiled = jax.jit(_stack, static_argnames=("spec", "layout", "backend", "batch_first", "dropout", "dtype"))
