"""Weight files PyTorch loads: the safetensors format, through the ``safetensors`` package
(the optional extra ``jaxrnn[safetensors]``).

``save_safetensors`` writes torch's keys and shapes (``to_torch``) with
``safetensors.numpy.save_file``, so ``model.load_state_dict(safetensors.torch.load_file(path))``
loads it; ``load_safetensors`` reads any such file (``safetensors.numpy.load_file``) back into
Flax variables (``from_torch``). bfloat16 is stored as safetensors' BF16, which torch reads as
``torch.bfloat16``. Neither function touches torch. A file of float8 tensors, which safetensors'
numpy loader cannot read, loads through torch: ``from_torch(safetensors.torch.load_file(path), module)``.
``save_torch`` / ``load_torch`` are their former, deprecated names.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from ._torch import KeyMap, _Caller, _check_module, _check_renames, _from_torch, to_torch

__all__ = ["load_safetensors", "load_torch", "require_safetensors", "save_safetensors", "save_torch"]

_DTYPES = frozenset(np.dtype(d) for d in (np.float64, np.float32, np.float16, jnp.bfloat16, np.int64,
                                           np.int32, np.int16, np.int8, np.uint8, np.bool_))
"""The dtypes both safetensors and torch's ``load_state_dict`` take."""


def require_safetensors():
    """The ``safetensors`` module (with ``safetensors.numpy``), or an ImportError that says what to install."""
    try:
        import safetensors
        import safetensors.numpy  # noqa: F401
    except ImportError as err:
        raise ImportError(f"safetensors files need the safetensors package: pip install 'jaxrnn[safetensors]' "
                          f"({err})") from err
    return safetensors


def save_safetensors(
    variables: Mapping[str, Any], path: str | os.PathLike, metadata: Mapping[str, str] | None = None
) -> None:
    """Write ``variables`` (or params) to ``path`` as a safetensors file with torch's keys and shapes.

    The file is written to a temporary name, flushed to disk and renamed, so an interrupted save
    never leaves a half-written file under ``path``. ``metadata`` (str to str) goes into the header.

    >>> import jax, tempfile, os
    >>> from jaxrnn import RNN
    >>> from jaxrnn.interop import load_safetensors, save_safetensors
    >>> rnn = RNN(3, 4)
    >>> variables = rnn.init(jax.random.key(0), jax.numpy.zeros((2, 1, 3)))
    >>> path = os.path.join(tempfile.mkdtemp(), "rnn.safetensors")
    >>> save_safetensors(variables, path, metadata={"model": "RNN(3, 4)"})
    >>> sorted(load_safetensors(path, rnn)["params"]["l0"])
    ['bias_hh', 'bias_ih', 'weight_hh', 'weight_ih']
    """
    safetensors = require_safetensors()
    if metadata is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError("save_safetensors: `metadata` must map str to str")
    tensors = {}
    for key, value in to_torch(variables).items():
        if value.dtype not in _DTYPES:
            raise TypeError(f"save_safetensors: {key!r} has dtype {value.dtype}, which safetensors and torch cannot "
                            f"both store; cast it to one of {sorted(d.name for d in _DTYPES)}")
        tensors[key] = np.ascontiguousarray(value)  # safetensors writes the raw buffer, whatever the strides
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        safetensors.numpy.save_file(tensors, tmp, metadata=None if metadata is None else dict(metadata))
        with open(tmp, "r+b") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_safetensors(
    path: str | os.PathLike,
    module: nn.Module | Mapping | None = None,
    *example_args: Any,
    strip_prefix: str | None = None,
    key_map: KeyMap | None = None,
) -> dict:
    """Read a safetensors file with torch's keys (``save_safetensors``'s, or
    ``safetensors.torch.save_file`` of a torch model's ``state_dict()``) into Flax ``variables``.

    ``module``, ``example_args``, ``strip_prefix`` and ``key_map`` are :func:`from_torch`'s: with
    ``module`` (and, for a Flax module that is not a jaxrnn layer, its example inputs, as in
    ``load_safetensors(path, my_model, x)``), keys and shapes are checked against it. bfloat16 comes
    back as bfloat16. (The file's metadata: ``safetensors.safe_open(path, "np").metadata()``.)
    """
    return _load(path, module, example_args, strip_prefix, key_map, "load_safetensors")


def _load(path: Any, module: Any, example_args: tuple, strip_prefix: Any, key_map: Any, name: str) -> dict:
    caller = _Caller(name, str(path), "the file", f"{name}(path, module, x)")
    _check_module(module, caller)
    _check_renames(strip_prefix, key_map, caller)
    safetensors = require_safetensors()
    path = Path(path)
    size = path.stat().st_size
    if size < 8:
        raise ValueError(f"{name}: {path} is not a safetensors file (only {size} bytes)")
    try:
        tensors = safetensors.numpy.load_file(path)
    except safetensors.SafetensorError as err:
        raise ValueError(f"{name}: {path} cannot be read: it is truncated or has inconsistent offsets, or "
                         f"is not a safetensors file ({err})") from None
    except AttributeError:  # safetensors' numpy loader asks numpy for float8 dtypes numpy does not have
        with safetensors.safe_open(path, "np") as f:
            dtypes = {key: f.get_slice(key).get_dtype() for key in f.keys()}
        odd = {key: dtype for key, dtype in dtypes.items() if dtype not in _NUMPY_READABLE}
        if not odd:
            raise
        raise TypeError(f"{name}: {path} stores {odd}, which safetensors' numpy loader cannot read; read it with "
                        f"torch and pass the tensors on: from_torch(safetensors.torch.load_file(path), module) "
                        f"keeps float8 exactly") from None
    return _from_torch(tensors, module, example_args, strip_prefix, key_map, caller)


_NUMPY_READABLE = frozenset({"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL"})
"""The safetensors dtypes ``safetensors.numpy.load_file`` reads."""


def save_torch(
    variables: Mapping[str, Any], path: str | os.PathLike, metadata: Mapping[str, str] | None = None
) -> None:
    """Deprecated: the former name of :func:`save_safetensors` (same arguments)."""
    warnings.warn("jaxrnn.save_torch is deprecated: use jaxrnn.save_safetensors (same arguments)",
                  DeprecationWarning, stacklevel=2)
    save_safetensors(variables, path, metadata)


def load_torch(
    path: str | os.PathLike,
    module: nn.Module | Mapping | None = None,
    *example_args: Any,
    strip_prefix: str | None = None,
    key_map: KeyMap | None = None,
) -> dict:
    """Deprecated: the former name of :func:`load_safetensors` (same arguments)."""
    warnings.warn("jaxrnn.load_torch is deprecated: use jaxrnn.load_safetensors (same arguments)",
                  DeprecationWarning, stacklevel=2)
    return _load(path, module, example_args, strip_prefix, key_map, "load_torch")
