"""The lesson's models: torchref (PyTorch, as the lesson writes them) against jaxrnn.models (Flax)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from _compare import assert_close, assert_trees_close

import jaxrnn
import jaxrnn.models
import torchref.models

rng = np.random.default_rng(0)
CASES = {
    "RNNClassifier": ((10, 20, 3), {"num_layers": 2}, rng.standard_normal((4, 15, 10))),
    "RNNClassifier-1layer": ((10, 20, 3), {}, rng.standard_normal((4, 15, 10))),
    "RNNSeq2Seq": ((3, 16, 3), {}, rng.standard_normal((4, 12, 3))),
    "SinPredictor": ((), {}, rng.standard_normal((6, 30, 1))),
    "CharRNN": ((27, 8, 16, 5), {}, rng.integers(0, 27, (4, 11))),
    "CharRNN-bidirectional": ((27, 8, 16, 2), {"bidirectional": True}, rng.integers(0, 27, (4, 11))),
}
# the next lesson's cells in every model
for _case in list(CASES):
    for _cell in ("lstm", "gru"):
        _args, _kwargs, _x = CASES[_case]
        CASES[f"{_case}-{_cell}"] = (_args, {**_kwargs, "cell": _cell}, _x)


def _pair(case):
    args, kwargs, x = CASES[case]
    name = case.split("-")[0]  # e.g. "CharRNN-bidirectional-lstm" -> CharRNN
    torch.manual_seed(len(case))
    model_t = getattr(torchref.models, name)(*args, **kwargs).double()
    model = getattr(jaxrnn.models, name)(*args, **kwargs)
    return model_t, model, x


@pytest.mark.parametrize("case", sorted(CASES))
def test_model_forward_and_grads_match_torch(case):
    model_t, model, x = _pair(case)
    variables = jaxrnn.from_torch(model_t.state_dict(), model)
    x_t = torch.from_numpy(x)
    out_t = model_t(x_t)
    weight = rng.standard_normal(tuple(out_t.shape))
    (out_t * torch.from_numpy(weight)).sum().backward()

    def loss(params):
        out = model.apply({"params": params}, jnp.asarray(x))
        return jnp.sum(out * weight), out

    (_, out), grads = jax.value_and_grad(loss, has_aux=True)(variables["params"])
    assert out.shape == tuple(out_t.shape)
    assert_close(out, out_t.detach().numpy(), what="output")
    assert_trees_close(jaxrnn.to_torch(grads), {k: p.grad.numpy() for k, p in model_t.named_parameters()}, what="grads")


@pytest.mark.parametrize("case", sorted(CASES))
def test_model_jax_to_torch_to_jax_is_identical(case):
    model_t, model, x = _pair(case)
    variables = model.init(jax.random.key(3), jnp.asarray(x))
    model_t.float().load_state_dict({k: torch.from_numpy(v) for k, v in jaxrnn.to_torch(variables).items()})
    back = jaxrnn.from_torch(model_t.state_dict(), model)
    assert jax.tree.structure(back) == jax.tree.structure(variables)
    jax.tree.map(np.testing.assert_array_equal, back, variables)
    # and the torch model loaded from jaxrnn's init computes what jaxrnn computes (float32)
    assert_close(
        model.apply(variables, jnp.asarray(x, jnp.float32) if x.dtype.kind == "f" else jnp.asarray(x)),
        model_t(torch.from_numpy(x).float() if x.dtype.kind == "f" else torch.from_numpy(x)).detach().numpy(),
        "float32",
        "output",
    )


def test_model_state_dict_keys_match_torch():
    for case in CASES:
        model_t, model, x = _pair(case)
        exported = jaxrnn.to_torch(model.init(jax.random.key(0), jnp.asarray(x)))
        assert {k: v.shape for k, v in exported.items()} == {k: tuple(v.shape) for k, v in model_t.state_dict().items()}


def test_unknown_cell_is_an_error_in_both_frameworks():
    with pytest.raises(ValueError, match=r"`cell` must be one of \('rnn', 'lstm', 'gru'\), got 'transformer'"):
        torchref.models.SinPredictor(cell="transformer")
    model = jaxrnn.models.SinPredictor(cell="transformer")
    with pytest.raises(
        ValueError, match=r"SinPredictor: `cell` must be one of \('rnn', 'lstm', 'gru'\), got 'transformer'"
    ):
        model.init(jax.random.key(0), jnp.zeros((1, 3, 1)))


def test_sin_predictor_squeezes_like_torch_for_batch_one():
    model_t, model, x = _pair("SinPredictor")
    variables = jaxrnn.from_torch(model_t.state_dict(), model)
    out = model.apply(variables, jnp.asarray(x[:1]))
    out_t = model_t(torch.from_numpy(x[:1]))
    assert out.shape == tuple(out_t.shape) == ()
    assert_close(out, out_t.detach().numpy())
