"""jaxrnn's LSTM and GRU against torch.nn.LSTM / torch.nn.GRU: outputs, final states, all gradients.

The same sweep as the RNN's (layers x directions x bias x layout x h0 x lengths), proj_size
included for the LSTM, plus unbatched input. Each configuration runs on the default engine
(``impl='fused'``); every 3rd one also on the scan reference (``impl='scan'``). Each runs through one
face, ``jaxrnn.LSTM``/``GRU``, ``jaxrnn.functional.lstm``/``gru`` or ``jaxrnn.nnx.LSTM``/``GRU``
(merged from ``nnx.split`` under ``jax.jit``), picked by a hash of the configuration. With
proj_size > 0 the LSTM runs the scan reference whatever ``impl`` says, so those run once.

The native CPU kernel (``impl='native'``) runs float32 only: the same product of options (but the
projection, which it does not run) goes through it against torch in float32, at the stated
float32 tolerance (``tests/native`` holds it to the XLA loop on the same inputs).
"""

from __future__ import annotations

import functools
import itertools
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from _compare import assert_close, assert_trees_close
from _torch_rnn import face_of, faces_params, torch_rnn
from flax import nnx

import jaxrnn

T, N, I, H, P = 6, 4, 3, 5, 2
# Layers 1 and 2 below: a third layer is built and fed exactly as the second (input D*H, hx rows).
LENGTHS = np.array([3, T, 1, 5])  # unsorted, with the extremes 1 and T

LSTM_BATCHED = list(
    itertools.product(
        ["lstm"], [1, 2], [False, True], [True, False], [False, True], [False, True], [False, True], [0, P]
    )
)
GRU_BATCHED = list(
    itertools.product(
        ["gru"], [1, 2], [False, True], [True, False], [False, True], [False, True], [False, True], [0]
    )
)
UNBATCHED = list(
    itertools.product(["lstm", "gru"], [1, 2], [False, True], [True], [False], [False, True], [False], [0, P])
)
UNBATCHED = [c for c in UNBATCHED if not (c[0] == "gru" and c[-1])]


def _with_scan(configs):
    """Every config on the fused path, and every 3rd one without a projection on the scan path too."""
    return [c + ("fused",) for c in configs] + [c + ("scan",) for c in configs[::3] if not c[-1]]


def _face(config) -> str:
    return face_of(config)


def _ids(c):
    kind, layers, bidi, bias, bf, h0, lengths, proj, impl = c
    return "-".join(
        [
            _face(c),
            impl,
            kind,
            f"L{layers}",
            "bi" if bidi else "uni",
            "bias" if bias else "nobias",
            "bf" if bf else "tm",
            "h0" if h0 else "noh0",
            "len" if lengths else "full",
            f"proj{proj}",
        ]
    )


@functools.cache
def _jax_fn(layer, with_h0: bool, with_lengths: bool):
    """One compiled function per configuration: outputs and the gradients of a weighted sum.
    ``layer`` is a linen module, or a function of (params, x, hx, seq_lengths=) for the functional face."""

    def loss(params, x, hx, lengths, out_w, hn_w):
        hx, lengths = hx if with_h0 else None, lengths if with_lengths else None
        if callable(layer) and not hasattr(layer, "apply"):
            out, state = layer(params, x, hx, seq_lengths=lengths)
        else:
            out, state = layer.apply({"params": params}, x, hx, seq_lengths=lengths)
        total = jnp.sum(out * out_w) + sum(
            jnp.sum(a * w) for a, w in zip(jax.tree.leaves(state), jax.tree.leaves(hn_w))
        )
        return total, (out, state)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))


_FUNCTIONS: dict = {}


