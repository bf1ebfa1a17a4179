"""``torch.nn.RNN``, ``torch.nn.LSTM`` and ``torch.nn.GRU`` as Flax modules.

One mechanism serves all three: a cell per layer and direction, each scanned over time with
``flax.linen.scan``; layers stack, directions concatenate, lengths mask. The three public
classes differ only in their constructor (torch's, field for field) and their cell.
"""

from __future__ import annotations

import warnings
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ..functional import _checks, _fused, _fused_gated
from ._cells import GRUCell, LSTMCell, LSTMState, RNNCell, _Cell

Array = jax.Array


def _scan_direction(cell: _Cell, xs: Array, carry: Any, mask: Array | None, reverse: bool, unroll: int):
    """Run one cell over time-major ``xs`` (T, N, I) from ``carry`` (leaves (N, ·)).

    Returns ``(ys, carry_n)``: ys (T, N, ·) and the last carry. With ``mask`` (T, N, 1), masked
    steps leave the carry untouched and output zeros, so the forward direction ends at each
    sequence's last valid step and the reverse direction (``reverse=True`` walks T-1..0) starts
    there, as torch does for packed sequences.
    """
    xp = cell.project(xs)
    carry = jax.tree.map(lambda a: a.astype(xp.dtype), carry)

    if mask is None:

        def body(cell, carry, xp_t):
            return cell.step(carry, xp_t)

        inputs: Any = xp
    else:

        def body(cell, carry, inp):
            xp_t, valid = inp
            new, y = cell.step(carry, xp_t)
            carry = jax.tree.map(lambda n, o: jnp.where(valid, n, o), new, carry)
            return carry, jnp.where(valid, y, jnp.zeros_like(y))

        inputs = (xp, mask)

    scan = nn.scan(
        body,
        variable_broadcast="params",
        split_rngs={"params": False},
        in_axes=0,
        out_axes=0,
        reverse=reverse,
        unroll=unroll,
    )
    carry_n, ys = scan(cell, carry, inputs)
    return ys, carry_n


