"""Dropout between layers: torch's semantics (inverted dropout on every layer's output but the last)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _compare import assert_close

import jaxrnn

T, N, I, H, P = 20, 16, 3, 32, 0.3


def _run(layers=2, bidirectional=False, seed=0):
    layer = jaxrnn.RNN(I, H, layers, dropout=P, bidirectional=bidirectional, param_dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(seed), (T, N, I), jnp.float64)
    variables = layer.init(jax.random.key(seed + 1), x)
    return layer, variables, x


@pytest.mark.parametrize("bidirectional", [False, True])
def test_dropout_masks_between_layers_with_inverted_scaling(bidirectional):
    layer, variables, x = _run(bidirectional=bidirectional)
    (out, h_n), state = layer.apply(
        variables, x, deterministic=False, rngs={"dropout": jax.random.key(5)}, capture_intermediates=True
    )
    dropped = np.asarray(state["intermediates"]["Dropout_0"]["__call__"][0])
    # the first layer alone, without dropout, gives what dropout was applied to
    D = 2 if bidirectional else 1
    first = layer.clone(num_layers=1, dropout=0.0)
    first_params = {k: v for k, v in variables["params"].items() if k.startswith("l0")}
    clean, h_first = first.apply({"params": first_params}, x)
    kept = dropped != 0
    np.testing.assert_allclose(kept.mean(), 1 - P, atol=4 * np.sqrt(P * (1 - P) / kept.size))  # 4 sigma
    assert_close(dropped[kept], np.asarray(clean)[kept] / (1 - P), what="kept values scaled by 1/(1-p)")
    # the last layer sees the dropped input; its own output is not dropped
    last = layer.clone(num_layers=1, dropout=0.0, input_size=D * H)
    last_params = {k.replace("l1", "l0"): v for k, v in variables["params"].items() if k.startswith("l1")}
    ref_out, ref_h = last.apply({"params": last_params}, jnp.asarray(dropped))
    assert_close(out, ref_out, what="last layer output")
    assert_close(h_n, jnp.concatenate([h_first, ref_h]), what="h_n")


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
