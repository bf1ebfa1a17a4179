"""Losses and metrics as ``torch.nn`` computes them, and the names ``train`` accepts for them."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

Array = jax.Array
LossFn = Callable[[Array, Array], Array]

__all__ = ["LOSSES", "METRICS", "LossFn", "accuracy", "cross_entropy_loss", "mse_loss", "resolve"]


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


LOSSES: dict[str, LossFn] = {"mse": mse_loss, "cross_entropy": cross_entropy_loss}
"""The losses ``train(loss=...)`` knows by name."""
METRICS: dict[str, LossFn] = {"mse": mse_loss, "accuracy": accuracy}
"""The metrics ``train(metric=...)`` knows by name."""


def resolve(name: str, value, table: dict[str, LossFn]) -> LossFn:
    """``table[value]`` for a name, ``value`` itself for a function; the argument ``name`` is
    named in the error otherwise."""
    if isinstance(value, str):
        if value not in table:
            raise ValueError(f"`{name}` must be one of {sorted(table)} or a function, got {value!r}")
        return table[value]
    if not callable(value):
        raise TypeError(f"`{name}` must be one of {sorted(table)} or a function, got {type(value).__name__}")
    return value
