"""The scanned layer against a plain Python loop over RNNCell, sequence by sequence (float64)."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _compare import assert_close

import jaxrnn

T, N, I, H = 6, 3, 4, 5


def _loop_reference(variables, x, h0, lengths, layers, bidirectional, act, bias):
    """torch.nn.RNN's definition, written out: each sequence alone, step by step, with RNNCell."""
    directions = 2 if bidirectional else 1
    params = variables["params"]
    output = np.zeros((T, N, directions * H))
    h_n = np.zeros((layers * directions, N, H))
    for n in range(N):
        seq = x[: lengths[n], n]  # the valid steps of sequence n only
        for layer in range(layers):
            outs = []
            for d in range(directions):
                name = f"l{layer}{'_reverse' if d else ''}"
                cell = jaxrnn.RNNCell(seq.shape[-1], H, bias=bias, nonlinearity=act)
                h = h0[layer * directions + d, n]
                steps = range(len(seq) - 1, -1, -1) if d else range(len(seq))
                ys = [None] * len(seq)
                for t in steps:
                    h = cell.apply({"params": params[name]}, seq[t], h)
                    ys[t] = h
                outs.append(jnp.stack(ys))
                h_n[layer * directions + d, n] = h
            seq = jnp.concatenate(outs, axis=-1)
        output[: lengths[n], n] = seq
    return output, h_n


@pytest.mark.parametrize(
    "layers, bidirectional, act, bias", list(itertools.product([1, 2], [False, True], ["tanh", "relu"], [True, False]))
)
def test_scan_matches_python_loop_over_cell(layers, bidirectional, act, bias):
    layer = jaxrnn.RNN(I, H, layers, nonlinearity=act, bias=bias, bidirectional=bidirectional, param_dtype=jnp.float64)
    kx, kh, kp = jax.random.split(jax.random.key(layers * 8 + bidirectional * 4 + bias), 3)
    x = jax.random.normal(kx, (T, N, I), jnp.float64)
    h0 = jax.random.normal(kh, (layers * (2 if bidirectional else 1), N, H), jnp.float64)
    lengths = np.array([4, 1, T])
    variables = layer.init(kp, x)
    out, h_n = layer.apply(variables, x, h0, seq_lengths=jnp.asarray(lengths))
    ref_out, ref_h_n = _loop_reference(variables, x, h0, lengths, layers, bidirectional, act, bias)
    assert_close(out, ref_out, what="output")
    assert_close(h_n, ref_h_n, what="h_n")
