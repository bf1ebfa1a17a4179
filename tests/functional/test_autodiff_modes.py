"""Autodiff through ``jaxrnn.functional``: forward mode (``jax.jvp``) on the scan reference against
reverse mode (``jax.vjp``) on the engine, for every cell, with lengths and both directions (float64):
<J v, u> computed both ways must agree, so each path's derivative is checked against the other's."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _compare import assert_close

from jaxrnn import functional as F

FUNCTIONS = {"rnn_tanh": F.rnn, "rnn_relu": lambda *a, **k: F.rnn(*a, nonlinearity="relu", **k), "lstm": F.lstm,
             "gru": F.gru}


@pytest.mark.parametrize("mode", list(FUNCTIONS))
def test_jvp_of_scan_matches_vjp_of_engine(mode):
    rng = np.random.default_rng(list(FUNCTIONS).index(mode))
    params = F.init_params(jax.random.key(3), mode, 3, 4, 2, bidirectional=True, dtype=jnp.float64)
    x = jnp.asarray(rng.standard_normal((5, 2, 3)))
    lengths = jnp.array([5, 2])
    v_params = {k: jnp.asarray(rng.standard_normal(p.shape)) for k, p in params.items()}
    v_x = jnp.asarray(rng.standard_normal(x.shape))

    def f(impl):
        return lambda p, x: jax.tree.leaves(FUNCTIONS[mode](p, x, seq_lengths=lengths, impl=impl))

    primal, tangent = jax.jvp(f("scan"), (params, x), (v_params, v_x))
    out, vjp = jax.vjp(f("fused"), params, x)
    for a, b in zip(primal, out):
        assert_close(a, b, what="primal")
    u = [jnp.asarray(rng.standard_normal(a.shape)) for a in out]
    g_params, g_x = vjp(u)
    forward = sum(jnp.sum(t * w) for t, w in zip(tangent, u))
    reverse = sum(jnp.sum(g_params[k] * v_params[k]) for k in params) + jnp.sum(g_x * v_x)
    assert_close(forward, reverse, what="<J v, u>")