class _Recurrent(nn.Module):
    """The machinery shared by RNN, LSTM and GRU. Subclasses declare torch's fields and ``_cell``."""

    def __post_init__(self):
        name = type(self).__name__
        _checks.positive_int("input_size", self.input_size, name)
        _checks.positive_int("hidden_size", self.hidden_size, name)
        _checks.positive_int("num_layers", self.num_layers, name)
        _checks.probability("dropout", self.dropout, name)
        _checks.positive_int("unroll", self.unroll, name)
        _checks.one_of("impl", self.impl, ("fused", "scan"), name)
        self._check_options()
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                f"expects num_layers greater than 1, but got dropout={self.dropout} and "
                f"num_layers={self.num_layers}",
                stacklevel=2,
            )
        super().__post_init__()

    def _check_options(self) -> None:
        pass

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _output_size(self) -> int:
        return self.hidden_size

    def _example_input(self) -> Array:
        return jnp.zeros((1, 1, self.input_size), self.param_dtype)

    def _cell(self, input_size: int, name: str) -> _Cell:
        raise NotImplementedError

    def _check_call(self, x, hx, seq_lengths, hx_name: str):
        """torch's input checks, plus the length checks of pack_padded_sequence. Returns hx as a carry."""
        name = type(self).__name__
        _checks.floating_array("x", x, name)
        if x.ndim not in (2, 3):
            raise ValueError(
                f"{name}: expected x to be 2D (unbatched) or 3D (batched), got {x.ndim}D (x.shape={x.shape})"
            )
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"{name}: `input_size` is {self.input_size} but x has {x.shape[-1]} features (x.shape={x.shape})"
            )
        batched = x.ndim == 3
        time_axis = 1 if (batched and self.batch_first) else 0
        steps = x.shape[time_axis]
        if steps == 0:
            raise ValueError(f"{name}: x has no time steps (x.shape={x.shape})")
        if hx is not None:
            lead = (self.num_layers * self.num_directions,) + ((x.shape[1 - time_axis],) if batched else ())
            hx = _checks.carry(hx, self._carry_shapes(lead), hx_name, name)
        if seq_lengths is not None:
            if not batched:
                raise ValueError(f"{name}: `seq_lengths` needs batched 3D input, got unbatched x of shape {x.shape}")
            if not hasattr(seq_lengths, "dtype") or not jnp.issubdtype(seq_lengths.dtype, jnp.integer):
                got = getattr(seq_lengths, "dtype", type(seq_lengths).__name__)
                raise TypeError(f"{name}: `seq_lengths` must be an integer array, got {got}")
            batch = x.shape[1 - time_axis]
            if seq_lengths.shape != (batch,):
                raise ValueError(f"{name}: expected `seq_lengths` of shape ({batch},), got {seq_lengths.shape}")
            if _checks.is_concrete(seq_lengths):
                lengths = np.asarray(seq_lengths)
                if lengths.min() < 1 or lengths.max() > steps:
                    raise ValueError(
                        f"{name}: `seq_lengths` must lie in [1, {steps}] (the number of time steps), "
                        f"got min {lengths.min()} and max {lengths.max()}"
                    )
        return hx

    def _carry_shapes(self, lead: tuple[int, ...]) -> Any:
        return lead + (self.hidden_size,)

    @property
    def _fused(self) -> bool:
        """Whether the layers run the fused recurrence (``impl='fused'``) rather than nn.scan."""
        return self.impl == "fused"

    def _layer(
        self,
        cells: list[_Cell],
        x: Array,
        starts: list,
        mask: Array | None,
        seq_lengths: Array | None,
        batch_first: bool = False,
    ):
        """One layer, all its directions: returns (output (T, N, D * ·), final carries).

        x is time-major (T, N, ·), or batch-first (N, T, ·) with ``batch_first`` (only on the
        fused path, which steps along the time axis where it lies; the output keeps x's layout).
        """
        outputs, finals = [], []
        for direction, (cell, start) in enumerate(zip(cells, starts)):
            if self._fused:
                ys, carry_n = self._fused_direction(cell, x, start, seq_lengths, bool(direction), batch_first)
            else:
                ys, carry_n = _scan_direction(cell, x, start, mask, bool(direction), self.unroll)
            outputs.append(ys)
            finals.append(carry_n)
        return (outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs, axis=-1)), finals

    def _fused_direction(self, cell, x, start, seq_lengths, reverse: bool, batch_first: bool):
        """One direction of a gated layer on ``_fused_gated``: the cell's projection, then its updates."""
        return _fused_gated.gated(
            type(cell),
            cell.project_parts(x, cell.gates if cell.fused_per_gate else 1),  # the loop adds the biases
            cell.weight_hh,
            start,
            seq_lengths,
            bias_ih=cell.bias_ih if self.bias else None,
            bias_hh=cell.bias_hh if self.bias else None,
            reverse=reverse,
            precision=self.precision,
            unroll=self.unroll,
            batch_first=batch_first,
        )

    def _forward(self, x: Array, hx: Any, seq_lengths: Array | None, deterministic: bool, hx_name: str):
        hx = self._check_call(x, hx, seq_lengths, hx_name)
        batched = x.ndim == 3
        keep_layout = batched and self.batch_first and self._fused  # no transposes
        if not batched:  # torch: (T, I) -> (T, 1, I); batch_first does not apply
            x = x[:, None]
            hx = None if hx is None else jax.tree.map(lambda a: a[:, None], hx)
        elif self.batch_first and not keep_layout:
            x = jnp.swapaxes(x, 0, 1)
        steps, batch = x.shape[1::-1] if keep_layout else x.shape[:2]

        mask = None
        if seq_lengths is not None:
            mask = (jnp.arange(steps)[:, None] < seq_lengths[None, :])[:, :, None]

        finals = []
        layer_input = x
        for layer in range(self.num_layers):
            cells, starts = [], []
            for direction in range(self.num_directions):
                in_size = self.input_size if layer == 0 else self._output_size * self.num_directions
                cell = self._cell(in_size, f"l{layer}{'_reverse' if direction else ''}")
                row = layer * self.num_directions + direction
                if hx is None:
                    start = cell.zero_carry((batch,), layer_input.dtype)
                else:
                    start = jax.tree.map(lambda a: a[row], hx)
                cells.append(cell)
                starts.append(start)
            layer_input, carries = self._layer(cells, layer_input, starts, mask, seq_lengths, keep_layout)
            finals += carries
            if self.dropout > 0 and layer < self.num_layers - 1:
                layer_input = nn.Dropout(rate=self.dropout)(layer_input, deterministic=deterministic)

        output = layer_input
        state = jax.tree.map(lambda *rows: jnp.stack(rows), *finals)
        if not batched:
            return output[:, 0], jax.tree.map(lambda a: a[:, 0], state)
        if self.batch_first and not keep_layout:
            output = jnp.swapaxes(output, 0, 1)
        return output, state


