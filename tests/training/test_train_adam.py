"""Optimizer steps against torch.optim (float64): Adam and SGD, with and without clip_grad_norm_,
step by step and through the whole training loop (jaxrnn.train against torchref.train)."""

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
import torchref.train

rng = np.random.default_rng(2)


def _classifier_pair():
    torch.manual_seed(3)
    model_t = torchref.models.RNNClassifier(3, 6, 4, num_layers=2).double()
    model = jaxrnn.models.RNNClassifier(3, 6, 4, num_layers=2)
    return model_t, model


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("clip_norm", [None, 0.05])
def test_adam_with_clipping_matches_torch(optimizer, clip_norm):
    """Six steps on different batches: torch.optim.Adam/SGD after clip_grad_norm_ against
    make_optimizer(lr, clip_norm, optimizer); the norms before clipping and the parameters after
    every step agree to 1e-10 (with clip_norm=0.05 clipping is active at every step)."""
    lr = 0.05 if optimizer == "adam" else 0.5
    model_t, model = _classifier_pair()
    variables = jaxrnn.from_torch(model_t.state_dict(), model)
    opt_t = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(model_t.parameters(), lr=lr)
    tx = jaxrnn.make_optimizer(lr, clip_norm, optimizer)
    params, state = variables["params"], tx.init(variables["params"])

    @jax.jit
    def step(params, state, x, y):
        loss = lambda p: jaxrnn.cross_entropy_loss(model.apply({"params": p}, x), y)  # noqa: E731
        grads = jax.grad(loss)(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, jaxrnn.global_norm(grads)

    for i in range(6):
        x = rng.standard_normal((5, 8, 3))
        y = rng.integers(0, 4, 5)
        opt_t.zero_grad()
        torch.nn.CrossEntropyLoss()(model_t(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        norm_t = torch.nn.utils.clip_grad_norm_(model_t.parameters(), clip_norm or float("inf")).item()
        opt_t.step()
        params, state, norm = step(params, state, jnp.asarray(x), jnp.asarray(y))
        if clip_norm is not None:
            assert norm_t > clip_norm, "clipping must be active for this test to mean something"
        assert_close(norm, norm_t, what=f"grad norm, step {i}")
        assert_trees_close(jaxrnn.to_torch(params), {k: p.detach().numpy() for k, p in model_t.named_parameters()},
                           what=f"params after step {i}")
    # the parameters moved: the comparison is not between two untouched copies
    start = jaxrnn.to_torch(variables)
    assert max(np.abs(np.asarray(params_v) - start[k]).max() for k, params_v in jaxrnn.to_torch(params).items()) > 1e-2


def _train_case(name):
    """(torch model, jax model, x, y, x_test, y_test, loss, metric) in float64; 22 examples."""
    torch.manual_seed(4)
    if name == "RNNClassifier":
        args = (3, 6, 4)
        x, y = rng.standard_normal((22, 7, 3)), rng.integers(0, 4, 22)
        xt, yt = rng.standard_normal((9, 7, 3)), rng.integers(0, 4, 9)
        loss, metric = "cross_entropy", "accuracy"
    elif name == "RNNSeq2Seq":
        args = (3, 6, 3)
        x, y = rng.standard_normal((22, 7, 3)), rng.integers(0, 3, (22, 7))
        xt, yt = rng.standard_normal((9, 7, 3)), rng.integers(0, 3, (9, 7))
        loss, metric = "cross_entropy", "accuracy"
    else:  # SinPredictor
        args = ()
        x, y = jaxrnn.data.generate_sin_data(7, 22, seed=5)
        xt, yt = jaxrnn.data.generate_sin_data(7, 9, seed=6)
        x, y, xt, yt = (a.astype(np.float64) for a in (x, y, xt, yt))
        loss, metric = "mse", "mse"
    model_t = getattr(torchref.models, name)(*args).double()
    model = getattr(jaxrnn.models, name)(*args)
    return model_t, model, x, y, xt, yt, loss, metric


@pytest.mark.parametrize("name", ["RNNClassifier", "RNNSeq2Seq", "SinPredictor"])
def test_train_matches_torchref_train(name):
    """jaxrnn.train against torchref.train from the same weights: 3 epochs, batches of 8 (the last
    one 6), Adam with clipping at 0.1, same seed. Every recorded number (per step and per epoch,
    train and test) and the final parameters agree to 1e-10."""
    model_t, model, x, y, xt, yt, loss, metric = _train_case(name)
    variables = jaxrnn.from_torch(model_t.state_dict(), model)
    kwargs = dict(epochs=3, batch_size=8, clip_norm=0.1, seed=7)
    result = jaxrnn.train(model, variables, (x, y), loss=loss, learning_rate=0.02, test_data=(xt, yt), metric=metric,
                          progress=False, **kwargs)
    history_t = torchref.train.train(model_t, x, y, loss=loss, lr=0.02, x_test=xt, y_test=yt, metric=metric,
                                     **kwargs)
    history = result.history.to_dict()
    assert history.keys() == history_t.keys()
    assert history["metric"] == history_t["metric"] == metric
    assert len(history["step_loss"]) == 3 * 3 and len(history["loss"]) == 3
    for key in ("loss", "grad_norm", "train_metric", "test_loss", "test_metric", "step_loss", "step_grad_norm"):
        assert_close(history[key], history_t[key], what=key)
    assert max(history["step_grad_norm"]) > 0.1  # clipping was active
    params_t = {k: p.detach().numpy() for k, p in model_t.named_parameters()}
    assert_trees_close(jaxrnn.to_torch(result.variables), params_t, what="params after training")
