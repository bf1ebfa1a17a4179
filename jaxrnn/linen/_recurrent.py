"""``torch.nn.RNN``, ``torch.nn.LSTM`` and ``torch.nn.GRU`` as Flax linen modules.

Each layer is a shell over the core: it declares torch's parameters (one cell module per layer
and direction, named ``l{k}`` / ``l{k}_reverse``), hands them to ``jaxrnn.functional``'s layers
under torch's keys, and lets ``impl`` pick the backend that runs each direction's time loop:
``'fused'``, the core's engine, or ``'scan'``, the reference: ``flax.linen.scan`` over the cell
modules. The three public classes differ only in their constructor (torch's, field for field)
and their cell.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ..functional import _api, _checks, _layers, _params, _scan, _specs
from ..functional._specs import CellSpec, LSTMState
from ._cells import GRUCell, LSTMCell, RNNCell, _Cell

Array = jax.Array


def _nn_scan(cells: dict[str, _Cell], unroll: int) -> _layers.Backend:
    """The reference backend: ``flax.linen.scan`` of each direction's cell module over time-major x
    (T, N, I) from the carry (leaves (N, ·)). With ``seq_lengths``, masked steps leave the carry
    untouched and output zeros, so the forward direction ends at each sequence's last valid step
    and the reverse direction (walking T-1..0) starts there, as torch does for packed sequences."""

    def run(spec, w, x, carry0, seq_lengths, *, reverse, axis, name):
        cell = cells[name]

        def body(cell, carry, inp):
            return cell.step(carry, inp) if seq_lengths is None else _scan.masked_step(cell.step, carry, inp)

        scan = nn.scan(body, variable_broadcast="params", split_rngs={"params": False}, in_axes=0, out_axes=0,
                       reverse=reverse, unroll=unroll)
        carry_n, ys = scan(cell, carry0, _scan.inputs(cell.project(x), seq_lengths))
        return ys, carry_n

    return _layers.Backend(run, batch_first=False)


class _Recurrent(nn.Module):
    """The shell shared by RNN, LSTM and GRU. Subclasses declare torch's fields, ``_spec`` and ``_cell``."""

    def __post_init__(self):
        _layers.check_options(type(self).__name__, input_size=self.input_size, hidden_size=self.hidden_size,
                              num_layers=self.num_layers, dropout=self.dropout, unroll=self.unroll, impl=self.impl,
                              **self._options())
        super().__post_init__()

    def _options(self) -> dict:
        return {}

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _output_size(self) -> int:
        return self.hidden_size

    @property
    def _spec(self) -> CellSpec:
        raise NotImplementedError

    def _example_input(self) -> Array:
        return jnp.zeros((1, 1, self.input_size), self.param_dtype)

    def _cell(self, input_size: int, name: str) -> _Cell:
        raise NotImplementedError

    def _forward(self, x: Array, hx: Any, hx_name: str, seq_lengths: Array | None, deterministic: bool):
        cells: dict[str, _Cell] = {}
        params: dict[str, Array] = {}
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else self._output_size * self.num_directions
            for direction in range(self.num_directions):
                name = _params.suffix(layer, direction)
                cells[name] = cell = self._cell(in_size, name)
                params |= {f"{key}_{name}": value for key, value in cell.weights.items()}
        if self.impl == "scan":
            backend = _nn_scan(cells, self.unroll)
        else:
            backend = _layers.backend_for(self.impl, self.precision, self.unroll)
        training = not deterministic and self.dropout > 0 and self.num_layers > 1
        return _layers.forward(
            self._spec, params, x, hx, owner=type(self).__name__, hx_name=hx_name, backend=backend,
            batch_first=self.batch_first, seq_lengths=seq_lengths, dropout=self.dropout,
            dropout_key=self.make_rng("dropout") if training else None, dtype=self.dtype,
        )


class _OneState(_Recurrent):
    """The call of the layers whose state is h alone (RNN, GRU): torch's ``hx``, or ``h0``."""

    @nn.compact
    def __call__(
        self,
        x: Array,
        hx: Array | None = None,
        *,
        seq_lengths: Array | None = None,
        deterministic: bool = True,
        h0: Array | None = None,
    ) -> tuple[Array, Array]:
        return self._forward(x, *_checks.initial_state(hx, h0, type(self).__name__), seq_lengths, deterministic)


