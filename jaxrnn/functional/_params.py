"""torch's parameter keys, shapes and init, and the configuration a params dict implies.

A layer's parameters are a flat dict keyed exactly as torch's ``state_dict()`` of the bare
module: ``weight_ih_l{k}`` (G·H, I for k = 0, else D·P), ``weight_hh_l{k}`` (G·H, P),
``bias_ih_l{k}`` and ``bias_hh_l{k}`` (G·H,) when ``bias``, ``weight_hr_l{k}`` (P, H) for a
projected LSTM, each with ``_reverse`` for the backward direction (G gates, H hidden_size,
P = proj_size or H, D directions). A cell's keys are the same without the suffix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from . import _checks
from ._specs import SPECS, CellSpec

Array = jax.Array

_ORDER = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


def torch_uniform(bound: float):
    """PyTorch's recurrent init: every entry drawn from U(-bound, bound)."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def suffix(layer: int, direction: int) -> str:
    """torch's name of layer k, direction d: ``l{k}``, ``l{k}_reverse``."""
    return f"l{layer}{'_reverse' if direction else ''}"


def cell_shapes(spec: CellSpec, input_size: int, hidden_size: int, *, bias: bool = True, proj_size: int = 0) -> dict:
    """One cell's (one layer and direction's) parameter shapes under their bare torch names, in torch's order."""
    rows = spec.gates * hidden_size
    shapes: dict[str, tuple[int, ...]] = {"weight_ih": (rows, input_size)}
    shapes["weight_hh"] = (rows, proj_size or hidden_size)
    if bias:
        shapes |= {"bias_ih": (rows,), "bias_hh": (rows,)}
    if proj_size:
        shapes["weight_hr"] = (proj_size, hidden_size)
    return shapes


def param_shapes(
    spec: CellSpec,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    *,
    bias: bool = True,
    bidirectional: bool = False,
    proj_size: int = 0,
) -> dict[str, tuple[int, ...]]:
    """Every parameter's torch key and shape, in ``state_dict()`` order."""
    directions = 2 if bidirectional else 1
    shapes = {}
    for layer in range(num_layers):
        layer_input = input_size if layer == 0 else directions * (proj_size or hidden_size)
        for direction in range(directions):
            for name, shape in cell_shapes(spec, layer_input, hidden_size, bias=bias, proj_size=proj_size).items():
                shapes[f"{name}_{suffix(layer, direction)}"] = shape
    return shapes


class Layout(NamedTuple):
    """The configuration a params dict implies (``num_layers``, ``bidirectional``, ``bias`` and
    ``proj_size`` read from its keys and shapes)."""

    spec: CellSpec
    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    bias: bool
    proj_size: int

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def state_size(self) -> int:
        """h's size: proj_size for a projected LSTM, else hidden_size."""
        return self.proj_size or self.hidden_size

    def direction(self, params: Mapping[str, Array], layer: int, direction: int) -> dict[str, Array]:
        """Layer k, direction d's parameters under their bare names (``weight_ih``, ...)."""
        end = "_" + suffix(layer, direction)
        return {name: params[name + end] for name in _ORDER if name + end in params}


def _check_mapping(params: Any, owner: str) -> None:
    if not isinstance(params, Mapping):
        raise TypeError(f"{owner}: `params` must be a dict of torch's keys to arrays, got {type(params).__name__}")
    for key, value in params.items():
        if not isinstance(key, str):
            raise TypeError(f"{owner}: `params` keys must be str (torch's names), got {key!r}")
        _checks.floating_array(f"params[{key!r}]", value, owner)


def _check_keys(params: Mapping[str, Array], expected: Mapping[str, tuple[int, ...]], owner: str, what: str) -> None:
    unknown = [k for k in params if k not in expected]
    missing = [k for k in expected if k not in params]
    if unknown:
        raise ValueError(f"{owner}: unexpected key(s) in `params` for {what}: {unknown}")
    if missing:
        raise ValueError(f"{owner}: missing key(s) in `params` for {what}: {missing}")
    for key, shape in expected.items():
        if tuple(params[key].shape) != shape:
            got = tuple(params[key].shape)
            raise ValueError(f"{owner}: params[{key!r}] has shape {got}, expected {shape} for {what}")


def _sizes(params: Mapping[str, Array], key: str, spec: CellSpec, owner: str) -> tuple[int, int]:
    """(input_size, hidden_size) from ``params[key]``, the first layer's W_ih (G·H, I)."""
    if key not in params:
        raise ValueError(f"{owner}: `params` has no {key!r}: expected torch's state_dict keys ({', '.join(params)})")
    shape = tuple(params[key].shape)
    if len(shape) != 2 or shape[0] % spec.gates or shape[0] == 0 or shape[1] == 0:
        raise ValueError(
            f"{owner}: params[{key!r}] must have shape ({spec.gates} * hidden_size, input_size), got {shape}"
        )
    return shape[1], shape[0] // spec.gates


