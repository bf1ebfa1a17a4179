"""The lesson's Exercise 1 and section 3 examples: output and h_n shapes (and values) as torch's."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from _compare import assert_close

import jaxrnn


@pytest.mark.parametrize(
    "input_size, hidden_size, num_layers, bidirectional, x_shape, out_shape, h_n_shape",
    [
        (5, 16, 2, False, (8, 20, 5), (8, 20, 16), (2, 8, 16)),  # Exercise 1, steps 1-4
        (5, 16, 2, True, (8, 20, 5), (8, 20, 32), (4, 8, 16)),  # Exercise 1, step 5
        (10, 20, 2, False, (32, 15, 10), (32, 15, 20), (2, 32, 20)),  # section 3, basic usage
        (10, 20, 1, True, (32, 15, 10), (32, 15, 40), (2, 32, 20)),  # section 3, bidirectional
    ],
)
def test_lesson_shapes_match_torch(input_size, hidden_size, num_layers, bidirectional, x_shape, out_shape, h_n_shape):
    x = np.random.default_rng(0).standard_normal(x_shape)
    rnn_t = torch.nn.RNN(input_size, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional).double()
    out_t, h_n_t = rnn_t(torch.from_numpy(x))
    rnn = jaxrnn.RNN(input_size, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional)
    out, h_n = rnn.apply(jaxrnn.from_torch(rnn_t.state_dict(), rnn), jnp.asarray(x))
    assert out.shape == tuple(out_t.shape) == out_shape
    assert h_n.shape == tuple(h_n_t.shape) == h_n_shape
    assert_close(out, out_t.detach().numpy())
    assert_close(h_n, h_n_t.detach().numpy())
    # h_n[-1] (the last layer's final state; the backward one when bidirectional) is a row of output:
    # forward direction at the last step, backward direction at the first step.
    if bidirectional:
        assert_close(h_n[-1], out[:, 0, hidden_size:])
        assert_close(h_n[-2], out[:, -1, :hidden_size])
    else:
        assert_close(h_n[-1], out[:, -1])


def test_shapes_under_jit_init():
    rnn = jaxrnn.RNN(5, 16, 2, batch_first=True)
    x = jax.random.normal(jax.random.key(0), (8, 20, 5))
    variables = jax.jit(rnn.init)(jax.random.key(1), x)
    out, h_n = jax.jit(rnn.apply)(variables, x)
    assert (out.shape, h_n.shape) == ((8, 20, 16), (2, 8, 16))
    assert_close(h_n[-1], out[:, -1], "float32")
