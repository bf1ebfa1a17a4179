"""The cells of ``torch.nn.RNNCell``, ``torch.nn.LSTMCell`` and ``torch.nn.GRUCell``.

Each cell splits its update in two so that a layer can batch the input half over all time
steps: ``project(x)`` is the part that depends on the input only (one GEMM for the whole
sequence) and ``step(carry, xp)`` the recurrent part, ``(carry, x_projected) -> (carry, output)``.
Calling a cell runs both, as torch's cells do.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from ..functional import _checks

Array = jax.Array

_ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def torch_uniform(bound: float):
    """PyTorch's recurrent init: every entry drawn from U(-bound, bound)."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _add_bias(y: Array, bias: Array) -> Array:
    """``y + bias`` on the last axis, without implicit rank promotion."""
    return y + bias.astype(y.dtype).reshape((1,) * (y.ndim - 1) + bias.shape)


class LSTMState(NamedTuple):
    """The carry of an LSTM: hidden state h (..., proj_size or hidden_size) and cell state c (..., hidden_size)."""

    h: Array
    c: Array


class _Cell(nn.Module):
    """What the three cells share: torch's parameters, the input projection and the call checks.

    Subclasses set ``gates`` (how many H-sized blocks the weights stack) and define ``step``.
    """

    gates: ClassVar[int] = 1
    # The step reads xp and W_hh h only through their sum, so b_hh joins the input projection
    # (and the fused backward pass keeps one array for both: _fused_gated, ``additive``).
    fold_hh_bias: ClassVar[bool] = True
    # Whether the fused loops keep the projected input per gate (``_fused_gated.gated(per_gate=)``).
    fused_per_gate: ClassVar[bool] = False

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
    def state_size(self) -> int:
        """The size of h (proj_size for a projected LSTM, else hidden_size)."""
        return self.hidden_size

    def setup(self):
        init = torch_uniform(1.0 / math.sqrt(self.hidden_size))
        rows = self.gates * self.hidden_size
        self.weight_ih = self.param("weight_ih", init, (rows, self.input_size), self.param_dtype)
        self.weight_hh = self.param("weight_hh", init, (rows, self.state_size), self.param_dtype)
        if self.bias:
            self.bias_ih = self.param("bias_ih", init, (rows,), self.param_dtype)
            self.bias_hh = self.param("bias_hh", init, (rows,), self.param_dtype)

    def project(self, x: Array) -> Array:
        """The input half of the update for any leading shape: ``W_ih x + b_ih`` (+ ``b_hh`` where it
        can be folded in). A layer calls this once on the whole (time, batch, I) sequence."""
        (xp,) = self.project_parts(x)
        if self.bias:
            xp = _add_bias(xp, self.bias_ih + self.bias_hh if self.fold_hh_bias else self.bias_ih)
        return xp

    def project_parts(self, x: Array, parts: int = 1) -> tuple[Array, ...]:
        """``W_ih x`` without biases, as ``parts`` arrays of the gates' rows, each its own GEMM: the
        fused path projects a ``fused_per_gate`` cell's gates apart, so that no pass splits the
        projected sequence (benchmarks/NOTES.md, idea 11)."""
        x, w = nn.dtypes.promote_dtype(x, self.weight_ih, dtype=self.dtype)
        return tuple(jnp.matmul(x, w_k.T, precision=self.precision) for w_k in jnp.split(w, parts))

    def _hh(self, h: Array) -> Array:
        h, w = nn.dtypes.promote_dtype(h, self.weight_hh, dtype=self.dtype)
        return jnp.matmul(h, w.T, precision=self.precision)

    def zero_carry(self, batch_shape: tuple[int, ...], dtype) -> Any:
        return jnp.zeros(batch_shape + (self.hidden_size,), dtype)

    def carry_shapes(self, batch_shape: tuple[int, ...]) -> Any:
        return batch_shape + (self.hidden_size,)

    def __call__(self, x: Array, hx: Any = None) -> Any:
        name = type(self).__name__
        _checks.floating_array("x", x, name)
        if x.ndim not in (1, 2):
            raise ValueError(f"{name}: expected x to be 1D (unbatched) or 2D (batch, input_size), got {x.ndim}D")
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"{name}: `input_size` is {self.input_size} but x has {x.shape[-1]} features (x.shape={x.shape})"
            )
        batch_shape = x.shape[:-1]
        if hx is None:
            hx = self.zero_carry(batch_shape, nn.dtypes.canonicalize_dtype(x, dtype=self.dtype))
        else:
            hx = _checks.carry(hx, self.carry_shapes(batch_shape), "h", name)
        return self.step(hx, self.project(x))[0]


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
        _checks.one_of("nonlinearity", self.nonlinearity, tuple(_ACTIVATIONS), type(self).__name__)

    def step(self, h: Array, xp: Array) -> tuple[Array, Array]:
        """The recurrent half: ``h' = act(xp + W_hh h)``; returns ``(h', h')``."""
        h = _ACTIVATIONS[self.nonlinearity](xp + self._hh(h))
        return h, h


