"""Training checkpoints with orbax: the whole state of a run, so that it can be resumed bit for bit.

A checkpoint directory holds one subdirectory per saved epoch (``DIR/2``, ``DIR/4``, ...), each
with three items written by ``orbax.checkpoint``:

- ``variables``: the Flax variables (``{'params': ...}``), arrays as they are;
- ``opt_state``: the optax state (Adam's moments and step count);
- ``meta``: JSON with the run's description (the model's class name and fields, the parameter
  shapes and dtypes, the loss, optimizer, learning rate, batch size, seed and a fingerprint of the
  data), the epoch, the optimizer step, the numpy batch-order generator's state and the history.

Saving is atomic: orbax writes a step into ``DIR/<epoch>.orbax-checkpoint-tmp-*`` and renames it to
``DIR/<epoch>`` only once every item is on disk, so a save killed half way never replaces the last
complete checkpoint (the temporary directory is ignored, and removed when the directory is next
opened). Restoring compares the stored run description with the current one first and names every
difference; a checkpoint that cannot be read is reported with its path.

orbax-checkpoint is a dependency of jaxrnn (and of Flax): nothing extra to install.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp

__all__ = ["CheckpointError", "Checkpointer", "TrainState", "describe_model", "find_runs", "load_checkpoint"]

FORMAT = 1
"""The layout of ``meta``; a checkpoint with another value is refused."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: written for another run, unreadable, or in the way."""


class TrainState(NamedTuple):
    """Everything a run needs to continue exactly where it stopped.

    Attributes:
      variables: the Flax variables, ``{'params': ...}``.
      opt_state: the optax state for ``variables['params']``.
      epoch: the number of completed epochs (the checkpoint's step number in orbax).
      step: the number of optimizer steps taken.
      rng_state: ``numpy.random.Generator.bit_generator.state`` of the batch-order generator
        after ``epoch`` epochs.
      history: ``History.to_dict()`` of those epochs.
      extra: other JSON data to keep with the state, or None (``train`` keeps the counters of
        ``optax.apply_if_finite`` there).
    """

    variables: Any
    opt_state: Any
    epoch: int
    step: int
    rng_state: dict
    history: dict
    extra: dict | None = None


def _jsonable(value: Any) -> Any:
    """``value`` as JSON data: containers recursively, dtypes and dtype classes by name, others by repr."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    try:
        return np.dtype(value).name
    except TypeError:
        return repr(value)


def describe_model(model) -> dict[str, Any]:
    """``{'name': class name, 'config': {field: value}}`` of a Flax module (its dataclass fields,
    without ``parent`` and ``name``), as JSON data.

    >>> from jaxrnn.models import RNNClassifier
    >>> d = describe_model(RNNClassifier(3, 8, 2))
    >>> d["name"], d["config"]["hidden_size"], d["config"]["param_dtype"]
    ('RNNClassifier', 8, 'float32')
    """
    fields = {f.name: getattr(model, f.name) for f in dataclasses.fields(model)
              if f.init and f.name not in ("parent", "name")}
    return {"name": type(model).__name__, "config": _jsonable(fields)}


def describe_arrays(tree) -> dict[str, str]:
    """``{key path: 'dtype[shape]'}`` for every leaf, e.g. ``{"['params']['fc']['weight']": 'float32[1, 32]'}``."""
    return {jax.tree_util.keystr(path): f"{np.dtype(leaf.dtype).name}{list(np.shape(leaf))}"
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def fingerprint(*arrays, structure: str | None = None) -> str:
    """A sha256 of the arrays' dtypes, shapes and bytes (the data a run trains on), after
    ``structure`` when given (how the arrays make up the model's inputs: a pytree's structure)."""
    digest = hashlib.sha256()
    if structure is not None:
        digest.update(structure.encode())
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _differences(stored: Any, current: Any, path: str = "") -> list[str]:
    """Dotted paths where two JSON trees differ, as ``'path: checkpoint X, this run Y'``."""
    if isinstance(stored, dict) and isinstance(current, dict):
        out = []
        for key in sorted(set(stored) | set(current)):
            sub = f"{path}.{key}" if path else key
            if key not in stored:
                out.append(f"{sub}: not in the checkpoint, this run {current[key]!r}")
            elif key not in current:
                out.append(f"{sub}: checkpoint {stored[key]!r}, not in this run")
            else:
                out += _differences(stored[key], current[key], sub)
        return out
    same = stored == current or (
        isinstance(stored, float) and isinstance(current, float) and math.isnan(stored) and math.isnan(current)
    )
    return [] if same else [f"{path}: checkpoint {stored!r}, this run {current!r}"]


def _abstract(tree):
    """The restore target for ``tree``: its shapes and dtypes, on this process's first device."""
    sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(tuple(a.shape), a.dtype, sharding=sharding), tree)


def _manager(directory: Path, **options):
    """An orbax CheckpointManager for the three items, saving synchronously."""
    handlers = {"variables": ocp.StandardCheckpointHandler(), "opt_state": ocp.StandardCheckpointHandler(),
                "meta": ocp.JsonCheckpointHandler()}
    options = ocp.CheckpointManagerOptions(enable_async_checkpointing=False, **options)
    return ocp.CheckpointManager(directory, options=options, item_handlers=handlers)


def _has_steps(path: Path) -> bool:
    return path.is_dir() and any(p.is_dir() and p.name.isdigit() for p in path.iterdir())


