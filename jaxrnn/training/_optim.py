"""The optimizer of the lesson's loop: ``torch.optim.Adam`` (or SGD) behind torch's
``clip_grad_norm_``, as optax transforms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from ..functional import _checks

__all__ = ["TORCH_CLIP_EPS", "clip_grad_norm", "global_norm", "make_optimizer"]

TORCH_CLIP_EPS = 1e-6
"""``torch.nn.utils.clip_grad_norm_`` scales by ``max_norm / (total_norm + 1e-6)``."""


def global_norm(tree) -> jax.Array:
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
    max_norm = _checks.positive_number("max_norm", max_norm, "clip_grad_norm")
    eps = _checks.non_negative_number("eps", eps, "clip_grad_norm")

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
    learning_rate = _checks.positive_number("learning_rate", learning_rate, "make_optimizer")
    _checks.one_of("optimizer", optimizer, ("adam", "sgd"), "make_optimizer")
    if optimizer == "adam":
        base = optax.adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8)
    else:
        base = optax.sgd(learning_rate)
    if clip_norm is None:
        return base
    return optax.chain(clip_grad_norm(_checks.positive_number("clip_norm", clip_norm, "make_optimizer")), base)
