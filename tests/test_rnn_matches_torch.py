"""jaxrnn.RNN against torch.nn.RNN: outputs, final states and every gradient, over the product of options."""

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

T, N, I, H = 7, 4, 3, 5
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


def _ids(params):
    layers, bidi, act, bias, *rest = params
    names = [f"L{layers}", "bi" if bidi else "uni", act, "bias" if bias else "nobias"]
    if len(rest) == 3:
        names += ["bf" if rest[0] else "tm", "h0" if rest[1] else "noh0", "len" if rest[2] else "full"]
    else:
        names += ["h0" if rest[0] else "noh0"]
    return "-".join(names)


@functools.cache
def _jax_fn(layer: jaxrnn.RNN, with_h0: bool, with_lengths: bool):
    """One compiled function per configuration: outputs and the gradients of a weighted sum."""

    def loss(params, x, h0, lengths, out_w, hn_w):
        out, h_n = layer.apply(
            {"params": params}, x, h0 if with_h0 else None, seq_lengths=lengths if with_lengths else None
        )
        return jnp.sum(out * out_w) + jnp.sum(h_n * hn_w), (out, h_n)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))


def _compare_with_torch(config, batched, dtype, seed):
    if batched:
        layers, bidi, act, bias, batch_first, with_h0, with_lengths = config
    else:
        layers, bidi, act, bias, with_h0 = config
        batch_first, with_lengths = False, False
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    tdtype = getattr(torch, dtype)
    rnn_t = torch.nn.RNN(I, H, layers, nonlinearity=act, bias=bias, batch_first=batch_first, bidirectional=bidi)
    rnn_t = rnn_t.to(tdtype)
    directions = 2 if bidi else 1
    if batched:
        x = rng.standard_normal((N, T, I) if batch_first else (T, N, I)).astype(dtype)
        h0 = rng.standard_normal((layers * directions, N, H)).astype(dtype)
    else:
        x = rng.standard_normal((T, I)).astype(dtype)
        h0 = rng.standard_normal((layers * directions, H)).astype(dtype)
    lengths = LENGTHS if with_lengths else None
    out_shape = x.shape[:-1] + (directions * H,)
    out_w = rng.standard_normal(out_shape).astype(dtype)
    hn_w = rng.standard_normal(h0.shape).astype(dtype)
    expected = torch_rnn(rnn_t, x, h0 if with_h0 else None, lengths, out_w, hn_w)

    layer = jaxrnn.RNN(I, H, layers, nonlinearity=act, bias=bias, batch_first=batch_first, bidirectional=bidi)
    variables = jaxrnn.from_torch(rnn_t.state_dict(), layer)
    (_, (out, h_n)), (g_params, g_x, g_h0) = _jax_fn(layer, with_h0, with_lengths)(
        variables["params"], x, h0, None if lengths is None else jnp.asarray(lengths), out_w, hn_w
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


@pytest.mark.parametrize("config", BATCHED, ids=_ids)
def test_forward_and_grads_match_torch_float64(config):
    _compare_with_torch(config, batched=True, dtype="float64", seed=zlib.crc32(repr(config).encode()))


@pytest.mark.parametrize("config", UNBATCHED, ids=_ids)
def test_unbatched_forward_and_grads_match_torch_float64(config):
    _compare_with_torch(config, batched=False, dtype="float64", seed=zlib.crc32(repr(config).encode()))


@pytest.mark.parametrize("config", BATCHED[::7], ids=_ids)
def test_forward_and_grads_match_torch_float32(config):
    _compare_with_torch(config, batched=True, dtype="float32", seed=zlib.crc32(repr(config).encode()))
