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
from ._packed import PackedSequence
from ._specs import GRU, LSTM, RNN_RELU, RNN_TANH, SPECS, CellSpec, LSTMState

Array = jax.Array

SEQ_LENGTHS_DOC = """      seq_lengths: ints (batch,) in [0, time], any order (an array, a list, or for unbatched x one
        int): the result is torch's on ``pack_padded_sequence(x, seq_lengths, enforce_sorted=False)``
        followed by ``pad_packed_sequence(..., total_length=time)``: outputs at padded positions
        are zero, h_n holds each sequence's state at its own last valid step, and the reverse
        direction starts there. A length of 0 (which torch refuses) is an empty sequence: zero
        outputs, and h_n is hx. Known lengths outside [0, time] raise a ValueError; traced ones
        (under ``jax.jit``) cannot be checked there and act as clipped to [0, time], unless the
        call runs under ``jax.experimental.checkify.checkify(f, errors=checkify.user_checks)``,
        whose error then names them."""
"""The ``seq_lengths`` argument, as every recurrent layer's docstring states it."""

AUTODIFF_DOC = """Autodiff: ``impl='scan'`` supports every mode. ``impl='fused'`` (and
    ``'xla'``, ``'native'``) supports reverse mode (``jax.grad``, ``jax.vjp``, ``jax.jacrev``, grad of grad) and forward
    over reverse (``jax.hessian``, ``jax.jvp`` of ``jax.grad``), with the same values as
    ``'scan'``; forward mode (``jax.jvp``, ``jax.jacfwd``, the linear map of ``jax.linearize``)
    cannot run through its ``jax.custom_vjp`` and raises a TypeError that says to pass
    ``impl='scan'``."""
"""What each ``impl`` supports of JAX's autodiff, as the docstrings state it."""

