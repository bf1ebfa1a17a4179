"""Training with optax: a jitted step on Adam with torch-exact gradient clipping, minibatches
in a seeded order, evaluation every epoch, a history and a progress bar.

The loop is the lesson's PyTorch loop, step for step (``torchref.train`` is its twin):
zero grads, forward, loss, backward, ``clip_grad_norm_``, ``optimizer.step()``. Given the same
weights, data and seed, both frameworks take the same steps.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import data as _data
from ._progress import ProgressBar

Array = jax.Array
LossFn = Callable[[Array, Array], Array]

__all__ = [
    "History",
    "TrainResult",
    "accuracy",
    "clip_grad_norm",
    "cross_entropy_loss",
    "evaluate",
    "global_norm",
    "make_optimizer",
    "make_train_step",
    "mse_loss",
    "predict",
    "train",
]

TORCH_CLIP_EPS = 1e-6
"""``torch.nn.utils.clip_grad_norm_`` scales by ``max_norm / (total_norm + 1e-6)``."""


def mse_loss(pred: Array, target: Array) -> Array:
    """Mean squared error over every entry, as ``torch.nn.MSELoss()``.

    pred and target must have the same shape up to axes of size 1: the lesson's SinPredictor
    ``squeeze()``-s a batch of one to a scalar, and the loss of that scalar against a target of
    shape (1,) is what torch computes. Any other broadcast (torch would warn and broadcast) is
    refused, since it is almost always a bug: (batch, 1) against (batch,) would give a
    (batch, batch) matrix of differences.

    >>> import jax.numpy as jnp
    >>> float(mse_loss(jnp.array([1.0, 2.0]), jnp.array([0.0, 4.0])))
    2.5
    """
    if pred.shape != target.shape:
        squeezed = tuple(d for d in pred.shape if d != 1), tuple(d for d in target.shape if d != 1)
        if squeezed[0] != squeezed[1]:
            raise ValueError(
                f"mse_loss: `pred` and `target` must have the same shape (up to size-1 axes), "
                f"got {pred.shape} and {target.shape}"
            )
        pred = jnp.reshape(pred, target.shape)
    return jnp.mean(jnp.square(pred - target.astype(pred.dtype)))


def cross_entropy_loss(logits: Array, labels: Array) -> Array:
    """Mean cross-entropy of integer labels, as ``torch.nn.CrossEntropyLoss()``.

    logits (..., num_classes) and labels (...) with ids in [0, num_classes): the mean over every
    leading position, so a (batch, seq, C) output is averaged over all batch * seq tokens (torch's
    loss on the logits reshaped to (batch * seq, C)).

    >>> import jax.numpy as jnp
    >>> round(float(cross_entropy_loss(jnp.zeros((2, 4)), jnp.array([0, 3]))), 6)  # log(4)
    1.386294
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(
            f"cross_entropy_loss: `labels` must have the shape of `logits` without its last (class) axis, "
            f"got logits {logits.shape} and labels {labels.shape}"
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"cross_entropy_loss: `labels` must be integer class ids, got dtype {labels.dtype}")
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def accuracy(logits: Array, labels: Array) -> Array:
    """The fraction of positions where ``argmax(logits, -1) == labels`` (logits (..., C), labels (...)).

    >>> import jax.numpy as jnp
    >>> float(accuracy(jnp.array([[0.1, 0.9], [0.8, 0.2]]), jnp.array([1, 1])))
    0.5
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"accuracy: expected labels of shape {logits.shape[:-1]}, got {labels.shape}")
    # float64 when x64 is on (k / n exactly, as torch's .sum() / numel), float32 otherwise
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels, dtype=jax.dtypes.canonicalize_dtype(jnp.float64))


_LOSSES: dict[str, LossFn] = {"mse": mse_loss, "cross_entropy": cross_entropy_loss}
_METRICS: dict[str, LossFn] = {"mse": mse_loss, "accuracy": accuracy}


def global_norm(tree) -> Array:
    """The L2 norm of all leaves together, ``sqrt(sum_leaf sum(leaf**2))``: the value that
    ``torch.nn.utils.clip_grad_norm_`` returns (its ``total_norm``) for the same gradients.

    >>> import jax.numpy as jnp
    >>> float(global_norm({"a": jnp.array([3.0]), "b": jnp.array([[4.0]])}))
    5.0
    """
    return optax.tree.norm(tree)


def clip_grad_norm(max_norm: float, eps: float = TORCH_CLIP_EPS) -> optax.GradientTransformation:
    r"""Clip by global norm exactly as ``torch.nn.utils.clip_grad_norm_(params, max_norm)``.

    .. math::
        g \leftarrow g \cdot \min\left(1, \frac{\text{max\_norm}}{\lVert g \rVert + \epsilon}\right),
        \quad \epsilon = 10^{-6}

    ``optax.clip_by_global_norm`` computes ``g / ||g|| * max_norm`` (no epsilon) and only above
    ``max_norm``; the two differ by a relative ``eps / ||g||`` (1e-8 for a norm of 100), which is
    far above float64 rounding, so parity with torch needs torch's formula. With ``eps=0.0`` this
    is optax's result up to rounding.

    >>> import jax.numpy as jnp
    >>> clip = clip_grad_norm(1.0)
    >>> g = {"w": jnp.array([3.0, 4.0])}
    >>> clipped, _ = clip.update(g, clip.init(g))
    >>> round(float(global_norm(clipped)), 6)
    1.0
    """
    max_norm = _positive_number("max_norm", max_norm, "clip_grad_norm")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or eps < 0:
        raise ValueError(f"clip_grad_norm: `eps` must be a non-negative number, got {eps!r}")

    def update(updates, state, params=None):
        del params
        norm = global_norm(updates)
        coef = jnp.minimum(max_norm / (norm + eps), 1.0)
        return jax.tree.map(lambda g: g * coef.astype(g.dtype), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(
    learning_rate: float, clip_norm: float | None = None, optimizer: str = "adam"
) -> optax.GradientTransformation:
    """``torch.optim.Adam(lr=learning_rate)`` (or ``torch.optim.SGD``) preceded, when ``clip_norm``
    is given, by ``clip_grad_norm_(max_norm=clip_norm)``:
    ``optax.chain(clip_grad_norm(clip_norm), optax.adam(learning_rate))``.

    Args:
      learning_rate: the step size.
      clip_norm: the ``max_norm`` of the clipping, or None for no clipping.
      optimizer: ``'adam'``, with torch's defaults (betas (0.9, 0.999), eps 1e-8, which are
        optax's), or ``'sgd'``, plain gradient descent ``p <- p - lr * g`` (torch's SGD without
        momentum).
    """
    learning_rate = _positive_number("learning_rate", learning_rate, "make_optimizer")
    if optimizer == "adam":
        base = optax.adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8)
    elif optimizer == "sgd":
        base = optax.sgd(learning_rate)
    else:
        raise ValueError(f"make_optimizer: `optimizer` must be 'adam' or 'sgd', got {optimizer!r}")
    if clip_norm is None:
        return base
    return optax.chain(clip_grad_norm(_positive_number("clip_norm", clip_norm, "make_optimizer")), base)


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


def make_train_step(
    model: nn.Module,
    loss: str | LossFn,
    optimizer: optax.GradientTransformation,
    metric: str | LossFn | None = None,
):
    """A jitted ``step(variables, opt_state, x, y) -> (variables, opt_state, stats)``.

    One step of the lesson's loop: forward ``model.apply(variables, x)``, the loss against y, its
    gradient with respect to ``variables['params']``, the optimizer update. ``stats`` holds scalars:
    ``loss``, ``grad_norm`` (the global norm before clipping, what ``clip_grad_norm_`` returns) and
    ``metric`` (NaN without a metric), all for the batch before the update.
    """
    loss_fn = _resolve("loss", loss, _LOSSES)
    metric_fn = None if metric is None else _resolve("metric", metric, _METRICS)

    def step(variables, opt_state, x, y):
        def objective(params):
            pred = model.apply({**variables, "params": params}, x)
            return loss_fn(pred, y), pred

        (value, pred), grads = jax.value_and_grad(objective, has_aux=True)(variables["params"])
        norm = global_norm(grads)
        updates, opt_state = optimizer.update(grads, opt_state, variables["params"])
        params = optax.apply_updates(variables["params"], updates)
        batch_metric = metric_fn(pred, y) if metric_fn is not None else jnp.full((), jnp.nan)
        stats = {"loss": value, "grad_norm": norm, "metric": batch_metric}
        return {**variables, "params": params}, opt_state, stats

    return jax.jit(step)


def predict(model: nn.Module, variables: Mapping, inputs) -> np.ndarray:
    """``model.apply(variables, inputs)`` under jit, as a numpy array."""
    return np.asarray(_jitted_apply(model)(dict(variables), jnp.asarray(inputs)))


def evaluate(
    model: nn.Module, variables: Mapping, inputs, targets, *, loss: str | LossFn, metric: str | LossFn | None = None
) -> dict[str, float]:
    """The loss (and metric) of the model on a whole data set, in one batch:
    ``{'loss': float, 'metric': float}`` (``metric`` is NaN without one)."""
    loss_fn = _resolve("loss", loss, _LOSSES)
    metric_fn = None if metric is None else _resolve("metric", metric, _METRICS)
    pred = _jitted_apply(model)(dict(variables), jnp.asarray(inputs))
    targets = jnp.asarray(targets)
    return {
        "loss": float(loss_fn(pred, targets)),
        "metric": float(metric_fn(pred, targets)) if metric_fn is not None else math.nan,
    }


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
) -> TrainResult:
    """Train ``model`` from ``variables`` with Adam (and clipping), as the lesson's PyTorch loop does.

    Every epoch visits the training set in minibatches in the order of
    ``jaxrnn.data.epoch_batches(n, batch_size, rng)`` with ``rng = numpy.random.default_rng(seed)``
    made once (``torchref.train`` uses the same order), takes one optimizer step per batch, then
    evaluates on ``test_data``.

    Args:
      model: a Flax module called as ``model.apply(variables, x)``.
      variables: its starting variables, ``{'params': ...}`` (plus any other collections, kept as is).
      train_data: ``(x, y)`` arrays with the same first (batch) dimension n.
      loss: ``'mse'`` (:func:`mse_loss`), ``'cross_entropy'`` (:func:`cross_entropy_loss`) or a
        function ``loss(prediction, y) -> scalar``.
      epochs: the number of passes over the training set.
      batch_size: examples per step; the last batch of an epoch is smaller when it does not divide n.
      learning_rate: Adam's step size.
      clip_norm: when given, gradients are clipped by global norm first, exactly as
        ``torch.nn.utils.clip_grad_norm_(params, clip_norm)`` (:func:`clip_grad_norm`).
      optimizer: ``'adam'`` (default) or ``'sgd'`` (see :func:`make_optimizer`).
      seed: seeds the batch order.
      test_data: optional ``(x, y)`` evaluated after every epoch.
      metric: ``'accuracy'``, ``'mse'``, a function ``metric(prediction, y) -> scalar``, or None.
      progress: show a progress bar on stderr.
      desc: the progress bar's label.

    Returns:
      :class:`TrainResult` ``(variables, history)``.

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
    if not isinstance(model, nn.Module):
        raise TypeError(f"{owner}: `model` must be a flax.linen Module, got {type(model).__name__}")
    if not isinstance(variables, Mapping) or "params" not in variables:
        raise TypeError(f"{owner}: `variables` must be a mapping with a 'params' entry (from model.init)")
    x, y = _check_pair("train_data", train_data, owner)
    if test_data is not None:
        x_test, y_test = _check_pair("test_data", test_data, owner)
    epochs = _positive_int("epochs", epochs, owner)
    batch_size = _positive_int("batch_size", batch_size, owner)
    if isinstance(seed, bool) or not isinstance(seed, (numbers.Integral, np.integer)) or seed < 0:
        raise TypeError(f"{owner}: `seed` must be a non-negative int, got {seed!r}")
    loss_fn = _resolve("loss", loss, _LOSSES)
    metric_fn = None if metric is None else _resolve("metric", metric, _METRICS)
    tx, step = _cached_step(model, loss_fn, metric_fn, learning_rate, clip_norm, optimizer)

    variables = dict(variables)
    opt_state = tx.init(variables["params"])
    history = History(metric=_name(metric))
    n = x.shape[0]
    rng = np.random.default_rng(int(seed))
    steps_per_epoch = math.ceil(n / batch_size)
    with ProgressBar(epochs * steps_per_epoch, desc, enabled=progress) as bar:
        for _ in range(epochs):
            stats, sizes = [], []
            for idx in _data.epoch_batches(n, batch_size, rng):
                variables, opt_state, batch_stats = step(variables, opt_state, x[idx], y[idx])
                stats.append(batch_stats)
                sizes.append(len(idx))
                bar.update()
            stats = jax.device_get(stats)
            weights = np.asarray(sizes, np.float64) / n
            history.step_loss += [float(s["loss"]) for s in stats]
            history.step_grad_norm += [float(s["grad_norm"]) for s in stats]
            history.loss.append(float(np.dot(weights, [s["loss"] for s in stats])))
            history.grad_norm.append(float(np.mean([s["grad_norm"] for s in stats])))
            if metric_fn is not None:
                history.train_metric.append(float(np.dot(weights, [s["metric"] for s in stats])))
            shown = {"loss": history.loss[-1]}
            if test_data is not None:
                result = evaluate(model, variables, x_test, y_test, loss=loss_fn, metric=metric_fn)
                history.test_loss.append(result["loss"])
                shown["test_loss"] = result["loss"]
                if metric_fn is not None:
                    history.test_metric.append(result["metric"])
                    shown[f"test_{history.metric}"] = result["metric"]
            bar.update(0, **shown)
    return TrainResult(variables, history)