def _compare(config, batched, dtype="float64"):
    kind, layers, bidi, bias, batch_first, with_h0, with_lengths, proj, impl = config
    seed = zlib.crc32(repr(config).encode())
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    D = 2 if bidi else 1
    lead = (layers * D, N) if batched else (layers * D,)
    kw = dict(bias=bias, batch_first=batch_first, bidirectional=bidi, impl=impl)
    if kind == "lstm":
        layer_t = torch.nn.LSTM(I, H, layers, bias=bias, batch_first=batch_first, bidirectional=bidi, proj_size=proj)
        layer = jaxrnn.LSTM(I, H, layers, proj_size=proj, **kw)
        nnx_layer = jaxrnn.nnx.LSTM(I, H, layers, proj_size=proj, **kw, rngs=nnx.Rngs(0))
        hx = (rng.standard_normal(lead + (proj or H,)), rng.standard_normal(lead + (H,)))
        hn_w = (rng.standard_normal(lead + (proj or H,)), rng.standard_normal(lead + (H,)))
    else:
        layer_t = torch.nn.GRU(I, H, layers, bias=bias, batch_first=batch_first, bidirectional=bidi)
        layer = jaxrnn.GRU(I, H, layers, **kw)
        nnx_layer = jaxrnn.nnx.GRU(I, H, layers, **kw, rngs=nnx.Rngs(0))
        hx = rng.standard_normal(lead + (H,))
        hn_w = rng.standard_normal(lead + (H,))
    layer_t = layer_t.double() if dtype == "float64" else layer_t.float()
    if batched:
        x = rng.standard_normal((N, T, I) if batch_first else (T, N, I))
    else:
        x = rng.standard_normal((T, I))
    out_w = rng.standard_normal(x.shape[:-1] + (D * (proj or H),))
    x, hx, out_w, hn_w = jax.tree.map(lambda a: a.astype(dtype), (x, hx, out_w, hn_w))
    lengths = LENGTHS if with_lengths else None
    expected = torch_rnn(layer_t, x, hx if with_h0 else None, lengths, out_w, hn_w)

    face = _face(config)
    params = faces_params(face, layer_t, layer, nnx_layer)
    if face == "functional":
        fn = functools.partial(getattr(jaxrnn.functional, kind), batch_first=batch_first, impl=impl)
        fn = _FUNCTIONS.setdefault((kind, batch_first, impl), fn)  # one compiled function per configuration
    elif face == "nnx":
        graphdef = nnx.graphdef(nnx_layer)

        def fn(params, x, hx, seq_lengths):
            return nnx.merge(graphdef, params)(x, hx, seq_lengths=seq_lengths)
    else:
        fn = layer
    (_, (out, state)), (g_params, g_x, g_hx) = _jax_fn(fn, with_h0, with_lengths)(
        params, x, hx, None if lengths is None else jnp.asarray(lengths), out_w, hn_w
    )
    assert out.dtype == jnp.dtype(dtype)
    assert_close(out, expected["output"], dtype, what="output")
    if kind == "lstm":
        assert isinstance(state, jaxrnn.LSTMState)
        assert_close(state.h, expected["h_n"][0], dtype, what="h_n")
        assert_close(state.c, expected["h_n"][1], dtype, what="c_n")
    else:
        assert_close(state, expected["h_n"], dtype, what="h_n")
    assert_close(g_x, expected["grad_x"], dtype, what="grad x")
    if with_h0:
        for got, want in zip(jax.tree.leaves(g_hx), jax.tree.leaves(expected["grad_h0"])):
            assert_close(got, want, dtype, what="grad hx")
    grads = {"functional": lambda g: g, "linen": jaxrnn.to_torch, "nnx": jaxrnn.nnx.to_torch}[face](g_params)
    assert_trees_close(grads, expected["grad_params"], dtype, what="grad params")


@pytest.mark.parametrize("config", _with_scan(LSTM_BATCHED + GRU_BATCHED), ids=_ids)
def test_forward_and_grads_match_torch_float64(config):
    _compare(config, batched=True)


@pytest.mark.parametrize("config", _with_scan(UNBATCHED), ids=_ids)
def test_unbatched_forward_and_grads_match_torch_float64(config):
    _compare(config, batched=False)


NATIVE_LSTM = [c[:-1] + ("native",) for c in _with_scan(LSTM_BATCHED) if c[-1] == "fused" and not c[-2]]
NATIVE_UNBATCHED = [c[:-1] + ("native",) for c in _with_scan(UNBATCHED) if c[0] == "lstm" and c[-1] == "fused"
                    and not c[-2]]


def _needs_native():
    if not jaxrnn.native.status().available:
        pytest.skip(f"the native kernel is absent here: {jaxrnn.native.status().reason}")


@pytest.mark.parametrize("config", NATIVE_LSTM, ids=_ids)
def test_native_kernel_matches_torch_float32(config):
    _needs_native()
    _compare(config, batched=True, dtype="float32")


@pytest.mark.parametrize("config", NATIVE_UNBATCHED, ids=_ids)
def test_unbatched_native_kernel_matches_torch_float32(config):
    _needs_native()
    _compare(config, batched=False, dtype="float32")


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_grad_of_grad_fused_matches_scan(kind):
    """The fused path's hand-written backward pass is itself differentiable (reverse over reverse),
    and gives the scan path's second derivatives (the scan path is autodiff of the cell, held to torch above)."""
    x = jnp.asarray(np.random.default_rng(0).standard_normal((T, N, I)))
    lengths = jnp.asarray(LENGTHS)
    results = []
    for impl in ("fused", "scan"):
        cls = {"rnn": jaxrnn.RNN, "lstm": jaxrnn.LSTM, "gru": jaxrnn.GRU}[kind]
        layer = cls(I, H, 2, bidirectional=True, impl=impl, param_dtype=jnp.float64)
        variables = layer.init(jax.random.key(1), x)

        def f(x, layer=layer, variables=variables):
            return jnp.sum(jnp.sin(layer.apply(variables, x, seq_lengths=lengths)[0]))

        results.append(jax.grad(lambda x, f=f: jnp.sum(jax.grad(f)(x) ** 2))(x))
    assert_close(results[0], results[1], what="grad of grad")