_CALL_DOC = """
    Args:
      params: torch's ``state_dict()`` keys to arrays: ``weight_ih_l{{k}}``, ``weight_hh_l{{k}}``,
        ``bias_ih_l{{k}}``, ``bias_hh_l{{k}}`` (when the layer has biases), with ``_reverse`` for the
        backward direction of a bidirectional layer.
      x: (time, batch, input_size), or (batch, time, input_size) with ``batch_first``, or
        unbatched (time, input_size); or a ``jaxrnn.utils.rnn.PackedSequence``, and then output
        is one too (time-major inside, as torch ignores batch_first for packed input).
      {hx}
      batch_first: x and output are (batch, time, ·).
{lengths}
      dropout: the probability of zeroing each output of every layer but the last, applied (as
        torch does in training mode) only when ``dropout_key`` is given.
      dropout_key: a ``jax.random`` key for the dropout masks, or None (torch's eval mode); layer
        k's mask is drawn from ``jax.random.fold_in(dropout_key, k)``.
      impl: ``'fused'`` (the default): the engine, a time loop with a hand-written backward pass,
        run by the native CPU kernel (``jaxrnn.native``) for a float32 LSTM on the CPU where it
        was built and pays, else as an XLA loop; ``'xla'`` or ``'native'``: the engine on that
        loop alone (``'native'`` raises a ValueError where the kernel cannot run); ``'scan'``:
        the reference, ``jax.lax.scan`` over the same step with autodiff. All compute the same
        values; ``time_loop`` says which loop a call runs. {autodiff}
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
    hx: Array | None = None,
    *,
    h0: Array | None = None,
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
    hx, hx_name = _checks.initial_state(hx, h0, "rnn")
    return _run(spec, "rnn", hx_name, params, x, hx, impl=impl, precision=precision, unroll=unroll,
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
    hx: Array | None = None,
    *,
    h0: Array | None = None,
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
    hx, hx_name = _checks.initial_state(hx, h0, "gru")
    return _run(GRU, "gru", hx_name, params, x, hx, impl=impl, precision=precision, unroll=unroll,
                batch_first=batch_first, seq_lengths=seq_lengths, dropout=dropout, dropout_key=dropout_key,
                dtype=dtype)


def time_loop(mode: str, x: Any, hidden_size: int, *, impl: str = "fused", batch_first: bool = False,
              proj_size: int = 0, dtype: Any = None) -> str:
    """The time loop a layer of ``mode`` (``'rnn_tanh'``, ``'rnn_relu'``, ``'lstm'``, ``'gru'``)
    runs on ``x`` (an array or anything with its ``shape`` and ``dtype``, laid out as the call's
    ``batch_first`` says): ``'native'`` (the C++ kernel, ``jaxrnn.native``), ``'xla'`` (the
    engine's XLA loop) or ``'scan'`` (the reference). ``dtype``: the call's, None for x's.

    >>> import jax.numpy as jnp
    >>> time_loop("gru", jnp.zeros((15, 64, 8)), 256), time_loop("lstm", jnp.zeros((15, 64, 8)), 256, impl="scan")
    ('xla', 'scan')
    >>> time_loop("lstm", jnp.zeros((15, 64, 8), jnp.float64), 256)  # the kernel runs float32 only
    'xla'
    """
    _checks.one_of("mode", mode, tuple(SPECS), "time_loop")
    _checks.one_of("impl", impl, _layers.IMPLS, "time_loop")
    _checks.positive_int("hidden_size", hidden_size, "time_loop")
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) not in (2, 3):
        raise ValueError(f"time_loop: x must be (time, batch, input_size), (batch, time, input_size) or unbatched "
                         f"(time, input_size), got shape {shape}")
    batch = 1 if len(shape) == 2 else shape[0 if batch_first else 1]
    spec = SPECS[mode]
    w = {"weight_hh": jax.ShapeDtypeStruct((spec.gates * hidden_size, proj_size or hidden_size), jnp.float32)}
    if proj_size:
        w["weight_hr"] = jax.ShapeDtypeStruct((proj_size, hidden_size), jnp.float32)
    compute = jax.dtypes.canonicalize_dtype(x.dtype if dtype is None else dtype)
    return _layers.time_loop(impl, spec, w, compute, batch)


_ARGS = {"lengths": SEQ_LENGTHS_DOC, "autodiff": AUTODIFF_DOC.replace("\n    ", "\n        ")}
_H0 = """hx: torch's initial state (``h0`` is accepted as a keyword alias): (num_layers * D,
        batch, hidden_size), or (num_layers * D, hidden_size) unbatched; zeros when None."""
_RET = """h_n: (num_layers * D, batch, hidden_size), or (num_layers * D, hidden_size) unbatched;
        row ``k * D + d`` is layer k, direction d (0 forward, 1 backward)."""
rnn.__doc__ = (rnn.__doc__ or "") + _CALL_DOC.format(hx=_H0, out="hidden_size", ret=_RET, **_ARGS).replace(
    "      dtype:", "      nonlinearity: ``'tanh'`` or ``'relu'``.\n      dtype:"
)
gru.__doc__ = (gru.__doc__ or "") + _CALL_DOC.format(hx=_H0, out="hidden_size", ret=_RET, **_ARGS)
lstm.__doc__ = (lstm.__doc__ or "") + _CALL_DOC.format(
    **_ARGS,
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
    params = {k: _checks.array(f"params[{k!r}]", v, owner) for k, v in params.items()}
    if isinstance(x, PackedSequence):
        raise TypeError(f"{owner}: a cell takes one step, x of shape (batch, input_size) or (input_size,), not a "
                        "PackedSequence; run a sequence through a layer (rnn, lstm, gru)")
    x = _checks.floating_array("x", x, owner)
    if x.ndim not in (1, 2):
        raise ValueError(f"{owner}: expected x to be 1D (unbatched) or 2D (batch, input_size), got {x.ndim}D")
    if x.shape[-1] != input_size:
        raise ValueError(f"{owner}: `input_size` is {input_size} but x has {x.shape[-1]} features (x.shape={x.shape})")
    lead = x.shape[:-1]
    if hx is not None:
        hx = _checks.carry(hx, spec.carry_shapes(lead, hidden_size, proj_size or hidden_size), hx_name, owner)
    dtype = jax.dtypes.canonicalize_dtype(jnp.result_type(x, *params.values()) if dtype is None else dtype)
    w = {k: jnp.asarray(v, dtype) for k, v in params.items()}
    x = jnp.asarray(x, dtype)
    hx = spec.zero_carry(lead, hidden_size, proj_size or hidden_size, dtype) if hx is None else jax.tree.map(
        lambda a: jnp.asarray(a, dtype), hx)
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