@functools.lru_cache(maxsize=64)
def _cached_step(model, loss_fn, metric_fn, learning_rate, clip_norm, optimizer):
    """The optimizer and its jitted step, shared by train() calls with the same configuration
    (Flax modules compare and hash by their fields), so repeated runs compile once."""
    tx = make_optimizer(learning_rate, clip_norm, optimizer)
    return tx, make_train_step(model, loss_fn, tx, metric_fn)


@functools.lru_cache(maxsize=64)
def _jitted_apply(model: nn.Module) -> Callable:
    """One jitted ``model.apply`` per module configuration."""
    return jax.jit(model.apply)


def _name(fn) -> str | None:
    if fn is None:
        return None
    return fn if isinstance(fn, str) else getattr(fn, "__name__", "metric")


def _resolve(name: str, value, table: dict[str, LossFn]) -> LossFn:
    if isinstance(value, str):
        if value not in table:
            raise ValueError(f"`{name}` must be one of {sorted(table)} or a function, got {value!r}")
        return table[value]
    if not callable(value):
        raise TypeError(f"`{name}` must be one of {sorted(table)} or a function, got {type(value).__name__}")
    return value


def _positive_int(name: str, value, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{owner}: `{name}` must be a positive int, got {value!r} ({type(value).__name__})")
    if value <= 0:
        raise ValueError(f"{owner}: `{name}` must be a positive int, got {value}")
    return int(value)


def _positive_number(name: str, value, owner: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: `{name}` must be a positive number, got {value!r} ({type(value).__name__})")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{owner}: `{name}` must be a positive finite number, got {value}")
    return float(value)


def _check_pair(name: str, pair, owner: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise TypeError(f"{owner}: `{name}` must be a pair (x, y) of arrays, got {type(pair).__name__}")
    x, y = (np.asarray(a) for a in pair)
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(f"{owner}: `{name}` arrays need a batch dimension, got shapes {x.shape} and {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{owner}: `{name}` x and y must have the same number of examples, got {x.shape[0]} and {y.shape[0]}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{owner}: `{name}` is empty")
    return x, y
