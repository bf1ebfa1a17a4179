"""save_torch / load_torch against the safetensors package and torch's load_state_dict."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch
from _compare import assert_close

import jaxrnn
import jaxrnn.models
import torchref.models

IDS = np.random.default_rng(0).integers(0, 27, (4, 9))


def test_save_torch_loads_into_torch_model(tmp_path):
    model = jaxrnn.models.CharRNN(27, 8, 16, 2, bidirectional=True, cell="lstm")
    variables = model.init(jax.random.key(0), jnp.asarray(IDS))
    path = tmp_path / "model.safetensors"
    jaxrnn.save_torch(variables, path, metadata={"model": "CharRNN"})
    model_t = torchref.models.CharRNN(27, 8, 16, 2, bidirectional=True, cell="lstm")
    model_t.load_state_dict(safetensors.torch.load_file(path))  # strict: every key, every shape
    assert_close(model.apply(variables, jnp.asarray(IDS)), model_t(torch.from_numpy(IDS)).detach().numpy(), "float32")
    assert safetensors.safe_open(path, "np").metadata() == {"model": "CharRNN"}


def test_load_torch_reads_torch_saved_file(tmp_path):
    torch.manual_seed(0)
    model_t = torchref.models.RNNClassifier(5, 7, 3, num_layers=2).double()
    path = tmp_path / "torch.safetensors"
    safetensors.torch.save_file(model_t.state_dict(), path)
    model = jaxrnn.models.RNNClassifier(5, 7, 3, num_layers=2)
    variables = jaxrnn.load_torch(path, model)
    x = np.random.default_rng(1).standard_normal((3, 6, 5))
    assert_close(model.apply(variables, x), model_t(torch.from_numpy(x)).detach().numpy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, jnp.bfloat16])
def test_roundtrip_is_bit_exact_and_readable_by_safetensors(tmp_path, dtype):
    rnn = jaxrnn.RNN(3, 4, bidirectional=True)
    variables = jax.tree.map(lambda a: a.astype(dtype), rnn.init(jax.random.key(0), jnp.zeros((2, 1, 3))))
    path = tmp_path / "w.safetensors"
    jaxrnn.save_torch(variables, path)
    back = jaxrnn.load_torch(path, rnn)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), back, variables)
    if dtype is not jnp.bfloat16:  # safetensors.numpy has no bfloat16
        theirs = safetensors.numpy.load_file(path)
        for key, value in jaxrnn.to_torch(variables).items():
            np.testing.assert_array_equal(theirs[key], value)


def test_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    rnn = jaxrnn.RNN(3, 4)
    path = tmp_path / "w.safetensors"
    old = rnn.init(jax.random.key(0), jnp.zeros((2, 1, 3)))
    jaxrnn.save_torch(old, path)
    before = path.read_bytes()

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        jaxrnn.save_torch(rnn.init(jax.random.key(1), jnp.zeros((2, 1, 3))), path)
    assert path.read_bytes() == before


def test_truncated_or_mismatched_files_are_errors(tmp_path):
    rnn = jaxrnn.RNN(3, 4)
    path = tmp_path / "w.safetensors"
    jaxrnn.save_torch(rnn.init(jax.random.key(0), jnp.zeros((2, 1, 3))), path)
    raw = path.read_bytes()
    (tmp_path / "short.safetensors").write_bytes(raw[:-10])
    with pytest.raises(ValueError, match="truncated or has inconsistent offsets"):
        jaxrnn.load_torch(tmp_path / "short.safetensors")
    (tmp_path / "tiny.safetensors").write_bytes(raw[:5])
    with pytest.raises(ValueError, match=r"is not a safetensors file \(only 5 bytes\)"):
        jaxrnn.load_torch(tmp_path / "tiny.safetensors")
    with pytest.raises(ValueError, match=r"'weight_ih_l0' has shape \(4, 3\), but RNN expects \(4, 2\)"):
        jaxrnn.load_torch(path, jaxrnn.RNN(2, 4))
