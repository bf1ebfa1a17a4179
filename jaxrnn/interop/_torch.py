"""PyTorch state dicts <-> Flax variables: a rename, never a transformation of the numbers.

torch's keys map to Flax paths by splitting on dots, except recurrent parameters, whose layer
and direction move into a module name: ``rnn.weight_ih_l1_reverse`` is
``params['rnn']['l1_reverse']['weight_ih']``. Shapes and layouts are torch's on both sides.
Keys that do not fit a module are reported together (missing, unexpected, wrong shape), as torch's
``load_state_dict`` does; ``strip_prefix`` and ``key_map`` rename keys before that check, and
``to_torch(..., prefix=...)`` adds a prefix back.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import ml_dtypes
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


_NARROW_FLOATS = ("bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu")
"""torch dtypes that numpy cannot take but ml_dtypes (which jax uses) holds under the same name."""


class _Caller(NamedTuple):
    """Who the user called, for the messages: the function, where the weights came from (in full, and in
    short), how to pass an example input."""

    name: str = "from_torch"
    source: str = "state_dict"
    holder: str = "state_dict"
    usage: str = "from_torch(state_dict, module, x)"


def _to_numpy(value: Any, key: str, caller: _Caller) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, read without importing torch
        dtype = str(getattr(value, "dtype", "?")).removeprefix("torch.")
        narrow = getattr(ml_dtypes, dtype, None) if dtype in _NARROW_FLOATS else None
        try:
            value = value.detach().cpu()
            if narrow is None:
                value = value.numpy()
            else:  # exact: every bfloat16 and float8 number is a float32, and ml_dtypes has torch's formats
                with np.errstate(invalid="ignore"):  # a NaN weight stays NaN, without a warning
                    value = value.float().numpy().astype(narrow)
        except (TypeError, RuntimeError) as err:  # a dtype numpy has no type for; a meta or sparse tensor
            raise TypeError(
                f"{caller.name}: {caller.source}[{key!r}], a torch.{dtype} tensor, does not convert to numpy ({err}); "
                f"make it a dense tensor of a dtype numpy holds first, e.g. {caller.source}[{key!r}].float()"
            ) from None
    if not hasattr(value, "shape"):
        raise TypeError(
            f"{caller.name}: {caller.source}[{key!r}] must be an array or tensor, got {type(value).__name__}"
        )
    return np.asarray(value)


def _check_module(module: Any, caller: _Caller) -> None:
    if module is not None and not isinstance(module, (nn.Module, Mapping)):
        raise TypeError(
            f"{caller.name}: `module` must be a Flax module or a variables tree, got {type(module).__name__}"
        )


def _expected_shapes(like: Any, example_args: tuple, caller: _Caller) -> dict[tuple[str, ...], tuple[int, ...]]:
    """The parameter shapes of a module (initialised abstractly) or of a variables/params tree."""
    if isinstance(like, nn.Module):
        if not example_args:
            if not hasattr(type(like), "_example_input"):
                raise TypeError(
                    f"{caller.name}: give an example input for {type(like).__name__}, as in {caller.usage}, "
                    "or pass its variables instead of the module"
                )
            example_args = (like._example_input(),)
        like = jax.eval_shape(like.init, jax.random.key(0), *example_args)
    params = like["params"] if "params" in like else like
    return {path: tuple(leaf.shape) for path, leaf in traverse_util.flatten_dict(dict(params)).items()}


KeyMap = Mapping[str, str] | Callable[[str], str | None]
"""``key_map``: prefix renames, or a function from a key to its new key (None: drop it)."""


def _check_renames(strip_prefix: Any, key_map: Any, caller: _Caller) -> None:
    if strip_prefix is not None and not isinstance(strip_prefix, str):
        raise TypeError(f"{caller.name}: `strip_prefix` must be a str such as 'module.', got {strip_prefix!r}")
    if isinstance(key_map, Mapping):
        for old, new in key_map.items():
            if not (isinstance(old, str) and isinstance(new, str)):
                raise TypeError(f"{caller.name}: `key_map` must map str to str, got {old!r}: {new!r}")
    elif key_map is not None and not callable(key_map):
        raise TypeError(
            f"{caller.name}: `key_map` must be a mapping of prefixes or a function of a key, "
            f"got {type(key_map).__name__}"
        )


def _renamer(strip_prefix: str | None, key_map: KeyMap | None, caller: _Caller) -> Callable[[str], str | None]:
    """The key each state-dict key becomes (None: dropped): ``strip_prefix`` first, then ``key_map``."""
    prefixes, function = None, None
    if isinstance(key_map, Mapping):
        prefixes = {old.removesuffix("."): new.removesuffix(".") for old, new in key_map.items()}
    else:
        function = key_map

    def rename(key: str) -> str | None:
        if strip_prefix and key.startswith(strip_prefix):
            key = key[len(strip_prefix):]
        if prefixes is not None:
            parts = key.split(".")
            for i in range(len(parts), -1, -1):  # the longest prefix of whole segments that key_map names
                head = ".".join(parts[:i])
                if head in prefixes:
                    return ".".join(([prefixes[head]] if prefixes[head] else []) + parts[i:])
            return key
        if function is not None:
            new = function(key)
            if new is not None and not isinstance(new, str):
                raise TypeError(f"{caller.name}: `key_map` must return a str or None, got {new!r} for {key!r}")
            return new
        return key

    return rename


def _prefix_renames(unexpected: list[str], missing: list[str]) -> dict[str, str]:
    """Renames of leading key segments (``''``: none) that turn unexpected keys into missing ones,
    the one that explains the most keys first: the hint for a submodule named differently."""
    heads: dict[str, set[str]] = {}  # the tail of a missing key -> the heads in front of it
    for key in missing:
        parts = key.split(".")
        for i in range(len(parts)):
            heads.setdefault(".".join(parts[i:]), set()).add(".".join(parts[:i]))
    votes: Counter[tuple[str, str]] = Counter()
    for key in unexpected:
        parts = key.split(".")
        for i in range(len(parts)):  # the longest tail this key shares with a missing key
            tail = ".".join(parts[i:])
            if tail in heads:
                votes.update((".".join(parts[:i]), new) for new in heads[tail])
                break
    renames: dict[str, str] = {}
    for (old, new), _ in sorted(votes.items(), key=lambda item: (-item[1], item[0])):
        if old not in renames and new not in renames.values():
            renames[old] = new
    return renames


def _hint(unexpected: list[str], missing: list[str], name: str, holder: str) -> str | None:
    renames = _prefix_renames(unexpected, missing)
    if not renames:
        return None
    differ = "; ".join(
        f"{holder} has {repr(old + '.') if old else 'none'}, "
        f"{name} expects {repr(new + '.') if new else 'none'}"
        for old, new in renames.items()
    )
    fix = f"strip_prefix={next(iter(renames)) + '.'!r}" if list(renames.values()) == [""] else f"key_map={renames!r}"
    return f"hint: the keys differ by a prefix: {differ}; pass {fix}"


def _listed(keys: list[str], limit: int = 10) -> str:
    return repr(keys) if len(keys) <= limit else f"{keys[:limit]!r} and {len(keys) - limit} more"


def check_fit(shapes: Mapping[str, tuple], expected: Mapping[str, tuple], name: str, caller: _Caller,
              renamed: bool) -> None:
    """One ValueError listing the missing keys, the unexpected keys and the wrong shapes of a state
    dict's ``shapes`` against the ``expected`` ones (both by torch key), with a hint for a prefix."""
    missing = sorted(expected.keys() - shapes.keys())
    unexpected = sorted(shapes.keys() - expected.keys())
    problems = [f"missing key(s): {_listed(missing)}"] if missing else []
    problems += [f"unexpected key(s): {_listed(unexpected)}"] if unexpected else []
    problems += [
        f"{key!r} has shape {tuple(shapes[key])}, but {name} expects {tuple(shape)}"
        for key, shape in expected.items()
        if key in shapes and tuple(shapes[key]) != tuple(shape)
    ]
    if problems:
        hint = _hint(unexpected, missing, name, caller.holder)
        after = " (keys after strip_prefix / key_map)" if renamed else ""
        raise ValueError("\n  ".join([f"{caller.name}: {caller.source} does not fit {name}{after}:", *problems]
                                      + ([hint] if hint else [])))


