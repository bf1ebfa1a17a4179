"""``torch.nn.RNN`` as a Flax module: cells stacked in layers and directions, scanned over time."""

from __future__ import annotations

import warnings
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._cell import RNNCell

Array = jax.Array


def _scan_direction(cell: RNNCell, xs: Array, h0: Array, mask: Array | None, reverse: bool, unroll: int):
    """Run one cell over time-major ``xs`` (T, N, I) from ``h0`` (N, H).

    Returns ``(ys, h_n)``: ys (T, N, H) and the last state h_n (N, H). With ``mask`` (T, N, 1),
    masked steps leave the carry untouched and output zeros, so the forward direction ends at
    each sequence's last valid step and the reverse direction (``reverse=True`` walks T-1..0)
    starts there, as torch does for packed sequences.
    """
    xp = cell.project(xs)

    if mask is None:

        def body(cell, h, xp_t):
            h = cell.step(h, xp_t)
            return h, h

        inputs = xp
    else:

        def body(cell, h, inp):
            xp_t, valid = inp
            h_new = cell.step(h, xp_t)
            return jnp.where(valid, h_new, h), jnp.where(valid, h_new, jnp.zeros_like(h_new))

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
    h0 = h0.astype(xp.dtype)
    h_n, ys = scan(cell, h0, inputs)
    return ys, h_n


class RNN(nn.Module):
    r"""A multi-layer Elman RNN that computes exactly what ``torch.nn.RNN`` computes.

    For each layer and time step, with x(t) the layer's input (the previous layer's output):

    .. math::
        h(t) = \tanh(W_{ih} x(t) + b_{ih} + W_{hh} h(t-1) + b_{hh})

    (``relu`` with ``nonlinearity='relu'``). The constructor is torch's, with its names, order
    and defaults; ``dtype``, ``param_dtype``, ``precision`` and ``unroll`` (of the time scan)
    are extras. Parameters of layer k live under ``l{k}`` (``l{k}_reverse`` for the backward
    direction) with torch's names: ``weight_ih`` (H, I) for layer 0, (H, D*H) above it,
    ``weight_hh`` (H, H), ``bias_ih`` (H,), ``bias_hh`` (H,); torch's key ``weight_ih_l1_reverse``
    is ``params['l1_reverse']['weight_ih']``. Every parameter starts from U(-1/sqrt(H), 1/sqrt(H)).

    Call: ``output, h_n = rnn.apply(variables, x, h0=None, seq_lengths=None, deterministic=True)``.

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

    >>> import jax
    >>> from jaxrnn import RNN
    >>> rnn = RNN(input_size=10, hidden_size=20, num_layers=2, batch_first=True)
    >>> x = jax.random.normal(jax.random.key(0), (32, 15, 10))  # (batch, seq, features)
    >>> variables = rnn.init(jax.random.key(1), x)
    >>> output, h_n = rnn.apply(variables, x)
    >>> output.shape, h_n.shape
    ((32, 15, 20), (2, 32, 20))
    """

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

    def __post_init__(self):
        name = type(self).__name__
        _checks.positive_int("input_size", self.input_size, name)
        _checks.positive_int("hidden_size", self.hidden_size, name)
        _checks.positive_int("num_layers", self.num_layers, name)
        _checks.one_of("nonlinearity", self.nonlinearity, ("tanh", "relu"), name)
        _checks.probability("dropout", self.dropout, name)
        _checks.positive_int("unroll", self.unroll, name)
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                f"expects num_layers greater than 1, but got dropout={self.dropout} and "
                f"num_layers={self.num_layers}",
                stacklevel=2,
            )
        super().__post_init__()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _example_input(self) -> Array:
        return jnp.zeros((1, 1, self.input_size), self.param_dtype)

    def _check_call(self, x, h0, seq_lengths) -> None:
        """torch's input checks, plus the length checks of pack_padded_sequence."""
        name = type(self).__name__
        _checks.floating_array("x", x, name)
        if x.ndim not in (2, 3):
            raise ValueError(f"{name}: expected x to be 2D (unbatched) or 3D (batched), got {x.ndim}D (x.shape={x.shape})")
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"{name}: `input_size` is {self.input_size} but x has {x.shape[-1]} features (x.shape={x.shape})"
            )
        batched = x.ndim == 3
        time_axis = 1 if (batched and self.batch_first) else 0
        steps = x.shape[time_axis]
        if steps == 0:
            raise ValueError(f"{name}: x has no time steps (x.shape={x.shape})")
        rows = self.num_layers * self.num_directions
        if h0 is not None:
            _checks.floating_array("h0", h0, name)
            expected = (rows, x.shape[1 - time_axis], self.hidden_size) if batched else (rows, self.hidden_size)
            if h0.shape != expected:
                raise ValueError(f"{name}: expected h0 of shape {expected}, got {h0.shape}")
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

    @nn.compact
    def __call__(
        self,
        x: Array,
        h0: Array | None = None,
        *,
        seq_lengths: Array | None = None,
        deterministic: bool = True,
    ) -> tuple[Array, Array]:
        self._check_call(x, h0, seq_lengths)
        batched = x.ndim == 3
        if not batched:  # torch: (T, I) -> (T, 1, I); batch_first does not apply
            x = x[:, None]
            h0 = None if h0 is None else h0[:, None]
        elif self.batch_first:
            x = jnp.swapaxes(x, 0, 1)
        steps, batch = x.shape[:2]

        mask = None
        if seq_lengths is not None:
            mask = (jnp.arange(steps)[:, None] < seq_lengths[None, :])[:, :, None]

        finals = []
        layer_input = x
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                suffix = "_reverse" if direction else ""
                cell = RNNCell(
                    input_size=self.input_size if layer == 0 else self.hidden_size * self.num_directions,
                    hidden_size=self.hidden_size,
                    bias=self.bias,
                    nonlinearity=self.nonlinearity,
                    dtype=self.dtype,
                    param_dtype=self.param_dtype,
                    precision=self.precision,
                    name=f"l{layer}{suffix}",
                )
                row = layer * self.num_directions + direction
                if h0 is None:
                    start = jnp.zeros((batch, self.hidden_size), layer_input.dtype)
                else:
                    start = h0[row]
                ys, h_n = _scan_direction(cell, layer_input, start, mask, bool(direction), self.unroll)
                outputs.append(ys)
                finals.append(h_n)
            layer_input = outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs, axis=-1)
            if self.dropout > 0 and layer < self.num_layers - 1:
                layer_input = nn.Dropout(rate=self.dropout)(layer_input, deterministic=deterministic)

        output, h_n = layer_input, jnp.stack(finals)
        if not batched:
            return output[:, 0], h_n[:, 0]
        if self.batch_first:
            output = jnp.swapaxes(output, 0, 1)
        return output, h_n
