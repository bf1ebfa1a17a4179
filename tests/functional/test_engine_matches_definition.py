"""The engine alone (``_engine.run``, one direction of one layer) against the definition written as
a plain Python loop over each sequence and step, for every cell spec, both walks and unrolled
loops, with unsorted lengths (float64); and its gradients against autodiff of that loop."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _compare import assert_close

from jaxrnn.functional import LSTMState, _engine, _specs

T, N, I, H = 6, 4, 3, 5
LENGTHS = np.array([3, T, 1, 5])


def _weights(spec, rng, bias):
    rows = spec.gates * H
    w = {"weight_ih": rng.standard_normal((rows, I)) / np.sqrt(I),
         "weight_hh": rng.standard_normal((rows, H)) / np.sqrt(H)}
    if bias:
        w |= {"bias_ih": rng.standard_normal(rows), "bias_hh": rng.standard_normal(rows)}
    return {k: jnp.asarray(v) for k, v in w.items()}


def _definition(spec, w, x, carry0, reverse):
    """torch's equations for one sequence at a time: a[t] = W_ih x + b_ih, hh = W_hh h + b_hh."""
    b_ih = w.get("bias_ih", jnp.zeros(w["weight_ih"].shape[0]))
    b_hh = w.get("bias_hh", jnp.zeros(w["weight_ih"].shape[0]))
    ys = [[jnp.zeros(H) for _ in range(N)] for _ in range(T)]
    finals = []
    for n in range(N):
        carry = jax.tree.map(lambda a: a[n], carry0)
        for t in (range(LENGTHS[n] - 1, -1, -1) if reverse else range(LENGTHS[n])):
            h = carry.h if isinstance(carry, LSTMState) else carry
            a_x, a_h = w["weight_ih"] @ x[t, n] + b_ih, w["weight_hh"] @ h + b_hh
            if spec.mode == "gru":
                r = jax.nn.sigmoid(a_x[:H] + a_h[:H])
                z = jax.nn.sigmoid(a_x[H:2 * H] + a_h[H:2 * H])
                nn_ = jnp.tanh(a_x[2 * H:] + r * a_h[2 * H:])
                carry = (1 - z) * nn_ + z * carry
            elif spec.mode == "lstm":
                i, f, g, o = jnp.split(a_x + a_h, 4)
                c = jax.nn.sigmoid(f) * carry.c + jax.nn.sigmoid(i) * jnp.tanh(g)
                carry = LSTMState(jax.nn.sigmoid(o) * jnp.tanh(c), c)
            else:
                carry = (jnp.tanh if spec.mode == "rnn_tanh" else jax.nn.relu)(a_x + a_h)
            ys[t][n] = carry.h if isinstance(carry, LSTMState) else carry
        finals.append(carry)
    return jnp.stack([jnp.stack(row) for row in ys]), jax.tree.map(lambda *a: jnp.stack(a), *finals)


@pytest.mark.parametrize("mode, reverse, bias, unroll", list(itertools.product(_specs.SPECS, [False, True],
                                                                               [True, False], [1, 2]))[::3])
def test_engine_matches_plain_loop(mode, reverse, bias, unroll):
    spec = _specs.SPECS[mode]
    rng = np.random.default_rng(sorted(_specs.SPECS).index(mode) * 8 + 4 * reverse + 2 * bias + unroll)
    w = _weights(spec, rng, bias)
    x = jnp.asarray(rng.standard_normal((T, N, I)))
    carry0 = spec.zero_carry((N,), H, H, jnp.float64)
    carry0 = jax.tree.map(lambda a: jnp.asarray(rng.standard_normal(a.shape)), carry0)
    lengths = jnp.asarray(LENGTHS)

    def engine(w, x, carry0):
        return _engine.run(spec, w, x, carry0, lengths, reverse=reverse, unroll=unroll)

    ys, final = engine(w, x, carry0)
    want_ys, want_final = _definition(spec, w, x, carry0, reverse)
    assert_close(ys, want_ys, what="ys")
    jax.tree.map(lambda a, b: assert_close(a, b, what="final carry"), final, want_final)

    cot = jnp.asarray(rng.standard_normal(ys.shape))

    def loss(fn):
        def f(w, x, c):
            ys, final = fn(w, x, c)
            return jnp.sum(ys * cot) + sum(jnp.sum(a**2) for a in jax.tree.leaves(final))

        return f

    got = jax.grad(loss(engine), argnums=(0, 1, 2))(w, x, carry0)
    want = jax.grad(loss(lambda w, x, c: _definition(spec, w, x, c, reverse)), argnums=(0, 1, 2))(w, x, carry0)
    jax.tree.map(lambda a, b: assert_close(a, b, what="grads"), got, want)