class _GatedCell(_Cell):
    """A cell whose elementwise step the fused path runs as ``forward_step`` / ``backward_step``
    (``jaxrnn._fused_gated``)."""

    @staticmethod
    def forward_step(xp: Array, hh: Array, carry: Any) -> tuple[Any, tuple[Array, ...]]:
        """The elementwise part of a step: the new carry and what ``backward_step`` reads."""
        raise NotImplementedError

    @classmethod
    def update(cls, xp: Array, hh: Array, carry: Any) -> Any:
        """``forward_step``'s new carry: the step's maths, as the scan path runs it."""
        return cls.forward_step(xp, hh, carry)[0]


class LSTMCell(_GatedCell):
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

    gates: ClassVar[int] = 4

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
    def state_size(self) -> int:
        return self.proj_size or self.hidden_size

    def setup(self):
        super().setup()
        if self.proj_size:
            init = torch_uniform(1.0 / math.sqrt(self.hidden_size))
            self.weight_hr = self.param("weight_hr", init, (self.proj_size, self.hidden_size), self.param_dtype)

    def zero_carry(self, batch_shape, dtype) -> LSTMState:
        return LSTMState(
            jnp.zeros(batch_shape + (self.state_size,), dtype), jnp.zeros(batch_shape + (self.hidden_size,), dtype)
        )

    def carry_shapes(self, batch_shape) -> LSTMState:
        return LSTMState(batch_shape + (self.state_size,), batch_shape + (self.hidden_size,))

    @staticmethod
    def forward_step(xp: Array, hh: Array, carry: LSTMState) -> tuple[LSTMState, tuple[Array, ...]]:
        """The elementwise part of a step, from ``xp = W_ih x + b_ih + b_hh`` and ``hh = W_hh h``:
        returns ``LSTMState(σ(o) tanh(c'), c')`` (h before the projection) and the gates' activations
        ``(σ(i), σ(f), tanh(g), σ(o))``, which ``backward_step`` reads."""
        gates = xp + hh
        # σ over all four blocks, then slices: one vectorised pass (XLA's CPU loop runs σ of each
        # sliced block 1.5x slower); the g block's σ goes unused.
        i, f, _, o = jnp.split(jax.nn.sigmoid(gates), 4, axis=-1)
        g = jnp.tanh(jnp.split(gates, 4, axis=-1)[2])
        c = f * carry.c.astype(i.dtype) + i * g
        return LSTMState(o * jnp.tanh(c), c), (i, f, g, o)

    @staticmethod
    def backward_step(saved: tuple[Array, ...], prev: LSTMState, new: LSTMState, d_new: LSTMState):
        r"""The derivative of ``forward_step`` from its activations, for the fused path's backward loop.

        With :math:`\tau = \tanh(c')` and :math:`\delta c = \bar c' + \bar h' o (1 - \tau^2)`:
        :math:`\bar a_i = \delta c\, g\, i(1-i)`, :math:`\bar a_f = \delta c\, c\, f(1-f)`,
        :math:`\bar a_g = \delta c\, i (1-g^2)`, :math:`\bar a_o = \bar h' \tau\, o(1-o)`,
        :math:`\bar c = \delta c\, f` (a the pre-activations, i, f, g, o the activations).
        Returns ``(d xp, d hh, d prev)``, d xp and d hh as parts: d xp = (ā,), the pre-activations'
        cotangent (4H), d hh = (None,) (it is d xp's), and d prev without its path through
        ``W_hh`` (zero for h), which the loop adds.
        """
        i, f, g, o = saved
        tau = jnp.tanh(new.c)
        dc = d_new.c + d_new.h * o * (1 - tau * tau)
        d_i, d_f, d_g = dc * g * i * (1 - i), dc * prev.c * f * (1 - f), dc * i * (1 - g * g)
        d_gates = jnp.concatenate([d_i, d_f, d_g, d_new.h * tau * o * (1 - o)], axis=-1)
        return (d_gates,), (None,), LSTMState(jnp.zeros_like(prev.h), dc * f)

    def step(self, carry: LSTMState, xp: Array) -> tuple[LSTMState, Array]:
        """The recurrent half on ``xp = W_ih x + b_ih + b_hh``; returns ``(LSTMState(h', c'), h')``."""
        h, c = self.update(xp, self._hh(carry.h), LSTMState(*carry))
        if self.proj_size:
            h, w = nn.dtypes.promote_dtype(h, self.weight_hr, dtype=self.dtype)
            h = jnp.matmul(h, w.T, precision=self.precision)
        return LSTMState(h, c), h


