"""Comparison helpers shared by the tests."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# Stated tolerances. float64: both frameworks compute the same sums in a different order, so
# they agree to rounding (~1e-15 relative); 1e-10 leaves room for long chains of tanh/relu.
# float32: rounding of ~1e-7 per op accumulates through layers and time steps.
TOL = {"float64": dict(rtol=1e-10, atol=1e-10), "float32": dict(rtol=1e-5, atol=2e-6)}


def assert_close(actual, desired, dtype: str = "float64", what: str = "") -> None:
    np.testing.assert_allclose(np.asarray(actual), np.asarray(desired), err_msg=what, **TOL[dtype])


def assert_trees_close(actual: Mapping, desired: Mapping, dtype: str = "float64", what: str = "") -> None:
    """Same keys first, then every leaf within the dtype's tolerance, naming the key on failure."""
    assert sorted(actual) == sorted(desired), f"{what}: keys differ: {sorted(actual)} vs {sorted(desired)}"
    for key in desired:
        a, d = np.asarray(actual[key]), np.asarray(desired[key])
        assert a.shape == d.shape, f"{what}[{key}]: shape {a.shape} vs {d.shape}"
        assert_close(a, d, dtype, what=f"{what}[{key}]")
