"""Dropout between layers in the NNX layers, as torch's modules: train mode when built,
``model.eval()`` / ``model.train()`` / ``nnx.view`` / a call's ``deterministic`` switch it, the
masks come from the layer's forked ``'dropout'`` stream (or a call's ``rngs``), and in train mode
the masks have torch's statistics (checked on weights that make the masks visible in the output)."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from _compare import assert_close
from flax import nnx

import jaxrnn.nnx

T, N, I, H, P, LAYERS = 12, 8, 3, 5, 0.5, 3
CELLS = {"rnn": (jaxrnn.nnx.RNN, torch.nn.RNN), "lstm": (jaxrnn.nnx.LSTM, torch.nn.LSTM),
         "gru": (jaxrnn.nnx.GRU, torch.nn.GRU)}
rng = np.random.default_rng(0)
X = rng.standard_normal((T, N, I))


def _torch(cell: str, dropout: float = P, hidden: int = H, seed: int = 0, layers: int = LAYERS):
    torch.manual_seed(seed)
    return CELLS[cell][1](I, hidden, layers, dropout=dropout).double()


def _nnx(cell: str, state_dict, dropout: float = P, hidden: int = H, seed: int = 0, layers: int = LAYERS):
    """An NNX layer (built eagerly, as a user does) holding torch's weights."""
    model = CELLS[cell][0](I, hidden, layers, dropout=dropout, rngs=nnx.Rngs(seed), param_dtype=jnp.float64)
    return jaxrnn.nnx.from_torch(state_dict, model)


def _out(result):
    """output and the flattened final state, to compare whole results."""
    return [np.asarray(a) for a in jax.tree.leaves(result)]


def _assert_equal(a, b):
    for x, y in zip(_out(a), _out(b), strict=True):
        np.testing.assert_array_equal(x, y)


