r"""Gradient-flow diagnostics: how much each input step moves a loss taken at the end (section 5).

For a loss L computed from the last step of a sequence, the gradient that reaches input x(t) is
a product of one Jacobian per later step. For the lesson's RNN,
``h(t) = tanh(W_ih x(t) + b_ih + W_hh h(t-1) + b_hh)``:

.. math::
    \frac{\partial L}{\partial x(t)} = \frac{\partial L}{\partial h(T-1)}
    \prod_{s=T-1}^{t+1} \big(\mathrm{diag}(\tanh'(a(s)))\, W_{hh}\big)\,
    \mathrm{diag}(\tanh'(a(t)))\, W_{ih}

With ``|tanh'| <= 1`` and a spectral radius ρ(W_hh) < 1 the product shrinks geometrically with
the distance ``T - 1 - t`` from the end (vanishing gradients); with ρ(W_hh) > 1 it can grow
(exploding gradients). LSTM and GRU carry their state additively through gates
(``c(t) = σ(f) c(t-1) + ...``), so their products shrink more slowly.

:func:`gradient_flow` measures ``||dL/dx(t)||`` for every step t of any jaxrnn layer or model,
:func:`norm_ratio` reads how much of it is left ``d`` steps back, :func:`spectral_radius` and
:func:`with_spectral_radius` measure and set ρ(W_hh), and :func:`plot_gradient_flow` draws the
norms against the distance from the end (matplotlib, imported only there). The lesson's section-5
picture built from these lives in ``jaxrnn.lesson.section5``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from . import _figures
from .functional import LSTMState, _checks
from .linen._recurrent import _Recurrent

Array = jax.Array

__all__ = ["gradient_flow", "norm_ratio", "plot_gradient_flow", "spectral_radius", "with_spectral_radius"]


def _time_axis(model: nn.Module, x) -> int:
    """The time axis of x: a bare layer's own layout (batch_first or not, unbatched (T, I)); the
    lesson's models are batch-first (batch, T, ...)."""
    if isinstance(model, _Recurrent):
        return 1 if (x.ndim == 3 and model.batch_first) else 0
    return 1


def _default_loss(model: nn.Module, x: Array, output: Any) -> Array:
    """Sum of the last layer's final hidden state (a layer), or of the model's output at the last
    step (an output (batch, T, ...) aligned with x), or of its whole output."""
    if isinstance(model, _Recurrent):
        _, state = output
        h_n = state.h if isinstance(state, LSTMState) else state
        return jnp.sum(h_n[-model.num_directions :])
    if not isinstance(output, (jax.Array, np.ndarray)):
        raise TypeError(
            f"gradient_flow: the default loss needs the model to return one array, got "
            f"{type(output).__name__}; pass `loss_fn(output) -> scalar`"
        )
    if output.ndim == 3 and output.shape[:2] == x.shape[:2]:
        return jnp.sum(output[:, -1])
    return jnp.sum(output)


