"""jaxrnn's cells against torch.nn.RNNCell / LSTMCell / GRUCell: one step, batched and unbatched, with and
without h, through every face (``jaxrnn.RNNCell``, ..., ``jaxrnn.functional.rnn_cell``, ... and
``jaxrnn.nnx.RNNCell``, ...)."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from _compare import assert_close
from _torch_rnn import FACES, torch_params
from flax import nnx

import jaxrnn


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize(
    "act, bias, batched, with_h", list(itertools.product(["tanh", "relu"], [True, False], [True, False], [True, False]))
)
def test_cell_step_and_grads_match_torch(act, bias, batched, with_h, face):
    rng = np.random.default_rng(7)
    torch.manual_seed(7)
    cell_t = torch.nn.RNNCell(3, 6, bias=bias, nonlinearity=act).double()
    x = rng.standard_normal((4, 3) if batched else (3,))
    h = rng.standard_normal((4, 6) if batched else (6,))
    w = rng.standard_normal(h.shape)
    x_t = torch.tensor(x, requires_grad=True)
    h_t = torch.tensor(h, requires_grad=True)
    out_t = cell_t(x_t, h_t if with_h else None)
    (out_t * torch.tensor(w)).sum().backward()

    params, step, to_torch = _face(face, cell_t, functools.partial(jaxrnn.functional.rnn_cell, nonlinearity=act),
                                   "RNNCell", bias=bias, nonlinearity=act)

    def loss(params, x, h):
        out = step(params, x, h if with_h else None)
        return jnp.sum(out * w), out

    (_, out), (g_p, g_x, g_h) = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(params, x, h)
    assert_close(out, out_t.detach().numpy(), what="h'")
    assert_close(g_x, x_t.grad.numpy(), what="grad x")
    if with_h:
        assert_close(g_h, h_t.grad.numpy(), what="grad h")
    grads = to_torch(g_p)
    assert sorted(grads) == sorted(dict(cell_t.named_parameters()))
    for key, value in grads.items():
        assert_close(value, dict(cell_t.named_parameters())[key].grad.numpy(), what=key)


def _face(face: str, cell_t: torch.nn.Module, functional_step, name: str, **kwargs):
    """``(params, step(params, x, hx), to_torch(grads))`` of the torch cell's twin in ``face``."""
    if face == "functional":
        return torch_params(cell_t), functional_step, lambda grads: grads
    if face == "linen":
        cell = getattr(jaxrnn, name)(3, 6, **kwargs)

        def apply(params, x, hx):
            return cell.apply({"params": params}, x, hx)

        return jaxrnn.from_torch(cell_t.state_dict(), cell)["params"], apply, jaxrnn.to_torch
    graphdef, state = nnx.split(jaxrnn.nnx.from_torch(cell_t.state_dict(),
                                                      getattr(jaxrnn.nnx, name)(3, 6, **kwargs, rngs=nnx.Rngs(0))))

    def call(state, x, hx):
        return nnx.merge(graphdef, state)(x, hx)

    return state, call, jaxrnn.nnx.to_torch


@pytest.mark.parametrize("face", ["linen", "nnx"])
def test_cell_init_is_torch_uniform(face):
    if face == "linen":
        params = jaxrnn.RNNCell(7, 50, param_dtype=jnp.float64).init(jax.random.key(0), jnp.zeros((1, 7)))["params"]
    else:
        params = jaxrnn.nnx.to_torch(jaxrnn.nnx.RNNCell(7, 50, param_dtype=jnp.float64, rngs=nnx.Rngs(0)))
    assert len(params) == 4
    values = np.concatenate([np.ravel(v) for v in params.values()])
    bound = 1 / np.sqrt(50)
    assert values.min() >= -bound and values.max() <= bound
    # U(-b, b) over 2950 draws: fills the interval, mean 0, std b/sqrt(3) (within 5 standard errors)
    assert values.min() < -0.97 * bound and values.max() > 0.97 * bound
    assert abs(values.mean()) < 5 * bound / np.sqrt(3 * values.size)
    np.testing.assert_allclose(values.std(), bound / np.sqrt(3), rtol=0.05)


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize(
    "kind, bias, batched, with_h", list(itertools.product(["lstm", "gru"], [True, False], [True, False], [True, False]))
)
def test_lstm_gru_cell_step_and_grads_match_torch(kind, bias, batched, with_h, face):
    rng = np.random.default_rng(11)
    torch.manual_seed(11)
    lead = (4,) if batched else ()
    x = rng.standard_normal(lead + (3,))
    if kind == "lstm":
        cell_t = torch.nn.LSTMCell(3, 6, bias=bias).double()
        hx = (rng.standard_normal(lead + (6,)), rng.standard_normal(lead + (6,)))
    else:
        cell_t = torch.nn.GRUCell(3, 6, bias=bias).double()
        hx = rng.standard_normal(lead + (6,))
    weights = jax.tree.map(lambda a: rng.standard_normal(a.shape), hx)
    x_t = torch.tensor(x, requires_grad=True)
    hx_t = jax.tree.map(lambda a: torch.tensor(a, requires_grad=True), hx)
    out_t = cell_t(x_t, (tuple(hx_t) if kind == "lstm" else hx_t) if with_h else None)
    out_t = out_t if kind == "lstm" else (out_t,)
    sum((o * torch.tensor(w)).sum() for o, w in zip(out_t, jax.tree.leaves(weights))).backward()

    params, step, to_torch = _face(face, cell_t, getattr(jaxrnn.functional, f"{kind}_cell"),
                                   {"lstm": "LSTMCell", "gru": "GRUCell"}[kind], bias=bias)

    def loss(params, x, hx):
        out = step(params, x, hx if with_h else None)
        return sum(jnp.sum(o * w) for o, w in zip(jax.tree.leaves(out), jax.tree.leaves(weights))), out

    (_, out), (g_p, g_x, g_h) = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(params, x, hx)
    if kind == "lstm":
        assert isinstance(out, jaxrnn.LSTMState)
    for got, want in zip(jax.tree.leaves(out), out_t):
        assert_close(got, want.detach().numpy(), what="state")
    assert_close(g_x, x_t.grad.numpy(), what="grad x")
    if with_h:
        for got, want in zip(jax.tree.leaves(g_h), jax.tree.leaves(hx_t)):
            assert_close(got, want.grad.numpy(), what="grad hx")
    grads = to_torch(g_p)
    assert sorted(grads) == sorted(dict(cell_t.named_parameters()))
    for key, value in grads.items():
        assert_close(value, dict(cell_t.named_parameters())[key].grad.numpy(), what=key)
