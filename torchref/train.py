"""The lesson's PyTorch training loop: Adam, optional ``clip_grad_norm_``, minibatches, evaluation.

The twin of ``jaxrnn.train``: the same batch order (``numpy.random.default_rng(seed)`` made once,
``rng.permutation(n)`` cut into batches at every epoch, the last batch smaller), the same losses
and the same history layout, so that runs of both frameworks on the same data and starting
weights can be compared number for number. Data comes in as numpy arrays; floating arrays are
cast to the model's dtype, integer (and bool) arrays become int64 tensors on the CPU (what
``nn.Embedding``, ``nn.CrossEntropyLoss`` and ``pack_padded_sequence``'s ``lengths`` take).

The inputs x may be several arrays with one leading (batch) axis, batched together and passed
as ``jaxrnn.train`` passes them: a plain ``tuple`` as positional arguments (``model(*xb)``, so a
``forward(ids, lengths)`` trains on ``(ids, lengths)``), a ``dict`` as keyword arguments
(``model(**xb)``), anything else (one array, a NamedTuple) as one argument. A NamedTuple's or a
dict's fields are converted and batched one by one; a list is one array. Never imports jaxrnn.
"""

import math

import numpy as np
import torch
import torch.nn as nn

__all__ = ["evaluate", "predict", "train"]


def _accuracy(out, y):
    # a Python float k / n: exact, so it compares with jaxrnn's to the last bit under float64
    return (out.argmax(dim=-1) == y).sum().item() / y.numel()


def _criterion(name):
    if name == "mse":
        return nn.MSELoss()
    if name == "cross_entropy":
        ce = nn.CrossEntropyLoss()
        # (batch, seq, C) logits: the loss over all batch * seq tokens at once
        return lambda out, y: ce(out.reshape(-1, out.shape[-1]), y.reshape(-1))
    raise ValueError(f"`loss` must be 'mse' or 'cross_entropy', got {name!r}")


def _metric(name):
    if name is None:
        return None
    if name == "accuracy":
        return _accuracy
    if name == "mse":
        return nn.MSELoss()
    raise ValueError(f"`metric` must be 'accuracy', 'mse' or None, got {name!r}")


def _tensor(array, dtype):
    t = torch.as_tensor(np.asarray(array))
    return t.to(dtype) if t.is_floating_point() else t.long()


def _map(fn, x):
    """``fn`` on every array of the inputs x: a tuple's (a NamedTuple's) items, a dict's values,
    nested; anything else (an array, a list) is one array."""
    if isinstance(x, dict):
        return {k: _map(fn, v) for k, v in x.items()}
    if isinstance(x, tuple):
        items = [_map(fn, v) for v in x]
        return type(x)(*items) if hasattr(x, "_fields") else tuple(items)
    return fn(x)


def _leaves(x):
    out = []
    _map(out.append, x)
    return out


def _call(model, x):
    """The model on the inputs x: a plain tuple as positional arguments, a dict as keywords."""
    if type(x) is tuple:
        return model(*x)
    if isinstance(x, dict):
        return model(**x)
    return model(x)


def predict(model, x):
    """``model(x)`` in eval mode without gradients, as a numpy array (x as in :func:`train`)."""
    dtype = next(model.parameters()).dtype
    model.eval()
    with torch.no_grad():
        return _call(model, _map(lambda a: _tensor(a, dtype), x)).numpy()


def evaluate(model, x, y, loss, metric=None):
    """``{'loss': float, 'metric': float}`` on a whole data set (metric NaN without one; x as in
    :func:`train`)."""
    dtype = next(model.parameters()).dtype
    model.eval()
    with torch.no_grad():
        out = _call(model, _map(lambda a: _tensor(a, dtype), x))
        y_t = _tensor(y, dtype)
        metric_fn = _metric(metric)
        return {
            "loss": _criterion(loss)(out, y_t).item(),
            "metric": float(metric_fn(out, y_t)) if metric_fn is not None else math.nan,
        }