_SHARED_DOC = """
    Call: ``output, h_n = layer.apply(variables, x, h0=None, seq_lengths=None, deterministic=True)``.

    Args (of the call):
      x: (time, batch, input_size), or (batch, time, input_size) with ``batch_first``, or
        unbatched (time, input_size).
      h0: torch's ``hx``: (num_layers * num_directions, batch, hidden_size), or
        (num_layers * num_directions, hidden_size) unbatched; zeros when None.
      seq_lengths: int array (batch,) with values in [1, time], any order. The result is torch's
        on ``pack_padded_sequence(x, seq_lengths, enforce_sorted=False)`` followed by
        ``pad_packed_sequence(..., total_length=time)``: outputs at padded positions are zero,
        h_n holds each sequence's state at its own last valid step, and the reverse direction
        starts at each sequence's own last valid step.
      deterministic: when False, dropout (rate ``dropout``, rng stream ``'dropout'``) is applied
        to the output of every layer but the last, as torch does in training mode.

    Returns:
      output: (time, batch, D * hidden_size) in x's layout (D = 2 if bidirectional else 1);
        the last layer's states, forward and backward concatenated on the last axis.
      h_n: (num_layers * D, batch, hidden_size), or (num_layers * D, hidden_size) unbatched;
        row ``k * D + d`` is layer k, direction d (0 forward, 1 backward).
"""


