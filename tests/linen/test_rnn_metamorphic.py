"""Relations jaxrnn.RNN must satisfy with itself: layouts, padding, reversal, and JAX transforms."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _compare import assert_close

import jaxrnn

T, N, I, H = 8, 5, 3, 4
LENGTHS = np.array([2, T, 1, 6, 4])
CONFIGS = list(itertools.product([1, 2], [False, True], ["tanh", "relu"]))


def _setup(layers, bidirectional, act, seed=0, **kwargs):
    layer = jaxrnn.RNN(I, H, layers, nonlinearity=act, bidirectional=bidirectional, param_dtype=jnp.float64, **kwargs)
    kx, kh, kp = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(kx, (T, N, I), jnp.float64)
    h0 = jax.random.normal(kh, (layers * (2 if bidirectional else 1), N, H), jnp.float64)
    return layer, layer.init(kp, x), x, h0


@pytest.mark.parametrize("layers, bidirectional, act", CONFIGS)
def test_batch_first_matches_time_major(layers, bidirectional, act):
    layer, variables, x, h0 = _setup(layers, bidirectional, act)
    batch_first = layer.clone(batch_first=True)
    for lengths in (None, jnp.asarray(LENGTHS)):
        out_tm, h_tm = layer.apply(variables, x, h0, seq_lengths=lengths)
        out_bf, h_bf = batch_first.apply(variables, jnp.swapaxes(x, 0, 1), h0, seq_lengths=lengths)
        np.testing.assert_array_equal(np.swapaxes(out_bf, 0, 1), out_tm)
        np.testing.assert_array_equal(h_bf, h_tm)


@pytest.mark.parametrize("layers, bidirectional, act", CONFIGS)
def test_padded_row_matches_row_alone(layers, bidirectional, act):
    layer, variables, x, h0 = _setup(layers, bidirectional, act, seed=1)
    # garbage in the padding must not leak into any result
    x = jnp.where(jnp.arange(T)[:, None, None] < LENGTHS[None, :, None], x, 1e3 * jnp.flip(x, 0))
    out, h_n = layer.apply(variables, x, h0, seq_lengths=jnp.asarray(LENGTHS))
    for n, length in enumerate(LENGTHS):
        out_n, h_n_n = layer.apply(variables, x[:length, n], h0[:, n])
        assert_close(out[:length, n], out_n, what=f"row {n} output")
        np.testing.assert_array_equal(out[length:, n], 0.0)
        assert_close(h_n[:, n], h_n_n, what=f"row {n} h_n")


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_reverse_direction_matches_forward_on_reversed_input(act):
    bi, variables, x, _ = _setup(1, True, act, seed=2)
    params = variables["params"]
    uni = jaxrnn.RNN(I, H, nonlinearity=act, param_dtype=jnp.float64)
    out, h_n = bi.apply(variables, x)
    rev_out, rev_h = uni.apply({"params": {"l0": params["l0_reverse"]}}, jnp.flip(x, 0))
    assert_close(out[..., H:], jnp.flip(rev_out, 0), what="backward outputs")
    assert_close(h_n[1], rev_h[0], what="backward final state")
    # with lengths: each sequence reversed within its own valid steps
    out, h_n = bi.apply(variables, x, seq_lengths=jnp.asarray(LENGTHS))
    for n, length in enumerate(LENGTHS):
        rev_out, rev_h = uni.apply({"params": {"l0": params["l0_reverse"]}}, jnp.flip(x[:length, n], 0))
        assert_close(out[:length, n, H:], jnp.flip(rev_out, 0), what=f"row {n}")
        assert_close(h_n[1, n], rev_h[0], what=f"row {n} h_n")


def test_vmap_over_unbatched_matches_batched():
    layer, variables, x, h0 = _setup(2, True, "tanh", seed=3)
    out, h_n = layer.apply(variables, x, h0)
    vout, vh = jax.vmap(lambda xi, hi: layer.apply(variables, xi, hi), in_axes=(1, 1), out_axes=(1, 1))(x, h0)
    assert_close(vout, out, what="output")
    assert_close(vh, h_n, what="h_n")


def test_jit_with_traced_lengths_matches_eager():
    layer, variables, x, h0 = _setup(2, True, "relu", seed=4)
    lengths = jnp.asarray(LENGTHS)
    eager = layer.apply(variables, x, h0, seq_lengths=lengths)
    jitted = jax.jit(lambda v, x, h, n: layer.apply(v, x, h, seq_lengths=n))(variables, x, h0, lengths)
    for a, b in zip(jitted, eager):
        assert_close(a, b)


def test_unroll_gives_the_same_result():
    layer, variables, x, h0 = _setup(2, True, "tanh", seed=5)
    unrolled = layer.clone(unroll=3)
    for lengths in (None, jnp.asarray(LENGTHS)):
        for a, b in zip(
            unrolled.apply(variables, x, h0, seq_lengths=lengths), layer.apply(variables, x, h0, seq_lengths=lengths)
        ):
            assert_close(a, b)
