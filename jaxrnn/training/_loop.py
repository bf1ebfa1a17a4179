"""The training loop of the lesson, with optax: minibatches in a seeded order, one jitted step
per batch (Adam with torch-exact gradient clipping), evaluation every epoch, a history and a
progress bar; on request, checkpoints to resume from (orbax), data-parallel steps over several
devices (``jax.sharding``), and a stop (or a skipped step) at a non-finite loss or gradient.

The loop is the lesson's PyTorch loop, step for step (``torchref.train`` is its twin):
zero grads, forward, loss, backward, ``clip_grad_norm_``, ``optimizer.step()``. Given the same
weights, data and seed, both frameworks take the same steps.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import flax.errors
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import data as _data
from ..functional import _checks
from . import _checkpoint, _distributed, _inputs, _sharding
from ._losses import LOSSES, METRICS, LossFn, resolve
from ._progress import progress_bar
from ._step import cached_train_step, jitted_apply

__all__ = ["History", "NonFiniteError", "TrainResult", "evaluate", "predict", "train"]


@dataclass
class History:
    """What a training run recorded.

    Per epoch (one entry each): ``loss``, the mean training loss over the epoch's batches
    (weighted by batch size); ``grad_norm``, the mean global gradient norm before clipping;
    ``train_metric``, the metric on the training batches; ``test_loss`` and ``test_metric``, on the
    test set after the epoch (empty without test data). Per step: ``step_loss`` and
    ``step_grad_norm``. ``metric`` names the metric (None when there is none).
    """

    loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    train_metric: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_metric: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    step_grad_norm: list[float] = field(default_factory=list)
    metric: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The history as plain lists (the layout ``torchref.train`` returns)."""
        return asdict(self)


class TrainResult(NamedTuple):
    """``variables``: the trained Flax variables; ``history``: a :class:`History`."""

    variables: dict
    history: History


class NonFiniteError(FloatingPointError):
    """Training met a non-finite (NaN or infinite) loss or gradient and stopped.

    Attributes:
      epoch: the epoch of the step, counted from 1.
      step: the step, counted from 1 over the whole run.
      result: a :class:`TrainResult` with the variables before that step and the history of the
        epochs completed before it.
      checkpoint: the path of the last checkpoint written or resumed from (kept as it was), or None.
    """

    def __init__(self, message: str, *, epoch: int, step: int, result: TrainResult, checkpoint: str | None):
        super().__init__(message)
        self.epoch, self.step, self.result, self.checkpoint = epoch, step, result, checkpoint


def predict(model: nn.Module, variables: Mapping, inputs, *, eval_kwargs: Mapping[str, Any] | None = None):
    """The model's output on ``inputs`` in evaluation mode (as torch's ``model.eval()``), under jit,
    as numpy arrays (in the structure the model returns).

    ``inputs`` is any pytree of arrays with a leading batch axis, passed as ``train`` passes them
    (a tuple as positional arguments, a dict as keyword arguments, anything else as one argument).
    The model is called with ``eval_kwargs``, by default the evaluation mode read from its
    signature (``deterministic=True``, ``train=False`` or nothing; see :func:`train`), without rngs.

    >>> import jax, numpy as np
    >>> from jaxrnn import predict
    >>> from jaxrnn.models import RNNClassifier
    >>> model = RNNClassifier(3, 8, 4)
    >>> x, lengths = np.linspace(-1, 1, 60).reshape(2, 10, 3), np.array([10, 4])
    >>> variables = model.init(jax.random.key(0), x)
    >>> predict(model, variables, {"x": x, "seq_lengths": lengths}).shape
    (2, 4)
    """
    owner = "predict"
    _check_model(model, variables, owner)
    mode = _eval_mode(model, eval_kwargs, owner)
    inputs = _inputs.check_inputs("`inputs`", inputs, None, owner, mode=dict(mode))
    output = _apply(jitted_apply(model, mode), dict(variables), inputs, owner=owner, what="evaluation")
    return jax.tree.map(np.asarray, output)


