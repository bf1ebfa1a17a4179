"""PyTorch state dicts <-> NNX modules: a rename-free copy, since every ``nnx.Param`` path of a
jaxrnn NNX model, joined with dots, is the torch key of the matching parameter
(``model.rnn.weight_ih_l0`` is ``rnn.weight_ih_l0``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from ..interop._torch import KeyMap, _Caller, _to_key, _to_path, _torch_order, check_fit, renamed_arrays


def _key(path: tuple) -> str:
    return ".".join(str(part) for part in path)


def _params(tree: Any, caller: str) -> nnx.State:
    """The ``nnx.Param`` part of a module or of a state."""
    if isinstance(tree, nnx.Module):
        return nnx.state(tree, nnx.Param)
    if isinstance(tree, nnx.State):
        return nnx.filter_state(tree, nnx.Param)
    raise TypeError(f"{caller}: expected an NNX module or an nnx.State, got {type(tree).__name__}")


def from_torch(state_dict: Mapping[str, Any], model: nnx.Module, *, strip_prefix: str | None = None,
               key_map: KeyMap | None = None) -> nnx.Module:
    """Load a PyTorch ``state_dict`` into an NNX ``model`` in place, and return the model.

    Args:
      state_dict: torch's ``model.state_dict()``: str keys to torch tensors or numpy arrays
        (torch is never imported). Each value keeps its dtype, as with ``jaxrnn.from_torch``
        (float64 weights make a float64 model where ``jax_enable_x64`` is on).
      model: a jaxrnn NNX module, or any NNX module whose ``nnx.Param`` paths are torch's keys.
        Every key must exist there with torch's shape: one ValueError lists the missing keys, the
        unexpected keys and the wrong shapes, with a hint when the keys differ by a prefix.
      strip_prefix, key_map: rename the keys first, as ``jaxrnn.from_torch`` does
        (``strip_prefix='module.'`` reads a DataParallel model's state dict).

    >>> import numpy as np
    >>> from flax import nnx
    >>> from jaxrnn.nnx import RNN, from_torch
    >>> rng = np.random.default_rng(0)
    >>> shapes = {"weight_ih_l0": (4, 3), "weight_hh_l0": (4, 4), "bias_ih_l0": (4,), "bias_hh_l0": (4,)}
    >>> sd = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
    >>> rnn = from_torch(sd, RNN(3, 4, rngs=nnx.Rngs(0)))
    >>> bool((np.asarray(rnn.weight_hh_l0[...]) == sd["weight_hh_l0"]).all())
    True
    """
    caller = _Caller("from_torch", usage="from_torch(state_dict, model)")
    if not isinstance(model, nnx.Module):
        raise TypeError(f"from_torch: `model` must be an NNX module, got {type(model).__name__}")
    arrays = renamed_arrays(state_dict, strip_prefix, key_map, caller)
    state = nnx.state(model, nnx.Param)
    expected = {_key(path): tuple(variable.shape) for path, variable in nnx.to_flat_state(state)}
    check_fit({k: v.shape for k, v in arrays.items()}, expected, type(model).__name__, caller,
              renamed=bool(strip_prefix) or key_map is not None)
    for path, variable in nnx.to_flat_state(state):
        variable.set_value(jnp.asarray(arrays[_key(path)]))  # a whole new array: its dtype, as jaxrnn.from_torch
    nnx.update(model, state)
    return model


def to_torch(tree: nnx.Module | nnx.State, *, prefix: str = "") -> dict[str, np.ndarray]:
    """The ``nnx.Param`` leaves of a module or a state as ``{torch key: numpy array}``.

    Only parameters (no rng or other state); a gradient ``nnx.State`` (what ``nnx.grad`` returns)
    gives keys that compare one for one with torch's ``.grad``. Recurrent parameters come in torch's
    order; ``prefix`` goes in front of every key (``'module.'`` for a DataParallel model's keys).

    >>> from flax import nnx
    >>> from jaxrnn.nnx import LSTM, to_torch
    >>> {k: v.shape for k, v in to_torch(LSTM(3, 4, bidirectional=True, rngs=nnx.Rngs(0))).items()
    ...  if k.startswith("weight")}
    {'weight_ih_l0': (16, 3), 'weight_hh_l0': (16, 4), 'weight_ih_l0_reverse': (16, 3), 'weight_hh_l0_reverse': (16, 4)}
    """
    if not isinstance(prefix, str):
        raise TypeError(f"to_torch: `prefix` must be a str such as 'module.', got {prefix!r}")
    flat = {_to_path(_key(path)): variable[...] for path, variable in nnx.to_flat_state(_params(tree, "to_torch"))}
    return {prefix + _to_key(path): np.array(value) for path, value in sorted(flat.items(), key=_torch_order(flat))}
