"""PyTorch state dicts <-> Flax variables: a rename, never a transformation of the numbers.

torch's keys map to Flax paths by splitting on dots, except recurrent parameters, whose layer
and direction move into a module name: ``rnn.weight_ih_l1_reverse`` is
``params['rnn']['l1_reverse']['weight_ih']``. Shapes and layouts are torch's on both sides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from flax import traverse_util

_TORCH_RECURRENT = re.compile(r"^(weight|bias)_(ih|hh|hr)_(l\d+(?:_reverse)?)$")
_FLAX_LAYER = re.compile(r"^l\d+(?:_reverse)?$")
_FLAX_RECURRENT = re.compile(r"^(weight|bias)_(ih|hh|hr)$")


def _to_path(key: str) -> tuple[str, ...]:
    *parents, name = key.split(".")
    match = _TORCH_RECURRENT.match(name)
    if match:
        return (*parents, match[3], f"{match[1]}_{match[2]}")
    return (*parents, name)


def _to_key(path: tuple[str, ...]) -> str:
    if _is_recurrent(path):
        return ".".join((*path[:-2], f"{path[-1]}_{path[-2]}"))
    return ".".join(path)


def _to_numpy(value: Any, key: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, read without importing torch
        value = value.detach().cpu().numpy()
    if not hasattr(value, "shape"):
        raise TypeError(f"from_torch: state_dict[{key!r}] must be an array or tensor, got {type(value).__name__}")
    return np.asarray(value)


def _expected_shapes(like: Any, example_args: tuple) -> dict[tuple[str, ...], tuple[int, ...]]:
    """The parameter shapes of a module (initialised abstractly) or of a variables/params tree."""
    if isinstance(like, nn.Module):
        if not example_args:
            if not hasattr(type(like), "_example_input"):
                raise TypeError(
                    f"from_torch: give an example input for {type(like).__name__}, as in "
                    "from_torch(state_dict, module, x), or pass its variables instead of the module"
                )
            example_args = (like._example_input(),)
        like = jax.eval_shape(like.init, jax.random.key(0), *example_args)
    if not isinstance(like, Mapping):
        raise TypeError(f"from_torch: `module` must be a Flax module or a variables tree, got {type(like).__name__}")
    params = like["params"] if "params" in like else like
    return {path: tuple(leaf.shape) for path, leaf in traverse_util.flatten_dict(dict(params)).items()}


def from_torch(state_dict: Mapping[str, Any], module: nn.Module | Mapping | None = None, *example_args) -> dict:
    """Turn a PyTorch ``state_dict`` into the ``variables`` of the matching jaxrnn module.

    Args:
      state_dict: torch's ``model.state_dict()``: str keys to torch tensors or numpy arrays
        (torch is never imported; numpy arrays need no torch installed).
      module: what the weights are for: a jaxrnn module, any Flax module followed by an example
        input (``from_torch(sd, my_model, x)``), or a variables tree (``my_model.init(...)`` or its
        ``jax.eval_shape``). When given, every key must exist there with torch's shape: unknown
        keys, missing keys and wrong shapes raise errors naming the key.

    Returns:
      ``{'params': nested dict of jax arrays}``, ready for ``module.apply``. The values keep
      their dtype (float64 stays float64 where ``jax_enable_x64`` is on).

    >>> import numpy as np
    >>> from jaxrnn import RNN, from_torch
    >>> sd = {"weight_ih_l0": np.zeros((4, 3)), "weight_hh_l0": np.zeros((4, 4)),
    ...       "bias_ih_l0": np.zeros(4), "bias_hh_l0": np.zeros(4)}
    >>> variables = from_torch(sd, RNN(3, 4))
    >>> sorted(variables["params"]["l0"])
    ['bias_hh', 'bias_ih', 'weight_hh', 'weight_ih']
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"from_torch: `state_dict` must be a mapping of str to arrays, got {type(state_dict).__name__}")
    flat = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"from_torch: state_dict keys must be str, got {key!r}")
        flat[_to_path(key)] = _to_numpy(value, key)
    if module is not None:
        expected = _expected_shapes(module, example_args)
        name = type(module).__name__ if isinstance(module, nn.Module) else "the given variables"
        unknown = sorted(_to_key(p) for p in flat.keys() - expected.keys())
        missing = sorted(_to_key(p) for p in expected.keys() - flat.keys())
        if unknown:
            raise ValueError(f"from_torch: unexpected key(s) for {name}: {unknown}")
        if missing:
            raise ValueError(f"from_torch: missing key(s) for {name}: {missing}")
        for path, shape in expected.items():
            if flat[path].shape != shape:
                raise ValueError(
                    f"from_torch: {_to_key(path)!r} has shape {flat[path].shape}, but {name} expects {shape}"
                )
    params = traverse_util.unflatten_dict({p: jax.numpy.asarray(v) for p, v in flat.items()})
    return {"params": params}


def to_torch(tree: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Turn jaxrnn ``variables`` (or their ``params``, or a gradient tree of the same structure)
    into a dict of numpy arrays with torch's keys and shapes.

    ``model.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch(variables).items()})``
    loads it into the matching torch module; on a gradient tree, each entry compares with
    torch's ``.grad`` of the parameter of that name.

    >>> import jax
    >>> from jaxrnn import RNN, to_torch
    >>> rnn = RNN(3, 4, bidirectional=True)
    >>> variables = rnn.init(jax.random.key(0), jax.random.normal(jax.random.key(1), (5, 2, 3)))
    >>> {k: v.shape for k, v in to_torch(variables).items() if k.startswith("weight")}
    {'weight_ih_l0': (4, 3), 'weight_hh_l0': (4, 4), 'weight_ih_l0_reverse': (4, 3), 'weight_hh_l0_reverse': (4, 4)}
    """
    if not isinstance(tree, Mapping):
        raise TypeError(f"to_torch: `tree` must be a mapping (Flax variables or params), got {type(tree).__name__}")
    params = tree["params"] if "params" in tree else tree
    flat = traverse_util.flatten_dict(dict(params))
    return {_to_key(path): np.array(value) for path, value in sorted(flat.items(), key=_torch_order(flat))}


_RECURRENT_ORDER = {"weight_ih": 0, "weight_hh": 1, "bias_ih": 2, "bias_hh": 3, "weight_hr": 4}


def _torch_order(flat: Mapping[tuple[str, ...], Any]):
    """Sort key listing each recurrent module's parameters in torch's order (l0: weight_ih, weight_hh,
    bias_ih, bias_hh, then l0_reverse, l1, ...); other entries keep the tree's order."""
    parents: dict[tuple[str, ...], int] = {}
    for path in flat:
        parents.setdefault(path[:-2] if _is_recurrent(path) else path[:-1], len(parents))

    def key(item):
        path = item[0]
        if _is_recurrent(path):
            layer = path[-2]
            return (
                parents[path[:-2]],
                int(layer[1:].split("_")[0]),
                layer.endswith("_reverse"),
                _RECURRENT_ORDER[path[-1]],
            )
        return (parents[path[:-1]], 0, False, 0)

    return key


def _is_recurrent(path: tuple[str, ...]) -> bool:
    return len(path) >= 2 and bool(_FLAX_LAYER.match(path[-2])) and bool(_FLAX_RECURRENT.match(path[-1]))