def renamed_arrays(state_dict: Any, strip_prefix: Any, key_map: Any, caller: _Caller) -> dict[str, np.ndarray]:
    """The state dict's entries as numpy arrays under their keys after ``strip_prefix`` and ``key_map``."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"{caller.name}: `state_dict` must be a mapping of str to arrays, got {type(state_dict).__name__}"
        )
    _check_renames(strip_prefix, key_map, caller)
    rename = _renamer(strip_prefix, key_map, caller)
    arrays: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}  # renamed key -> the state dict's key
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"{caller.name}: {caller.source} keys must be str, got {key!r}")
        new = rename(key)
        if new is None:
            continue
        if new in origin:
            raise ValueError(f"{caller.name}: {origin[new]!r} and {key!r} are both renamed to {new!r}")
        origin[new] = key
        arrays[new] = _to_numpy(value, key, caller)
    return arrays


def _from_torch(
    state_dict: Any,
    module: Any,
    example_args: tuple,
    strip_prefix: Any,
    key_map: Any,
    caller: _Caller,
) -> dict:
    _check_module(module, caller)
    flat = {_to_path(key): value for key, value in renamed_arrays(state_dict, strip_prefix, key_map, caller).items()}
    if module is not None:
        expected = {_to_key(p): shape for p, shape in _expected_shapes(module, example_args, caller).items()}
        name = type(module).__name__ if isinstance(module, nn.Module) else "the given variables"
        check_fit({_to_key(p): v.shape for p, v in flat.items()}, expected, name, caller,
                  renamed=bool(strip_prefix) or key_map is not None)
    params = traverse_util.unflatten_dict({p: jax.numpy.asarray(v) for p, v in flat.items()})
    return {"params": params}


def from_torch(
    state_dict: Mapping[str, Any],
    module: nn.Module | Mapping | None = None,
    *example_args: Any,
    strip_prefix: str | None = None,
    key_map: KeyMap | None = None,
) -> dict:
    """Turn a PyTorch ``state_dict`` into the ``variables`` of the matching jaxrnn module.

    Args:
      state_dict: torch's ``model.state_dict()``: str keys to torch tensors or numpy arrays
        (torch is never imported; numpy arrays need no torch installed). bfloat16 and float8
        tensors, which numpy cannot take, keep their dtype (as ``ml_dtypes``' types, which jax uses).
      module: what the weights are for: a jaxrnn module, any Flax module followed by example
        inputs (``from_torch(sd, my_model, x)``), or a variables tree (``my_model.init(...)`` or its
        ``jax.eval_shape``). When given, every key must exist there with torch's shape: one
        ``ValueError`` lists the missing keys, the unexpected keys and the wrong shapes together,
        as torch's ``load_state_dict`` does, with a hint when the keys differ by a prefix.
      *example_args: the inputs ``module.init`` takes after the rng, for a Flax module that is not
        a jaxrnn layer (jaxrnn's layers and models need none).
      strip_prefix: removed from the front of every key that starts with it, as torch's
        ``consume_prefix_in_state_dict_if_present`` does: ``strip_prefix='module.'`` reads the state
        dict of a ``DataParallel`` / ``DistributedDataParallel`` model.
      key_map: renames keys after ``strip_prefix``, before the check. A mapping renames leading
        segments of the dotted keys, the longest match first: ``{'rnn': 'encoder'}`` turns
        ``rnn.weight_ih_l0`` into ``encoder.weight_ih_l0`` (a trailing dot is ignored, ``''`` on the
        left prefixes every key, ``''`` on the right strips); a function of the key returns the
        new key, or None to drop the entry.

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
    >>> parallel = {"module." + k: v for k, v in sd.items()}  # DataParallel's keys
    >>> sorted(from_torch(parallel, RNN(3, 4), strip_prefix="module.")["params"]["l0"])
    ['bias_hh', 'bias_ih', 'weight_hh', 'weight_ih']
    >>> from_torch(parallel, RNN(3, 4))
    Traceback (most recent call last):
    ...
    ValueError: from_torch: state_dict does not fit RNN:
      missing key(s): ['bias_hh_l0', 'bias_ih_l0', 'weight_hh_l0', 'weight_ih_l0']
      unexpected key(s): ['module.bias_hh_l0', 'module.bias_ih_l0', 'module.weight_hh_l0', 'module.weight_ih_l0']
      hint: the keys differ by a prefix: state_dict has 'module.', RNN expects none; pass strip_prefix='module.'
    """
    return _from_torch(state_dict, module, example_args, strip_prefix, key_map, _Caller())


def to_torch(tree: Mapping[str, Any], *, prefix: str = "") -> dict[str, np.ndarray]:
    """Turn jaxrnn ``variables`` (or their ``params``, or a gradient tree of the same structure)
    into a dict of numpy arrays with torch's keys and shapes.

    ``model.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch(variables).items()})``
    loads it into the matching torch module; on a gradient tree, each entry compares with
    torch's ``.grad`` of the parameter of that name. ``prefix`` goes in front of every key, as in
    torch's ``state_dict(prefix=...)``: ``prefix='module.'`` gives a ``DataParallel`` model's keys.

    bfloat16 and float8 arrays come back as ``ml_dtypes`` arrays, which ``torch.from_numpy`` refuses;
    ``torch.from_numpy(v.view(np.uint16)).view(torch.bfloat16)`` (``np.uint8`` and
    ``torch.float8_e4m3fn`` etc. for float8) gives torch the same bits.

    >>> import jax
    >>> from jaxrnn import RNN, to_torch
    >>> rnn = RNN(3, 4, bidirectional=True)
    >>> variables = rnn.init(jax.random.key(0), jax.random.normal(jax.random.key(1), (5, 2, 3)))
    >>> {k: v.shape for k, v in to_torch(variables).items() if k.startswith("weight")}
    {'weight_ih_l0': (4, 3), 'weight_hh_l0': (4, 4), 'weight_ih_l0_reverse': (4, 3), 'weight_hh_l0_reverse': (4, 4)}
    >>> list(to_torch(variables, prefix="module."))[:2]
    ['module.weight_ih_l0', 'module.weight_hh_l0']
    """
    if not isinstance(tree, Mapping):
        raise TypeError(f"to_torch: `tree` must be a mapping (Flax variables or params), got {type(tree).__name__}")
    if not isinstance(prefix, str):
        raise TypeError(f"to_torch: `prefix` must be a str such as 'module.', got {prefix!r}")
    params = tree["params"] if "params" in tree else tree
    flat = traverse_util.flatten_dict(dict(params))
    return {prefix + _to_key(path): np.array(value) for path, value in sorted(flat.items(), key=_torch_order(flat))}


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
