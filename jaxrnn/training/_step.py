"""One optimizer step, jitted: forward, loss, gradient, update, in the order of the lesson's
PyTorch loop (``loss.backward()``, ``clip_grad_norm_``, ``optimizer.step()``).

Both run the model in training mode with its inputs as ``train`` passes them (``_inputs``).
:func:`make_train_step` is the public step; :func:`train_step` is the one ``train`` runs, which
adds what the loop needs: the dropout key of each step, a finiteness flag, a guard that leaves
the state alone after a non-finite step, a mask for padded batches and replicated outputs over a
device mesh.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import flax.errors
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from ..functional import _checks
from . import _inputs, _sharding
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
    *,
    train_kwargs: Mapping[str, Any] | None = None,
):
    """A jitted ``step(variables, opt_state, x, y, key=None) -> (variables, opt_state, stats)``.

    One step of the lesson's loop: forward in training mode (as torch's ``model.train()``), the
    loss against y, its gradient with respect to ``variables['params']``, the optimizer update.
    ``stats`` holds scalars: ``loss``, ``grad_norm`` (the global norm before clipping, what
    ``clip_grad_norm_`` returns) and ``metric`` (NaN without a metric), all for the batch before
    the update.

    The forward is ``model.apply(variables, *args, **kwargs, **train_kwargs, rngs={'dropout': key})``:
    x is the model's inputs, any pytree of arrays with y's leading batch axis, passed as ``train``
    passes them (a tuple as positional arguments, a dict as keyword arguments, anything else as one
    argument); ``train_kwargs`` defaults to the training mode read from the model's signature
    (``{'deterministic': False}``, ``{'train': True}`` or nothing; see ``train``). ``key`` is the
    step's ``'dropout'`` rng; ``train`` gives step k (from 0) ``jax.random.fold_in(jax.random.key(seed),
    k)``. Without a key no rngs are passed, and a model that draws dropout in training mode raises a
    ValueError asking for ``key=``.

    >>> import jax, numpy as np
    >>> from jaxrnn import make_optimizer, make_train_step
    >>> from jaxrnn.models import SinPredictor
    >>> model, tx = SinPredictor(), make_optimizer(1e-2)
    >>> x, y = np.linspace(0, 1, 24).reshape(4, 6, 1), np.arange(4.0)
    >>> variables = model.init(jax.random.key(0), x)
    >>> step = make_train_step(model, "mse", tx)
    >>> variables, opt_state, stats = step(variables, tx.init(variables["params"]), x, y)
    >>> sorted(stats), bool(stats["loss"] > 0)
    (['grad_norm', 'loss', 'metric'], True)
    """
    owner = "make_train_step"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{owner}: `model` must be a flax.linen Module, got {type(model).__name__}")
    if not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
        raise TypeError(f"{owner}: `optimizer` must be an optax GradientTransformation (make_optimizer(...)), got "
                        f"{type(optimizer).__name__}")
    loss_fn = resolve("loss", loss, LOSSES)
    metric_fn = None if metric is None else resolve("metric", metric, METRICS)
    given = _inputs.check_mode("train_kwargs", train_kwargs, owner)
    mode = _inputs.detect_mode(model)[0] if given is None else dict(given)

    def step(variables, opt_state, x, y, key):
        rngs = None if key is None else {"dropout": key}

        def objective(params):
            pred = _inputs.apply_model(model, {**variables, "params": params}, x, mode, rngs)
            return loss_fn(pred, y), pred

        (value, pred), grads = jax.value_and_grad(objective, has_aux=True)(variables["params"])
        norm = global_norm(grads)
        updates, opt_state = optimizer.update(grads, opt_state, variables["params"])
        params = optax.apply_updates(variables["params"], updates)
        batch_metric = metric_fn(pred, y) if metric_fn is not None else jnp.full((), jnp.nan)
        stats = {"loss": value, "grad_norm": norm, "metric": batch_metric}
        return {**variables, "params": params}, opt_state, stats

    jitted = jax.jit(step)
    caller = f"{owner}'s step"

    def checked_step(variables, opt_state, x, y, key=None):
        y = _checks.array("y", y, caller)
        if np.ndim(y) == 0:
            raise ValueError(f"{caller}: `y` needs a leading batch axis, got a scalar (shape ())")
        x = _inputs.check_inputs("x", x, int(np.shape(y)[0]), caller, mode=mode, to_numpy=False, y_shape=np.shape(y))
        if key is not None and not isinstance(key, (jax.Array, jax.core.Tracer)):
            raise TypeError(f"{caller}: `key` must be a jax.random.key (the step's 'dropout' rng) or None, got "
                            f"{type(key).__name__}")
        try:
            return jitted(variables, opt_state, x, y, key)
        except flax.errors.InvalidRngError as err:
            if key is not None:
                raise
            raise ValueError(
                f"{caller}: the model draws random numbers in training mode (called with {mode or 'no mode keyword'}"
                f") but no `key` was given; pass the step's dropout rng, step(variables, opt_state, x, y, key=...), "
                f"e.g. key=jax.random.fold_in(jax.random.key(seed), k) for step k, as train does ({err})") from err

    return checked_step


def _all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def masked_mean(fn: LossFn, pred: jax.Array, y: jax.Array, mask: jax.Array) -> jax.Array:
    """The mean of ``fn`` over the examples where ``mask`` is True: ``fn`` on each example alone,
    then averaged (equal to ``fn`` on the real examples when ``fn`` is a mean over examples)."""
    per_example = jax.vmap(lambda p, t: fn(p[None], t[None]))(pred, y)
    return jnp.sum(jnp.where(mask, per_example, 0)) / jnp.sum(mask).astype(per_example.dtype)


def train_step(model: nn.Module, loss_fn: LossFn, metric_fn: LossFn | None, tx: optax.GradientTransformation,
               *, guard: bool, mesh=None, mode: tuple = ()):
    """The jitted ``step(variables, opt_state, halted, x, y, mask, key, counter) -> (variables,
    opt_state, halted, stats)`` of ``train``: :func:`make_train_step`'s step with the model called
    with the keywords ``mode`` (``(name, value)`` items) and the dropout rng
    ``jax.random.fold_in(jax.random.wrap_key_data(key), counter)`` (``key``: the uint32 data of
    ``jax.random.key(seed)``, an array that replicates as the parameters do; ``counter``: the
    step's number from 0 over the run), plus

    - ``stats['finite']``: whether the loss and every gradient entry are finite;
    - ``guard``: a non-finite step, and every step after it while ``halted``, leaves the variables
      and the optimizer state as they were (``halted`` turns True);
    - ``mask`` (bool (batch,) or None): the loss and metric are means over the masked-in examples;
    - ``mesh``: outputs replicated over the mesh (inputs come sharded).
    """

    keywords = dict(mode)

    def step(variables, opt_state, halted, x, y, mask, key, counter):
        rngs = {"dropout": jax.random.fold_in(jax.random.wrap_key_data(key), counter)}

        def objective(params):
            pred = _inputs.apply_model(model, {**variables, "params": params}, x, keywords, rngs)
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
def cached_train_step(model, loss_fn, metric_fn, learning_rate, clip_norm, optimizer, nonfinite="stop", devices=1,
                      mode=()):
    """The optimizer and its jitted :func:`train_step`, shared by ``train`` calls with the same
    configuration (Flax modules compare and hash by their fields), so repeated runs compile once.
    With ``nonfinite='skip'`` the optimizer is wrapped in ``optax.apply_if_finite``. ``mode``: the
    training keywords as ``(name, value)`` items."""
    tx = make_optimizer(learning_rate, clip_norm, optimizer)
    if nonfinite == "skip":
        tx = optax.apply_if_finite(tx, max_consecutive_errors=_NEVER)
    mesh = _sharding.make_mesh(devices) if devices > 1 else None
    return tx, train_step(model, loss_fn, metric_fn, tx, guard=nonfinite == "stop", mesh=mesh, mode=mode)


@functools.lru_cache(maxsize=64)
def jitted_apply(model: nn.Module, mode: tuple = ()) -> Callable:
    """One jitted ``apply(variables, inputs)`` per module configuration and mode (``(name, value)``
    items): :func:`jaxrnn.training._inputs.apply_model` without rngs."""
    return jax.jit(lambda variables, inputs: _inputs.apply_model(model, variables, inputs, dict(mode)))
