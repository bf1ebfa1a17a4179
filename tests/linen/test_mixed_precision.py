"""Mixed precision: float16 / bfloat16 computation with float32 parameters, against the float64 result.

Stated tolerances (max and mean absolute error of the output against float64, for tanh/sigmoid
layers whose states lie in [-1, 1]): they hold at T=1000 as at T=50, because the recurrence
does not accumulate rounding error: each step's rounding is squashed by the next nonlinearity.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
import jaxrnn.models

TOLERANCES = {  # dtype: (max abs error, mean abs error)
    "float32": (1e-5, 1e-6),
    "float16": (4e-3, 4e-4),
    "bfloat16": (3e-2, 3e-3),
}


@pytest.mark.parametrize(
    "layer_cls, dtype, steps",
    list(itertools.product([jaxrnn.RNN, jaxrnn.LSTM, jaxrnn.GRU], ["float16", "bfloat16", "float32"], [50, 1000])),
)
def test_low_precision_compute_stays_within_tolerance_of_float64(layer_cls, dtype, steps):
    # deep and bidirectional on the short sequence; one layer on the long one (the time it costs is compile + T)
    layer = layer_cls(8, 32, num_layers=2, bidirectional=True) if steps < 1000 else layer_cls(8, 32)
    x = jax.random.normal(jax.random.key(steps), (steps, 4, 8), jnp.float32)
    variables = layer.init(jax.random.key(1), x)
    assert jax.tree.leaves(variables)[0].dtype == jnp.float32
    reference, _ = layer.apply(jax.tree.map(lambda a: a.astype(jnp.float64), variables), x.astype(jnp.float64))
    out, state = jax.jit(layer.clone(dtype=jnp.dtype(dtype)).apply)(variables, x)
    assert out.dtype == jnp.dtype(dtype)
    assert all(leaf.dtype == jnp.dtype(dtype) for leaf in jax.tree.leaves(state))
    error = np.abs(np.asarray(out, np.float64) - np.asarray(reference))
    max_tol, mean_tol = TOLERANCES[dtype]
    assert error.max() <= max_tol and error.mean() <= mean_tol, (error.max(), error.mean())
    # and the tolerance is not vacuous: low precision really rounds
    if dtype != "float32":
        assert error.max() > 1e-6


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_models_compute_in_dtype_with_float32_params(dtype):
    model = jaxrnn.models.CharRNN(27, 16, 32, 4, bidirectional=True, cell="gru", dtype=jnp.dtype(dtype))
    ids = jnp.arange(60).reshape(3, 20) % 27
    variables = model.init(jax.random.key(0), ids)
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype("float32")}
    out = model.apply(variables, ids)
    reference = model.clone(dtype=None).apply(jax.tree.map(lambda a: a.astype(jnp.float64), variables), ids)
    assert out.dtype == jnp.dtype(dtype)
    np.testing.assert_allclose(np.asarray(out, np.float64), reference, atol=10 * TOLERANCES[dtype][0])


def test_param_dtype_sets_every_parameter():
    model = jaxrnn.models.RNNClassifier(5, 8, 3, num_layers=2, cell="lstm", param_dtype=jnp.bfloat16)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 4, 5)))
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.bfloat16)}
