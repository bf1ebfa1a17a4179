"""Training the lesson's NNX models against torch (float64): ``nnx.Optimizer`` with
``optax.chain(jaxrnn.clip_grad_norm(max_norm), optax.adam(lr))`` under ``nnx.jit`` against
``torch.optim.Adam`` after ``torch.nn.utils.clip_grad_norm_``, from the same weights
(``jaxrnn.nnx.from_torch``): every step's loss, gradients and gradient norm, and the final
parameters (``jaxrnn.nnx.to_torch``), key by key at 1e-10. And the same training written as a
pure step on ``nnx.split``'s (graphdef, state) under ``jax.jit``, which is the same program and
so gives the same parameters bit for bit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from _compare import assert_close, assert_trees_close
from flax import nnx

import jaxrnn
import jaxrnn.nnx.models
import torchref.models

STEPS, BATCH, SEQ = 5, 5, 8
LR = 0.05
MAX_NORM = 0.05  # below every gradient norm these models start with: clipping is active

# name: (model class, positional args, keyword args, loss); the cells spread over the models
CASES = {
    "RNNClassifier-lstm-2layers": ("RNNClassifier", (3, 6, 4), {"num_layers": 2, "cell": "lstm"}, "ce"),
    "RNNSeq2Seq-gru": ("RNNSeq2Seq", (3, 6, 3), {"cell": "gru"}, "ce"),
    "SinPredictor-rnn": ("SinPredictor", (), {"cell": "rnn"}, "mse"),
    "CharRNN-bidirectional-lstm": ("CharRNN", (27, 8, 6, 5), {"bidirectional": True, "cell": "lstm"}, "ce"),
}


def _batches(name: str, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """STEPS random batches (x, y) for the model: features N(0, 1) or character ids, integer labels
    (per sequence, or per step for RNNSeq2Seq) or real targets."""
    rng = np.random.default_rng(seed)
    cls, args, _, _ = CASES[name]
    out = []
    for _ in range(STEPS):
        if cls == "CharRNN":
            x = rng.integers(0, args[0], (BATCH, SEQ))
        else:
            x = rng.standard_normal((BATCH, SEQ, args[0] if args else 1))
        if cls == "SinPredictor":
            y = rng.standard_normal(BATCH)
        elif cls == "RNNSeq2Seq":
            y = rng.integers(0, args[2], (BATCH, SEQ))
        else:
            y = rng.integers(0, args[2] if cls == "RNNClassifier" else args[3], BATCH)
        out.append((x, y))
    return out


def _pair(name: str):
    """A float64 torchref model and the NNX model holding its weights (``from_torch``). The NNX
    model is built abstract (``nnx.eval_shape``: no init drawn, every weight is torch's), which
    spares the eager init's compilation, seconds per model on a small CPU."""
    cls, args, kwargs, _ = CASES[name]
    torch.manual_seed(0)
    model_t = getattr(torchref.models, cls)(*args, **kwargs).double()
    model = nnx.eval_shape(lambda: getattr(jaxrnn.nnx.models, cls)(*args, **kwargs, rngs=nnx.Rngs(1)))
    jaxrnn.nnx.from_torch(model_t.state_dict(), model)
    return model_t, model


def _loss(name: str):
    """jaxrnn's loss (torch's MSELoss / CrossEntropyLoss over all tokens) and torch's."""
    if CASES[name][3] == "mse":
        return jaxrnn.mse_loss, torch.nn.MSELoss()
    ce = torch.nn.CrossEntropyLoss()
    return jaxrnn.cross_entropy_loss, lambda out, y: ce(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def _tx(lr: float = LR) -> optax.GradientTransformation:
    return optax.chain(jaxrnn.clip_grad_norm(MAX_NORM), optax.adam(lr))


def _nnx_step(loss_fn):
    @nnx.jit
    def step(model, optimizer, x, y):
        loss, grads = nnx.value_and_grad(lambda m: loss_fn(m(x), y))(model)
        optimizer.update(model, grads)
        return loss, grads

    return step


def _torch_params(model_t) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model_t.state_dict().items()}


@pytest.mark.parametrize("name", list(CASES))
def test_nnx_optimizer_adam_with_clipping_matches_torch(name):
    """Five steps on different batches: each step's loss, raw gradients (``to_torch(grads)`` vs
    torch's ``.grad`` before clipping) and their global norm (what clip_grad_norm_ returns), and
    the parameters after the last step, all at 1e-10; the torch norm is above max_norm at least
    once (clipping really happens) and the parameters moved."""
    model_t, model = _pair(name)
    loss_fn, loss_t = _loss(name)
    start = jaxrnn.nnx.to_torch(model)
    assert_trees_close(start, _torch_params(model_t), what="weights after from_torch")
    assert all(v.dtype == np.float64 for v in start.values())
    optimizer = nnx.Optimizer(model, _tx(), wrt=nnx.Param)
    opt_t = torch.optim.Adam(model_t.parameters(), lr=LR)
    step = _nnx_step(loss_fn)
    norms_t = []
    for i, (x, y) in enumerate(_batches(name)):
        opt_t.zero_grad()
        value_t = loss_t(model_t(torch.from_numpy(x)), torch.from_numpy(y))
        value_t.backward()
        grads_t = {k: p.grad.numpy().copy() for k, p in model_t.named_parameters()}
        norms_t.append(torch.nn.utils.clip_grad_norm_(model_t.parameters(), MAX_NORM).item())
        opt_t.step()

        loss, grads = step(model, optimizer, jnp.asarray(x), jnp.asarray(y))
        assert_close(loss, value_t.item(), what=f"loss, step {i}")
        grads = jaxrnn.nnx.to_torch(grads)
        assert_trees_close(grads, grads_t, what=f"grads, step {i}")
        norm = np.sqrt(sum((g**2).sum() for g in grads.values()))
        assert_close(norm, norms_t[-1], what=f"grad norm, step {i}")
    assert max(norms_t) > MAX_NORM, f"clipping never happened: norms {norms_t}"
    final = jaxrnn.nnx.to_torch(model)
    assert_trees_close(final, _torch_params(model_t), what="params after training")
    assert max(np.abs(final[k] - start[k]).max() for k in start) > 1e-2, "the parameters did not move"


def test_split_and_jax_jit_step_gives_the_nnx_jit_parameters_bit_for_bit():
    """The same five steps as a pure function of (graphdef, state) from ``nnx.split`` under
    ``jax.jit`` (merge inside, return the new state): the same program as ``nnx.jit``'s, so the
    losses and parameters are equal to the last bit, not only to 1e-10."""
    name = "RNNClassifier-lstm-2layers"
    loss_fn, _ = _loss(name)
    batches = [(jnp.asarray(x), jnp.asarray(y)) for x, y in _batches(name, seed=1)]

    _, model = _pair(name)
    optimizer = nnx.Optimizer(model, _tx(), wrt=nnx.Param)
    step = _nnx_step(loss_fn)
    losses = [step(model, optimizer, x, y)[0] for x, y in batches]

    _, model2 = _pair(name)
    graphdef, state = nnx.split((model2, nnx.Optimizer(model2, _tx(), wrt=nnx.Param)))

    @jax.jit
    def pure_step(state, x, y):
        model, optimizer = nnx.merge(graphdef, state)
        loss, grads = nnx.value_and_grad(lambda m: loss_fn(m(x), y))(model)
        optimizer.update(model, grads)
        return loss, nnx.state((model, optimizer))

    losses2 = []
    for x, y in batches:
        loss, state = pure_step(state, x, y)
        losses2.append(loss)
    model2, optimizer2 = nnx.merge(graphdef, state)

    np.testing.assert_array_equal(np.asarray(losses2), np.asarray(losses))
    assert len(set(np.asarray(losses).tolist())) == STEPS  # different batches, different losses
    params, params2 = jaxrnn.nnx.to_torch(model), jaxrnn.nnx.to_torch(model2)
    assert sorted(params2) == sorted(params)
    for key in params:
        np.testing.assert_array_equal(params2[key], params[key], err_msg=key)
    assert int(optimizer2.step[...]) == int(optimizer.step[...]) == STEPS
    moments = [jax.tree.leaves(nnx.state(o.opt_state)) for o in (optimizer, optimizer2)]
    for a, b in zip(*moments, strict=True):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a))
