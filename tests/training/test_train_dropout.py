"""Dropout in training: train runs the model as torch's model.train() (deterministic=False, or
train=True, with the 'dropout' rng fold_in(key(seed), k) at step k), evaluate and predict as
model.eval(). Checked against a hand-written loop (optax and model.apply with those keys) in
float64, and for the mode read from the model's signature, make_train_step's key, 2 devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _compare import assert_close

import jaxrnn
from jaxrnn.training import _inputs

F64 = jnp.float64


class Regressor(nn.Module):
    """A 2-layer RNN (dropout between its layers, torch's), the last step through a Linear; takes
    ``deterministic`` as jaxrnn's layers do."""

    dropout: float = 0.3

    @nn.compact
    def __call__(self, x, *, deterministic: bool = True):
        out, _ = jaxrnn.RNN(3, 16, num_layers=2, dropout=self.dropout, batch_first=True, param_dtype=F64,
                            name="rnn")(x, deterministic=deterministic)
        return jaxrnn.Linear(16, 1, param_dtype=F64, name="fc")(out[:, -1])[:, 0]


class TrainFlagRegressor(nn.Module):
    """A ``train`` keyword (the other Flax convention) and flax.linen.Dropout before the head."""

    rate: float = 0.3

    @nn.compact
    def __call__(self, x, train: bool = False):
        out, _ = jaxrnn.RNN(3, 16, batch_first=True, param_dtype=F64, name="rnn")(x)
        h = nn.Dropout(self.rate)(out[:, -1], deterministic=not train)
        return jaxrnn.Linear(16, 1, param_dtype=F64, name="fc")(h)[:, 0]


class Wrapper(nn.Module):
    """Forwards ``**kwargs``: names no mode keyword, so gets none unless given train_kwargs."""

    @nn.compact
    def __call__(self, x, **kwargs):
        return Regressor(name="inner")(x, **kwargs)


rng = np.random.default_rng(11)
X = rng.standard_normal((22, 7, 3))
Y = rng.standard_normal(22)
X_TEST, Y_TEST = rng.standard_normal((9, 7, 3)), rng.standard_normal(9)
# 22 examples in batches of 8: 8, 8, 6 per epoch
KWARGS = dict(loss="mse", epochs=2, batch_size=8, learning_rate=0.01, clip_norm=1.0, seed=5, progress=False)


def _init(model):
    return model.init(jax.random.key(0), X[:2])


def _train(model, variables=None, **kwargs):
    variables = _init(model) if variables is None else variables
    return jaxrnn.train(model, variables, (X, Y), **{**KWARGS, **kwargs})


def _hand_loop(model, variables, mode, *, seed=5, epochs=2, batch_size=8):
    """train by hand: epoch_batches(default_rng(seed)), Adam behind clip_grad_norm (make_optimizer),
    step k's forward model.apply(..., **mode, rngs={'dropout': fold_in(key(seed), k)})."""
    tx = jaxrnn.make_optimizer(0.01, 1.0)
    params, state, order = variables["params"], tx.init(variables["params"]), np.random.default_rng(seed)

    @jax.jit
    def step(params, state, x, y, key):
        def loss(p):
            return jaxrnn.mse_loss(model.apply({"params": p}, x, **mode, rngs={"dropout": key}), y)

        value, grads = jax.value_and_grad(loss)(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value, jaxrnn.global_norm(grads)

    losses, norms, k = [], [], 0
    for _ in range(epochs):
        for idx in jaxrnn.data.epoch_batches(len(X), batch_size, order):
            params, state, value, norm = step(params, state, X[idx], Y[idx],
                                              jax.random.fold_in(jax.random.key(seed), k))
            losses.append(float(value))
            norms.append(float(norm))
            k += 1
    return {"params": params}, losses, norms


def _assert_same_run(a, b):
    """Bit for bit: every history entry and every parameter."""
    assert a.history.to_dict() == b.history.to_dict()
    for (path, u), v in zip(jax.tree_util.tree_leaves_with_path(a.variables), jax.tree.leaves(b.variables)):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v), err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("model, mode", [(Regressor(), {"deterministic": False}),
                                         (TrainFlagRegressor(), {"train": True})],
                         ids=["deterministic", "train"])
def test_train_matches_a_hand_loop_with_the_step_keys(model, mode):
    """Every step's loss and gradient norm and the final parameters of train are those of a hand
    loop whose step k draws its masks from fold_in(key(seed), k), to 1e-10 (float64)."""
    variables = _init(model)
    result = _train(model, variables)
    params, losses, norms = _hand_loop(model, variables, mode)
    assert len(losses) == len(result.history.step_loss) == 2 * 3
    assert_close(result.history.step_loss, losses, what="step_loss")
    assert_close(result.history.step_grad_norm, norms, what="step_grad_norm")
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(result.variables), jax.tree.leaves(params)):
        assert_close(a, b, what=jax.tree_util.keystr(path))
    # the masks matter: the same loop in evaluation mode takes other steps
    off = {k: not v for k, v in mode.items()}
    assert np.abs(np.subtract(_hand_loop(model, variables, off)[1], losses)).max() > 1e-3


