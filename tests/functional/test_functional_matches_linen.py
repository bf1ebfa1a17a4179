"""``jaxrnn.functional`` against the linen and the NNX layers on the same weights, bit for bit: the
layers are shells over the functional core, so outputs, final states and every gradient must be identical
(``assert_array_equal``), over kind x layers x directions x layout x lengths x impl (every 5th of the
product: each option takes each of its values on every kind)."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxrnn
from jaxrnn import functional as F

T, N, I, H = 6, 3, 4, 5
LENGTHS = jnp.array([2, T, 1])
CONFIGS = list(itertools.product(["rnn", "lstm", "gru"], [1, 2], [False, True], [False, True], [False, True],
                                 ["fused", "scan"]))


def _layer(kind, layers, bidi, batch_first, impl):
    cls = {"rnn": jaxrnn.RNN, "lstm": jaxrnn.LSTM, "gru": jaxrnn.GRU}[kind]
    return cls(I, H, layers, batch_first=batch_first, bidirectional=bidi, impl=impl, param_dtype=jnp.float64)


@pytest.mark.parametrize("config", CONFIGS[::5], ids=lambda c: "-".join(map(str, c)))  # odd stride: every value
def test_functional_equals_linen_and_nnx_bit_for_bit(config):
    kind, layers, bidi, batch_first, with_lengths, impl = config
    layer = _layer(kind, layers, bidi, batch_first, impl)
    rng = np.random.default_rng(len(CONFIGS) + CONFIGS.index(config))
    x = jnp.asarray(rng.standard_normal((N, T, I) if batch_first else (T, N, I)))
    variables = layer.init(jax.random.key(0), x)
    params = {k: jnp.asarray(v) for k, v in jaxrnn.to_torch(variables).items()}
    lengths = LENGTHS if with_lengths else None
    fn = getattr(F, kind)

    def linen_loss(variables, x):
        out, state = layer.apply(variables, x, seq_lengths=lengths)
        return jnp.sum(jnp.sin(out)) + sum(jnp.sum(jnp.cos(a)) for a in jax.tree.leaves(state)), (out, state)

    def functional_loss(params, x):
        out, state = fn(params, x, batch_first=batch_first, seq_lengths=lengths, impl=impl)
        return jnp.sum(jnp.sin(out)) + sum(jnp.sum(jnp.cos(a)) for a in jax.tree.leaves(state)), (out, state)

    cls = {"rnn": jaxrnn.nnx.RNN, "lstm": jaxrnn.nnx.LSTM, "gru": jaxrnn.nnx.GRU}[kind]
    graphdef, state = nnx.split(jaxrnn.nnx.from_torch(params, cls(I, H, layers, batch_first=batch_first,
                                                                  bidirectional=bidi, impl=impl, rngs=nnx.Rngs(0))))

    def nnx_loss(state, x):
        out, final = nnx.merge(graphdef, state)(x, seq_lengths=lengths)
        return jnp.sum(jnp.sin(out)) + sum(jnp.sum(jnp.cos(a)) for a in jax.tree.leaves(final)), (out, final)

    (_, got), (g_params, g_x) = jax.jit(jax.value_and_grad(functional_loss, argnums=(0, 1), has_aux=True))(params, x)
    (_, want), (w_vars, w_x) = jax.jit(jax.value_and_grad(linen_loss, argnums=(0, 1), has_aux=True))(variables, x)
    (_, nnx_got), (n_state, n_x) = jax.jit(jax.value_and_grad(nnx_loss, argnums=(0, 1), has_aux=True))(state, x)
    want_params = jaxrnn.to_torch(w_vars)
    for face, outputs, grad_x, grads in [("functional", got, g_x, g_params),
                                         ("nnx", nnx_got, n_x, jaxrnn.nnx.to_torch(n_state))]:
        for a, b in zip(jax.tree.leaves(outputs), jax.tree.leaves(want), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=face)
        np.testing.assert_array_equal(np.asarray(grad_x), np.asarray(w_x), err_msg=face)
        assert sorted(grads) == sorted(want_params), face
        for key, value in want_params.items():
            np.testing.assert_array_equal(np.asarray(grads[key]), value, err_msg=f"{face} {key}")
