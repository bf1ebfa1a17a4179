"""PyTorch-ready weight files: the safetensors format, written and read with numpy alone.

A safetensors file is an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and byte range, then the raw little-endian bytes. ``save_torch`` writes torch's keys
and shapes (``to_torch``), so ``model.load_state_dict(safetensors.torch.load_file(path))`` loads it;
``load_torch`` reads any such file back into Flax variables (``from_torch``).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from ._torch import from_torch, to_torch

_CODES = {
    np.dtype(np.float64): "F64",
    np.dtype(np.float32): "F32",
    np.dtype(np.float16): "F16",
    np.dtype(jnp.bfloat16): "BF16",
    np.dtype(np.int64): "I64",
    np.dtype(np.int32): "I32",
    np.dtype(np.int16): "I16",
    np.dtype(np.int8): "I8",
    np.dtype(np.uint8): "U8",
    np.dtype(np.bool_): "BOOL",
}
_DTYPES = {code: dtype for dtype, code in _CODES.items()}


def save_torch(
    variables: Mapping[str, Any], path: str | os.PathLike, metadata: Mapping[str, str] | None = None
) -> None:
    """Write ``variables`` (or params) to ``path`` as a safetensors file with torch's keys and shapes.

    The file is written to a temporary name and renamed, so an interrupted save never leaves a
    half-written file under ``path``. ``metadata`` (str to str) goes into the header.

    >>> import jax, tempfile, os
    >>> from jaxrnn import RNN, save_torch, load_torch
    >>> rnn = RNN(3, 4)
    >>> variables = rnn.init(jax.random.key(0), jax.numpy.zeros((2, 1, 3)))
    >>> path = os.path.join(tempfile.mkdtemp(), "rnn.safetensors")
    >>> save_torch(variables, path)
    >>> sorted(load_torch(path, rnn)["params"]["l0"])
    ['bias_hh', 'bias_ih', 'weight_hh', 'weight_ih']
    """
    tensors = to_torch(variables)
    header: dict[str, Any] = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("save_torch: `metadata` must map str to str")
        header["__metadata__"] = dict(metadata)
    offset, chunks = 0, []
    for key, value in tensors.items():
        if value.dtype not in _CODES:
            raise TypeError(f"save_torch: {key!r} has dtype {value.dtype}, which safetensors cannot store")
        data = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()
        header[key] = {
            "dtype": _CODES[value.dtype],
            "shape": list(value.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
        chunks.append(data)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the format aligns the data on 8 bytes
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for chunk in chunks:
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors (torch's keys to numpy arrays) and the metadata of a safetensors file."""
    raw = Path(path).read_bytes()
    if len(raw) < 8:
        raise ValueError(f"load_torch: {path} is not a safetensors file (only {len(raw)} bytes)")
    (size,) = struct.unpack("<Q", raw[:8])
    if 8 + size > len(raw):
        raise ValueError(
            f"load_torch: {path} is truncated: its header claims {size} bytes, the file has {len(raw) - 8}"
        )
    try:
        header = json.loads(raw[8 : 8 + size])
    except ValueError as err:
        raise ValueError(f"load_torch: {path} has a corrupt header ({err})") from None
    data = raw[8 + size :]
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for key, info in header.items():
        if info.get("dtype") not in _DTYPES:
            raise ValueError(f"load_torch: {key!r} in {path} has unsupported dtype {info.get('dtype')!r}")
        begin, end = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        if end > len(data) or (end - begin) != dtype.itemsize * int(np.prod(info["shape"], dtype=np.int64)):
            raise ValueError(f"load_torch: {key!r} in {path} is truncated or has inconsistent offsets")
        tensors[key] = (
            np.frombuffer(data[begin:end], dtype=dtype.newbyteorder("<")).astype(dtype).reshape(info["shape"])
        )
    return tensors, metadata


def load_torch(path: str | os.PathLike, module: nn.Module | None = None) -> dict:
    """Read a safetensors file with torch's keys (``save_torch``'s, or ``safetensors.torch.save_file``
    of a torch model's ``state_dict()``) into Flax ``variables``; with ``module``, keys and shapes
    are checked against it as ``from_torch`` does."""
    tensors, _ = read_safetensors(path)
    return from_torch(tensors, module)
