"""``torch.nn.Linear`` and ``torch.nn.Embedding`` as NNX modules, with torch's parameter names,
layouts and init; the maths is the core's (``functional._dense``), shared with the linen layers."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from ..functional import _checks, _dense
from ..functional._params import torch_uniform

Array = jax.Array


class Linear(nnx.Module):
    r"""``y = x W^T + b``, as ``torch.nn.Linear(in_features, out_features, bias=True)``.

    ``weight`` (out_features, in_features) and ``bias`` (out_features,) are ``nnx.Param``
    attributes drawn from U(-1/sqrt(in_features), 1/sqrt(in_features)) as torch's default init
    (keyword-only extras: ``rngs``, ``dtype``, ``param_dtype``, ``precision``). x (..., in_features)
    -> y (..., out_features).

    >>> import jax
    >>> from flax import nnx
    >>> from jaxrnn.nnx import Linear
    >>> fc = Linear(20, 5, rngs=nnx.Rngs(0))
    >>> fc(jax.random.normal(jax.random.key(1), (32, 20))).shape, fc.weight.shape
    ((32, 5), (5, 20))
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, rngs: nnx.Rngs,
                 dtype: Any = None, param_dtype: Any = jnp.float32, precision: Any = None):
        self.in_features = _checks.positive_int("in_features", in_features, "Linear")
        self.out_features = _checks.positive_int("out_features", out_features, "Linear")
        self.dtype, self.param_dtype, self.precision = dtype, param_dtype, precision
        init = torch_uniform(1.0 / math.sqrt(in_features))
        self.weight = nnx.Param(init(rngs.params(), (out_features, in_features), param_dtype))
        self.bias = nnx.Param(init(rngs.params(), (out_features,), param_dtype)) if bias else None

    def __call__(self, x: Array) -> Array:
        bias = None if self.bias is None else self.bias[...]
        return _dense.linear(self.weight[...], bias, x, dtype=self.dtype, precision=self.precision)


class Embedding(nnx.Module):
    """A lookup table, as ``torch.nn.Embedding(num_embeddings, embedding_dim)``: ``weight``
    (num_embeddings, embedding_dim), N(0, 1) init. Integer ids (...) -> (..., embedding_dim).

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxrnn.nnx import Embedding
    >>> Embedding(27, 32, rngs=nnx.Rngs(0))(jnp.arange(12).reshape(3, 4)).shape
    (3, 4, 32)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, *, rngs: nnx.Rngs, dtype: Any = None,
                 param_dtype: Any = jnp.float32):
        self.num_embeddings = _checks.positive_int("num_embeddings", num_embeddings, "Embedding")
        self.embedding_dim = _checks.positive_int("embedding_dim", embedding_dim, "Embedding")
        self.dtype, self.param_dtype = dtype, param_dtype
        self.weight = nnx.Param(jax.random.normal(rngs.params(), (num_embeddings, embedding_dim), param_dtype))

    def __call__(self, ids: Array) -> Array:
        return _dense.embedding(self.weight[...], ids, dtype=self.dtype)