def gradient_flow(
    model: nn.Module, variables: Mapping, x, loss_fn: Callable[..., Array] | None = None
) -> np.ndarray:
    r"""The norm of the gradient of a final loss with respect to each time step's input.

    .. math::
        g(t) = \Big\lVert \frac{\partial L}{\partial x(t)} \Big\rVert
        = \sqrt{\sum_{b} \sum_{f} \Big(\frac{\partial L}{\partial x_{b,t,f}}\Big)^2}

    the norm over the batch and feature axes of the step-t slice of ``dL/dx``. The default L sums
    over the batch, so each row's gradient is that sequence's own and ``g(t)^2`` is the sum of the
    per-sequence squared norms.

    Args:
      model: a jaxrnn ``RNN``, ``LSTM`` or ``GRU`` layer, or a model called as
        ``model.apply(variables, x)`` (the lesson's models in ``jaxrnn.models``).
      variables: the model's variables, ``{'params': ...}``.
      x: floating inputs. For a layer, in the layer's own layout: (batch, time, input_size) with
        ``batch_first``, else (time, batch, input_size), or unbatched (time, input_size). For any
        other model, batch-first: (batch, time, ...), as the lesson's models take it.
      loss_fn: ``loss_fn(output) -> scalar`` on what ``model.apply(variables, x)`` returns. The
        default is the sum of the output at the last step: for a layer, the sum of the last
        layer's final hidden state ``h_n[-D:]`` (h of an LSTM; both directions of a bidirectional
        layer, the backward one ending at step 0); for a model returning (batch, time, ...) (a
        per-step output aligned with x), the sum of its last step ``output[:, -1]``; for any other
        array output (batch, ...), the sum of the whole output.

    Returns:
      numpy array (time,) in x's dtype: ``g(t)`` for t = 0 .. T-1; the distance from the end is
      ``T - 1 - t`` (``g[::-1][d]`` is the norm at distance d).

    >>> import jax, numpy as np
    >>> from jaxrnn import RNN
    >>> rnn = RNN(input_size=3, hidden_size=8, batch_first=True)
    >>> x = np.random.default_rng(0).standard_normal((4, 20, 3)).astype(np.float32)
    >>> g = gradient_flow(rnn, rnn.init(jax.random.key(0), x), x)
    >>> g.shape, bool(g[0] < 1e-3 * g[-1])  # 19 steps back the gradient has vanished
    ((20,), True)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"gradient_flow: `model` must be a flax.linen Module, got {type(model).__name__}")
    if not isinstance(variables, Mapping) or "params" not in variables:
        raise TypeError("gradient_flow: `variables` must be a mapping with a 'params' entry (from model.init)")
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"gradient_flow: `x` must be an array, got {type(x).__name__}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"gradient_flow: `x` must have a floating dtype (the gradient is taken with respect to it), got "
            f"{x.dtype}; for token ids, take the gradient with respect to the embedded inputs"
        )
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"gradient_flow: `loss_fn` must be a function output -> scalar, got {type(loss_fn).__name__}")
    axis = _time_axis(model, x)
    if x.ndim < axis + 2:
        raise ValueError(
            f"gradient_flow: `x` must be (batch, time, features) for {type(model).__name__}, "
            f"got shape {tuple(x.shape)}"
        )
    norms = _step_norms(model, loss_fn, axis)(dict(variables), jnp.asarray(x))
    return np.asarray(norms)


@functools.lru_cache(maxsize=32)
def _step_norms(model: nn.Module, loss_fn, axis: int) -> Callable:
    """The jitted ``(variables, x) -> g`` for one module configuration and loss (Flax modules hash
    by their fields), so curves that differ only in weights or inputs compile once."""

    def loss(variables, x):
        output = model.apply(variables, x)
        value = _default_loss(model, x, output) if loss_fn is None else loss_fn(output)
        if jnp.shape(value) != ():
            raise ValueError(f"gradient_flow: `loss_fn` must return a scalar, got shape {jnp.shape(value)}")
        return value

    def norms(variables, x):
        grad = jax.grad(loss, argnums=1)(variables, x)
        others = tuple(a for a in range(grad.ndim) if a != axis)
        return jnp.sqrt(jnp.sum(jnp.square(grad), axis=others))

    return jax.jit(norms)


def spectral_radius(matrix) -> float:
    """``max |λ|`` over the eigenvalues λ of a square matrix.

    >>> spectral_radius(np.array([[0.0, 2.0], [0.5, 0.0]]))
    1.0
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"spectral_radius: `matrix` must be square 2D, got shape {matrix.shape}")
    return float(np.max(np.abs(np.linalg.eigvals(matrix.astype(np.float64)))))


