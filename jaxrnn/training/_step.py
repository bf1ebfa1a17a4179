"""One optimizer step, jitted: forward, loss, gradient, update, in the order of the lesson's
PyTorch loop (``loss.backward()``, ``clip_grad_norm_``, ``optimizer.step()``).

:func:`make_train_step` is the public step; :func:`train_step` is the one ``train`` runs, which
adds what the loop needs: a finiteness flag, a guard that leaves the state alone after a
non-finite step, a mask for padded batches and replicated outputs over a device mesh.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from . import _sharding
from ._losses import LOSSES, METRICS, LossFn, resolve
from ._optim import global_norm, make_optimizer

__all__ = ["cached_train_step", "jitted_apply", "make_train_step", "masked_mean", "train_step"]

_NEVER = int(np.iinfo(np.int32).max)
"""``apply_if_finite``'s ``max_consecutive_errors`` for nonfinite='skip': never apply a non-finite update."""


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
    loss_fn = resolve("loss", loss, LOSSES)
    metric_fn = None if metric is None else resolve("metric", metric, METRICS)

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


def _all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def masked_mean(fn: LossFn, pred: jax.Array, y: jax.Array, mask: jax.Array) -> jax.Array:
    """The mean of ``fn`` over the examples where ``mask`` is True: ``fn`` on each example alone,
    then averaged (equal to ``fn`` on the real examples when ``fn`` is a mean over examples)."""
    per_example = jax.vmap(lambda p, t: fn(p[None], t[None]))(pred, y)
    return jnp.sum(jnp.where(mask, per_example, 0)) / jnp.sum(mask).astype(per_example.dtype)


def train_step(model: nn.Module, loss_fn: LossFn, metric_fn: LossFn | None, tx: optax.GradientTransformation,
               *, guard: bool, mesh=None):
    """The jitted ``step(variables, opt_state, halted, x, y, mask) -> (variables, opt_state, halted, stats)``
    of ``train``: :func:`make_train_step`'s step, plus

    - ``stats['finite']``: whether the loss and every gradient entry are finite;
    - ``guard``: a non-finite step, and every step after it while ``halted``, leaves the variables
      and the optimizer state as they were (``halted`` turns True);
    - ``mask`` (bool (batch,) or None): the loss and metric are means over the masked-in examples;
    - ``mesh``: outputs replicated over the mesh (inputs come sharded).
    """

    def step(variables, opt_state, halted, x, y, mask):
        def objective(params):
            pred = model.apply({**variables, "params": params}, x)
            value = loss_fn(pred, y) if mask is None else masked_mean(loss_fn, pred, y, mask)
            return value, pred

        (value, pred), grads = jax.value_and_grad(objective, has_aux=True)(variables["params"])
        norm = global_norm(grads)
        updates, new_opt_state = tx.update(grads, opt_state, variables["params"])
        new_variables = {**variables, "params": optax.apply_updates(variables["params"], updates)}
        if metric_fn is None:
            batch_metric = jnp.full((), jnp.nan)
        else:
            batch_metric = metric_fn(pred, y) if mask is None else masked_mean(metric_fn, pred, y, mask)
        finite = jnp.isfinite(value) & _all_finite(grads)
        if guard:
            take = finite & ~halted
            new_variables = jax.tree.map(lambda new, old: jnp.where(take, new, old), new_variables, variables)
            new_opt_state = jax.tree.map(lambda new, old: jnp.where(take, new, old), new_opt_state, opt_state)
            halted = halted | ~finite
        stats = {"loss": value, "grad_norm": norm, "metric": batch_metric, "finite": finite}
        return new_variables, new_opt_state, halted, stats

    if mesh is None:
        return jax.jit(step)
    return jax.jit(step, out_shardings=NamedSharding(mesh, PartitionSpec()))


@functools.lru_cache(maxsize=64)
def cached_train_step(model, loss_fn, metric_fn, learning_rate, clip_norm, optimizer, nonfinite="stop", devices=1):
    """The optimizer and its jitted :func:`train_step`, shared by ``train`` calls with the same
    configuration (Flax modules compare and hash by their fields), so repeated runs compile once.
    With ``nonfinite='skip'`` the optimizer is wrapped in ``optax.apply_if_finite``."""
    tx = make_optimizer(learning_rate, clip_norm, optimizer)
    if nonfinite == "skip":
        tx = optax.apply_if_finite(tx, max_consecutive_errors=_NEVER)
    mesh = _sharding.make_mesh(devices) if devices > 1 else None
    return tx, train_step(model, loss_fn, metric_fn, tx, guard=nonfinite == "stop", mesh=mesh)


@functools.lru_cache(maxsize=64)
def jitted_apply(model: nn.Module) -> Callable:
    """One jitted ``model.apply`` per module configuration."""
    return jax.jit(model.apply)
