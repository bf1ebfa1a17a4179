"""Dropout between layers: torch's semantics (inverted dropout on every layer's output but the last), in the
functional core and through the linen layers' ``deterministic`` and ``'dropout'`` rng."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _compare import assert_close

import jaxrnn
from jaxrnn import functional as F
from jaxrnn.functional import _layers

T, N, I, H, P = 20, 16, 3, 32, 0.3


def _run(layers=2, bidirectional=False, seed=0):
    layer = jaxrnn.RNN(I, H, layers, dropout=P, bidirectional=bidirectional, param_dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(seed), (T, N, I), jnp.float64)
    variables = layer.init(jax.random.key(seed + 1), x)
    return layer, variables, x


def test_dropout_zeroes_with_probability_p_and_scales_the_rest():
    x = jax.random.normal(jax.random.key(0), (T, N, H), jnp.float64)
    dropped = np.asarray(_layers.dropout_between(x, P, jax.random.key(1)))
    kept = dropped != 0
    np.testing.assert_allclose(kept.mean(), 1 - P, atol=4 * np.sqrt(P * (1 - P) / kept.size))  # 4 sigma
    assert_close(dropped[kept], np.asarray(x)[kept] / (1 - P), what="kept values scaled by 1/(1-p)")
    np.testing.assert_array_equal(np.asarray(_layers.dropout_between(x, 1.0, jax.random.key(1))), 0)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_functional_dropout_between_layers_only(bidirectional):
    """Layer k's output (k < num_layers - 1) is dropped with the key ``fold_in(dropout_key, k)``; the last
    layer sees the dropped input and its own output is not dropped."""
    layer, variables, x = _run(bidirectional=bidirectional)
    params = {k: jnp.asarray(v) for k, v in jaxrnn.to_torch(variables).items()}
    key = jax.random.key(5)
    out, h_n = F.rnn(params, x, dropout=P, dropout_key=key)
    first = {k: v for k, v in params.items() if "_l0" in k}
    clean, h_first = F.rnn(first, x)
    dropped = _layers.dropout_between(clean, P, jax.random.fold_in(key, 0))
    last = {k.replace("_l1", "_l0"): v for k, v in params.items() if "_l1" in k}
    ref_out, ref_h = F.rnn(last, dropped)
    assert_close(out, ref_out, what="last layer output")
    assert_close(h_n, jnp.concatenate([h_first, ref_h]), what="h_n")
    no_key = F.rnn(params, x, dropout=P)  # no key: torch's eval mode
    for a, b in zip(no_key, F.rnn(params, x)):
        np.testing.assert_array_equal(a, b)


def test_dropout_off_when_deterministic():
    layer, variables, x = _run(layers=3)
    no_dropout = layer.clone(dropout=0.0)
    for a, b in zip(layer.apply(variables, x), no_dropout.apply(variables, x)):
        np.testing.assert_array_equal(a, b)


def test_dropout_draws_on_the_dropout_rng():
    layer, variables, x = _run(layers=3)

    def run(seed):
        return layer.apply(variables, x, deterministic=False, rngs={"dropout": jax.random.key(seed)})[0]

    np.testing.assert_array_equal(run(1), run(1))
    assert not np.allclose(run(1), run(2))
    assert not np.allclose(run(1), layer.apply(variables, x)[0])