_SHARED_DOC = (f"""
    Call: ``output, h_n = layer.apply(variables, x, hx=None, *, seq_lengths=None, deterministic=True)``.

    Args (of the call):
      x: (time, batch, input_size), or (batch, time, input_size) with ``batch_first``, or
        unbatched (time, input_size); or a ``jaxrnn.utils.rnn.PackedSequence``, and then output
        is one too.
      hx: torch's initial state (``h0=`` is accepted as an alias): (num_layers * num_directions,
        batch, hidden_size), or (num_layers * num_directions, hidden_size) unbatched; zeros when None.
{_api.SEQ_LENGTHS_DOC}
      deterministic: when False, dropout (rate ``dropout``, rng stream ``'dropout'``) is applied
        to the output of every layer but the last, as torch does in training mode.

    Returns:
      output: (time, batch, D * hidden_size) in x's layout (D = 2 if bidirectional else 1);
        the last layer's states, forward and backward concatenated on the last axis.
      h_n: (num_layers * D, batch, hidden_size), or (num_layers * D, hidden_size) unbatched;
        row ``k * D + d`` is layer k, direction d (0 forward, 1 backward).
""")


class RNN(_OneState):
    __doc__ = (
        r"""A multi-layer Elman RNN that computes exactly what ``torch.nn.RNN`` computes.

    For each layer and time step, with x(t) the layer's input (the previous layer's output):

    .. math::
        h(t) = \tanh(W_{ih} x(t) + b_{ih} + W_{hh} h(t-1) + b_{hh})

    (``relu`` with ``nonlinearity='relu'``). The constructor is torch's, with its names, order
    and defaults; ``dtype``, ``param_dtype``, ``precision``, ``unroll`` (of the time loop) and
    ``impl`` are extras. The layer computes ``jaxrnn.functional.rnn`` on its parameters:
    ``impl='fused'`` (the default) runs the core's engine, a loop of one matmul and one fused
    add and activation per step with a hand-written backward pass that carries only dh (the
    weight gradient is one GEMM over all steps afterwards), stepping along a batch-first x in
    place; ``impl='scan'`` is the reference, ``flax.linen.scan`` over ``RNNCell`` with autodiff.
    Both compute the same values (the float64 parity suites hold each to torch at 1e-10).
    """ + _api.AUTODIFF_DOC + """
    Parameters of layer k live under ``l{k}`` (``l{k}_reverse`` for the backward direction)
    with torch's names: ``weight_ih`` (H, I) for layer 0, (H, D*H) above it, ``weight_hh``
    (H, H), ``bias_ih`` (H,), ``bias_hh`` (H,); torch's key ``weight_ih_l1_reverse`` is
    ``params['l1_reverse']['weight_ih']``. Every parameter starts from U(-1/sqrt(H), 1/sqrt(H)).
"""
        + _SHARED_DOC
        + """
    >>> import jax
    >>> from jaxrnn import RNN
    >>> rnn = RNN(input_size=10, hidden_size=20, num_layers=2, batch_first=True)
    >>> x = jax.random.normal(jax.random.key(0), (32, 15, 10))  # (batch, seq, features)
    >>> variables = rnn.init(jax.random.key(1), x)
    >>> output, h_n = rnn.apply(variables, x)
    >>> output.shape, h_n.shape
    ((32, 15, 20), (2, 32, 20))
    """
    )

    input_size: int
    hidden_size: int
    num_layers: int = 1
    nonlinearity: str = "tanh"
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    unroll: int = 1
    impl: str = "fused"

    def _options(self) -> dict:
        return {"nonlinearity": self.nonlinearity}

    @property
    def _spec(self) -> CellSpec:
        return _specs.RNN_TANH if self.nonlinearity == "tanh" else _specs.RNN_RELU

    def _cell(self, input_size: int, name: str) -> RNNCell:
        return RNNCell(
            input_size,
            self.hidden_size,
            self.bias,
            self.nonlinearity,
            self.dtype,
            self.param_dtype,
            self.precision,
            name=name,
        )