def train(model, x, y, *, loss, epochs, batch_size, lr, clip_norm=None, optimizer="adam", seed=0,
          x_test=None, y_test=None, metric=None, progress=None):
    """Train ``model`` in place with ``torch.optim.Adam(lr=lr)`` (``optimizer='sgd'``:
    ``torch.optim.SGD(lr=lr)``) and, when ``clip_norm`` is given,
    ``torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=clip_norm)`` before every step.

    Args:
      model: a torch module (its dtype decides the dtype of the data).
      x, y: training inputs and targets with the same first dimension: y a numpy array, x one
        array, a tuple of arrays (``model(*xb)``), a dict of arrays (``model(**xb)``) or a NamedTuple.
      loss: 'mse' (``nn.MSELoss``) or 'cross_entropy' (``nn.CrossEntropyLoss`` over all tokens).
      epochs, batch_size, lr, clip_norm, seed: as ``jaxrnn.train``.
      x_test, y_test: optional test set, evaluated after every epoch.
      metric: 'accuracy', 'mse' or None.
      progress: optional object with ``update(n=1, **postfix)`` (jaxrnn's progress bar fits),
        told after every step and, with the epoch's numbers and n=0, after every epoch.

    Returns:
      The history as a dict of lists: loss, grad_norm (before clipping), train_metric,
      test_loss, test_metric (per epoch), step_loss, step_grad_norm (per step), metric (the name).
    """
    dtype = next(model.parameters()).dtype
    x_all, y_all = _map(lambda a: _tensor(a, dtype), x), _tensor(y, dtype)
    n = len(y_all)
    for t in _leaves(x_all):
        if t.dim() == 0 or len(t) != n:
            raise ValueError(f"every input needs y's {n} examples on its first axis, got shape {tuple(t.shape)}")
    criterion = _criterion(loss)
    metric_fn = _metric(metric)
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr)
    else:
        raise ValueError(f"`optimizer` must be 'adam' or 'sgd', got {optimizer!r}")
    max_norm = float("inf") if clip_norm is None else clip_norm
    history = {k: [] for k in ("loss", "grad_norm", "train_metric", "test_loss", "test_metric",
                               "step_loss", "step_grad_norm")}
    history["metric"] = metric
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        model.train()
        order = rng.permutation(n)
        losses, norms, metrics, sizes = [], [], [], []
        for start in range(0, n, batch_size):
            idx = torch.as_tensor(order[start:start + batch_size])
            xb, yb = _map(lambda t, idx=idx: t[idx], x_all), y_all[idx]
            opt.zero_grad()
            out = _call(model, xb)
            batch_loss = criterion(out, yb)
            batch_loss.backward()
            # with max_norm=inf this only measures the norm (the scale is clamped to 1)
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=max_norm)
            opt.step()
            losses.append(batch_loss.item())
            norms.append(norm.item())
            if metric_fn is not None:
                metrics.append(float(metric_fn(out.detach(), yb)))
            sizes.append(len(idx))
            if progress is not None:
                progress.update()
        weights = np.asarray(sizes, np.float64) / n
        history["step_loss"] += losses
        history["step_grad_norm"] += norms
        history["loss"].append(float(np.dot(weights, losses)))
        history["grad_norm"].append(float(np.mean(norms)))
        if metric_fn is not None:
            history["train_metric"].append(float(np.dot(weights, metrics)))
        shown = {"loss": history["loss"][-1]}
        if x_test is not None:
            result = evaluate(model, x_test, y_test, loss, metric)
            history["test_loss"].append(result["loss"])
            shown["test_loss"] = result["loss"]
            if metric_fn is not None:
                history["test_metric"].append(result["metric"])
                shown[f"test_{metric}"] = result["metric"]
        if progress is not None:
            progress.update(0, **shown)
    return history
