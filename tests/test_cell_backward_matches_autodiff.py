"""LSTMCell.backward_step / GRUCell.backward_step (the fused path's hand-written step derivative)
against JAX's autodiff of the same cell's forward_step, in float64, on random inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _compare import assert_close

from jaxrnn import GRUCell, LSTMCell, LSTMState

N, H = 5, 7


def _random(rng, *shape):
    return jnp.asarray(rng.standard_normal(shape))


@pytest.mark.parametrize("cell", [LSTMCell, GRUCell], ids=["LSTM", "GRU"])
@pytest.mark.parametrize("scale", [0.5, 3.0], ids=["moderate", "saturating"])
def test_backward_step_matches_vjp_of_forward_step(cell, scale):
    rng = np.random.default_rng(11)
    xp, hh = (scale * _random(rng, N, cell.gates * H) for _ in range(2))
    if cell is LSTMCell:
        prev = LSTMState(_random(rng, N, H), _random(rng, N, H))
        d_new = LSTMState(_random(rng, N, H), _random(rng, N, H))
    else:
        prev, d_new = _random(rng, N, H), _random(rng, N, H)

    new, vjp = jax.vjp(cell.update, xp, hh, prev)
    want_dxp, want_dhh, want_dprev = vjp(d_new)

    new_fused, saved = cell.forward_step(xp, hh, prev)
    dxp, dhh, dprev_direct = cell.backward_step(saved, prev, new_fused, d_new)
    jax.tree.map(lambda a, b: assert_close(a, b, what="carry"), new_fused, new)
    assert_close(jnp.concatenate(dxp, axis=-1), want_dxp, what="d xp")
    dhh = jnp.concatenate([x if h is None else h for x, h in zip(dxp, dhh)], axis=-1)
    assert_close(dhh, want_dhh, what="d hh")
    # backward_step leaves out d prev's path through hh (the loop adds d hh @ W_hh); hh is an
    # input here, so autodiff's d prev is the direct part alone
    jax.tree.map(lambda a, b: assert_close(a, b, what="d prev"), dprev_direct, want_dprev)