def with_spectral_radius(variables: Mapping, radius: float) -> dict:
    """A copy of ``variables`` with every square ``weight_hh`` rescaled to spectral radius ``radius``.

    ``W_hh <- W_hh * radius / ρ(W_hh)``: the eigenvectors stay, every eigenvalue's modulus scales
    by the same factor (the result keeps the weight's dtype: float32 weights reach ``radius`` to
    float32 rounding). Square ``weight_hh`` are those of RNN layers (H, H); the stacked gate
    weights of LSTM (4H, H) and GRU (3H, H) are left alone, and a tree without any square
    ``weight_hh`` is refused.

    >>> import jax
    >>> from jaxrnn import RNN
    >>> rnn = RNN(input_size=2, hidden_size=6, num_layers=2)
    >>> scaled = with_spectral_radius(rnn.init(jax.random.key(0), np.zeros((3, 1, 2), np.float32)), 2.0)
    >>> [round(spectral_radius(scaled["params"][f"l{k}"]["weight_hh"]), 6) for k in range(2)]
    [2.0, 2.0]
    """
    radius = _checks.positive_number("radius", radius, "with_spectral_radius")
    if not isinstance(variables, Mapping):
        raise TypeError(f"with_spectral_radius: `variables` must be a mapping, got {type(variables).__name__}")
    found = []

    def scale(path, leaf):
        name = getattr(path[-1], "key", None) if path else None
        if name == "weight_hh" and leaf.ndim == 2 and leaf.shape[0] == leaf.shape[1]:
            found.append(path)
            return leaf * jnp.asarray(radius / spectral_radius(leaf), leaf.dtype)
        return leaf

    out = jax.tree_util.tree_map_with_path(scale, dict(variables))
    if not found:
        raise ValueError("with_spectral_radius: `variables` hold no square `weight_hh` (an RNN layer's (H, H))")
    return out


def plot_gradient_flow(
    runs: Mapping[str, Sequence[float] | np.ndarray],
    path: str | Path,
    *,
    title: str = "Gradient flow: ||dL/dx(t)|| against the distance from the end",
    mark: int | None = None,
    styles: Mapping[str, dict] | None = None,
) -> Path:
    """Draw each run's gradient norms (t = 0 .. T-1, as :func:`gradient_flow` gives them) against
    the distance from the end ``T - 1 - t``, on a log y axis, one labelled curve per run, and write
    a PNG to ``path``. Non-positive values (underflow to 0) are left out of the log axis. ``mark``
    draws a dotted vertical line at that distance; ``styles`` maps a label to matplotlib line
    keywords. Returns the path.
    """
    if not isinstance(runs, Mapping) or not runs:
        raise ValueError("plot_gradient_flow: `runs` must be a non-empty mapping label -> norms (time,)")
    plt = _figures.require_matplotlib()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for label, values in runs.items():
        norms = np.asarray(values, np.float64)
        if norms.ndim != 1:
            raise ValueError(f"plot_gradient_flow: runs[{label!r}] must be 1D (time,), got shape {norms.shape}")
        shown = np.where(norms > 0, norms, np.nan)[::-1]
        ax.plot(np.arange(len(shown)), shown, label=label, **(styles or {}).get(label, {}))
    if mark is not None:
        ax.axvline(mark, color="gray", linestyle=":", linewidth=1)
    ax.set_yscale("log")
    ax.set(title=title, xlabel="distance from the end, T - 1 - t (steps)", ylabel="||dL/dx(t)||")
    ax.grid(alpha=0.3, which="both")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # off the curves
    return _figures.save_figure(fig, path)


def norm_ratio(norms, distance: int) -> float:
    """``g(distance) / g(0)``: the gradient norm ``distance`` steps before the end over the norm at
    the last step (norms (time,) as :func:`gradient_flow` gives them).

    >>> norm_ratio(np.array([1e-6, 1e-3, 1.0]), 2)
    1e-06
    """
    norms = np.asarray(norms)
    _checks.integer("distance", distance, "norm_ratio")
    if not 0 <= distance < len(norms):
        raise ValueError(f"norm_ratio: `distance` must lie in [0, {len(norms) - 1}], got {distance}")
    return float(norms[-1 - distance] / norms[-1])