class RNN(_Recurrent):
    __doc__ = (
        r"""A multi-layer Elman RNN that computes exactly what ``torch.nn.RNN`` computes.

    For each layer and time step, with x(t) the layer's input (the previous layer's output):

    .. math::
        h(t) = \tanh(W_{ih} x(t) + b_{ih} + W_{hh} h(t-1) + b_{hh})

    (``relu`` with ``nonlinearity='relu'``). The constructor is torch's, with its names, order
    and defaults; ``dtype``, ``param_dtype``, ``precision``, ``unroll`` (of the time loop) and
    ``impl`` are extras. ``impl='fused'`` (the default) runs the recurrence of
    ``jaxrnn._fused``: a loop of one matmul, add and activation per step, and a hand-written
    backward pass whose loop carries only dh (the weight gradient is one GEMM over all steps
    afterwards); with ``batch_first`` it steps along axis 1 in place, without transposing the
    sequence to time-major and back. ``impl='scan'`` is the reference: ``flax.linen.scan`` over
    ``RNNCell`` with autodiff. Both compute the same values (the float64 parity suites hold each
    to torch at 1e-10).
    The fused path's gradient is a ``jax.custom_vjp``: reverse mode (``jax.grad``, ``jax.vjp``,
    grad of grad) works, forward mode (``jax.jvp``, ``jax.jacfwd``, ``jax.hessian``) does not;
    use ``impl='scan'`` for those.
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

    def _check_options(self) -> None:
        _checks.one_of("nonlinearity", self.nonlinearity, ("tanh", "relu"), type(self).__name__)

    def _layer(self, cells, x, starts, mask, seq_lengths, batch_first=False):
        if not self._fused:
            return super()._layer(cells, x, starts, mask, seq_lengths)
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if self.bias else ("weight_ih", "weight_hh")
        weights = [{k: getattr(cell, k) for k in names} for cell in cells]
        if self.dtype is not None:  # the cells' promote_dtype(..., dtype=self.dtype)
            x = x.astype(self.dtype)
            weights = [{k: w.astype(self.dtype) for k, w in d.items()} for d in weights]
        ys, h_n = _fused.elman_layer(
            weights,
            x,
            jnp.stack(starts),
            seq_lengths,
            bias=self.bias,
            nonlinearity=self.nonlinearity,
            precision=self.precision,
            unroll=self.unroll,
            batch_first=batch_first,
        )
        return ys, list(h_n)

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

    @nn.compact
    def __call__(
        self, x: Array, h0: Array | None = None, *, seq_lengths: Array | None = None, deterministic: bool = True
    ) -> tuple[Array, Array]:
        return self._forward(x, h0, seq_lengths, deterministic, "h0")


class GRU(_Recurrent):
    __doc__ = (
        r"""A multi-layer GRU that computes exactly what ``torch.nn.GRU`` computes (gates r, z, n).

    Each layer and step applies ``GRUCell``:
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.
    Constructor, parameter names (``weight_ih`` (3H, I), ``weight_hh`` (3H, H), ``bias_ih``,
    ``bias_hh`` (3H,) under ``l{k}`` / ``l{k}_reverse``) and init are torch's; the call and
    returns are ``RNN``'s. ``dtype``, ``param_dtype``, ``precision``, ``unroll`` and ``impl``
    are extras, as for ``RNN``: ``impl='fused'`` (the default) runs ``jaxrnn._fused_gated``
    (one matmul and ``GRUCell.forward_step`` per step, keeping the gates' activations; a
    backward loop of ``GRUCell.backward_step`` carrying only dh; dW_hh one GEMM afterwards);
    ``impl='scan'`` is ``flax.linen.scan`` over ``GRUCell`` with autodiff. Both compute the same
    values. The fused gradient is a ``jax.custom_vjp``: reverse mode works, grad of grad
    included; forward mode (``jax.jvp``, ``jax.hessian``) needs ``impl='scan'``.
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

    def _cell(self, input_size: int, name: str) -> GRUCell:
        return GRUCell(input_size, self.hidden_size, self.bias, self.dtype, self.param_dtype, self.precision, name=name)

    @nn.compact
    def __call__(
        self, x: Array, h0: Array | None = None, *, seq_lengths: Array | None = None, deterministic: bool = True
    ) -> tuple[Array, Array]:
        return self._forward(x, h0, seq_lengths, deterministic, "h0")


class LSTM(_Recurrent):
    r"""A multi-layer LSTM that computes exactly what ``torch.nn.LSTM`` computes (gates i, f, g, o).

    Each layer and step applies ``LSTMCell``: ``c' = σ(f) c + σ(i) tanh(g)``, ``h' = σ(o) tanh(c')``,
    and with ``proj_size`` P > 0, ``h' = W_hr (σ(o) tanh(c'))``. Constructor, parameter names
    (``weight_ih`` (4H, I), ``weight_hh`` (4H, P or H), ``bias_ih``, ``bias_hh`` (4H,),
    ``weight_hr`` (P, H) under ``l{k}`` / ``l{k}_reverse``) and init are torch's.
    ``dtype``, ``param_dtype``, ``precision``, ``unroll`` and ``impl`` are extras, as for
    ``GRU``: ``impl='fused'`` (the default) runs ``jaxrnn._fused_gated`` with
    ``LSTMCell.forward_step`` and a backward loop of ``LSTMCell.backward_step`` carrying only
    (dh, dc); with ``proj_size`` > 0 the projection sits inside the step and the layer runs
    ``impl='scan'`` (``flax.linen.scan`` over ``LSTMCell``) either way.
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

    def _check_options(self) -> None:
        _checks.proj_size(self.proj_size, self.hidden_size, type(self).__name__)

    @property
    def _fused(self) -> bool:  # the projection h = W_hr h sits inside the step: nn.scan runs it
        return self.impl == "fused" and not self.proj_size

    @property
    def _output_size(self) -> int:
        return self.proj_size or self.hidden_size

    def _carry_shapes(self, lead):
        return LSTMState(lead + (self._output_size,), lead + (self.hidden_size,))

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
        return self._forward(x, hx, seq_lengths, deterministic, "hx")
