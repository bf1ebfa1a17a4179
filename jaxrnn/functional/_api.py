r"""The public functions: torch's ``RNN``/``LSTM``/``GRU`` and their cells over torch-keyed params.

``params`` is a flat dict keyed exactly as torch's ``state_dict()`` of the bare module, so
``{k: jnp.asarray(v.numpy()) for k, v in torch_lstm.state_dict().items()}`` is valid as it is;
``num_layers``, ``bidirectional``, ``bias`` and ``proj_size`` are read from its keys and shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from . import _checks, _layers, _params, _steps
from ._specs import GRU, LSTM, RNN_RELU, RNN_TANH, CellSpec, LSTMState

Array = jax.Array

_CALL_DOC = """
    Args:
      params: torch's ``state_dict()`` keys to arrays: ``weight_ih_l{{k}}``, ``weight_hh_l{{k}}``,
        ``bias_ih_l{{k}}``, ``bias_hh_l{{k}}`` (when the layer has biases), with ``_reverse`` for the
        backward direction of a bidirectional layer.
      x: (time, batch, input_size), or (batch, time, input_size) with ``batch_first``, or
        unbatched (time, input_size).
      {hx}
      batch_first: x and output are (batch, time, ·).
      seq_lengths: int array (batch,) with values in [1, time], any order: the result is torch's on
        ``pack_padded_sequence(x, seq_lengths, enforce_sorted=False)`` followed by
        ``pad_packed_sequence(..., total_length=time)``: outputs at padded positions are zero,
        h_n holds each sequence's state at its own last valid step, and the reverse direction
        starts at each sequence's own last valid step.
      dropout: the probability of zeroing each output of every layer but the last, applied (as
        torch does in training mode) only when ``dropout_key`` is given.
      dropout_key: a ``jax.random`` key for the dropout masks, or None (torch's eval mode); layer
        k's mask is drawn from ``jax.random.fold_in(dropout_key, k)``.
      impl: ``'fused'`` (the default): the engine, a time loop with a hand-written backward pass
        (reverse-mode autodiff: ``jax.grad``, ``jax.vjp``, grad of grad); ``'scan'``: the
        reference, ``jax.lax.scan`` over the same step with autodiff (every mode, ``jax.jvp``,
        ``jax.jacfwd`` and ``jax.hessian`` included). Both compute the same values.
      precision: of every matmul (``jax.lax.Precision``).
      unroll: steps per iteration of the compiled time loops.
      dtype: the computation dtype; None promotes x's and the parameters' dtypes.

    Returns:
      output: (time, batch, D * {out}) in x's layout (D = 2 if bidirectional else 1): the last
        layer's states, forward and backward concatenated on the last axis.
      {ret}
"""


def _check_options(impl: str, unroll: int, owner: str) -> None:
    _checks.one_of("impl", impl, _layers.IMPLS, owner)
    _checks.positive_int("unroll", unroll, owner)


def _run(spec: CellSpec, owner: str, hx_name: str, params, x, hx, *, impl, precision, unroll, **kw):
    _check_options(impl, unroll, owner)
    backend = _layers.backend_for(impl, precision, unroll)
    return _layers.forward(spec, params, x, hx, owner=owner, hx_name=hx_name, backend=backend, **kw)


def rnn(
    params: Mapping[str, Array],
    x: Array,
    h0: Array | None = None,
    *,
    nonlinearity: str = "tanh",
    batch_first: bool = False,
    seq_lengths: Array | None = None,
    dropout: float = 0.0,
    dropout_key: Array | None = None,
    impl: str = "fused",
    precision: Any = None,
    unroll: int = 1,
    dtype: Any = None,
) -> tuple[Array, Array]:
    r"""A multi-layer Elman RNN, as ``torch.nn.RNN``: for each layer and step,
    ``h(t) = tanh(W_ih x(t) + b_ih + W_hh h(t-1) + b_hh)`` (``relu`` with ``nonlinearity='relu'``).

    >>> import jax
    >>> from jaxrnn.functional import init_params, rnn
    >>> params = init_params(jax.random.key(0), "rnn_tanh", 10, 20, num_layers=2)
    >>> x = jax.random.normal(jax.random.key(1), (32, 15, 10))  # (batch, seq, features)
    >>> output, h_n = rnn(params, x, batch_first=True)
    >>> output.shape, h_n.shape
    ((32, 15, 20), (2, 32, 20))
    """
    _checks.one_of("nonlinearity", nonlinearity, ("tanh", "relu"), "rnn")
    spec = RNN_TANH if nonlinearity == "tanh" else RNN_RELU
    return _run(spec, "rnn", "h0", params, x, h0, impl=impl, precision=precision, unroll=unroll,
                batch_first=batch_first, seq_lengths=seq_lengths, dropout=dropout, dropout_key=dropout_key,
                dtype=dtype)


def lstm(
    params: Mapping[str, Array],
    x: Array,
    hx: tuple[Array, Array] | None = None,
    *,
    batch_first: bool = False,
    seq_lengths: Array | None = None,
    dropout: float = 0.0,
    dropout_key: Array | None = None,
    impl: str = "fused",
    precision: Any = None,
    unroll: int = 1,
    dtype: Any = None,
) -> tuple[Array, LSTMState]:
    r"""A multi-layer LSTM, as ``torch.nn.LSTM`` (gates i, f, g, o): for each layer and step,
    ``c' = σ(f) c + σ(i) tanh(g)``, ``h' = σ(o) tanh(c')``, and with ``weight_hr_l{k}`` (P, H) in
    params (torch's ``proj_size`` P), ``h' = W_hr (σ(o) tanh(c'))``; a projected LSTM runs the
    scan reference whatever ``impl`` says (the projection sits inside the step).

    >>> import jax
    >>> from jaxrnn.functional import init_params, lstm
    >>> params = init_params(jax.random.key(0), "lstm", 10, 20, proj_size=5)
    >>> x = jax.random.normal(jax.random.key(1), (15, 32, 10))  # (seq, batch, features)
    >>> output, (h_n, c_n) = lstm(params, x)
    >>> output.shape, h_n.shape, c_n.shape
    ((15, 32, 5), (1, 32, 5), (1, 32, 20))
    """
    return _run(LSTM, "lstm", "hx", params, x, hx, impl=impl, precision=precision, unroll=unroll,
                batch_first=batch_first, seq_lengths=seq_lengths, dropout=dropout, dropout_key=dropout_key,
                dtype=dtype)


def gru(
    params: Mapping[str, Array],
    x: Array,
    h0: Array | None = None,
    *,
    batch_first: bool = False,
    seq_lengths: Array | None = None,
    dropout: float = 0.0,
    dropout_key: Array | None = None,
    impl: str = "fused",
    precision: Any = None,
    unroll: int = 1,
    dtype: Any = None,
) -> tuple[Array, Array]:
    r"""A multi-layer GRU, as ``torch.nn.GRU`` (gates r, z, n): for each layer and step,
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.

    >>> import jax
    >>> from jaxrnn.functional import gru, init_params
    >>> params = init_params(jax.random.key(0), "gru", 10, 20, bidirectional=True)
    >>> output, h_n = gru(params, jax.random.normal(jax.random.key(1), (15, 10)))  # unbatched
    >>> output.shape, h_n.shape
    ((15, 40), (2, 20))
    """
    return _run(GRU, "gru", "h0", params, x, h0, impl=impl, precision=precision, unroll=unroll,
                batch_first=batch_first, seq_lengths=seq_lengths, dropout=dropout, dropout_key=dropout_key,
                dtype=dtype)


_H0 = """h0: (num_layers * D, batch, hidden_size), or (num_layers * D, hidden_size) unbatched;
        zeros when None."""
_RET = """h_n: (num_layers * D, batch, hidden_size), or (num_layers * D, hidden_size) unbatched;
        row ``k * D + d`` is layer k, direction d (0 forward, 1 backward)."""
rnn.__doc__ = (rnn.__doc__ or "") + _CALL_DOC.format(hx=_H0, out="hidden_size", ret=_RET).replace(
    "      dtype:", "      nonlinearity: ``'tanh'`` or ``'relu'``.\n      dtype:"
)
gru.__doc__ = (gru.__doc__ or "") + _CALL_DOC.format(hx=_H0, out="hidden_size", ret=_RET)
lstm.__doc__ = (lstm.__doc__ or "") + _CALL_DOC.format(
    hx="""hx: ``(h0, c0)``: h0 (num_layers * D, batch, P or H), c0 (num_layers * D, batch, H)
        (without the batch axis for unbatched x); zeros when None.""",
    out="(P or H)",
    ret="""``LSTMState(h_n, c_n)``, a NamedTuple that unpacks as torch's ``(h_n, c_n)``:
        h_n (num_layers * D, batch, P or H), c_n (num_layers * D, batch, H).""",
)


# --------------------------------------------------------------------------- cells


def cell(spec: CellSpec, params: Mapping[str, Array], x: Array, hx: Any, *, owner: str, hx_name: str,
         precision: Any = None, dtype: Any = None) -> Any:
    """One step of a cell on torch's cell keys (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``):
    the checks, the dtype, then the input half and the recurrent half (``_steps``)."""
    input_size, hidden_size, proj_size = _params.cell_layout(params, spec, owner)
    _checks.floating_array("x", x, owner)
    if x.ndim not in (1, 2):
        raise ValueError(f"{owner}: expected x to be 1D (unbatched) or 2D (batch, input_size), got {x.ndim}D")
    if x.shape[-1] != input_size:
        raise ValueError(f"{owner}: `input_size` is {input_size} but x has {x.shape[-1]} features (x.shape={x.shape})")
    lead = x.shape[:-1]
    if hx is not None:
        hx = _checks.carry(hx, spec.carry_shapes(lead, hidden_size, proj_size or hidden_size), hx_name, owner)
    if dtype is None:
        dtype = jnp.result_type(x, *params.values())
    w = {k: v.astype(dtype) for k, v in params.items()}
    x = x.astype(dtype)
    hx = spec.zero_carry(lead, hidden_size, proj_size or hidden_size, dtype) if hx is None else jax.tree.map(
        lambda a: a.astype(dtype), hx)
    return _steps.step(spec, w, hx, _steps.input_half(spec, w, x, precision), precision)[0]


def rnn_cell(params: Mapping[str, Array], x: Array, h: Array | None = None, nonlinearity: str = "tanh", *,
             precision: Any = None, dtype: Any = None) -> Array:
    r"""One step of an Elman RNN, as ``torch.nn.RNNCell``: ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)``.

    params: ``weight_ih`` (H, I), ``weight_hh`` (H, H), optional ``bias_ih``, ``bias_hh`` (H,);
    x: (batch, I) or unbatched (I,); h: (batch, H) or (H,), zeros when None. Returns h'.

    >>> import jax
    >>> from jaxrnn.functional import rnn_cell
    >>> k = jax.random.split(jax.random.key(0), 3)
    >>> params = {"weight_ih": jax.random.normal(k[0], (16, 5)), "weight_hh": jax.random.normal(k[1], (16, 16))}
    >>> rnn_cell(params, jax.random.normal(k[2], (8, 5)), nonlinearity="relu").shape
    (8, 16)
    """
    _checks.one_of("nonlinearity", nonlinearity, ("tanh", "relu"), "rnn_cell")
    spec = RNN_TANH if nonlinearity == "tanh" else RNN_RELU
    return cell(spec, params, x, h, owner="rnn_cell", hx_name="h", precision=precision, dtype=dtype)


def lstm_cell(params: Mapping[str, Array], x: Array, hx: tuple[Array, Array] | None = None, *,
              precision: Any = None, dtype: Any = None) -> LSTMState:
    r"""One step of an LSTM, as ``torch.nn.LSTMCell``: params ``weight_ih`` (4H, I), ``weight_hh``
    (4H, H), optional biases (4H,); ``hx = (h, c)``, each (batch, H) or (H,). Returns ``LSTMState(h', c')``.

    >>> import jax
    >>> from jaxrnn.functional import init_params, lstm_cell
    >>> layer = init_params(jax.random.key(0), "lstm", 5, 16)
    >>> params = {k.removesuffix("_l0"): v for k, v in layer.items()}
    >>> h, c = lstm_cell(params, jax.random.normal(jax.random.key(1), (8, 5)))
    >>> h.shape, c.shape
    ((8, 16), (8, 16))
    """
    return cell(LSTM, params, x, hx, owner="lstm_cell", hx_name="h", precision=precision, dtype=dtype)


def gru_cell(params: Mapping[str, Array], x: Array, h: Array | None = None, *,
             precision: Any = None, dtype: Any = None) -> Array:
    r"""One step of a GRU, as ``torch.nn.GRUCell``: params ``weight_ih`` (3H, I), ``weight_hh`` (3H, H),
    optional biases (3H,); h (batch, H) or (H,). Returns h'.

    >>> import jax
    >>> from jaxrnn.functional import gru_cell, init_params
    >>> params = {k.removesuffix("_l0"): v for k, v in init_params(jax.random.key(0), "gru", 5, 16).items()}
    >>> gru_cell(params, jax.random.normal(jax.random.key(1), (5,))).shape
    (16,)
    """
    return cell(GRU, params, x, h, owner="gru_cell", hx_name="h", precision=precision, dtype=dtype)
