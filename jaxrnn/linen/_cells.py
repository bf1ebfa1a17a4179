"""The cells of ``torch.nn.RNNCell``, ``torch.nn.LSTMCell`` and ``torch.nn.GRUCell`` as linen modules.

Each cell declares torch's parameters (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``)
and calls the core (``jaxrnn.functional``): calling a cell is ``functional.*_cell`` on its
parameters. For the layers' ``impl='scan'`` reference (``flax.linen.scan`` over the cells), a cell
also runs its step in two halves: ``project(x)``, the part that depends on the input only (one
GEMM for the whole sequence), and ``step(carry, xp)``, the recurrent part.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ..functional import _api, _checks, _params, _steps
from ..functional._params import torch_uniform
from ..functional._specs import GRU, LSTM, RNN_RELU, RNN_TANH, CellSpec

Array = jax.Array

__all__ = ["GRUCell", "LSTMCell", "RNNCell"]


class _Cell(nn.Module):
    """What the three cells share: torch's parameters, the call, and the two halves of a step."""

    def __post_init__(self):
        _checks.positive_int("input_size", self.input_size, type(self).__name__)
        _checks.positive_int("hidden_size", self.hidden_size, type(self).__name__)
        self._check_options()
        super().__post_init__()

    def _check_options(self) -> None:
        pass

    def _example_input(self) -> Array:
        return jnp.zeros((1, self.input_size), self.param_dtype)

    @property
    def spec(self) -> CellSpec:
        raise NotImplementedError

    @property
    def _proj_size(self) -> int:
        return 0

    def setup(self):
        init = torch_uniform(1.0 / math.sqrt(self.hidden_size))
        shapes = _params.cell_shapes(self.spec, self.input_size, self.hidden_size, bias=self.bias,
                                     proj_size=self._proj_size)
        self.weights = {name: self.param(name, init, shape, self.param_dtype) for name, shape in shapes.items()}

    def project(self, x: Array) -> Array:
        """The input half for any leading shape, x in the compute dtype: ``W_ih x + b_ih`` (+ ``b_hh``
        where the update reads only the sum)."""
        return _steps.input_half(self.spec, self.weights, x, self.precision)

    def step(self, carry: Any, xp: Array) -> tuple[Any, Array]:
        """The recurrent half on ``xp = project(x)``: returns ``(carry', h')``."""
        return _steps.step(self.spec, self.weights, carry, xp, self.precision)

    def __call__(self, x: Array, hx: Any = None) -> Any:
        return _api.cell(self.spec, self.weights, x, hx, owner=type(self).__name__, hx_name="h",
                         precision=self.precision, dtype=self.dtype)


class RNNCell(_Cell):
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

    def _check_options(self) -> None:
        _checks.one_of("nonlinearity", self.nonlinearity, ("tanh", "relu"), type(self).__name__)

    @property
    def spec(self) -> CellSpec:
        return RNN_TANH if self.nonlinearity == "tanh" else RNN_RELU


class LSTMCell(_Cell):
    r"""One step of an LSTM, exactly as ``torch.nn.LSTMCell`` (gate order i, f, g, o).

    .. math::
        i, f, g, o = \text{split}_4(W_{ih} x + b_{ih} + W_{hh} h + b_{hh}) \\
        c' = \sigma(f) \odot c + \sigma(i) \odot \tanh(g), \quad
        h' = \sigma(o) \odot \tanh(c')

    With ``proj_size`` P > 0 (a keyword extra, used by ``LSTM``), ``h' = W_{hr} (\sigma(o) \odot \tanh(c'))``
    with ``weight_hr`` (P, H), as torch's projected LSTM. Parameters: ``weight_ih`` (4H, I),
    ``weight_hh`` (4H, P or H), ``bias_ih`` (4H,), ``bias_hh`` (4H,), all U(-1/sqrt(H), 1/sqrt(H)).

    Call ``cell.apply(variables, x, hx=None)`` with x (batch, I) or (I,) and ``hx = (h, c)``;
    returns ``LSTMState(h', c')``.

    >>> import jax
    >>> from jaxrnn import LSTMCell
    >>> cell = LSTMCell(input_size=5, hidden_size=16)
    >>> x = jax.random.normal(jax.random.key(0), (8, 5))
    >>> h, c = cell.apply(cell.init(jax.random.key(1), x), x)
    >>> h.shape, c.shape
    ((8, 16), (8, 16))
    """

    input_size: int
    hidden_size: int
    bias: bool = True
    proj_size: int = 0
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None

    def _check_options(self) -> None:
        _checks.proj_size(self.proj_size, self.hidden_size, type(self).__name__)

    @property
    def spec(self) -> CellSpec:
        return LSTM

    @property
    def _proj_size(self) -> int:
        return self.proj_size


class GRUCell(_Cell):
    r"""One step of a GRU, exactly as ``torch.nn.GRUCell`` (gate order r, z, n).

    .. math::
        r = \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}), \quad
        z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}) \\
        n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})), \quad
        h' = (1 - z) \odot n + z \odot h

    Parameters: ``weight_ih`` (3H, I), ``weight_hh`` (3H, H), ``bias_ih`` (3H,), ``bias_hh`` (3H,),
    all U(-1/sqrt(H), 1/sqrt(H)). Call as ``RNNCell``: ``cell.apply(variables, x, h=None)`` -> h'.

    >>> import jax
    >>> from jaxrnn import GRUCell
    >>> cell = GRUCell(input_size=5, hidden_size=16)
    >>> x = jax.random.normal(jax.random.key(0), (8, 5))
    >>> cell.apply(cell.init(jax.random.key(1), x), x).shape
    (8, 16)
    """

    input_size: int
    hidden_size: int
    bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None

    @property
    def spec(self) -> CellSpec:
        return GRU
