"""save_safetensors / load_safetensors against the safetensors package and torch's load_state_dict;
the deprecated save_torch / load_torch; the message when safetensors is not installed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

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
from jaxrnn.interop import load_safetensors, save_safetensors

IDS = np.random.default_rng(0).integers(0, 27, (4, 9))


def test_save_safetensors_loads_into_torch_model(tmp_path):
    model = jaxrnn.models.CharRNN(27, 8, 16, 2, bidirectional=True, cell="lstm")
    variables = model.init(jax.random.key(0), jnp.asarray(IDS))
    path = tmp_path / "model.safetensors"
    save_safetensors(variables, path, metadata={"model": "CharRNN"})
    model_t = torchref.models.CharRNN(27, 8, 16, 2, bidirectional=True, cell="lstm")
    model_t.load_state_dict(safetensors.torch.load_file(path))  # strict: every key, every shape
    assert_close(model.apply(variables, jnp.asarray(IDS)), model_t(torch.from_numpy(IDS)).detach().numpy(), "float32")
    assert safetensors.safe_open(path, "np").metadata() == {"model": "CharRNN"}


def test_load_safetensors_reads_torch_saved_file(tmp_path):
    torch.manual_seed(0)
    model_t = torchref.models.RNNClassifier(5, 7, 3, num_layers=2).double()
    path = tmp_path / "torch.safetensors"
    safetensors.torch.save_file(model_t.state_dict(), path)
    model = jaxrnn.models.RNNClassifier(5, 7, 3, num_layers=2)
    variables = load_safetensors(path, model)
    x = np.random.default_rng(1).standard_normal((3, 6, 5))
    assert_close(model.apply(variables, x), model_t(torch.from_numpy(x)).detach().numpy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, jnp.bfloat16])
def test_roundtrip_is_bit_exact_and_readable_by_safetensors(tmp_path, dtype):
    rnn = jaxrnn.RNN(3, 4, bidirectional=True)
    variables = jax.tree.map(lambda a: a.astype(dtype), rnn.init(jax.random.key(0), jnp.zeros((2, 1, 3))))
    path = tmp_path / "w.safetensors"
    save_safetensors(variables, path)
    back = load_safetensors(path, rnn)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), back, variables)
    jax.tree.map(lambda a, b: np.testing.assert_equal(np.asarray(a).dtype, np.asarray(b).dtype), back, variables)
    theirs, torch_s = safetensors.numpy.load_file(path), safetensors.torch.load_file(path)
    for key, value in jaxrnn.to_torch(variables).items():
        assert theirs[key].dtype == value.dtype, key
        np.testing.assert_array_equal(theirs[key], value)
        # torch reads the same numbers in its own dtype (bfloat16 as torch.bfloat16): compare the bits
        assert torch_s[key].dtype == getattr(torch, np.dtype(dtype).name), key
        bits = {2: (np.int16, torch.int16), 4: (np.int32, torch.int32), 8: (np.int64, torch.int64)}[value.itemsize]
        np.testing.assert_array_equal(torch_s[key].view(bits[1]).numpy(), value.view(bits[0]))


def test_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    rnn = jaxrnn.RNN(3, 4)
    path = tmp_path / "w.safetensors"
    old = rnn.init(jax.random.key(0), jnp.zeros((2, 1, 3)))
    save_safetensors(old, path)
    before = path.read_bytes()

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        save_safetensors(rnn.init(jax.random.key(1), jnp.zeros((2, 1, 3))), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temporary file left behind


def test_truncated_or_mismatched_files_are_errors(tmp_path):
    rnn = jaxrnn.RNN(3, 4)
    path = tmp_path / "w.safetensors"
    save_safetensors(rnn.init(jax.random.key(0), jnp.zeros((2, 1, 3))), path)
    raw = path.read_bytes()
    (tmp_path / "short.safetensors").write_bytes(raw[:-10])
    with pytest.raises(ValueError, match="truncated or has inconsistent offsets"):
        load_safetensors(tmp_path / "short.safetensors")
    (tmp_path / "tiny.safetensors").write_bytes(raw[:5])
    with pytest.raises(ValueError, match=r"is not a safetensors file \(only 5 bytes\)"):
        load_safetensors(tmp_path / "tiny.safetensors")
    with pytest.raises(ValueError, match=r"'weight_ih_l0' has shape \(4, 3\), but RNN expects \(4, 2\)"):
        load_safetensors(path, jaxrnn.RNN(2, 4))


def test_save_safetensors_argument_errors(tmp_path):
    rnn = jaxrnn.RNN(3, 4)
    variables = rnn.init(jax.random.key(0), jnp.zeros((2, 1, 3)))
    with pytest.raises(TypeError, match="save_safetensors: `metadata` must map str to str"):
        save_safetensors(variables, tmp_path / "w.safetensors", metadata={"epoch": 3})
    with pytest.raises(TypeError, match="'weight_ih_l0' has dtype complex64, which safetensors and torch cannot both"):
        save_safetensors(jax.tree.map(lambda a: a.astype(jnp.complex64), variables), tmp_path / "w.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_save_torch_and_load_torch_still_work_and_are_deprecated(tmp_path):
    rnn = jaxrnn.RNN(3, 4)
    variables = rnn.init(jax.random.key(0), jnp.zeros((2, 1, 3)))
    path = tmp_path / "w.safetensors"
    with pytest.warns(DeprecationWarning, match=r"save_torch is deprecated: use jaxrnn.save_safetensors"):
        jaxrnn.save_torch(variables, path, metadata={"model": "RNN"})
    with pytest.warns(DeprecationWarning, match=r"load_torch is deprecated: use jaxrnn.load_safetensors"):
        back = jaxrnn.load_torch(path, rnn)
    jax.tree.map(np.testing.assert_array_equal, back, load_safetensors(path, rnn))
    jax.tree.map(np.testing.assert_array_equal, back, variables)
    assert safetensors.safe_open(path, "np").metadata() == {"model": "RNN"}


def test_without_safetensors_jaxrnn_imports_and_says_what_to_install():
    code = textwrap.dedent("""
        import sys
        sys.modules["safetensors"] = sys.modules["safetensors.numpy"] = None  # as if not installed
        import jaxrnn
        from jaxrnn.interop import save_safetensors
        try:
            save_safetensors({"params": {}}, "unused.safetensors")
        except ImportError as err:
            print(err)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "safetensors files need the safetensors package: pip install 'jaxrnn[safetensors]'" in done.stdout
