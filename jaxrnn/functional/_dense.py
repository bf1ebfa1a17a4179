"""``torch.nn.Linear`` and ``torch.nn.Embedding`` on torch's parameters: the checks and the maths
every face calls (the linen and NNX ``Linear`` / ``Embedding`` only declare the parameters)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from . import _checks, _steps

Array = jax.Array


def linear(weight: Array, bias: Array | None, x: Array, *, owner: str = "Linear", dtype: Any = None,
           precision: Any = None) -> Array:
    """``y = x W^T + b``: x (..., in_features), weight (out_features, in_features), bias
    (out_features,) or None; y (..., out_features) in ``dtype`` (None: x's and the parameters' promotion)."""
    x = _checks.array("x", x, owner)
    if x.shape[-1:] != weight.shape[1:]:
        raise ValueError(f"{owner}: `in_features` is {weight.shape[1]} but x has shape {x.shape}")
    dtype = jax.dtypes.canonicalize_dtype(jnp.result_type(x, weight, *([] if bias is None else [bias]))
                                          if dtype is None else dtype)
    y = jnp.matmul(jnp.asarray(x, dtype), jnp.asarray(weight, dtype).T, precision=precision)
    return _steps.add_bias(y, None if bias is None else jnp.asarray(bias, dtype))


def embedding(weight: Array, ids: Array, *, owner: str = "Embedding", dtype: Any = None) -> Array:
    """Rows of ``weight`` (num_embeddings, embedding_dim) at integer ``ids`` of any shape (...):
    (..., embedding_dim). Known ids must lie in [0, num_embeddings - 1]."""
    ids = _checks.array("ids", ids, owner)
    if not jnp.issubdtype(ids.dtype, jnp.integer):
        raise TypeError(f"{owner}: expected integer ids, got dtype {ids.dtype}")
    if _checks.is_concrete(ids) and ids.size:
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= weight.shape[0]:
            raise ValueError(f"{owner}: ids must lie in [0, {weight.shape[0] - 1}], got min {low} and max {high}")
    return jnp.take(weight if dtype is None else weight.astype(dtype), ids, axis=0)