def evaluate(
    model: nn.Module,
    variables: Mapping,
    inputs,
    targets,
    *,
    loss: str | LossFn,
    metric: str | LossFn | None = None,
    eval_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """The loss (and metric) of the model on a whole data set, in one batch, in evaluation mode
    (as torch's ``model.eval()``): ``{'loss': float, 'metric': float}`` (``metric`` is NaN without one).

    ``inputs`` is any pytree of arrays with the leading batch axis of ``targets``, and
    ``eval_kwargs`` the model's keywords, as for :func:`predict`.
    """
    owner = "evaluate"
    _check_model(model, variables, owner)
    mode = _eval_mode(model, eval_kwargs, owner)
    targets = _targets("targets", targets, owner)
    inputs = _inputs.check_inputs("`inputs`", inputs, targets.shape[0], owner, mode=dict(mode),
                                  y_shape=targets.shape, y_name="`targets`")
    loss_fn = resolve("loss", loss, LOSSES)
    metric_fn = None if metric is None else resolve("metric", metric, METRICS)
    return _evaluate(model, variables, inputs, targets, loss_fn, metric_fn, mode, owner)


def _evaluate(model, variables, inputs, targets, loss_fn, metric_fn, mode: tuple, owner: str) -> dict[str, float]:
    pred = _apply(jitted_apply(model, mode), dict(variables), inputs, owner=owner, what="evaluation")
    targets = jnp.asarray(targets)
    return {
        "loss": float(loss_fn(pred, targets)),
        "metric": float(metric_fn(pred, targets)) if metric_fn is not None else math.nan,
    }


def _apply(fn, *args, owner: str, what: str):
    """``fn(*args)``, with flax's error for a missing rng saying which rng the call gets."""
    try:
        return fn(*args)
    except flax.errors.InvalidRngError as err:
        if what == "training":
            raise ValueError(f"{owner}: the model asked for an rng in training mode, where it gets the 'dropout' rng "
                             f"only ({err}); draw dropout masks from the 'dropout' stream") from err
        raise ValueError(f"{owner}: the model asked for an rng in evaluation mode, where it gets no rngs ({err}); a "
                         "model that draws random numbers only in training must take `deterministic` (or `train`) as "
                         "a keyword, or be given its mode with `train_kwargs` / `eval_kwargs`") from err


def train(
    model: nn.Module,
    variables: Mapping,
    train_data: tuple,
    *,
    loss: str | LossFn,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    clip_norm: float | None = None,
    optimizer: str = "adam",
    seed: int = 0,
    test_data: tuple | None = None,
    metric: str | LossFn | None = None,
    progress: bool = True,
    desc: str = "train",
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 1,
    resume: bool = False,
    devices: int | None = None,
    nonfinite: str = "stop",
    train_kwargs: Mapping[str, Any] | None = None,
    eval_kwargs: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` from ``variables`` with Adam (and clipping), as the lesson's PyTorch loop does.

    Every epoch visits the training set in minibatches in the order of
    ``jaxrnn.data.epoch_batches(n, batch_size, rng)`` with ``rng = numpy.random.default_rng(seed)``
    made once (``torchref.train`` uses the same order), takes one optimizer step per batch, then
    evaluates on ``test_data``.

    Training steps run the model as torch's ``model.train()`` does, evaluation (``test_data``,
    :func:`evaluate`, :func:`predict`) as ``model.eval()``. Flax's convention is a keyword of
    ``__call__``, read from the signature of ``type(model).__call__``: a model that takes
    ``deterministic`` (jaxrnn's ``RNN``/``LSTM``/``GRU``, ``flax.linen.Dropout``) is called with
    ``deterministic=False`` in training and ``deterministic=True`` in evaluation; else one that
    takes ``train``, with ``train=True`` / ``train=False``; else with neither (so a model with
    dropout must take ``deterministic`` or ``train`` as a keyword, or be given ``train_kwargs``
    and ``eval_kwargs``). Every training step passes ``rngs={'dropout': key}``, with step k
    (counted from 0 over the whole run) drawing ``jax.random.fold_in(jax.random.key(seed), k)``:
    two runs with one seed take the same steps, and a resumed run draws the masks of the
    uninterrupted one. Evaluation gets no rngs.

    Args:
      model: a Flax module, called as ``model.apply(variables, *args, **kwargs, **mode)`` (the
        inputs' arguments and the mode's keywords, above).
      variables: its starting variables, ``{'params': ...}`` (plus any other collections, kept as is).
      train_data: ``(x, y)``: y an array of targets with a first (batch) dimension n, and x the
        model's inputs: any pytree of arrays sharing that leading axis (batched, shuffled, padded
        and sharded together). A plain ``tuple`` ``(ids, lengths)`` is passed as positional
        arguments, ``model(ids, lengths)``; a ``dict`` as keyword arguments,
        ``model(x=..., seq_lengths=...)``; anything else (one array, a NamedTuple, another pytree)
        as one argument. A list is one array (numpy's reading), not a pytree.
      loss: ``'mse'`` (:func:`mse_loss`), ``'cross_entropy'`` (:func:`cross_entropy_loss`) or a
        function ``loss(prediction, y) -> scalar``.
      epochs: the number of passes over the training set (in total, when resuming).
      batch_size: examples per step; the last batch of an epoch is smaller when it does not divide n.
      learning_rate: Adam's step size.
      clip_norm: when given, gradients are clipped by global norm first, exactly as
        ``torch.nn.utils.clip_grad_norm_(params, clip_norm)`` (:func:`clip_grad_norm`).
      optimizer: ``'adam'`` (default) or ``'sgd'`` (see :func:`make_optimizer`).
      seed: seeds the batch order and the dropout masks; in [0, 2**63).
      test_data: optional ``(x, y)``, as ``train_data``, evaluated after every epoch.
      metric: ``'accuracy'``, ``'mse'``, a function ``metric(prediction, y) -> scalar``, or None.
      progress: show a progress bar on stderr.
      desc: the progress bar's label.
      checkpoint_dir: when given, the training state (variables, optimizer state, step, the batch
        order's generator state and the history) is saved there with orbax after every
        ``checkpoint_every`` epochs and after the last one, with a description of the run (the
        model's class and fields, the parameter shapes, the training settings, a hash of the data).
        The two newest checkpoints are kept; a save interrupted half way never replaces one.
      checkpoint_every: save every this many epochs (and after the last).
      resume: continue from the newest checkpoint in ``checkpoint_dir`` up to ``epochs`` in total;
        the result is the one of an uninterrupted run, bit for bit on the same device. With no
        checkpoint there yet, training starts from ``variables``. A checkpoint written for a
        different model or settings is refused with every difference named.
      devices: data-parallel training over the first ``devices`` of ``jax.devices()`` (default 1):
        parameters replicated, each batch split over the devices; a batch that does not divide
        is padded with masked copies of its last example. The history is that of a one-device
        run up to float rounding. With padding, a custom ``loss``/``metric`` must be a mean over
        examples (as the built-in ones are). The dropout key is replicated, so a batch that
        divides draws the masks of a one-device run; a padded batch draws them for its padded
        shape, which may give its real examples other masks than a one-device run (jax.random
        draws by position in the array: a mask whose leading axis is the batch keeps them).
        In a run of several processes (``jax.distributed``; see :func:`jaxrnn.initialize_distributed`),
        ``devices`` counts the devices of all of them (default: all), a multiple of the process
        count; every process calls ``train`` with the same arguments and data, each reads only its
        own devices' slices of every batch, and all end with the same variables. Different
        settings, data or starting variables between the processes are a DistributedError naming
        them; only process 0 shows a progress bar, and ``checkpoint_dir`` must be a directory every
        process reaches (orbax writes it together).
      nonfinite: what a NaN or infinite loss or gradient does: ``'stop'`` (default) raises
        :class:`NonFiniteError` at the end of that epoch, naming the step, with the variables from
        before it (the step and the ones after it in the epoch are not applied; no checkpoint is
        written for the epoch); ``'skip'`` skips such steps (``optax.apply_if_finite``: neither the
        parameters nor the optimizer state change) with a RuntimeWarning, and the epoch's loss,
        metric and gradient norm are means over the steps taken (``step_loss`` and
        ``step_grad_norm`` keep the skipped steps' values).
      train_kwargs: the keywords of the model's call in training steps, in place of the mode read
        from its signature (``{}``: none), e.g. ``{'training': True}``; values must be hashable
        (they are fixed in the compiled step).
      eval_kwargs: the same for evaluation on ``test_data``.

    Returns:
      :class:`TrainResult` ``(variables, history)``.

    Raises:
      NonFiniteError: with ``nonfinite='stop'``, at a non-finite loss or gradient.
      DistributedError: in a multi-process run, when the processes differ in settings or data.
      jaxrnn.CheckpointError: (a ValueError) when ``checkpoint_dir`` holds checkpoints
        and ``resume`` is False, or the checkpoint is for another run, ahead of ``epochs`` or unreadable.

    >>> import jax, numpy as np
    >>> from jaxrnn import train
    >>> from jaxrnn.models import SinPredictor
    >>> from jaxrnn.data import generate_sin_data
    >>> X, y = generate_sin_data(seq_len=10, n_samples=64, seed=0)
    >>> model = SinPredictor()
    >>> variables = model.init(jax.random.key(0), X[:1])
    >>> result = train(model, variables, (X, y), loss="mse", epochs=3, batch_size=16,
    ...                learning_rate=1e-2, clip_norm=1.0, progress=False)
    >>> len(result.history.loss), len(result.history.step_grad_norm)
    (3, 12)
    >>> result.history.loss[-1] < result.history.loss[0]
    True
    """
    owner = "train"
    _check_model(model, variables, owner)
    train_mode = _train_mode(model, train_kwargs, owner)
    eval_mode = _eval_mode(model, eval_kwargs, owner)
    modes = dict(train_mode) | dict(eval_mode)
    x, y = _check_pair("train_data", train_data, owner, modes)
    if test_data is not None:
        x_test, y_test = _check_pair("test_data", test_data, owner, modes)
    epochs = _checks.positive_int("epochs", epochs, owner)
    batch_size = _checks.positive_int("batch_size", batch_size, owner)
    seed = _checks.non_negative_int("seed", seed, owner)
    if seed >= 2**63:
        raise ValueError(f"{owner}: `seed` must be below 2**63 (jax.random.key's range), got {seed}")
    loss_fn = resolve("loss", loss, LOSSES)
    metric_fn = None if metric is None else resolve("metric", metric, METRICS)
    checkpoint_every = _checks.positive_int("checkpoint_every", checkpoint_every, owner)
    if not isinstance(resume, bool):
        raise TypeError(f"{owner}: `resume` must be a bool, got {resume!r} ({type(resume).__name__})")
    if resume and checkpoint_dir is None:
        raise ValueError(f"{owner}: `resume=True` needs a `checkpoint_dir` to resume from, got None")
    processes = jax.process_count()
    n_devices = 1 if devices is None and processes == 1 else _sharding.check_devices(devices, owner)
    _checks.one_of("nonfinite", nonfinite, ("stop", "skip"), owner)
    tx, step = cached_train_step(model, loss_fn, metric_fn, learning_rate, clip_norm, optimizer, nonfinite, n_devices,
                                 train_mode)
    leaves, treedef = jax.tree.flatten(x)
    dropout_key = np.asarray(jax.random.key_data(jax.random.key(seed)))  # step k draws fold_in(key, k)

    current: dict = dict(variables)  # the variables as training goes
    opt_state = tx.init(current["params"])
    history = History(metric=_name(metric))
    n = y.shape[0]
    rng = np.random.default_rng(seed)
    start_epoch, global_step = 0, 0
    checkpointer, last_checkpoint = None, None
    run: dict[str, Any] = {}
    if checkpoint_dir is not None or processes > 1:
        run = {
            "model": _checkpoint.describe_model(model),
            "variables": _checkpoint.describe_arrays(current),
            "training": {"loss": _name(loss_fn), "metric": _name(metric_fn), "optimizer": optimizer,
                         "learning_rate": learning_rate, "clip_norm": clip_norm, "batch_size": batch_size,
                         "seed": int(seed)},
            "data": {"train": _fingerprint(x, y),
                     "test": None if test_data is None else _fingerprint(x_test, y_test)},
        }
        # the modes given by hand (a model's own are part of its class): only when given, so that
        # a run without them keeps the description of checkpoints written before they existed
        for key, value in (("train_kwargs", train_kwargs), ("eval_kwargs", eval_kwargs)):
            if value is not None:
                run["training"][key] = dict(value)
    if processes > 1:  # every process must train the same model on the same data, from the same start
        _distributed.check_same({
            "model": run["model"], "variables": _checkpoint.fingerprint(*jax.tree.leaves(current)), **run["training"],
            "train_data": run["data"]["train"], "test_data": run["data"]["test"], "epochs": epochs,
            "devices": n_devices, "nonfinite": nonfinite, "checkpoint_every": checkpoint_every, "resume": resume,
            "checkpoint_dir": None if checkpoint_dir is None else os.path.abspath(checkpoint_dir),
        }, owner)
    if checkpoint_dir is not None:
        checkpointer = _checkpoint.Checkpointer(checkpoint_dir, run)
        latest = checkpointer.latest_epoch()
        if latest is not None and not resume:
            raise _checkpoint.CheckpointError(
                f"{owner}: `checkpoint_dir` {str(checkpoint_dir)!r} already holds a checkpoint (epoch {latest}); "
                "pass resume=True to continue from it, or choose another directory")
        if latest is not None and latest > epochs:
            raise _checkpoint.CheckpointError(
                f"{owner}: `epochs` is {epochs} but the checkpoint in {str(checkpoint_dir)!r} has already "
                f"completed {latest} epochs")
        if latest is not None:
            state = checkpointer.restore(_checkpoint.TrainState(
                current, _inner_state(opt_state, nonfinite), 0, 0, dict(rng.bit_generator.state), history.to_dict()))
            # uncommitted arrays, as model.init and tx.init give: the step compiled for them is reused
            current, inner = jax.tree.map(lambda a: jnp.asarray(np.asarray(a)), (state.variables, state.opt_state))
            current = dict(current)
            opt_state = _outer_state(inner, nonfinite, state.extra)
            rng.bit_generator.state = state.rng_state
            history = History(**state.history)
            start_epoch, global_step = state.epoch, state.step
            last_checkpoint = str(checkpointer.directory / str(latest))

    mesh = _sharding.make_mesh(n_devices, owner) if n_devices > 1 else None
    not_halted = jnp.asarray(False)
    if mesh is not None:
        current, opt_state, not_halted, dropout_key = _sharding.replicate(
            (current, opt_state, np.asarray(False), dropout_key), mesh)
    steps_per_epoch = math.ceil(n / batch_size)
    shown_here = progress and _distributed.is_primary()  # one bar for a multi-process run
    with progress_bar((epochs - start_epoch) * steps_per_epoch, desc, enabled=shown_here) as bar:
        for epoch in range(start_epoch, epochs):
            stats: list[dict] = []
            sizes, halted = [], not_halted
            for idx in _data.epoch_batches(n, batch_size, rng):
                batch = [a[idx] for a in leaves] + [y[idx]]  # the inputs' leaves, then y
                mask: np.ndarray | jax.Array | None = None
                if mesh is not None:
                    batch, mask = _sharding.pad_batch(batch, mesh.size)
                    batch = _sharding.shard_batch(batch + ([] if mask is None else [mask]), mesh)
                    if mask is not None:
                        *batch, mask = batch
                *xb, yb = batch
                counter = np.uint32(global_step + len(stats))  # the step's number from 0 over the run
                current, opt_state, halted, batch_stats = _apply(
                    step, current, opt_state, halted, jax.tree.unflatten(treedef, xb), yb, mask, dropout_key, counter,
                    owner=owner, what="training")
                stats.append(batch_stats)
                sizes.append(len(idx))
                bar.update()
            stats = jax.device_get(stats)
            taken = np.asarray([bool(s["finite"]) for s in stats])
            if not taken.all():
                bad = int(np.argmin(taken))
                where = (f"at epoch {epoch + 1}, step {global_step + bad + 1} (batch {bad + 1} of {len(stats)} in "
                         f"the epoch): loss {float(stats[bad]['loss'])}, gradient norm "
                         f"{float(stats[bad]['grad_norm'])}")
                if nonfinite == "stop" or not taken.any():
                    saved = ("" if checkpointer is None else f"; the last checkpoint, {last_checkpoint}, is kept as "
                             "it was" if last_checkpoint else "; no checkpoint was written")
                    if nonfinite == "stop":
                        what = (f"non-finite loss or gradients {where}; training stopped, and NonFiniteError.result "
                                f"holds the variables from before that step{saved}. Lower the learning rate, clip "
                                "the gradients (clip_norm), or skip such steps (nonfinite='skip', CLI "
                                "--skip-nonfinite)")
                    else:
                        what = (f"every step of epoch {epoch + 1} had a non-finite loss or gradients and was "
                                f"skipped (the first {where}); training stopped{saved}")
                    raise NonFiniteError(f"{owner}: {what}.", epoch=epoch + 1, step=global_step + bad + 1,
                                         result=TrainResult(current, history), checkpoint=last_checkpoint)
                skipped = [global_step + int(i) + 1 for i in np.flatnonzero(~taken)]
                warnings.warn(f"{owner}: skipped {len(skipped)} step(s) with non-finite loss or gradients in epoch "
                              f"{epoch + 1}: step(s) {skipped}; the first {where}", RuntimeWarning, stacklevel=2)
            global_step += len(stats)
            history.step_loss += [float(s["loss"]) for s in stats]
            history.step_grad_norm += [float(s["grad_norm"]) for s in stats]
            if taken.all():
                weights = np.asarray(sizes, np.float64) / n
            else:  # skipped steps: means over the steps taken
                weights = np.where(taken, np.asarray(sizes, np.float64), 0.0)
                weights /= weights.sum()
            history.loss.append(float(np.dot(weights, [s["loss"] if t else 0.0 for s, t in zip(stats, taken)])))
            history.grad_norm.append(float(np.mean([s["grad_norm"] for s, t in zip(stats, taken) if t])))
            if metric_fn is not None:
                history.train_metric.append(
                    float(np.dot(weights, [s["metric"] if t else 0.0 for s, t in zip(stats, taken)])))
            shown = {"loss": history.loss[-1]}
            if test_data is not None:
                result = _evaluate(model, current, x_test, y_test, loss_fn, metric_fn, eval_mode, owner)
                history.test_loss.append(result["loss"])
                shown["test_loss"] = result["loss"]
                if metric_fn is not None:
                    history.test_metric.append(result["metric"])
                    shown[f"test_{history.metric}"] = result["metric"]
            bar.update(0, **shown)
            if checkpointer is not None and ((epoch + 1) % checkpoint_every == 0 or epoch + 1 == epochs):
                last_checkpoint = str(checkpointer.save(_checkpoint.TrainState(
                    current, _inner_state(opt_state, nonfinite), epoch + 1, global_step, dict(rng.bit_generator.state),
                    history.to_dict(), _skip_counters(opt_state, nonfinite))))
    return TrainResult(current, history)


def _inner_state(opt_state, nonfinite: str):
    """The optimizer's own state (without ``apply_if_finite``'s wrapper): what a checkpoint holds."""
    return opt_state.inner_state if nonfinite == "skip" else opt_state


def _skip_counters(opt_state, nonfinite: str) -> dict | None:
    """``apply_if_finite``'s counters as JSON data (None for nonfinite='stop')."""
    if nonfinite != "skip":
        return None
    return {"notfinite_count": int(opt_state.notfinite_count), "last_finite": bool(opt_state.last_finite),
            "total_notfinite": int(opt_state.total_notfinite)}


def _outer_state(inner, nonfinite: str, counters: dict | None):
    """The optimizer state for ``nonfinite`` from a checkpoint's state and counters (reset to 0
    when the checkpoint was written with nonfinite='stop')."""
    if nonfinite != "skip":
        return inner
    counters = counters or {}
    return optax.ApplyIfFiniteState(
        notfinite_count=jnp.asarray(counters.get("notfinite_count", 0), jnp.int32),
        last_finite=jnp.asarray(counters.get("last_finite", True), jnp.bool_),
        total_notfinite=jnp.asarray(counters.get("total_notfinite", 0), jnp.int32),
        inner_state=inner,
    )


def _name(fn) -> str | None:
    if fn is None:
        return None
    return fn if isinstance(fn, str) else getattr(fn, "__name__", "metric")


def _check_model(model, variables, owner: str) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{owner}: `model` must be a flax.linen Module, got {type(model).__name__}")
    if not isinstance(variables, Mapping) or "params" not in variables:
        raise TypeError(f"{owner}: `variables` must be a mapping with a 'params' entry (from model.init)")


def _train_mode(model, train_kwargs, owner: str) -> tuple:
    """The training keywords as ``(name, value)`` items: ``train_kwargs``, or the model's own."""
    given = _inputs.check_mode("train_kwargs", train_kwargs, owner)
    return tuple(sorted(_inputs.detect_mode(model)[0].items())) if given is None else given


def _eval_mode(model, eval_kwargs, owner: str) -> tuple:
    """The evaluation keywords as ``(name, value)`` items: ``eval_kwargs``, or the model's own."""
    given = _inputs.check_mode("eval_kwargs", eval_kwargs, owner)
    return tuple(sorted(_inputs.detect_mode(model)[1].items())) if given is None else given


def _fingerprint(x, y) -> str:
    """The data's hash: x's leaves and y (x's structure too, unless x is one array, which hashes
    as before inputs could be pytrees)."""
    leaves, treedef = jax.tree.flatten(x)
    structure = None if isinstance(x, np.ndarray) else str(treedef)
    return _checkpoint.fingerprint(*leaves, y, structure=structure)


def _check_pair(name: str, pair, owner: str, mode: Mapping[str, Any] | None = None) -> tuple[Any, np.ndarray]:
    """``(x, y)`` with x's leaves and y as numpy arrays, or the error that names what is wrong."""
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise TypeError(f"{owner}: `{name}` must be a pair (x, y): the model's inputs and the targets, got "
                        f"{type(pair).__name__}" + (f" of length {len(pair)}" if isinstance(pair, (tuple, list))
                                                     else ""))
    y = _targets(name, pair[1], owner)
    if y.shape[0] == 0:
        raise ValueError(f"{owner}: `{name}` is empty (y has shape {y.shape})")
    x = _inputs.check_inputs(f"`{name}` x", pair[0], y.shape[0], owner, mode=mode, y_shape=y.shape)
    return x, y


def _targets(name: str, y, owner: str) -> np.ndarray:
    """The targets as a numpy array with a batch axis; ``name`` is ``train_data`` (for its y) or
    the argument's own name."""
    what = "`targets`" if name == "targets" else f"`{name}` y"
    try:
        y = np.asarray(_checks.array("y", y, owner))
    except TypeError as err:
        raise TypeError(str(err).replace("`y`", what, 1)) from None
    if y.ndim == 0:
        raise ValueError(f"{owner}: {what} needs a leading batch axis, got a scalar (shape ())")
    return y