class GRUCell(_GatedCell):
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

    gates: ClassVar[int] = 3
    fold_hh_bias: ClassVar[bool] = False  # b_hn sits inside r * (W_hn h + b_hn)
    fused_per_gate: ClassVar[bool] = True  # measured faster for this update (benchmarks/NOTES.md, idea 8)

    input_size: int
    hidden_size: int
    bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None

    @staticmethod
    def forward_step(xp: Array, hh: Array, h: Array) -> tuple[Array, tuple[Array, ...]]:
        """The elementwise part of a step, from ``xp = W_ih x + b_ih`` and ``hh = W_hh h + b_hh``: h',
        and ``(r, z, n, W_hn h + b_hn)``, which ``backward_step`` reads."""
        hidden = xp.shape[-1] // 3
        r, z = jnp.split(jax.nn.sigmoid(xp[..., : 2 * hidden] + hh[..., : 2 * hidden]), 2, axis=-1)
        hn = hh[..., 2 * hidden :]
        n = jnp.tanh(xp[..., 2 * hidden :] + r * hn)
        return (1 - z) * n + z * h.astype(n.dtype), (r, z, n, hn)

    @staticmethod
    def backward_step(saved: tuple[Array, ...], prev: Array, new: Array, d_new: Array):
        r"""The derivative of ``forward_step`` from its activations, for the fused path's backward loop.

        :math:`\bar a_n = \bar h' (1-z)(1-n^2)`, :math:`\bar a_z = \bar h' (h - n) z(1-z)`,
        :math:`\bar a_r = \bar a_n (W_{hn} h + b_{hn}) r(1-r)` (a the pre-activations). Returns
        ``(d xp, d hh, d prev)``, d xp and d hh as per-gate parts: d xp = (ā_r, ā_z, ā_n), d hh =
        (None, None, ā_n r) (None: d xp's part), and d prev = h̄' z without its path through
        ``W_hh``, which the loop adds.
        """
        r, z, n, hn = saved
        dn = d_new * (1 - z) * (1 - n * n)
        dz = d_new * (prev - n) * z * (1 - z)
        dr = dn * hn * r * (1 - r)
        return (dr, dz, dn), (None, None, dn * r), d_new * z

    def step(self, h: Array, xp: Array) -> tuple[Array, Array]:
        """The recurrent half on ``xp = W_ih x + b_ih``; returns ``(h', h')``."""
        hh = self._hh(h)
        if self.bias:
            hh = _add_bias(hh, self.bias_hh)
        h = self.update(xp, hh, h)
        return h, h
