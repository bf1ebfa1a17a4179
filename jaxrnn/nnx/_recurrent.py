"""``torch.nn.RNN``, ``torch.nn.LSTM`` and ``torch.nn.GRU`` as Flax NNX modules.

Each layer is a shell over the core: it holds torch's parameters as ``nnx.Param`` attributes named
as torch's ``state_dict()`` keys (``lstm.weight_ih_l0``, ``lstm.bias_hh_l1_reverse``,
``lstm.weight_hr_l0``), hands their values to ``jaxrnn.functional``'s layers, and lets ``impl``
pick the backend of each direction's time loop: ``'fused'``, the core's engine, or ``'scan'``, the
reference: ``nnx.scan`` over an NNX cell holding that direction's weights. Like torch's modules a
layer starts in train mode; ``model.eval()`` / ``model.train()`` (NNX's switches, which set the
``deterministic`` attribute) turn the dropout between layers off and on.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from ..functional import _api, _checks, _layers, _params, _scan, _specs
from ..functional._specs import CellSpec, LSTMState
from ._cells import StepCell, torch_params

Array = jax.Array


@functools.cache
def _nnx_scan(precision: Any, unroll: int) -> _layers.Backend:
    """The reference backend: ``nnx.scan`` of a ``StepCell`` (the direction's weights, broadcast)
    over time-major x (T, N, I). With ``seq_lengths``, padded steps leave the carry untouched and
    output zeros (packed semantics, as the core's scan). One backend per (precision, unroll), so
    eager calls find their compiled layer again."""

    def run(spec, w, x, carry0, seq_lengths, *, reverse, axis, name):
        cell = StepCell(spec, w, precision)

        def body(cell, carry, inp):
            return cell.step(carry, inp) if seq_lengths is None else _scan.masked_step(cell.step, carry, inp)

        scan = nnx.scan(body, in_axes=(None, nnx.Carry, 0), out_axes=(nnx.Carry, 0), reverse=reverse, unroll=unroll)
        carry_n, ys = scan(cell, carry0, _scan.inputs(cell.project(x), seq_lengths))
        return ys, carry_n

    return _layers.Backend(run, batch_first=False, pure=True)


def _dropout_key(rngs: Any, owner: str) -> Array:
    """A key from what ``rngs`` is: an ``nnx.Rngs`` (its ``'dropout'`` stream), an ``nnx.RngStream``, or a key."""
    if isinstance(rngs, nnx.Rngs):
        return rngs.dropout()
    if isinstance(rngs, nnx.RngStream):
        return rngs()
    if isinstance(rngs, jax.Array):
        return rngs
    raise TypeError(f"{owner}: `rngs` must be an nnx.Rngs, an nnx.RngStream or a jax.random key, "
                    f"got {type(rngs).__name__}")


class _Recurrent(nnx.Module):
    """The shell shared by RNN, LSTM and GRU: the parameters, the train/eval switch and the call."""

    _spec: CellSpec
    deterministic: bool

    def _build(self, spec: CellSpec, input_size, hidden_size, num_layers, bias, batch_first, dropout,
               bidirectional, proj_size, *, rngs, dtype, param_dtype, precision, unroll, impl, options=None) -> None:
        owner = type(self).__name__
        _layers.check_options(owner, input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
                              dropout=dropout, unroll=unroll, impl=impl, **(options or {}))
        self._spec = spec
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bias, self.batch_first, self.bidirectional = bool(bias), bool(batch_first), bool(bidirectional)
        self.dropout, self.proj_size = float(dropout), int(proj_size)
        self.dtype, self.param_dtype, self.precision = dtype, param_dtype, precision
        self.unroll, self.impl = unroll, impl
        self.deterministic = False  # torch's modules start in train mode
        shapes = _params.param_shapes(spec, input_size, hidden_size, num_layers, bias=self.bias,
                                      bidirectional=self.bidirectional, proj_size=self.proj_size)
        self._names = torch_params(self, shapes, hidden_size, rngs, param_dtype)
        # the dropout stream, only where there is dropout to draw (torch's modules hold no rng)
        self.rngs = rngs.dropout.fork() if self.dropout > 0 and self.num_layers > 1 else None

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def set_view(self, deterministic: bool | None = None) -> None:
        """What ``nnx.view(model, deterministic=...)`` sets: True is torch's eval mode."""
        if deterministic is not None:
            self.deterministic = deterministic

    def _forward(self, x: Array, hx: Any, hx_name: str, seq_lengths: Array | None, deterministic: bool | None,
                 rngs: Any) -> tuple[Array, Any]:
        owner = type(self).__name__
        deterministic = self.deterministic if deterministic is None else deterministic
        key = None
        if not deterministic and self.dropout > 0 and self.num_layers > 1:
            key = _dropout_key(self.rngs if rngs is None else rngs, owner)
        backend = (_nnx_scan(self.precision, self.unroll) if self.impl == "scan"
                   else _layers.backend_for(self.impl, self.precision, self.unroll))
        params = {name: getattr(self, name)[...] for name in self._names}
        return _layers.forward(
            self._spec, params, x, hx, owner=owner, hx_name=hx_name, backend=backend, batch_first=self.batch_first,
            seq_lengths=seq_lengths, dropout=self.dropout, dropout_key=key, dtype=self.dtype,
        )


class _OneState(_Recurrent):
    """The call of the layers whose state is h alone (RNN, GRU): torch's ``hx``, or ``h0``."""

    def __call__(self, x: Array, hx: Array | None = None, *, seq_lengths: Array | None = None,
                 deterministic: bool | None = None, rngs: Any = None, h0: Array | None = None) -> tuple[Array, Array]:
        return self._forward(x, *_checks.initial_state(hx, h0, type(self).__name__), seq_lengths, deterministic,
                             rngs)


_EXTRAS = """
    The constructor is torch's (names, order, defaults) plus the keyword-only ``rngs``
    (``nnx.Rngs``: its ``'params'`` stream draws the init, U(-1/sqrt(H), 1/sqrt(H)) as torch's; its
    ``'dropout'`` stream, forked into the layer, draws the dropout masks), ``dtype`` (computation;
    None promotes), ``param_dtype``, ``precision``, ``unroll`` and ``impl`` (``'fused'``, the core's
    engine, or ``'scan'``, ``nnx.scan`` over the cells; the same values). """

_CALL_DOC = f"""
    Call: ``output, h_n = layer(x, hx=None, *, seq_lengths=None, deterministic=None, rngs=None)``.

    Args (of the call):
      x: (time, batch, input_size), or (batch, time, input_size) with ``batch_first``, or
        unbatched (time, input_size); or a ``jaxrnn.utils.rnn.PackedSequence``, and then output
        is one too.
      hx: torch's initial state (``h0=`` is accepted as an alias): (num_layers * D, batch,
        hidden_size), or (num_layers * D, hidden_size) unbatched; zeros when None.
{_api.SEQ_LENGTHS_DOC}
      deterministic: overrides the layer's mode for this call (True: eval, no dropout).
      rngs: draws this call's dropout masks instead of the layer's stream (an ``nnx.Rngs``, an
        ``nnx.RngStream`` or a key).

    Returns:
      output: (time, batch, D * hidden_size) in x's layout (D = 2 if bidirectional else 1).
      h_n: (num_layers * D, batch, hidden_size); row ``k * D + d`` is layer k, direction d.
"""


class RNN(_OneState):
    __doc__ = r"""A multi-layer Elman RNN, as an NNX module, that computes exactly what ``torch.nn.RNN`` computes.

    For each layer and step, ``h(t) = tanh(W_ih x(t) + b_ih + W_hh h(t-1) + b_hh)`` (``relu``
    with ``nonlinearity='relu'``): ``jaxrnn.functional.rnn`` on the layer's parameters, which are
    ``nnx.Param`` attributes with torch's names and shapes: ``weight_ih_l{k}`` (H, I for k = 0,
    else D*H), ``weight_hh_l{k}`` (H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}`` (H,), and ``_reverse``
    for the backward direction.""" + _EXTRAS + _api.AUTODIFF_DOC + _CALL_DOC + """
    >>> import jax
    >>> from flax import nnx
    >>> from jaxrnn.nnx import RNN
    >>> rnn = RNN(10, 20, num_layers=2, batch_first=True, rngs=nnx.Rngs(0))
    >>> output, h_n = rnn(jax.random.normal(jax.random.key(1), (32, 15, 10)))
    >>> output.shape, h_n.shape, rnn.weight_ih_l1.shape
    ((32, 15, 20), (2, 32, 20), (20, 20))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, *,
                 rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = jnp.float32, precision: Any = None,
                 unroll: int = 1, impl: str = "fused"):
        spec = _specs.RNN_RELU if nonlinearity == "relu" else _specs.RNN_TANH
        self.nonlinearity = nonlinearity
        self._build(spec, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                    rngs=rngs, dtype=dtype, param_dtype=param_dtype, precision=precision, unroll=unroll, impl=impl,
                    options={"nonlinearity": nonlinearity})


class GRU(_OneState):
    __doc__ = r"""A multi-layer GRU, as an NNX module, that computes exactly what ``torch.nn.GRU`` computes.

    Gates r, z, n.

    Each layer and step: ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``,
    ``h' = (1 - z) * n + z * h`` (``jaxrnn.functional.gru``), with torch's ``b_hn`` inside r's
    product. Parameters ``weight_ih_l{k}`` (3H, ·), ``weight_hh_l{k}`` (3H, H), ``bias_ih_l{k}``,
    ``bias_hh_l{k}`` (3H,), ``_reverse`` for the backward direction.""" + _EXTRAS + _api.AUTODIFF_DOC + _CALL_DOC + """
    >>> import jax
    >>> from flax import nnx
    >>> from jaxrnn.nnx import GRU
    >>> gru = GRU(10, 20, num_layers=2, batch_first=True, rngs=nnx.Rngs(0))
    >>> output, h_n = gru(jax.random.normal(jax.random.key(1), (32, 15, 10)))
    >>> output.shape, h_n.shape
    ((32, 15, 20), (2, 32, 20))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, *, rngs: nnx.Rngs,
                 dtype: Any = None, param_dtype: Any = jnp.float32, precision: Any = None, unroll: int = 1,
                 impl: str = "fused"):
        self._build(_specs.GRU, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                    rngs=rngs, dtype=dtype, param_dtype=param_dtype, precision=precision, unroll=unroll, impl=impl)


class LSTM(_Recurrent):
    __doc__ = r"""A multi-layer LSTM, as an NNX module, that computes exactly what ``torch.nn.LSTM`` computes.

    Gates i, f, g, o.

    Each layer and step: ``c' = σ(f) c + σ(i) tanh(g)``, ``h' = σ(o) tanh(c')``, and with
    ``proj_size`` P > 0, ``h' = W_hr (σ(o) tanh(c'))`` (``jaxrnn.functional.lstm``). Parameters
    ``weight_ih_l{k}`` (4H, ·), ``weight_hh_l{k}`` (4H, P or H), ``bias_ih_l{k}``, ``bias_hh_l{k}``
    (4H,), ``weight_hr_l{k}`` (P, H), ``_reverse`` for the backward direction.""" + _EXTRAS + """
    A projected LSTM runs the scan reference whatever ``impl`` says. """ + _api.AUTODIFF_DOC + """

    Call: ``output, (h_n, c_n) = lstm(x, hx=None, *, seq_lengths=None, deterministic=None, rngs=None)``
    with ``hx = (h0, c0)``: h0 (num_layers * D, batch, P or H), c0 (num_layers * D, batch, H)
    (without the batch axis for unbatched x); zeros when None. The rest as ``RNN``'s call;
    returns output (time, batch, D * (P or H)) and ``LSTMState(h_n, c_n)``.

    >>> import jax
    >>> from flax import nnx
    >>> from jaxrnn.nnx import LSTM
    >>> lstm = LSTM(10, 20, num_layers=2, batch_first=True, proj_size=5, rngs=nnx.Rngs(0))
    >>> output, (h_n, c_n) = lstm(jax.random.normal(jax.random.key(1), (32, 15, 10)))
    >>> output.shape, h_n.shape, c_n.shape, lstm.weight_hr_l0.shape
    ((32, 15, 5), (2, 32, 5), (2, 32, 20), (5, 20))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0, *,
                 rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = jnp.float32, precision: Any = None,
                 unroll: int = 1, impl: str = "fused"):
        self._build(_specs.LSTM, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                    proj_size, rngs=rngs, dtype=dtype, param_dtype=param_dtype, precision=precision, unroll=unroll,
                    impl=impl, options={"proj_size": proj_size})

    def __call__(self, x: Array, hx: tuple[Array, Array] | None = None, *, seq_lengths: Array | None = None,
                 deterministic: bool | None = None, rngs: Any = None) -> tuple[Array, LSTMState]:
        return self._forward(x, hx, "hx", seq_lengths, deterministic, rngs)