def find_runs(directory: str | os.PathLike) -> list[Path]:
    """The checkpoint directories in ``directory``: itself if it holds checkpoints, else its
    subdirectories that do (the CLI writes one per training run, ``DIR/sine_seq_len_30``, ...)."""
    directory = Path(directory)
    if _has_steps(directory):
        return [directory]
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _has_steps(p))


class Checkpointer:
    """Saves and restores the :class:`TrainState` of one training run in ``directory``.

    Args:
      directory: where the checkpoints go (created if missing).
      run: JSON data that describes the run (model, parameter shapes, training settings, data);
        a checkpoint written for a different description is refused by :meth:`restore`.
      keep: how many of the latest checkpoints to keep (older ones are deleted after a save).
    """

    def __init__(self, directory: str | os.PathLike, run: Mapping[str, Any], *, keep: int = 2):
        self.directory = Path(directory).absolute()
        if self.directory.exists() and not self.directory.is_dir():
            raise CheckpointError(f"`checkpoint_dir` {str(directory)!r} exists and is not a directory")
        self.run = _jsonable(run)
        self._manager = _manager(self.directory, max_to_keep=keep, cleanup_tmp_directories=True, create=True)

    def latest_epoch(self) -> int | None:
        """The epoch of the newest complete checkpoint, or None when there is none."""
        return self._manager.latest_step()

    def save(self, state: TrainState) -> Path:
        """Write ``state`` as the checkpoint of epoch ``state.epoch`` (atomically); returns its path."""
        meta = {"format": FORMAT, "run": self.run, "epoch": int(state.epoch), "step": int(state.step),
                "rng_state": _jsonable(state.rng_state), "history": _jsonable(state.history),
                "extra": _jsonable(state.extra)}
        self._manager.save(int(state.epoch), args=ocp.args.Composite(
            variables=ocp.args.StandardSave(state.variables),
            opt_state=ocp.args.StandardSave(state.opt_state),
            meta=ocp.args.JsonSave(meta),
        ))
        self._manager.wait_until_finished()
        return self.directory / str(int(state.epoch))

    def read_meta(self, epoch: int) -> dict[str, Any]:
        """The ``meta`` item of the checkpoint of ``epoch``."""
        path = self.directory / str(epoch)
        try:
            meta = self._manager.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
        except Exception as err:
            raise CheckpointError(f"the checkpoint {path} cannot be read ({type(err).__name__}: {err}); it is "
                                  "corrupt or incomplete: move it away to resume from an earlier one") from err
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise CheckpointError(f"the checkpoint {path} has format {found!r}, expected {FORMAT}")
        return meta

    def restore(self, target: TrainState) -> TrainState:
        """The newest checkpoint, restored into the structure, shapes and dtypes of ``target``.

        Raises:
          CheckpointError: when there is no checkpoint, when it was written for another run (the
            message lists every difference), or when it cannot be read.
        """
        epoch = self.latest_epoch()
        if epoch is None:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        path = self.directory / str(epoch)
        meta = self.read_meta(epoch)
        diffs = _differences(meta["run"], self.run)
        if diffs:
            raise CheckpointError(f"the checkpoint {path} was written for a different run; it differs in: "
                                  + "; ".join(diffs))
        try:
            restored = self._manager.restore(epoch, args=ocp.args.Composite(
                variables=ocp.args.StandardRestore(_abstract(target.variables)),
                opt_state=ocp.args.StandardRestore(_abstract(target.opt_state)),
            ))
        except Exception as err:
            raise CheckpointError(f"the checkpoint {path} cannot be read ({type(err).__name__}: {err}); it is "
                                  "corrupt or incomplete: move it away to resume from an earlier one") from err
        return TrainState(restored.variables, restored.opt_state, meta["epoch"], meta["step"], meta["rng_state"],
                          meta["history"], meta["extra"])


def load_checkpoint(directory: str | os.PathLike, epoch: int | None = None) -> tuple[dict, dict[str, Any]]:
    """The variables and the description of a checkpoint, without knowing the model.

    Args:
      directory: a checkpoint directory of one run (``train(checkpoint_dir=...)``).
      epoch: which checkpoint; None for the newest.

    Returns:
      ``(variables, meta)``: the Flax variables as numpy arrays, and the JSON ``meta`` (``meta['run']
      ['model']`` holds the model's class name and fields, ``meta['epoch']``, ``meta['history']``...).
    """
    directory = Path(directory).absolute()
    if not _has_steps(directory):
        raise CheckpointError(f"no checkpoint in {directory}")
    manager = _manager(directory, create=False)
    steps = manager.all_steps()
    if epoch is None:
        epoch = manager.latest_step()
    elif epoch not in steps:
        raise CheckpointError(f"`epoch` {epoch!r} has no checkpoint in {directory}; there are {sorted(steps)}")
    if epoch is None:
        raise CheckpointError(f"no complete checkpoint in {directory}")
    path = directory / str(epoch)
    try:
        meta = manager.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
        shapes = manager.item_metadata(epoch)["variables"]
        variables = manager.restore(epoch, args=ocp.args.Composite(
            variables=ocp.args.StandardRestore(_abstract(getattr(shapes, "tree", shapes)))
        )).variables
        variables = jax.tree.map(np.asarray, variables)
    except Exception as err:
        raise CheckpointError(f"the checkpoint {path} cannot be read ({type(err).__name__}: {err})") from err
    return variables, meta
