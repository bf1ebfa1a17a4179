"""The Elman cell of ``torch.nn.RNNCell``, split so a layer can batch its input projection."""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from . import _checks

Array = jax.Array

_ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def torch_uniform(bound: float):
    """PyTorch's recurrent init: every entry drawn from U(-bound, bound)."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class RNNCell(nn.Module):
    r"""One step of an Elman RNN, exactly as ``torch.nn.RNNCell``.

    .. math::
        h' = \tanh(W_{ih} x + b_{ih} + W_{hh} h + b_{hh})

    (``relu`` instead of ``tanh`` with ``nonlinearity='relu'``). Parameters carry PyTorch's
    names, shapes and init: ``weight_ih`` (H, I), ``weight_hh`` (H, H), ``bias_ih`` (H,),
    ``bias_hh`` (H,), each drawn from U(-1/sqrt(H), 1/sqrt(H)).

    Args:
      input_size: I, the number of features of x.
      hidden_size: H, the number of features of h.
      bias: whether ``bias_ih`` and ``bias_hh`` exist.
      nonlinearity: ``'tanh'`` or ``'relu'``.
      dtype: the computation dtype; None promotes the input and parameter dtypes.
      param_dtype: the dtype parameters are initialised in.
      precision: passed to the matmuls (``jax.lax.Precision``).

    Call ``cell.apply(variables, x, h=None)`` with x of shape (batch, I) or unbatched (I,), and
    h of shape (batch, H) or (H,) (zeros when None); returns h' of h's shape.

    >>> import jax
    >>> from jaxrnn import RNNCell
    >>> cell = RNNCell(input_size=5, hidden_size=16)
    >>> x = jax.random.normal(jax.random.key(0), (8, 5))
    >>> variables = cell.init(jax.random.key(1), x)
    >>> cell.apply(variables, x).shape
    (8, 16)
    >>> {k: v.shape for k, v in variables["params"].items()}
    {'weight_ih': (16, 5), 'weight_hh': (16, 16), 'bias_ih': (16,), 'bias_hh': (16,)}
    """

    input_size: int
    hidden_size: int
    bias: bool = True
    nonlinearity: str = "tanh"
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None

    def __post_init__(self):
        _checks.positive_int("input_size", self.input_size, type(self).__name__)
        _checks.positive_int("hidden_size", self.hidden_size, type(self).__name__)
        _checks.one_of("nonlinearity", self.nonlinearity, tuple(_ACTIVATIONS), type(self).__name__)
        super().__post_init__()

    def _example_input(self) -> Array:
        return jnp.zeros((1, self.input_size), self.param_dtype)

    def setup(self):
        init = torch_uniform(1.0 / math.sqrt(self.hidden_size))
        hidden, inputs = self.hidden_size, self.input_size
        self.weight_ih = self.param("weight_ih", init, (hidden, inputs), self.param_dtype)
        self.weight_hh = self.param("weight_hh", init, (hidden, hidden), self.param_dtype)
        if self.bias:
            self.bias_ih = self.param("bias_ih", init, (hidden,), self.param_dtype)
            self.bias_hh = self.param("bias_hh", init, (hidden,), self.param_dtype)

    def project(self, x: Array) -> Array:
        """The input half of the update for any leading shape: ``W_ih x + b_ih + b_hh``.

        A layer calls this once on the whole (time, batch, I) sequence, one GEMM for all steps.
        """
        x, w = nn.dtypes.promote_dtype(x, self.weight_ih, dtype=self.dtype)
        xp = jnp.matmul(x, w.T, precision=self.precision)
        if self.bias:
            bias = (self.bias_ih + self.bias_hh).astype(xp.dtype)
            xp = xp + bias.reshape((1,) * (xp.ndim - 1) + bias.shape)
        return xp

    def step(self, h: Array, xp: Array) -> Array:
        """The recurrent half: ``act(xp + W_hh h)`` for a projected input ``xp``."""
        h, w = nn.dtypes.promote_dtype(h, self.weight_hh, dtype=self.dtype)
        return _ACTIVATIONS[self.nonlinearity](xp + jnp.matmul(h, w.T, precision=self.precision))

    def __call__(self, x: Array, h: Array | None = None) -> Array:
        name = type(self).__name__
        _checks.floating_array("x", x, name)
        if x.ndim not in (1, 2):
            raise ValueError(f"{name}: expected x to be 1D (unbatched) or 2D (batch, input_size), got {x.ndim}D")
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"{name}: `input_size` is {self.input_size} but x has {x.shape[-1]} features (x.shape={x.shape})"
            )
        expected = x.shape[:-1] + (self.hidden_size,)
        if h is None:
            h = jnp.zeros(expected, nn.dtypes.canonicalize_dtype(x, dtype=self.dtype))
        else:
            _checks.floating_array("h", h, name)
            if h.shape != expected:
                raise ValueError(f"{name}: expected h of shape {expected}, got {h.shape}")
        return self.step(h, self.project(x))