def layout(params: Mapping[str, Array], spec: CellSpec, owner: str) -> Layout:
    """Read a layer's configuration from its torch keys and shapes, and check that the dict is exactly
    that configuration's ``state_dict()``: a ValueError names any unexpected, missing or misshapen key."""
    _check_mapping(params, owner)
    input_size, hidden_size = _sizes(params, "weight_ih_l0", spec, owner)
    num_layers = 1
    while f"weight_ih_l{num_layers}" in params:
        num_layers += 1
    proj_size = 0
    if spec.mode == "lstm" and "weight_hr_l0" in params:
        proj_size = int(params["weight_hr_l0"].shape[0])
    found = Layout(spec, input_size, hidden_size, num_layers, "weight_ih_l0_reverse" in params,
                   "bias_ih_l0" in params, proj_size)
    what = (
        f"{spec.mode} with input_size={input_size}, hidden_size={hidden_size}, num_layers={num_layers}, "
        f"bias={found.bias}, bidirectional={found.bidirectional}" + (f", proj_size={proj_size}" if proj_size else "")
    )
    shapes = param_shapes(spec, input_size, hidden_size, num_layers, bias=found.bias,
                          bidirectional=found.bidirectional, proj_size=proj_size)
    _check_keys(params, shapes, owner, what)
    return found


def cell_layout(params: Mapping[str, Array], spec: CellSpec, owner: str) -> tuple[int, int, int]:
    """(input_size, hidden_size, proj_size) of a cell's params (torch's ``RNNCell``/``LSTMCell``/``GRUCell``
    keys, and an LSTM's ``weight_hr`` (P, H) for a projected one), checked."""
    _check_mapping(params, owner)
    input_size, hidden_size = _sizes(params, "weight_ih", spec, owner)
    bias = "bias_ih" in params
    proj_size = int(params["weight_hr"].shape[0]) if (spec.mode == "lstm" and "weight_hr" in params) else 0
    what = f"a {spec.mode} cell with input_size={input_size}, hidden_size={hidden_size}, bias={bias}"
    what += f", proj_size={proj_size}" if proj_size else ""
    _check_keys(params, cell_shapes(spec, input_size, hidden_size, bias=bias, proj_size=proj_size), owner, what)
    return input_size, hidden_size, proj_size


_MODES = ("rnn", "rnn_tanh", "rnn_relu", "lstm", "gru")


def init_params(
    key: Array,
    mode: str,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    *,
    bias: bool = True,
    bidirectional: bool = False,
    proj_size: int = 0,
    dtype: Any = jnp.float32,
) -> dict[str, Array]:
    """A fresh params dict with torch's keys, shapes and init: every entry from U(-1/sqrt(H), 1/sqrt(H)).

    Args:
      key: a ``jax.random`` key.
      mode: ``'rnn_tanh'``, ``'rnn_relu'`` (or ``'rnn'``: the two have the same parameters),
        ``'lstm'`` or ``'gru'``.
      input_size, hidden_size, num_layers, bias, bidirectional, proj_size: torch's constructor
        arguments (``proj_size`` only for the LSTM).
      dtype: the parameters' dtype.

    Returns:
      ``{torch key: array}`` in ``state_dict()`` order, e.g. ``weight_ih_l0`` (G·H, I).

    >>> import jax
    >>> from jaxrnn.functional import init_params
    >>> params = init_params(jax.random.key(0), "gru", 10, 20, num_layers=2)
    >>> {k: v.shape for k, v in params.items() if k.endswith("l1")}
    {'weight_ih_l1': (60, 20), 'weight_hh_l1': (60, 20), 'bias_ih_l1': (60,), 'bias_hh_l1': (60,)}
    """
    owner = "init_params"
    _checks.one_of("mode", mode, _MODES, owner)
    _checks.positive_int("input_size", input_size, owner)
    _checks.positive_int("hidden_size", hidden_size, owner)
    _checks.positive_int("num_layers", num_layers, owner)
    if proj_size and mode != "lstm":
        raise ValueError(f"{owner}: `proj_size` is only for mode 'lstm', got proj_size={proj_size} with mode {mode!r}")
    _checks.proj_size(proj_size, hidden_size, owner)
    spec = SPECS["rnn_tanh" if mode == "rnn" else mode]
    shapes = param_shapes(spec, input_size, hidden_size, num_layers, bias=bool(bias),
                          bidirectional=bool(bidirectional), proj_size=proj_size)
    init = torch_uniform(1.0 / math.sqrt(hidden_size))
    keys = jax.random.split(key, len(shapes))
    return {name: init(k, shape, dtype) for k, (name, shape) in zip(keys, shapes.items())}
