"""``jaxrnn.functional``'s parameters and checks: ``init_params`` against torch's own modules (keys,
order, shapes, init bounds; the parity sweeps feed torch's own ``state_dict()`` as params), the
errors that name the key or argument, and ``vmap`` over unbatched calls against one batched call."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from _compare import assert_close

from jaxrnn import functional as F

MODES = {"rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


@pytest.mark.parametrize(
    "mode, layers, bidi, bias, proj",
    [c for c in itertools.product(MODES, [1, 3], [False, True], [True, False], [0, 2])
     if not (c[4] and c[0] != "lstm")],
)
def test_init_params_matches_torch_state_dict(mode, layers, bidi, bias, proj):
    kw = {"proj_size": proj} if proj else {}
    if mode.startswith("rnn"):
        kw["nonlinearity"] = mode[4:]
    module = MODES[mode](3, 7, layers, bias=bias, bidirectional=bidi, **kw)
    params = F.init_params(jax.random.key(0), mode, 3, 7, layers, bias=bias, bidirectional=bidi, proj_size=proj)
    want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert [(k, tuple(v.shape)) for k, v in params.items()] == list(want.items())
    bound = 1 / math.sqrt(7)
    for key, value in params.items():
        assert value.dtype == jnp.float32
        assert float(jnp.max(jnp.abs(value))) <= bound, key
    # U(-b, b): mean 0, std b / sqrt(3); within 5 standard errors of each over the n draws
    pooled = np.concatenate([np.ravel(v) for v in params.values()]).astype(np.float64)
    n = pooled.size
    assert abs(pooled.mean()) < 5 * bound / np.sqrt(3 * n)
    assert abs(pooled.std() / (bound / np.sqrt(3)) - 1) < 5 * 0.45 / np.sqrt(n)


def _lstm_params(**kw):
    return F.init_params(jax.random.key(0), "lstm", 3, 4, **kw)


X = jnp.asarray(np.random.default_rng(1).standard_normal((5, 2, 3)), jnp.float32)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: F.lstm([1, 2], X), TypeError, r"lstm: `params` must be a dict of torch's keys to arrays, got list"),
        (lambda: F.lstm({}, X), ValueError, r"lstm: `params` has no 'weight_ih_l0'"),
        (lambda: F.lstm({**_lstm_params(), "weight_ih_l9": jnp.zeros((16, 4))}, X), ValueError,
         r"lstm: unexpected key\(s\) in `params` for lstm with input_size=3, hidden_size=4, "
         r"num_layers=1.*'weight_ih_l9'"),
        (lambda: F.lstm({k: v for k, v in _lstm_params(num_layers=2).items() if k != "bias_hh_l1"}, X), ValueError,
         r"lstm: missing key\(s\) in `params` for lstm .*num_layers=2.*\['bias_hh_l1'\]"),
        (lambda: F.lstm({**_lstm_params(), "weight_hh_l0": jnp.zeros((16, 5))}, X), ValueError,
         r"lstm: params\['weight_hh_l0'\] has shape \(16, 5\), expected \(16, 4\)"),
        (lambda: F.gru({"weight_ih_l0": jnp.zeros((16, 3))}, X), ValueError,
         r"gru: params\['weight_ih_l0'\] must have shape \(3 \* hidden_size, input_size\), got \(16, 3\)"),
        (lambda: F.lstm({**_lstm_params(), "bias_ih_l0": jnp.zeros(16, jnp.int32)}, X), TypeError,
         r"lstm: `params\['bias_ih_l0'\]` must have a floating dtype, got int32"),
        (lambda: F.lstm(_lstm_params(), X[..., :2]), ValueError,
         r"lstm: `input_size` is 3 but x has 2 features \(x.shape=\(5, 2, 2\)\)"),
        (lambda: F.lstm(_lstm_params(), X, jnp.zeros((1, 2, 4))), TypeError, r"lstm: `hx` must be a pair \(h, c\)"),
        (lambda: F.gru(F.init_params(jax.random.key(0), "gru", 3, 4), X, jnp.zeros((1, 3, 4))), ValueError,
         r"gru: expected hx of shape \(1, 2, 4\), got \(1, 3, 4\)"),
        (lambda: F.rnn(F.init_params(jax.random.key(0), "rnn", 3, 4), X, seq_lengths=jnp.array([6, 1])), ValueError,
         r"rnn: `seq_lengths` must lie in \[0, 5\]"),
        (lambda: F.rnn(F.init_params(jax.random.key(0), "rnn", 3, 4), X, nonlinearity="gelu"), ValueError,
         r"rnn: `nonlinearity` must be one of \('tanh', 'relu'\), got 'gelu'"),
        (lambda: F.rnn(F.init_params(jax.random.key(0), "rnn", 3, 4), X, dropout=1.5), ValueError,
         r"rnn: `dropout` must be a number in \[0, 1\], got 1.5"),
        (lambda: F.rnn(F.init_params(jax.random.key(0), "rnn", 3, 4), X, unroll=0), ValueError,
         r"rnn: `unroll` must be a positive int, got 0"),
        (lambda: F.init_params(jax.random.key(0), "gru", 3, 4, proj_size=2), ValueError,
         r"init_params: `proj_size` is only for mode 'lstm'"),
        (lambda: F.init_params(jax.random.key(0), "elman", 3, 4), ValueError,
         r"init_params: `mode` must be one of \('rnn', 'rnn_tanh', 'rnn_relu', 'lstm', 'gru'\), got 'elman'"),
        (lambda: F.gru_cell({"weight_ih": jnp.zeros((12, 3)), "weight_hh": jnp.zeros((12, 5))}, X[0]), ValueError,
         r"gru_cell: params\['weight_hh'\] has shape \(12, 5\), expected \(12, 4\)"),
        (lambda: F.lstm_cell({"weight_ih": jnp.zeros((16, 3)), "weight_hh": jnp.zeros((16, 4))}, X[0],
                             jnp.zeros((2, 4))), TypeError, r"lstm_cell: `h` must be a pair \(h, c\)"),
    ],
)
def test_errors_name_the_key_or_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("mode", ["rnn_tanh", "lstm", "gru"])
def test_vmap_over_unbatched_calls_equals_one_batched_call(mode):
    params = F.init_params(jax.random.key(2), mode, 3, 4, 2, bidirectional=True, dtype=jnp.float64)
    fn = {"rnn_tanh": F.rnn, "lstm": F.lstm, "gru": F.gru}[mode]
    xs = jnp.asarray(np.random.default_rng(3).standard_normal((6, 5, 3)))  # (batch, time, features)
    out, state = jax.vmap(lambda x: fn(params, x))(xs)
    want_out, want_state = fn(params, xs, batch_first=True)
    assert_close(out, want_out, what="output")
    # vmap puts the batch first; the batched call's state is (layers * D, batch, H)
    jax.tree.map(lambda a, b: assert_close(jnp.swapaxes(a, 0, 1), b, what="state"), state, want_state)
