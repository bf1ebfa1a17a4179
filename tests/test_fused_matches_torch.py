"""Both recurrences of jaxrnn.RNN against torch.nn.RNN: outputs, final states and every gradient.

``impl='fused'`` (jaxrnn._fused, the default) is swept by test_rnn_matches_torch.py. This file
keeps ``impl='scan'`` (the nn.scan reference) under the same sweep, and runs the fused
recurrence's other settings on slices of it: both directions in one loop instead of one loop
each (through ``_fused.elman_stack``), and unrolled loops.
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
from _torch_rnn import torch_rnn

import jaxrnn
from jaxrnn import _fused

T, N, IN, H = 7, 4, 3, 5  # time, batch, input and hidden sizes
LENGTHS = np.array([3, T, 1, 5])  # unsorted, with the extremes 1 and T

BATCHED = list(
    itertools.product(
        [1, 2, 3],  # num_layers
        [False, True],  # bidirectional
        ["tanh", "relu"],  # nonlinearity
        [True, False],  # bias
        [False, True],  # batch_first
        [False, True],  # h0 given
        [False, True],  # seq_lengths given
    )
)
UNBATCHED = list(itertools.product([1, 2, 3], [False, True], ["tanh", "relu"], [True, False], [False, True]))
# How the recurrence runs: (impl, fuse_directions, unroll). ("scan", False, 1) is the reference;
# the fused settings other than the layer's default ("fused", False, 1) each run on a slice of
# the product (every case compiles, ~1 s each).
SCAN = ("scan", False, 1)
BIDIRECTIONAL = [c for c in BATCHED if c[1]]
VARIANTS = {
    ("fused", True, 1): BIDIRECTIONAL[::5],
    ("fused", False, 3): BATCHED[::13],
    ("fused", True, 2): BIDIRECTIONAL[::13],
}
# The scan reference is the generic path that LSTM and GRU run too, and their full sweeps
# (test_lstm_gru_match_torch.py) cover its stacking, directions, masks and h0; here it runs on
# every third configuration of the RNN product (each compares output, h_n and all grads). Strides
# are odd, so every option takes each of its values.
SCAN_BATCHED, SCAN_UNBATCHED = BATCHED[::3], UNBATCHED[::3]


def _ids(params):
    layers, bidi, act, bias, *rest = params
    names = [f"L{layers}", "bi" if bidi else "uni", act, "bias" if bias else "nobias"]
    if len(rest) == 3:
        names += ["bf" if rest[0] else "tm", "h0" if rest[1] else "noh0", "len" if rest[2] else "full"]
    else:
        names += ["h0" if rest[0] else "noh0"]
    return "-".join(names)


def _variant_id(variant):
    impl, fuse, unroll = variant
    return f"{impl}-{'one-loop' if fuse else 'loop-per-direction'}-u{unroll}"


@functools.cache
def _jax_fn(config: tuple, batched: bool, variant: tuple, with_h0: bool, with_lengths: bool):
    """One compiled function per configuration: outputs and the gradients of a weighted sum."""
    layers, bidi, act, bias = config[:4]
    batch_first = config[4] if batched else False
    impl, fuse, unroll = variant

    def forward(params, x, h0, lengths):
        if impl == "fused" and fuse:  # the layer runs a loop per direction; the function can fuse them
            return _fused.elman_stack(
                params,
                x,
                h0,
                lengths,
                num_layers=layers,
                bidirectional=bidi,
                nonlinearity=act,
                bias=bias,
                batch_first=batch_first,
                unroll=unroll,
                fuse_directions=True,
            )
        layer = jaxrnn.RNN(
            IN,
            H,
            layers,
            nonlinearity=act,
            bias=bias,
            batch_first=batch_first,
            bidirectional=bidi,
            unroll=unroll,
            impl=impl,
        )
        return layer.apply({"params": params}, x, h0, seq_lengths=lengths)

    def loss(params, x, h0, lengths, out_w, hn_w):
        out, h_n = forward(params, x, h0 if with_h0 else None, lengths if with_lengths else None)
        return jnp.sum(out * out_w) + jnp.sum(h_n * hn_w), (out, h_n)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))


def _compare_with_torch(config, batched, dtype, seed, variant=SCAN):
    if batched:
        layers, bidi, act, bias, batch_first, with_h0, with_lengths = config
    else:
        layers, bidi, act, bias, with_h0 = config
        batch_first, with_lengths = False, False
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    rnn_t = torch.nn.RNN(IN, H, layers, nonlinearity=act, bias=bias, batch_first=batch_first, bidirectional=bidi)
    rnn_t = rnn_t.to(getattr(torch, dtype))
    directions = 2 if bidi else 1
    if batched:
        x = rng.standard_normal((N, T, IN) if batch_first else (T, N, IN)).astype(dtype)
        h0 = rng.standard_normal((layers * directions, N, H)).astype(dtype)
    else:
        x = rng.standard_normal((T, IN)).astype(dtype)
        h0 = rng.standard_normal((layers * directions, H)).astype(dtype)
    lengths = LENGTHS if with_lengths else None
    out_w = rng.standard_normal(x.shape[:-1] + (directions * H,)).astype(dtype)
    hn_w = rng.standard_normal(h0.shape).astype(dtype)
    expected = torch_rnn(rnn_t, x, h0 if with_h0 else None, lengths, out_w, hn_w)

    layer = jaxrnn.RNN(IN, H, layers, nonlinearity=act, bias=bias, batch_first=batch_first, bidirectional=bidi)
    params = jaxrnn.from_torch(rnn_t.state_dict(), layer)["params"]
    fn = _jax_fn(config[:5] if batched else config[:4], batched, variant, with_h0, with_lengths)
    (_, (out, h_n)), (g_params, g_x, g_h0) = fn(
        params, x, h0, None if lengths is None else jnp.asarray(lengths), out_w, hn_w
    )
    assert out.dtype == np.dtype(dtype)
    assert_close(out, expected["output"], dtype, "output")
    assert_close(h_n, expected["h_n"], dtype, "h_n")
    assert_close(g_x, expected["grad_x"], dtype, "grad x")
    if with_h0:
        assert_close(g_h0, expected["grad_h0"], dtype, "grad h0")
    else:
        assert not np.any(np.asarray(g_h0)), "h0 that is not passed must get no gradient"
    assert_trees_close(jaxrnn.to_torch(g_params), expected["grad_params"], dtype, "grad params")


@pytest.mark.parametrize("config", SCAN_BATCHED, ids=_ids)
def test_scan_reference_forward_and_grads_match_torch_float64(config):
    _compare_with_torch(config, True, "float64", zlib.crc32(repr(config).encode()))


@pytest.mark.parametrize("config", SCAN_UNBATCHED, ids=_ids)
def test_scan_reference_unbatched_forward_and_grads_match_torch_float64(config):
    _compare_with_torch(config, False, "float64", zlib.crc32(repr(config).encode()))


@pytest.mark.parametrize(
    "variant, config",
    [(v, c) for v, configs in VARIANTS.items() for c in configs],
    ids=lambda p: _variant_id(p) if isinstance(p[0], str) else _ids(p),
)
def test_fused_variants_forward_and_grads_match_torch_float64(variant, config):
    _compare_with_torch(config, True, "float64", zlib.crc32(repr(config).encode()), variant)


@pytest.mark.parametrize("variant", [SCAN, ("fused", True, 2)], ids=_variant_id)
@pytest.mark.parametrize("config", BATCHED[::15], ids=_ids)
def test_forward_and_grads_match_torch_float32(config, variant):
    _compare_with_torch(config, True, "float32", zlib.crc32(repr(config).encode()), variant)


def test_impl_must_be_fused_or_scan():
    with pytest.raises(ValueError, match=r"RNN: `impl` must be one of \('fused', 'scan'\), got 'cudnn'"):
        jaxrnn.RNN(3, 4, impl="cudnn")


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_elman_matches_scan_over_steps(reverse, act):
    """The primitive alone against the definition written as a plain loop (float64)."""
    kx, kw, kh, kb = jax.random.split(jax.random.key(3), 4)
    xp = jax.random.normal(kx, (T, N, H), jnp.float64)
    w = jax.random.normal(kw, (H, H), jnp.float64) / np.sqrt(H)
    h = jax.random.normal(kh, (N, H), jnp.float64)
    b = jax.random.normal(kb, (H,), jnp.float64)
    lengths = jnp.asarray(LENGTHS)
    ys, h_n = _fused.elman(xp, w, h, lengths, bias=b, reverse=reverse, nonlinearity=act)
    f = jnp.tanh if act == "tanh" else jax.nn.relu
    expected = np.zeros((T, N, H))
    for n in range(N):
        state = h[n]
        steps = range(LENGTHS[n] - 1, -1, -1) if reverse else range(LENGTHS[n])
        for t in steps:
            state = f(xp[t, n] + b + w @ state)
            expected[t, n] = state
        assert_close(h_n[n], state, what=f"h_n[{n}]")
    assert_close(ys, expected, what="ys")


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: _fused.elman(jnp.zeros((T, N, H)), jnp.zeros((H, H)), jnp.zeros((N, H)), nonlinearity="gelu"),
            "`nonlinearity` must be one of",
        ),
        (
            lambda: _fused.elman(jnp.zeros((T, N, H)), jnp.zeros((H, H)), jnp.zeros((N, H)), unroll=0),
            "`unroll` must be a positive int, got 0",
        ),
        (
            lambda: _fused.elman(jnp.zeros((T, N)), jnp.zeros((H, H)), jnp.zeros((N, H))),
            r"expected xp of shape \(time, batch, features\), got \(7, 4\)",
        ),
        (
            lambda: _fused.elman(jnp.zeros((T, N, H)), jnp.zeros((H, H + 1)), jnp.zeros((N, H))),
            r"expected w_hh of shape \(5, 5\), got \(5, 6\)",
        ),
        (
            lambda: _fused.elman(jnp.zeros((T, N, H)), jnp.zeros((H, H)), jnp.zeros((N + 1, H))),
            r"expected h0 of shape \(4, 5\), got \(5, 5\)",
        ),
        (
            lambda: _fused.elman(jnp.zeros((T, N, H)), jnp.zeros((H, H)), jnp.zeros((N, H)), jnp.zeros(N)),
            "`seq_lengths` must be an integer array",
        ),
        (
            lambda: _fused.elman_bidirectional(
                jnp.zeros((T, N, 2 * H + 1)), jnp.zeros((2, H, H)), jnp.zeros((2, N, H))
            ),
            r"xp's last axis \(11\) must be 2 \* hidden",
        ),
        (
            lambda: _fused.elman_bidirectional(jnp.zeros((T, N, 2 * H)), jnp.zeros((H, H)), jnp.zeros((2, N, H))),
            r"expected w_hh of shape \(2, 5, 5\), got \(5, 5\)",
        ),
        (
            lambda: _fused.elman(jnp.zeros((T, N, H)), jnp.zeros((H, H)), jnp.zeros((N, H)), bias=jnp.zeros(H + 1)),
            r"expected bias of shape \(5,\), got \(6,\)",
        ),
    ],
)
def test_errors_name_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