class GRU(_OneState):
    __doc__ = (
        r"""A multi-layer GRU that computes exactly what ``torch.nn.GRU`` computes (gates r, z, n).

    Each layer and step applies ``GRUCell``:
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.
    Constructor, parameter names (``weight_ih`` (3H, I), ``weight_hh`` (3H, H), ``bias_ih``,
    ``bias_hh`` (3H,) under ``l{k}`` / ``l{k}_reverse``) and init are torch's; the call and
    returns are ``RNN``'s. ``dtype``, ``param_dtype``, ``precision``, ``unroll`` and ``impl``
    are extras, as for ``RNN``: the layer computes ``jaxrnn.functional.gru``; ``impl='fused'``
    (the default) runs the core's engine (one matmul and the GRU's elementwise step per step,
    keeping the gates' activations; a backward loop of the step's written-out derivative
    carrying only dh; dW_hh one GEMM afterwards); ``impl='scan'`` is ``flax.linen.scan`` over
    ``GRUCell`` with autodiff. Both compute the same values. Autodiff as for ``RNN``.
"""
        + _SHARED_DOC
        + """
    >>> import jax
    >>> from jaxrnn import GRU
    >>> gru = GRU(input_size=10, hidden_size=20, num_layers=2, batch_first=True)
    >>> x = jax.random.normal(jax.random.key(0), (32, 15, 10))
    >>> output, h_n = gru.apply(gru.init(jax.random.key(1), x), x)
    >>> output.shape, h_n.shape
    ((32, 15, 20), (2, 32, 20))
    """
    )

    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    unroll: int = 1
    impl: str = "fused"

    @property
    def _spec(self) -> CellSpec:
        return _specs.GRU

    def _cell(self, input_size: int, name: str) -> GRUCell:
        return GRUCell(input_size, self.hidden_size, self.bias, self.dtype, self.param_dtype, self.precision, name=name)


class LSTM(_Recurrent):
    r"""A multi-layer LSTM that computes exactly what ``torch.nn.LSTM`` computes (gates i, f, g, o).

    Each layer and step applies ``LSTMCell``: ``c' = σ(f) c + σ(i) tanh(g)``, ``h' = σ(o) tanh(c')``,
    and with ``proj_size`` P > 0, ``h' = W_hr (σ(o) tanh(c'))``. Constructor, parameter names
    (``weight_ih`` (4H, I), ``weight_hh`` (4H, P or H), ``bias_ih``, ``bias_hh`` (4H,),
    ``weight_hr`` (P, H) under ``l{k}`` / ``l{k}_reverse``) and init are torch's.
    ``dtype``, ``param_dtype``, ``precision``, ``unroll`` and ``impl`` are extras, as for
    ``GRU``: the layer computes ``jaxrnn.functional.lstm``; ``impl='fused'`` (the default) runs
    the core's engine with a backward loop carrying only (dh, dc); with ``proj_size`` > 0 the
    projection sits inside the step and the layer runs the scan reference either way
    (``jax.lax.scan`` under ``'fused'``, ``flax.linen.scan`` over ``LSTMCell`` under ``'scan'``).
    Autodiff as for ``GRU``.

    Call: ``output, (h_n, c_n) = lstm.apply(variables, x, hx=None, seq_lengths=None, deterministic=True)``
    with ``hx = (h0, c0)``: h0 (num_layers * D, batch, P or H), c0 (num_layers * D, batch, H)
    (without the batch axis for unbatched x); zeros when None. x, ``seq_lengths`` and
    ``deterministic`` as for ``RNN``.

    Returns:
      output: (time, batch, D * (P or H)) in x's layout.
      ``LSTMState(h_n, c_n)``, a NamedTuple that unpacks as torch's ``(h_n, c_n)``:
      h_n (num_layers * D, batch, P or H), c_n (num_layers * D, batch, H).

    >>> import jax
    >>> from jaxrnn import LSTM
    >>> lstm = LSTM(input_size=10, hidden_size=20, num_layers=2, batch_first=True, proj_size=5)
    >>> x = jax.random.normal(jax.random.key(0), (32, 15, 10))
    >>> output, (h_n, c_n) = lstm.apply(lstm.init(jax.random.key(1), x), x)
    >>> output.shape, h_n.shape, c_n.shape
    ((32, 15, 5), (2, 32, 5), (2, 32, 20))
    """

    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    proj_size: int = 0
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    unroll: int = 1
    impl: str = "fused"

    def _options(self) -> dict:
        return {"proj_size": self.proj_size}

    @property
    def _spec(self) -> CellSpec:
        return _specs.LSTM

    @property
    def _output_size(self) -> int:
        return self.proj_size or self.hidden_size

    def _cell(self, input_size: int, name: str) -> LSTMCell:
        return LSTMCell(
            input_size,
            self.hidden_size,
            self.bias,
            self.proj_size,
            self.dtype,
            self.param_dtype,
            self.precision,
            name=name,
        )

    @nn.compact
    def __call__(
        self,
        x: Array,
        hx: tuple[Array, Array] | None = None,
        *,
        seq_lengths: Array | None = None,
        deterministic: bool = True,
    ) -> tuple[Array, LSTMState]:
        return self._forward(x, hx, "hx", seq_lengths, deterministic)