def test_dropout_changes_the_history_and_dropout_zero_trains_as_eval_mode():
    """Same init, same seed: dropout 0.3 trains differently from 0.0, and 0.0 takes the steps of
    the model run without dropout (deterministic=True in training, given by hand)."""
    with_dropout, without = Regressor(0.3), Regressor(0.0)
    variables = _init(with_dropout)
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(_init(without))):
        np.testing.assert_array_equal(a, b)  # the rate does not change the init
    h3 = _train(with_dropout, variables).history
    h0 = _train(without, variables).history
    assert all(abs(a - b) > 1e-6 for a, b in zip(h3.step_loss, h0.step_loss))
    h_eval = _train(with_dropout, variables, train_kwargs={"deterministic": True}).history
    assert_close(h0.step_loss, h_eval.step_loss, what="dropout 0 vs deterministic=True")


def test_one_seed_gives_one_run_bit_for_bit_and_another_seed_another():
    model = Regressor()
    variables = _init(model)
    first, again = _train(model, variables), _train(model, variables)
    _assert_same_run(first, again)
    other = _train(model, variables, seed=6).history.step_loss
    assert all(a != b for a, b in zip(first.history.step_loss, other))


def test_make_train_step_with_the_key_of_step_0_is_trains_first_step():
    """One make_train_step step with key=fold_in(key(seed), 0) on train's first batch gives train's
    first loss; without a key, a model that draws dropout says to pass one."""
    model = Regressor()
    variables = _init(model)
    first_batch = jaxrnn.data.epoch_batches(len(X), 8, np.random.default_rng(5))[0]
    tx = jaxrnn.make_optimizer(0.01, 1.0)
    step = jaxrnn.make_train_step(model, "mse", tx)
    _, _, stats = step(variables, tx.init(variables["params"]), X[first_batch], Y[first_batch],
                       key=jax.random.fold_in(jax.random.key(5), 0))
    result = _train(model, variables, epochs=1)
    assert_close(stats["loss"], result.history.step_loss[0])
    assert_close(stats["grad_norm"], result.history.step_grad_norm[0])
    with pytest.raises(ValueError, match=r"make_train_step's step: the model draws random numbers in training mode "
                                         r"\(called with \{'deterministic': False\}\) but no `key` was given; pass "
                                         r"the step's dropout rng, step\(variables, opt_state, x, y, key=\.\.\.\)"):
        step(variables, tx.init(variables["params"]), X[first_batch], Y[first_batch])
    with pytest.raises(TypeError, match=r"`key` must be a jax.random.key \(the step's 'dropout' rng\) or None, "
                                        r"got int"):
        step(variables, tx.init(variables["params"]), X[first_batch], Y[first_batch], key=3)
    # a model without dropout needs no key, and a key changes nothing
    plain = jaxrnn.make_train_step(Regressor(0.0), "mse", tx)
    a = plain(variables, tx.init(variables["params"]), X[first_batch], Y[first_batch])[2]["loss"]
    b = plain(variables, tx.init(variables["params"]), X[first_batch], Y[first_batch], key=jax.random.key(1))[2]
    assert float(a) == float(b["loss"])
    assert_close(a, jaxrnn.mse_loss(Regressor(0.0).apply(variables, X[first_batch]), Y[first_batch]))


