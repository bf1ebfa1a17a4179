"""``torch.nn.RNNCell``, ``LSTMCell`` and ``GRUCell`` as Flax NNX modules.

Each cell holds torch's parameters as ``nnx.Param`` attributes (``cell.weight_ih``, ...) and calls
the core: calling a cell is ``jaxrnn.functional.*_cell`` on its parameters. A cell also runs its
step in two halves, ``project(x)`` (the input half, one GEMM for a whole sequence) and
``step(carry, xp)`` (the recurrent half), which the layers' ``impl='scan'`` reference scans.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from ..functional import _api, _checks, _params, _steps
from ..functional._params import torch_uniform
from ..functional._specs import GRU, LSTM, RNN_RELU, RNN_TANH, CellSpec

Array = jax.Array

__all__ = ["GRUCell", "LSTMCell", "RNNCell"]


def torch_params(owner: nnx.Module, shapes: Mapping[str, tuple[int, ...]], hidden_size: int, rngs: nnx.Rngs,
                 param_dtype: Any) -> tuple[str, ...]:
    """Set one ``nnx.Param`` attribute per torch key of ``shapes`` on ``owner``, each drawn from
    U(-1/sqrt(H), 1/sqrt(H)) with a key of the ``'params'`` stream; returns the keys in torch's order."""
    if not isinstance(rngs, nnx.Rngs):
        raise TypeError(f"{type(owner).__name__}: `rngs` must be an nnx.Rngs, got {type(rngs).__name__}")
    init = torch_uniform(1.0 / math.sqrt(hidden_size))
    for name, shape in shapes.items():
        setattr(owner, name, nnx.Param(init(rngs.params(), shape, param_dtype)))
    return tuple(shapes)


class _Cell(nnx.Module):
    """What the cells share: their parameters under torch's names, the call and the two halves of a step."""

    spec: CellSpec
    precision: Any
    _names: tuple[str, ...]

    @property
    def weights(self) -> dict[str, Array]:
        """The parameters' values under torch's cell keys."""
        return {name: getattr(self, name)[...] for name in self._names}

    def project(self, x: Array) -> Array:
        """The input half for any leading shape: ``W_ih x + b_ih`` (+ ``b_hh`` where the update reads
        only the sum)."""
        return _steps.input_half(self.spec, self.weights, x, self.precision)

    def step(self, carry: Any, xp: Array) -> tuple[Any, Array]:
        """The recurrent half on ``xp = project(x)``: returns ``(carry', h')``."""
        return _steps.step(self.spec, self.weights, carry, xp, self.precision)


class StepCell(_Cell):
    """A cell over given weights (one layer and direction of a layer, in the compute dtype): what the
    layers' ``impl='scan'`` reference scans with ``nnx.scan``."""

    def __init__(self, spec: CellSpec, weights: Mapping[str, Array], precision: Any = None):
        self.spec, self.precision, self._names = spec, precision, tuple(weights)
        for name, value in weights.items():
            setattr(self, name, nnx.Param(value))


class _TorchCell(_Cell):
    """A public cell: torch's constructor, parameters and call."""

    dtype: Any

    def _build(self, input_size: int, hidden_size: int, bias: bool, rngs: nnx.Rngs, dtype: Any, param_dtype: Any,
               precision: Any) -> None:
        owner = type(self).__name__
        self.input_size = _checks.positive_int("input_size", input_size, owner)
        self.hidden_size = _checks.positive_int("hidden_size", hidden_size, owner)
        self.bias = bool(bias)
        self.dtype, self.param_dtype, self.precision = dtype, param_dtype, precision
        shapes = _params.cell_shapes(self.spec, input_size, hidden_size, bias=self.bias)
        self._names = torch_params(self, shapes, hidden_size, rngs, param_dtype)

    def __call__(self, x: Array, hx: Any = None) -> Any:
        return _api.cell(self.spec, self.weights, x, hx, owner=type(self).__name__, hx_name="h",
                         precision=self.precision, dtype=self.dtype)


class RNNCell(_TorchCell):
    r"""One step of an Elman RNN, exactly as ``torch.nn.RNNCell``:
    ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`` (``relu`` with ``nonlinearity='relu'``).

    torch's constructor plus the keyword-only ``rngs`` (its ``'params'`` stream draws the init),
    ``dtype`` (computation; None promotes), ``param_dtype`` and ``precision``. Parameters:
    ``weight_ih`` (H, I), ``weight_hh`` (H, H), ``bias_ih``, ``bias_hh`` (H,), each from
    U(-1/sqrt(H), 1/sqrt(H)). ``cell(x, hx=None)``: x (batch, I) or (I,), hx (batch, H) or (H,)
    (zeros when None); returns h'.

    >>> import jax
    >>> from flax import nnx
    >>> from jaxrnn.nnx import RNNCell
    >>> cell = RNNCell(5, 16, rngs=nnx.Rngs(0))
    >>> cell(jax.random.normal(jax.random.key(1), (8, 5))).shape, cell.weight_ih.shape
    ((8, 16), (16, 5))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh", *,
                 rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = jnp.float32, precision: Any = None):
        _checks.one_of("nonlinearity", nonlinearity, ("tanh", "relu"), type(self).__name__)
        self.nonlinearity = nonlinearity
        self.spec = RNN_TANH if nonlinearity == "tanh" else RNN_RELU
        self._build(input_size, hidden_size, bias, rngs, dtype, param_dtype, precision)


class LSTMCell(_TorchCell):
    r"""One step of an LSTM, exactly as ``torch.nn.LSTMCell`` (gates i, f, g, o):
    ``c' = σ(f) c + σ(i) tanh(g)``, ``h' = σ(o) tanh(c')``.

    Constructor and extras as ``RNNCell``. Parameters: ``weight_ih`` (4H, I), ``weight_hh`` (4H, H),
    ``bias_ih``, ``bias_hh`` (4H,). ``cell(x, hx=None)`` with ``hx = (h, c)``, each (batch, H) or
    (H,); returns ``LSTMState(h', c')``.

    >>> import jax
    >>> from flax import nnx
    >>> from jaxrnn.nnx import LSTMCell
    >>> h, c = LSTMCell(5, 16, rngs=nnx.Rngs(0))(jax.random.normal(jax.random.key(1), (8, 5)))
    >>> h.shape, c.shape
    ((8, 16), (8, 16))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, rngs: nnx.Rngs, dtype: Any = None,
                 param_dtype: Any = jnp.float32, precision: Any = None):
        self.spec = LSTM
        self._build(input_size, hidden_size, bias, rngs, dtype, param_dtype, precision)


class GRUCell(_TorchCell):
    r"""One step of a GRU, exactly as ``torch.nn.GRUCell`` (gates r, z, n):
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.

    Constructor and extras as ``RNNCell``. Parameters: ``weight_ih`` (3H, I), ``weight_hh`` (3H, H),
    ``bias_ih``, ``bias_hh`` (3H,). ``cell(x, hx=None)`` -> h'.

    >>> import jax
    >>> from flax import nnx
    >>> from jaxrnn.nnx import GRUCell
    >>> GRUCell(5, 16, rngs=nnx.Rngs(0))(jax.random.normal(jax.random.key(1), (5,))).shape
    (16,)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, rngs: nnx.Rngs, dtype: Any = None,
                 param_dtype: Any = jnp.float32, precision: Any = None):
        self.spec = GRU
        self._build(input_size, hidden_size, bias, rngs, dtype, param_dtype, precision)
