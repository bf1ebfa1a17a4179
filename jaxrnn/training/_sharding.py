"""Data-parallel training through ``jax.sharding``: one mesh axis over the batch, nothing hand-written.

The training step is jitted once for the mesh; its inputs say where everything lives and XLA's
partitioner inserts the communication (the all-reduce of the gradients):

- the parameters and the optimizer state are replicated, ``NamedSharding(mesh, P())``;
- each batch is split along its first axis over the devices, ``NamedSharding(mesh, P('batch'))``.

A batch whose size does not divide by the device count (the last batch of an epoch, say 25
examples in batches of 8 on 4 devices leaves 1) is padded to the next multiple with copies of
its last example and comes with a mask; the step averages the loss over the real examples only,
so no example is dropped and the padding changes nothing.

Arrays are assembled with ``jax.make_array_from_callback``, which asks each process only for the
slices its own devices hold: after ``jax.distributed.initialize()`` (``_distributed.initialize``)
the same code spans several processes (on one machine, the hosts of a TPU slice or a GPU
cluster), every process holding the same (seeded) data and reading only its own part of each
batch. The mesh then takes the same number of devices from every process.
"""

from __future__ import annotations

import numbers

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["AXIS", "check_devices", "make_mesh", "pad_batch", "replicate", "shard_batch"]

AXIS = "batch"
"""The name of the mesh axis the batch is split over."""


def check_devices(devices, owner: str | None = "train") -> int:
    """``devices`` as an int in [1, len(jax.devices())], or a ValueError/TypeError that says what is
    there (the message starts with ``owner: `` unless ``owner`` is None). With several processes,
    ``devices`` counts the devices of all of them and must be a multiple of the process count
    (each process gives ``devices / processes`` of its own); None means all of them.

    >>> check_devices(1)
    1
    """
    prefix = "" if owner is None else f"{owner}: "
    available, processes = jax.devices(), jax.process_count()
    if devices is None and processes > 1:
        devices = len(available)
    if isinstance(devices, bool) or not isinstance(devices, (numbers.Integral, np.integer)):
        raise TypeError(f"{prefix}`devices` must be a positive int, got {devices!r} ({type(devices).__name__})")
    devices = int(devices)
    if not 1 <= devices <= len(available):
        hint = ""
        if available[0].platform == "cpu":
            count, each = -(-devices // processes), "" if processes == 1 else " in each process"
            hint = (f"; on a CPU, set XLA_FLAGS=--xla_force_host_platform_device_count={count}{each} before jax "
                    "is imported to split it into that many devices")
        where = "" if processes == 1 else f" in all {processes} processes"
        raise ValueError(f"{prefix}`devices` must be between 1 and the {len(available)} available "
                         f"{available[0].platform} device(s){where}, got {devices}{hint}")
    if devices % processes:
        raise ValueError(f"{prefix}`devices` counts the devices of all {processes} processes and must be a multiple "
                         f"of {processes} (each process gives the same number), got {devices}")
    local = jax.local_device_count()
    if devices // processes > local:
        raise ValueError(f"{prefix}`devices` {devices} needs {devices // processes} devices in each of the "
                         f"{processes} processes, but this one has {local}")
    return devices


def make_mesh(devices: int, owner: str = "train") -> Mesh:
    """A one-axis mesh (axis :data:`AXIS`) over the first ``devices`` of ``jax.devices()``; with
    several processes, over the first ``devices / processes`` devices of each.

    >>> make_mesh(1).shape
    OrderedDict([('batch', 1)])
    """
    devices = check_devices(devices, owner)
    processes = jax.process_count()
    if processes == 1:
        return Mesh(np.asarray(jax.devices()[:devices]), (AXIS,))
    own = {p: [d for d in jax.devices() if d.process_index == p] for p in range(processes)}
    return Mesh(np.asarray([d for p in range(processes) for d in own[p][:devices // processes]]), (AXIS,))


def _global_array(array, sharding: NamedSharding) -> jax.Array:
    array = np.asarray(array)
    array = array.astype(jax.dtypes.canonicalize_dtype(array.dtype), copy=False)
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def replicate(tree, mesh: Mesh):
    """Every leaf of ``tree`` as an array with a full copy on each device of ``mesh``."""
    sharding = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(lambda a: _global_array(a, sharding), tree)


def shard_batch(arrays, mesh: Mesh) -> list[jax.Array]:
    """Each array split along its first (batch) axis over the devices of ``mesh``; the first axis
    must divide by the device count (see :func:`pad_batch`)."""
    sharding = NamedSharding(mesh, PartitionSpec(AXIS))
    out = []
    for array in arrays:
        if np.shape(array)[0] % mesh.size:
            raise ValueError(f"shard_batch: a batch of {np.shape(array)[0]} does not divide over {mesh.size} "
                             "devices; pad it first (pad_batch)")
        out.append(_global_array(array, sharding))
    return out


def pad_batch(arrays, multiple: int) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Pad each array's first axis to a multiple of ``multiple`` with copies of its last row.

    Returns ``(padded, mask)``: ``mask`` is a bool (padded batch,) array, True for the real rows,
    or None when no padding was needed (the arrays come back unchanged).

    >>> (x,), mask = pad_batch([np.arange(5)], 4)
    >>> x.tolist(), mask.tolist()
    ([0, 1, 2, 3, 4, 4, 4, 4], [True, True, True, True, True, False, False, False])
    """
    n = int(np.shape(arrays[0])[0])
    pad = -n % multiple
    if pad == 0:
        return [np.asarray(a) for a in arrays], None
    padded = [np.concatenate([a, np.repeat(np.asarray(a)[-1:], pad, axis=0)]) for a in arrays]
    return padded, np.arange(n + pad) < n
