"""The fused recurrence's own entry points against torch.nn.RNN and the definition.

jaxrnn.RNN's sweep over both impls is test_rnn_matches_torch.py. Here: the settings of
jaxrnn._fused that the layer does not use by default, on slices of the same product of options
(every case compiles, ~1 s each): both directions in one loop instead of one loop each (through
``_fused.elman_stack(fuse_directions=True)``) and unrolled loops; then ``_fused.elman`` alone
against a plain loop, and the errors of ``elman``/``elman_bidirectional``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _compare import assert_close
from _torch_rnn import BATCHED, LENGTHS, H, N, T, compare_rnn_with_torch, config_id, path_id

from jaxrnn.functional import _fused

BIDIRECTIONAL = [c for c in BATCHED if c[1]]
# (impl, fuse_directions, unroll) -> the configurations it runs on
VARIANTS = {
    ("fused", True, 1): BIDIRECTIONAL[::5],
    ("fused", False, 3): BATCHED[::13],
    ("fused", True, 2): BIDIRECTIONAL[::13],
}


@pytest.mark.parametrize(
    "path, config",
    [pytest.param(v, c, id=f"{path_id(v)}-{config_id(c)}") for v, configs in VARIANTS.items() for c in configs],
)
def test_fused_variants_forward_and_grads_match_torch_float64(path, config):
    compare_rnn_with_torch(config, True, "float64", path)


@pytest.mark.parametrize("config", BATCHED[::15], ids=config_id)
def test_one_loop_unrolled_forward_and_grads_match_torch_float32(config):
    compare_rnn_with_torch(config, True, "float32", ("fused", True, 2))


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_elman_matches_scan_over_steps(reverse, act):
    """The primitive alone against the definition written as a plain loop (float64)."""
    kx, kw, kh, kb = jax.random.split(jax.random.key(3), 4)
    xp = jax.random.normal(kx, (T, N, H), jnp.float64)
    w = jax.random.normal(kw, (H, H), jnp.float64) / np.sqrt(H)
    h = jax.random.normal(kh, (N, H), jnp.float64)
    b = jax.random.normal(kb, (H,), jnp.float64)
    lengths = jnp.asarray(LENGTHS)
    ys, h_n = _fused.elman(xp, w, h, lengths, bias=b, reverse=reverse, nonlinearity=act)
    f = jnp.tanh if act == "tanh" else jax.nn.relu
    expected = np.zeros((T, N, H))
    for n in range(N):
        state = h[n]
        steps = range(LENGTHS[n] - 1, -1, -1) if reverse else range(LENGTHS[n])
        for t in steps:
            state = f(xp[t, n] + b + w @ state)
            expected[t, n] = state
        assert_close(h_n[n], state, what=f"h_n[{n}]")
    assert_close(ys, expected, what="ys")


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: _fused.elman(jnp.zeros((T, N, H)), jnp.zeros((H, H)), jnp.zeros((N, H)), nonlinearity="gelu"),
            "`nonlinearity` must be one of",
        ),
        (
            lambda: _fused.elman(jnp.zeros((T, N, H)), jnp.zeros((H, H)), jnp.zeros((N, H)), unroll=0),
            "`unroll` must be a positive int, got 0",
        ),
        (
            lambda: _fused.elman(jnp.zeros((T, N)), jnp.zeros((H, H)), jnp.zeros((N, H))),
            r"expected xp of shape \(time, batch, features\), got \(7, 4\)",
        ),
        (
            lambda: _fused.elman(jnp.zeros((T, N, H)), jnp.zeros((H, H + 1)), jnp.zeros((N, H))),
            r"expected w_hh of shape \(5, 5\), got \(5, 6\)",
        ),
        (
            lambda: _fused.elman(jnp.zeros((T, N, H)), jnp.zeros((H, H)), jnp.zeros((N + 1, H))),
            r"expected h0 of shape \(4, 5\), got \(5, 5\)",
        ),
        (
            lambda: _fused.elman(jnp.zeros((T, N, H)), jnp.zeros((H, H)), jnp.zeros((N, H)), jnp.zeros(N)),
            "`seq_lengths` must be an integer array",
        ),
        (
            lambda: _fused.elman_bidirectional(
                jnp.zeros((T, N, 2 * H + 1)), jnp.zeros((2, H, H)), jnp.zeros((2, N, H))
            ),
            r"xp's last axis \(11\) must be 2 \* hidden",
        ),
        (
            lambda: _fused.elman_bidirectional(jnp.zeros((T, N, 2 * H)), jnp.zeros((H, H)), jnp.zeros((2, N, H))),
            r"expected w_hh of shape \(2, 5, 5\), got \(5, 5\)",
        ),
        (
            lambda: _fused.elman(jnp.zeros((T, N, H)), jnp.zeros((H, H)), jnp.zeros((N, H)), bias=jnp.zeros(H + 1)),
            r"expected bias of shape \(5,\), got \(6,\)",
        ),
    ],
)
def test_errors_name_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
