"""jaxrnn.RNN against torch.nn.RNN: outputs, final states and every gradient, over the product of
options, for both recurrences: ``impl='fused'`` (jaxrnn._fused, the default) and ``impl='scan'``
(the nn.scan reference).

The fused recurrence runs the whole product. The scan reference is the generic path that LSTM and
GRU run too, and their full sweeps (test_lstm_gru_match_torch.py) cover its stacking, directions,
masks and h0; here it runs on every third configuration of the product (every case compiles,
~1 s each). Strides are odd, so every option takes each of its values on both impls. The fused
recurrence's other settings (both directions in one loop, unrolled loops) are in
test_fused_matches_torch.py.
"""

from __future__ import annotations

import pytest
from _torch_rnn import BATCHED, FUSED, SCAN, UNBATCHED, compare_rnn_with_torch, config_id, path_id

import jaxrnn


def _sweep(configs: list, strides: dict) -> list:
    """``(path, config)`` for every ``stride``-th configuration of each path."""
    return [pytest.param(path, config, id=f"{path_id(path)}-{config_id(config)}")
            for path, stride in strides.items() for config in configs[::stride]]


@pytest.mark.parametrize("path, config", _sweep(BATCHED, {FUSED: 1, SCAN: 3}))
def test_forward_and_grads_match_torch_float64(path, config):
    compare_rnn_with_torch(config, True, "float64", path)


@pytest.mark.parametrize("path, config", _sweep(UNBATCHED, {FUSED: 1, SCAN: 3}))
def test_unbatched_forward_and_grads_match_torch_float64(path, config):
    compare_rnn_with_torch(config, False, "float64", path)


@pytest.mark.parametrize("path, config", _sweep(BATCHED, {FUSED: 7, SCAN: 15}))
def test_forward_and_grads_match_torch_float32(path, config):
    compare_rnn_with_torch(config, True, "float32", path)


def test_impl_must_be_fused_or_scan():
    with pytest.raises(ValueError, match=r"RNN: `impl` must be one of \('fused', 'scan'\), got 'cudnn'"):
        jaxrnn.RNN(3, 4, impl="cudnn")