def _differs(a, b) -> bool:
    return not np.allclose(_out(a)[0], _out(b)[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("cell", list(CELLS))
def test_eval_mode_matches_no_dropout_bit_for_bit_and_torch_eval(cell):
    """A fresh layer is in train mode (torch's default); after ``eval()`` its output and final state
    are those of a dropout=0 layer with the same weights, bit for bit, and torch's eval-mode result
    (1e-10)."""
    model_t = _torch(cell)
    model = _nnx(cell, model_t.state_dict())
    assert model.deterministic is False and model_t.training
    plain = _nnx(cell, model_t.state_dict(), dropout=0.0)
    x = jnp.asarray(X)
    model.eval()
    model_t.eval()
    assert model.deterministic is True
    result = model(x)
    _assert_equal(result, plain(x))
    with torch.no_grad():
        result_t = model_t(torch.from_numpy(X))
    for a, b in zip(_out(result), [t.numpy() for t in jax.tree.leaves(result_t)], strict=True):
        assert_close(a, b, what=f"{cell} eval vs torch eval")


def _mask_revealing(model_t, hidden: int):
    """Layers 1 and 2 of a torch RNN made to pass their input through: ``weight_ih = I``,
    ``weight_hh = 0``, zero biases, so ``out_k = tanh(dropout(out_{k-1}))`` elementwise and an entry
    of the output is exactly 0 iff the mask of layer 1 or of layer 2 dropped it (layer 0's output
    is never exactly 0)."""
    with torch.no_grad():
        for k in (1, 2):
            getattr(model_t, f"weight_ih_l{k}").copy_(torch.eye(hidden, dtype=torch.float64))
            for name in (f"weight_hh_l{k}", f"bias_ih_l{k}", f"bias_hh_l{k}"):
                getattr(model_t, name).zero_()
    return model_t


def test_train_mode_masks_have_torch_statistics():
    """dropout=0.5 in a 3-layer RNN whose layers 1 and 2 pass their input through: an output entry
    is zero iff one of the two independent masks (layer 0's and layer 1's outputs) dropped it, with
    probability q = 1 - (1 - p)^2 = 0.75; the kept entries are ``tanh(tanh(out0 / (1-p)) / (1-p))``.

    Over n entries the zero fraction is binomial: standard deviation sqrt(q (1 - q) / n) (0.0024
    for n = 32000); the fractions of two independent runs (ours and torch's) then differ with
    standard deviation sqrt(2 q (1 - q) / n). Each is checked against q, and against each other,
    at 4 standard deviations (a false alarm once in ~16000 runs; a bug such as one mask for both
    layers gives q = 0.5, or a keep probability of p, or no scaling, is far outside). The masks
    differ between frameworks (different generators), so the values are compared entry by entry
    only where kept: against the formula, in both."""
    t, n, hidden = 64, 100, H
    x = np.random.default_rng(1).standard_normal((t, n, I))
    model_t = _mask_revealing(_torch("rnn", hidden=hidden), hidden)
    model = _nnx("rnn", model_t.state_dict(), hidden=hidden)
    out = np.asarray(model(jnp.asarray(x))[0])
    with torch.no_grad():
        out_t = model_t(torch.from_numpy(x))[0].numpy()
        first = torch.nn.RNN(I, hidden).double()
        first.load_state_dict({k: v for k, v in model_t.state_dict().items() if "_l0" in k})
        out0 = first(torch.from_numpy(x))[0].numpy()
    assert np.all(out0 != 0)
    kept_value = np.tanh(np.tanh(out0 / (1 - P)) / (1 - P))
    q = 1 - (1 - P) ** 2
    sigma = np.sqrt(q * (1 - q) / out.size)
    fractions = {}
    for who, o in (("nnx", out), ("torch", out_t)):
        zero = o == 0
        fractions[who] = zero.mean()
        np.testing.assert_allclose(fractions[who], q, atol=4 * sigma, err_msg=f"{who}: zero fraction")
        assert_close(o[~zero], kept_value[~zero], what=f"{who}: kept entries scaled by 1/(1-p) per layer")
    np.testing.assert_allclose(fractions["nnx"], fractions["torch"], atol=4 * np.sqrt(2) * sigma,
                               err_msg="zero fraction, nnx vs torch")


def test_train_mode_stream_advances_and_matches_under_nnx_jit():
    """Each train-mode call draws new masks (the layer's stream advances, its count too); the same
    calls under ``nnx.jit`` on a twin layer (same seed) draw the same masks, so give the same
    results (to 1e-12: the compiled program may round differently from the eager one)."""
    model_t = _torch("rnn")
    model = _nnx("rnn", model_t.state_dict(), seed=3)
    twin = _nnx("rnn", model_t.state_dict(), seed=3)
    x = jnp.asarray(X)
    count = int(model.rngs.count[...])
    first, second = model(x), model(x)
    assert int(model.rngs.count[...]) == count + 2
    assert _differs(first, second)

    call = nnx.jit(lambda m, x: m(x))
    for eager in (first, second):
        for a, b in zip(_out(call(twin, x)), _out(eager), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert int(twin.rngs.count[...]) == count + 2


def test_eval_train_view_and_call_time_switches():
    """``eval()`` then ``train()`` brings dropout back; ``nnx.view(model, deterministic=True)`` is an
    eval-mode view that leaves the model in train mode; a call's ``deterministic`` overrides the
    mode both ways; a call's ``rngs`` draws reproducible masks without touching the layer's stream.
    (Two layers: every eager call compiles its layers' scans again, ~0.3 s a layer on a CPU.)"""
    model_t = _torch("gru", layers=2)
    model = _nnx("gru", model_t.state_dict(), layers=2)
    plain = _nnx("gru", model_t.state_dict(), dropout=0.0, layers=2)
    x = jnp.asarray(X)
    reference = plain(x)

    model.eval()
    _assert_equal(model(x), reference)
    model.train()
    assert model.deterministic is False
    assert _differs(model(x), reference)

    view = nnx.view(model, deterministic=True)
    assert view.deterministic is True and model.deterministic is False
    _assert_equal(view(x), reference)
    assert _differs(model(x), reference)

    _assert_equal(model(x, deterministic=True), reference)
    model.eval()
    assert _differs(model(x, deterministic=False), reference)
    model.train()

    count = int(model.rngs.count[...])
    five = model(x, rngs=nnx.Rngs(5))
    _assert_equal(model(x, rngs=nnx.Rngs(5)), five)
    assert _differs(model(x, rngs=nnx.Rngs(6)), five)
    assert _differs(five, reference)
    key = jax.random.key(7)
    _assert_equal(model(x, rngs=key), model(x, rngs=key))
    assert int(model.rngs.count[...]) == count, "a call's rngs must not advance the layer's stream"
    with pytest.raises(TypeError, match=r"GRU: `rngs` must be an nnx.Rngs, an nnx.RngStream or a jax.random key, "
                                        r"got int"):
        model(x, rngs=5)


@pytest.mark.parametrize("cell", list(CELLS))
def test_dropout_with_one_layer_warns_as_torch(cell):
    """torch warns that dropout needs more than one layer; so does the NNX layer, with torch's text,
    and then holds no dropout stream (there is nothing to drop)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        CELLS[cell][1](I, H, 1, dropout=0.5)
    (expected,) = [str(w.message) for w in caught]
    with pytest.warns(UserWarning) as record:
        model = CELLS[cell][0](I, H, 1, dropout=0.5, rngs=nnx.Rngs(0), param_dtype=jnp.float64)
    assert [str(w.message) for w in record] == [expected]
    assert model.rngs is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CELLS[cell][0](I, H, 2, dropout=0.5, rngs=nnx.Rngs(0), param_dtype=jnp.float64)
        CELLS[cell][0](I, H, 1, rngs=nnx.Rngs(0), param_dtype=jnp.float64)
