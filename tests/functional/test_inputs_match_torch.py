"""What a port hands the layers, against torch: torch tensors and lists as inputs, torch's ``hx``
keyword, one length per unbatched sequence under ``vmap``, empty sequences, traced lengths, and
float64 data with x64 off. Every cell, through every face (``jaxrnn.functional``, linen and NNX)."""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from _compare import assert_close
from _torch_rnn import torch_params
from flax import nnx
from jax.experimental import checkify

import jaxrnn
from jaxrnn import functional as F

T, N, I, H = 5, 3, 3, 4
CELLS = ("rnn", "lstm", "gru")
FACES = ("functional", "linen", "nnx")


def _torch_layer(cell: str, seed: int, **kwargs) -> torch.nn.RNNBase:
    torch.manual_seed(seed)
    return {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](I, H, **kwargs).double()


def _jax_call(cell: str, face: str, layer: torch.nn.RNNBase, **kwargs):
    """``call(x, hx=None, **call_kwargs)`` of the torch layer's twin in ``face``."""
    params = torch_params(layer)
    if face == "functional":
        fn = {"rnn": F.rnn, "lstm": F.lstm, "gru": F.gru}[cell]
        return functools.partial(fn, params, **kwargs)
    dtype = jnp.float64 if next(layer.parameters()).dtype == torch.float64 else jnp.float32
    if face == "nnx":
        twin = {"rnn": jaxrnn.nnx.RNN, "lstm": jaxrnn.nnx.LSTM, "gru": jaxrnn.nnx.GRU}[cell](
            I, H, num_layers=layer.num_layers, bidirectional=layer.bidirectional, param_dtype=dtype, **kwargs,
            rngs=nnx.Rngs(0))
        return jaxrnn.nnx.from_torch(params, twin)
    module = {"rnn": jaxrnn.RNN, "lstm": jaxrnn.LSTM, "gru": jaxrnn.GRU}[cell](
        I, H, num_layers=layer.num_layers, bidirectional=layer.bidirectional, param_dtype=dtype, **kwargs)
    variables = jaxrnn.from_torch(params, module, jnp.zeros((T, N, I)))
    return functools.partial(module.apply, variables)


def _torch_run(layer, x, hx, lengths):
    """torch's output (padded back to T) and final state, with pack_padded_sequence for lengths."""
    with torch.no_grad():
        if lengths is None:
            return layer(x, hx)
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, h_n = layer(packed, hx)
        return torch.nn.utils.rnn.pad_packed_sequence(out, total_length=x.shape[0])[0], h_n


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("cell", CELLS)
def test_torch_tensors_and_lists_as_inputs_match_torch(cell, face):
    layer = _torch_layer(cell, CELLS.index(cell), num_layers=2, bidirectional=True)
    x = torch.randn(T, N, I, dtype=torch.float64)
    h0 = torch.randn(4, N, H, dtype=torch.float64)
    hx = (h0, torch.randn(4, N, H, dtype=torch.float64)) if cell == "lstm" else h0
    lengths = [2, 5, 3]  # a list, as torch's pack_padded_sequence takes it
    out, h_n = _torch_run(layer, x, hx, lengths)
    call = _jax_call(cell, face, layer)
    got_out, got_h = call(x, hx, seq_lengths=lengths)  # torch tensors as they are
    assert_close(got_out, out.numpy(), what="output")
    for a, b in zip(jax.tree.leaves(got_h), jax.tree.leaves(h_n)):
        assert_close(a, b.numpy(), what="h_n")
    got_t, _ = call(x, hx, seq_lengths=torch.tensor(lengths))
    assert_close(got_t, out.numpy(), what="output with a torch tensor of lengths")


