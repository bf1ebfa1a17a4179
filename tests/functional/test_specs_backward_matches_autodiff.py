"""Each cell spec's ``backward_step`` (the engine's hand-written step derivative) against JAX's
autodiff of the same spec's ``forward_step``, in float64, on random inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _compare import assert_close

from jaxrnn.functional import LSTMState, _specs

N, H = 5, 7


def _random(rng, *shape):
    return jnp.asarray(rng.standard_normal(shape))


@pytest.mark.parametrize("spec", list(_specs.SPECS.values()), ids=list(_specs.SPECS))
@pytest.mark.parametrize("scale", [0.5, 3.0], ids=["moderate", "saturating"])
def test_backward_step_matches_vjp_of_forward_step(spec, scale):
    rng = np.random.default_rng(11)
    xp, hh = (scale * _random(rng, N, spec.gates * H) for _ in range(2))
    if spec.mode == "lstm":
        prev = LSTMState(_random(rng, N, H), _random(rng, N, H))
        d_new = LSTMState(_random(rng, N, H), _random(rng, N, H))
    else:
        prev, d_new = _random(rng, N, H), _random(rng, N, H)

    new, vjp = jax.vjp(spec.update, xp, hh, prev)
    want_dxp, want_dhh, want_dprev = vjp(d_new)

    new_fused, saved = spec.forward_step(xp, hh, prev)
    dxp, dhh, dprev_direct = spec.backward_step(saved, prev, new_fused, d_new)
    assert len(dxp) == len(dhh) == spec.blocks
    jax.tree.map(lambda a, b: assert_close(a, b, what="carry"), new_fused, new)
    assert_close(jnp.concatenate(dxp, axis=-1), want_dxp, what="d xp")
    dhh = jnp.concatenate([x if h is None else h for x, h in zip(dxp, dhh)], axis=-1)
    assert_close(dhh, want_dhh, what="d hh")
    # backward_step leaves out d prev's path through hh (the engine adds d hh @ W_hh); hh is an
    # input here, so autodiff's d prev is the direct part alone, and None stands for zero
    want = jax.tree.leaves(want_dprev)
    got = jax.tree.leaves(dprev_direct, is_leaf=lambda a: a is None) if dprev_direct is not None else [None]
    for g, w in zip(got, want):
        assert_close(np.zeros_like(w) if g is None else g, w, what="d prev")
