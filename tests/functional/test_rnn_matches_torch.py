"""jaxrnn's Elman RNN against torch.nn.RNN: outputs, final states and every gradient, over the
product of options, on both backends (``impl='fused'``, the engine and the default, and
``impl='scan'``, the reference) and both faces (``jaxrnn.RNN`` and ``jaxrnn.functional.rnn``).

The engine runs the whole product; each configuration goes through one face, picked by a hash of
the configuration (so each face sees every option's values; ``tests/functional/test_functional_matches_linen.py``
holds the faces equal bit for bit). The scan reference runs every third configuration (every case
compiles, ~1 s each); the LSTM/GRU sweeps cover its stacking, directions, masks and h0 too. Unrolled
loops run on a slice of the product. Strides are odd, so every option takes each of its values.
"""

from __future__ import annotations

import pytest
from _torch_rnn import BATCHED, UNBATCHED, compare_rnn_with_torch, config_id, face_of, path_id

import jaxrnn


def _sweep(configs: list, strides: dict) -> list:
    """``(path, config)`` for every ``stride``-th configuration of each (impl, unroll), its face by hash."""
    return [pytest.param(path, config, id=f"{path_id(path)}-{config_id(config)}")
            for (impl, unroll), stride in strides.items() for config in configs[::stride]
            for path in [(face_of(config), impl, unroll)]]


@pytest.mark.parametrize("path, config", _sweep(BATCHED, {("fused", 1): 1, ("scan", 1): 3, ("fused", 3): 13}))
def test_forward_and_grads_match_torch_float64(path, config):
    compare_rnn_with_torch(config, True, "float64", path)


@pytest.mark.parametrize("path, config", _sweep(UNBATCHED, {("fused", 1): 1, ("scan", 1): 3}))
def test_unbatched_forward_and_grads_match_torch_float64(path, config):
    compare_rnn_with_torch(config, False, "float64", path)


@pytest.mark.parametrize("path, config", _sweep(BATCHED, {("fused", 1): 7, ("scan", 1): 15, ("fused", 2): 15}))
def test_forward_and_grads_match_torch_float32(path, config):
    compare_rnn_with_torch(config, True, "float32", path)


IMPLS = r"\('fused', 'xla', 'native', 'scan'\)"


def test_impl_must_be_one_of_the_backends():
    with pytest.raises(ValueError, match=rf"RNN: `impl` must be one of {IMPLS}, got 'cudnn'"):
        jaxrnn.RNN(3, 4, impl="cudnn")
    with pytest.raises(ValueError, match=rf"rnn: `impl` must be one of {IMPLS}, got 'cudnn'"):
        jaxrnn.functional.rnn({}, None, impl="cudnn")
