"""Gradient clipping against torch.nn.utils.clip_grad_norm_: the global norm it returns and the
clipped gradients, on the same weights and batch (float64), and on the very same gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from _compare import assert_close, assert_trees_close

import jaxrnn
import jaxrnn.models
import torchref.models

rng = np.random.default_rng(1)
X = rng.standard_normal((6, 9, 3))
LABELS = rng.integers(0, 4, 6)


def _torch_model(weight_std: float):
    """A float64 torchref RNNClassifier (2 layers); recurrent weights from N(0, weight_std^2)."""
    torch.manual_seed(0)
    model = torchref.models.RNNClassifier(3, 7, 4, num_layers=2).double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("rnn.weight"):
                p.copy_(torch.from_numpy(rng.normal(0.0, weight_std, tuple(p.shape))))
    return model


def _torch_grads(model):
    model.zero_grad()
    torch.nn.CrossEntropyLoss()(model(torch.from_numpy(X)), torch.from_numpy(LABELS)).backward()
    return {k: p.grad.numpy().copy() for k, p in model.named_parameters()}


MODEL = jaxrnn.models.RNNClassifier(3, 7, 4, num_layers=2)


@jax.jit
@jax.grad
def _loss_grad(params):
    return jaxrnn.cross_entropy_loss(MODEL.apply({"params": params}, jnp.asarray(X)), jnp.asarray(LABELS))


def _jax_grads(model_t):
    return _loss_grad(jaxrnn.from_torch(model_t.state_dict())["params"])


@pytest.mark.parametrize("max_norm", [0.05, 0.2, 1e6])
@pytest.mark.parametrize("weight_std", [0.3, 2.0])
def test_clip_norm_matches_torch(weight_std, max_norm):
    """Same weights, same batch: jaxrnn.global_norm of JAX's gradients is the value clip_grad_norm_
    returns, and clip_grad_norm(max_norm) gives torch's clipped gradients (clipping active for the
    small max_norms, a no-op for 1e6)."""
    model_t = _torch_model(weight_std)
    _torch_grads(model_t)
    norm_t = torch.nn.utils.clip_grad_norm_(model_t.parameters(), max_norm=max_norm).item()
    clipped_t = {k: p.grad.numpy() for k, p in model_t.named_parameters()}

    grads = _jax_grads(model_t)
    norm = float(jaxrnn.global_norm(grads))
    clip = jaxrnn.clip_grad_norm(max_norm)
    clipped, _ = clip.update(grads, clip.init(grads))

    assert_close(norm, norm_t, what="global norm")
    assert (norm > max_norm) == (max_norm < 1e6), "the cases must cover clipping active and inactive"
    assert_trees_close(jaxrnn.to_torch(clipped), clipped_t, what="clipped grads")
    expected_norm = min(norm, max_norm * norm / (norm + 1e-6))
    assert_close(float(jaxrnn.global_norm(clipped)), expected_norm, what="norm after clipping")


def test_clip_grad_norm_on_torch_grads_matches_torch():
    """On the very same gradient arrays (torch's own), the clipped result equals clip_grad_norm_'s
    to rounding, independent of any forward pass."""
    model_t = _torch_model(2.0)
    grads_t = _torch_grads(model_t)
    norm_t = torch.nn.utils.clip_grad_norm_(model_t.parameters(), max_norm=0.5).item()
    grads = {k: jnp.asarray(v) for k, v in grads_t.items()}
    clip = jaxrnn.clip_grad_norm(0.5)
    clipped, _ = clip.update(grads, clip.init(grads))
    np.testing.assert_allclose(float(jaxrnn.global_norm(grads)), norm_t, rtol=1e-14)
    for k, p in model_t.named_parameters():
        np.testing.assert_allclose(np.asarray(clipped[k]), p.grad.numpy(), rtol=1e-14, atol=0, err_msg=k)


def test_optax_clip_by_global_norm_differs_from_torch_by_eps_over_norm():
    """Why jaxrnn has its own clip: optax scales by max_norm / ||g||, torch by max_norm / (||g|| + 1e-6).
    The relative gap is 1e-6 / ||g||, far above float64 rounding; with eps=0 ours equals optax's."""
    grads = {"a": jnp.asarray(rng.standard_normal((5, 4))), "b": jnp.asarray(rng.standard_normal(7))}
    norm = float(jaxrnn.global_norm(grads))
    max_norm = 0.1
    theirs, _ = optax.clip_by_global_norm(max_norm).update(grads, optax.EmptyState())
    ours, _ = jaxrnn.clip_grad_norm(max_norm).update(grads, optax.EmptyState())
    ours_no_eps, _ = jaxrnn.clip_grad_norm(max_norm, eps=0.0).update(grads, optax.EmptyState())
    for k in grads:
        ratio = np.asarray(theirs[k]) / np.asarray(ours[k])
        np.testing.assert_allclose(ratio, (norm + 1e-6) / norm, rtol=1e-12)
        assert np.all(np.abs(ratio - 1) > 1e-9)  # visible at the parity tests' 1e-10
        np.testing.assert_allclose(np.asarray(ours_no_eps[k]), np.asarray(theirs[k]), rtol=1e-14)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_clip_grad_norm_rejects_a_bad_max_norm(bad):
    with pytest.raises(ValueError, match="`max_norm` must be a positive finite number"):
        jaxrnn.clip_grad_norm(bad)


def test_clip_grad_norm_rejects_a_non_number():
    with pytest.raises(TypeError, match="`max_norm` must be a positive number, got '1'"):
        jaxrnn.clip_grad_norm("1")
    with pytest.raises(ValueError, match="`eps` must be a non-negative finite number, got -1e-06"):
        jaxrnn.clip_grad_norm(1.0, eps=-1e-6)
    with pytest.raises(TypeError, match=r"`eps` must be a non-negative number, got None \(NoneType\)"):
        jaxrnn.clip_grad_norm(1.0, eps=None)