def test_evaluate_and_predict_run_in_eval_mode():
    """predict and evaluate (and train's test_data) give model.apply(..., deterministic=True), the
    same twice; training mode would give other numbers."""
    model = Regressor()
    result = _train(model, test_data=(X_TEST, Y_TEST), metric="mse")
    expected = model.apply(result.variables, X_TEST, deterministic=True)
    first, second = (jaxrnn.predict(model, result.variables, X_TEST) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    assert_close(first, expected)
    loss = jaxrnn.evaluate(model, result.variables, X_TEST, Y_TEST, loss="mse", metric="mse")
    assert_close(loss["loss"], np.mean((np.asarray(expected) - Y_TEST) ** 2))
    assert_close(result.history.test_loss[-1], loss["loss"])
    training = model.apply(result.variables, X_TEST, deterministic=False, rngs={"dropout": jax.random.key(0)})
    assert np.abs(np.asarray(training) - np.asarray(expected)).max() > 1e-3
    # eval_kwargs by hand: training mode in predict needs an rng, which evaluation does not give
    with pytest.raises(ValueError, match=r"predict: the model asked for an rng in evaluation mode, where it gets no "
                                         r"rngs \(.*dropout.*\); a model that draws random numbers only in training "
                                         r"must take `deterministic` \(or `train`\) as a keyword"):
        jaxrnn.predict(model, result.variables, X_TEST, eval_kwargs={"deterministic": False})


def test_the_mode_is_read_from_the_signature():
    assert _inputs.detect_mode(Regressor()) == ({"deterministic": False}, {"deterministic": True})
    assert _inputs.detect_mode(TrainFlagRegressor()) == ({"train": True}, {"train": False})
    assert _inputs.detect_mode(jaxrnn.GRU(3, 4)) == ({"deterministic": False}, {"deterministic": True})
    assert _inputs.detect_mode(nn.Dropout(0.5)) == ({"deterministic": False}, {"deterministic": True})
    assert _inputs.detect_mode(Wrapper()) == ({}, {})
    assert _inputs.detect_mode(jaxrnn.Linear(3, 4)) == ({}, {})

    class Both(nn.Module):
        def __call__(self, x, train=False, deterministic=True):
            return x

    class PositionalOnly(nn.Module):
        def __call__(self, x, deterministic=True, /):
            return x

    assert _inputs.detect_mode(Both()) == ({"deterministic": False}, {"deterministic": True})
    assert _inputs.detect_mode(PositionalOnly()) == ({}, {})


def test_train_kwargs_give_a_model_its_mode_by_hand():
    """A model that forwards **kwargs names no mode, so trains without dropout (the steps of
    dropout 0); given train_kwargs it takes the hand loop's steps with deterministic=False (Flax
    folds the module path into the rng, so not those of the inner model alone), and evaluates with
    eval_kwargs."""
    variables = _init(Regressor())
    wrapped = {"params": {"inner": variables["params"]}}
    as_is = _train(Wrapper(), wrapped).history
    assert_close(as_is.step_loss, _train(Regressor(0.0), variables).history.step_loss)
    by_hand = _train(Wrapper(), wrapped, train_kwargs={"deterministic": False}, eval_kwargs={"deterministic": True},
                     test_data=(X_TEST, Y_TEST))
    params, losses, _ = _hand_loop(Wrapper(), wrapped, {"deterministic": False})
    assert_close(by_hand.history.step_loss, losses)
    assert np.abs(np.subtract(by_hand.history.step_loss, as_is.step_loss)).max() > 1e-3
    expected = Regressor().apply({"params": by_hand.variables["params"]["inner"]}, X_TEST, deterministic=True)
    assert_close(by_hand.history.test_loss[-1], np.mean((np.asarray(expected) - Y_TEST) ** 2))


def test_a_model_that_asks_for_another_rng_is_a_clear_error():
    class Noisy(nn.Module):
        @nn.compact
        def __call__(self, x, *, deterministic: bool = True):
            noise = 0.0 if deterministic else jax.random.normal(self.make_rng("noise"), x.shape[:1])
            return jaxrnn.Linear(3, 1, param_dtype=F64)(x[:, -1])[:, 0] + noise

    with pytest.raises(ValueError, match=r"train: the model asked for an rng in training mode, where it gets the "
                                         r"'dropout' rng only \(.*noise.*\); draw dropout masks from the 'dropout' "
                                         r"stream$"):
        _train(Noisy())


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(train_kwargs=[("deterministic", False)]), TypeError,
         r"train: `train_kwargs` must be a mapping of keyword arguments for the model's call, such as "
         r"\{'deterministic': True\}, or None, got list"),
        (dict(eval_kwargs={1: True}), TypeError, r"train: `eval_kwargs` keys must be keyword names \(str\), got 1"),
        (dict(train_kwargs={"rngs": {}}), ValueError,
         r"train: `train_kwargs` cannot set 'rngs', a keyword of Module.apply itself"),
        (dict(train_kwargs={"deterministic": np.zeros(2)}), TypeError,
         r"train: `train_kwargs\['deterministic'\]` is fixed in the compiled step and must be hashable \(a bool, "
         r"number or string\), got ndarray"),
        (dict(seed=2**63), ValueError, r"train: `seed` must be below 2\*\*63 \(jax.random.key's range\), got "
                                       r"9223372036854775808"),
    ],
)
def test_mode_argument_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        _train(Regressor(), **kwargs)


# --------------------------------------------------------------------------------------------
# two devices

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    sys.path[:0] = sys.argv[1:3]
    import jaxrnn
    import test_train_dropout as case

    assert len(jax.devices()) == 2, jax.devices()
    model = case.Regressor()
    variables = case._init(model)
    out = {}
    for batch_size in (8, 5):  # 8, 8, 6: every batch divides by 2; 5, 5, 5, 5, 2: 5 is padded to 6
        one, two = (case._train(model, variables, batch_size=batch_size, devices=d).history for d in (1, 2))
        out[batch_size] = [one.step_loss, two.step_loss]
    print(json.dumps(out))
""")


def test_two_devices_draw_the_masks_of_one_when_the_batches_divide():
    """The dropout key is replicated: batches that divide over 2 devices give the history of one
    device (float64 rounding). A padded batch draws its masks for the padded shape (which may
    differ from one device's); that run still takes every step."""
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", SCRIPT, here, os.path.dirname(here)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    one, two = out["8"]
    assert len(one) == len(two) == 6
    assert_close(two, one, what="batches of 8 on 2 devices vs 1")
    one, two = out["5"]
    assert len(one) == len(two) == 10 and np.isfinite(two).all()
