"""jaxrnn.RNNCell against torch.nn.RNNCell: one step, batched and unbatched, with and without h."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from _compare import assert_close

import jaxrnn


@pytest.mark.parametrize(
    "act, bias, batched, with_h", list(itertools.product(["tanh", "relu"], [True, False], [True, False], [True, False]))
)
def test_cell_step_and_grads_match_torch(act, bias, batched, with_h):
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

    cell = jaxrnn.RNNCell(3, 6, bias=bias, nonlinearity=act)
    variables = jaxrnn.from_torch(cell_t.state_dict(), cell)

    def loss(params, x, h):
        out = cell.apply({"params": params}, x, h if with_h else None)
        return jnp.sum(out * w), out

    (_, out), (g_p, g_x, g_h) = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(variables["params"], x, h)
    assert_close(out, out_t.detach().numpy(), what="h'")
    assert_close(g_x, x_t.grad.numpy(), what="grad x")
    if with_h:
        assert_close(g_h, h_t.grad.numpy(), what="grad h")
    for key, value in jaxrnn.to_torch(g_p).items():
        assert_close(value, dict(cell_t.named_parameters())[key].grad.numpy(), what=key)


def test_cell_init_is_torch_uniform():
    cell = jaxrnn.RNNCell(7, 50, param_dtype=jnp.float64)
    params = cell.init(jax.random.key(0), jnp.zeros((1, 7)))["params"]
    values = np.concatenate([np.ravel(v) for v in params.values()])
    bound = 1 / np.sqrt(50)
    assert values.min() >= -bound and values.max() <= bound
    # U(-b, b) over 2950 draws: fills the interval, mean 0, std b/sqrt(3) (within 5 standard errors)
    assert values.min() < -0.97 * bound and values.max() > 0.97 * bound
    assert abs(values.mean()) < 5 * bound / np.sqrt(3 * values.size)
    np.testing.assert_allclose(values.std(), bound / np.sqrt(3), rtol=0.05)