@pytest.mark.parametrize("face", FACES)
def test_a_tensor_that_requires_grad_names_the_argument_and_the_conversion(face):
    call = _jax_call("gru", face, _torch_layer("gru", 0))
    x = torch.randn(T, N, I, dtype=torch.float64, requires_grad=True)
    with pytest.raises(TypeError, match=r"`x` must be an array .*t\.detach\(\)\.cpu\(\)\.numpy\(\)"):
        call(x)


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_torch_hx_keyword_matches_torch_and_h0_alias(cell, face):
    layer = _torch_layer(cell, 3, num_layers=2)
    x, h0 = torch.randn(T, N, I, dtype=torch.float64), torch.randn(2, N, H, dtype=torch.float64)
    with torch.no_grad():
        out, h_n = layer(x, hx=h0)
    call = _jax_call(cell, face, layer)
    for kwargs in ({"hx": h0.numpy()}, {"h0": h0.numpy()}):
        got_out, got_h = call(x.numpy(), **kwargs)
        assert_close(got_out, out.numpy(), what=f"output with {list(kwargs)}")
        assert_close(got_h, h_n.numpy(), what=f"h_n with {list(kwargs)}")
    with pytest.raises(TypeError, match=r"got both `hx` and `h0`"):
        call(x.numpy(), h0.numpy(), h0=h0.numpy())
    with pytest.raises(ValueError, match=r"expected h0 of shape \(2, 3, 4\), got \(1, 3, 4\)"):
        call(x.numpy(), h0=h0.numpy()[:1])


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("cell", CELLS)
def test_vmap_over_single_sequences_with_their_lengths_matches_torch(cell, face):
    layer = _torch_layer(cell, 5 + CELLS.index(cell), bidirectional=True, batch_first=True)
    x = torch.randn(N, T, I, dtype=torch.float64)
    lengths = [4, 1, 5]
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        out, h_n = layer(packed)
    out = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)[0]
    call = _jax_call(cell, face, layer, batch_first=True)
    got_out, got_h = jax.vmap(lambda s, n: call(s, seq_lengths=n))(x.numpy(), jnp.asarray(lengths))
    assert_close(got_out, out.numpy(), what="output")
    for a, b in zip(jax.tree.leaves(got_h), jax.tree.leaves(h_n)):  # vmap puts the batch first
        assert_close(jnp.swapaxes(a, 0, 1), b.numpy(), what="h_n")


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("cell", CELLS)
def test_an_empty_sequence_gives_zeros_and_hx_and_leaves_the_others_as_torch(cell, face):
    """torch refuses a length of 0; here it is an empty sequence: zero outputs, h_n = hx, and the
    other sequences of the batch exactly as torch computes them alone. Eager, jit and grad agree."""
    layer = _torch_layer(cell, 11, num_layers=2, bidirectional=True)
    x = torch.randn(T, N, I, dtype=torch.float64)
    h0 = torch.randn(4, N, H, dtype=torch.float64)
    hx = (h0, torch.randn(4, N, H, dtype=torch.float64)) if cell == "lstm" else h0
    keep = [0, 2]
    out, h_n = _torch_run(layer, x[:, keep], jax.tree.map(lambda a: a[:, keep], hx), [3, 5])
    call = _jax_call(cell, face, layer)
    lengths = np.array([3, 0, 5])
    hx_np = jax.tree.map(lambda a: a.numpy(), hx)
    eager = call(x.numpy(), hx_np, seq_lengths=lengths)
    jitted = jax.jit(lambda x, n: call(x, hx_np, seq_lengths=n))(x.numpy(), lengths)
    for got in (eager, jitted):
        got_out, got_h = got
        assert_close(got_out[:, keep], out.numpy(), what="the other sequences' output")
        assert np.all(np.asarray(got_out[:, 1]) == 0), "an empty sequence's output"
        for a, b, h in zip(jax.tree.leaves(got_h), jax.tree.leaves(h_n), jax.tree.leaves(hx_np)):
            assert_close(a[:, keep], b.numpy(), what="the other sequences' h_n")
            assert np.array_equal(np.asarray(a[:, 1]), h[:, 1]), "an empty sequence's h_n is hx"
    grad = jax.grad(lambda x: sum(jnp.sum(leaf ** 2) for leaf in jax.tree.leaves(call(x, hx_np, seq_lengths=lengths))))
    g = np.asarray(grad(x.numpy()))
    assert np.all(np.isfinite(g)) and np.all(g[:, 1] == 0), "no gradient reaches an empty sequence's inputs"


@pytest.mark.parametrize("face", FACES)
def test_traced_lengths_act_clipped_and_checkify_names_them(face):
    """Outside jit a length out of [0, T] is a ValueError; under jit it acts as clipped to [0, T],
    and under checkify the same call reports the ValueError's message."""
    call = _jax_call("lstm", face, _torch_layer("lstm", 2))
    x = np.random.default_rng(4).standard_normal((T, N, I))
    bad = np.array([9, -3, 2])
    with pytest.raises(ValueError, match=r"`seq_lengths` must lie in \[0, 5\] .*got min -3 and max 9"):
        call(x, seq_lengths=bad)
    f = jax.jit(lambda n: call(x, seq_lengths=n)[0])
    assert_close(f(bad), call(x, seq_lengths=np.clip(bad, 0, T))[0], what="traced lengths, clipped")
    error, _ = checkify.checkify(f, errors=checkify.user_checks)(bad)
    assert error.get() is not None and "`seq_lengths` must lie in [0, 5]" in error.get()
    assert "got min -3 and max 9" in error.get()
    error, _ = checkify.checkify(f, errors=checkify.user_checks)(np.array([5, 0, 2]))
    assert error.get() is None


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("cell", CELLS)
def test_float64_data_with_x64_off_runs_in_float32_as_torch_float32_without_warning(cell, face):
    layer = _torch_layer(cell, 8)
    x = np.random.default_rng(9).standard_normal((T, N, I))  # numpy's default, float64
    with torch.no_grad():
        out, _ = layer.float()(torch.as_tensor(x, dtype=torch.float32))
    with jax.enable_x64(False), warnings.catch_warnings():
        warnings.simplefilter("error")
        call = _jax_call(cell, face, layer)  # the float32 torch layer's weights
        got, _ = call(x)
        assert got.dtype == jnp.float32
        assert_close(got, out.numpy(), "float32")
