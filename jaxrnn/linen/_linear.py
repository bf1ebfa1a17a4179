"""``torch.nn.Linear`` and ``torch.nn.Embedding`` with PyTorch's parameter names, layouts and init."""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ..functional import _checks, _dense
from ..functional._params import torch_uniform

Array = jax.Array


class Linear(nn.Module):
    r"""``y = x W^T + b``, as ``torch.nn.Linear``.

    ``weight`` has torch's shape (out_features, in_features) and ``bias`` (out_features,),
    both drawn from U(-1/sqrt(in_features), 1/sqrt(in_features)) as torch's default init.
    x is (..., in_features); y is (..., out_features).

    >>> import jax
    >>> from jaxrnn import Linear
    >>> fc = Linear(20, 5)
    >>> x = jax.random.normal(jax.random.key(0), (32, 20))
    >>> variables = fc.init(jax.random.key(1), x)
    >>> fc.apply(variables, x).shape, variables["params"]["weight"].shape
    ((32, 5), (5, 20))
    """

    in_features: int
    out_features: int
    bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None

    def __post_init__(self):
        _checks.positive_int("in_features", self.in_features, type(self).__name__)
        _checks.positive_int("out_features", self.out_features, type(self).__name__)
        super().__post_init__()

    def _example_input(self) -> Array:
        return jnp.zeros((1, self.in_features), self.param_dtype)

    @nn.compact
    def __call__(self, x: Array) -> Array:
        init = torch_uniform(1.0 / math.sqrt(self.in_features))
        weight = self.param("weight", init, (self.out_features, self.in_features), self.param_dtype)
        bias = self.param("bias", init, (self.out_features,), self.param_dtype) if self.bias else None
        return _dense.linear(weight, bias, x, dtype=self.dtype, precision=self.precision)


class Embedding(nn.Module):
    """A lookup table, as ``torch.nn.Embedding``: ``weight`` (num_embeddings, embedding_dim), N(0, 1) init.

    Integer ids of any shape (...) give vectors (..., embedding_dim).

    >>> import jax, jax.numpy as jnp
    >>> from jaxrnn import Embedding
    >>> emb = Embedding(27, 32)
    >>> ids = jnp.arange(12).reshape(3, 4)
    >>> variables = emb.init(jax.random.key(0), ids)
    >>> emb.apply(variables, ids).shape
    (3, 4, 32)
    """

    num_embeddings: int
    embedding_dim: int
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def __post_init__(self):
        _checks.positive_int("num_embeddings", self.num_embeddings, type(self).__name__)
        _checks.positive_int("embedding_dim", self.embedding_dim, type(self).__name__)
        super().__post_init__()

    def _example_input(self) -> Array:
        return jnp.zeros((1, 1), jnp.int32)

    @nn.compact
    def __call__(self, ids: Array) -> Array:
        weight = self.param(
            "weight", nn.initializers.normal(stddev=1.0), (self.num_embeddings, self.embedding_dim), self.param_dtype
        )
        return _dense.embedding(weight, ids, dtype=self.dtype)
