"""A non-finite loss or gradient: train stops, naming the epoch and step, with the variables from
before it and the last checkpoint untouched; or, with nonfinite='skip', skips exactly those steps
(optax.apply_if_finite). Checked against a plain loop over make_train_step on the same batches."""

from __future__ import annotations

import re
import warnings

import jax
import numpy as np
import pytest
from _compare import assert_close

import jaxrnn
import jaxrnn.models
from jaxrnn.lesson import _cli

X, Y = jaxrnn.data.generate_sin_data(6, 24, seed=0)
MODEL = jaxrnn.models.SinPredictor()
INIT = MODEL.init(jax.random.key(0), X[:1])
# plain SGD with a huge step: the prediction error grows ~1000x per step until the loss overflows
DIVERGE = dict(loss="mse", batch_size=6, learning_rate=100.0, optimizer="sgd", seed=0, progress=False)
ADAM = dict(loss="mse", batch_size=6, learning_rate=0.01, seed=0, progress=False)


def _reference(x, y, epochs, *, learning_rate, optimizer="adam", skip=False):
    """A plain loop over make_train_step and epoch_batches (seed 0), batches of 6. Returns the
    variables before each step, each step's loss, and the variables at the end; with ``skip``,
    a step with a non-finite loss is not applied."""
    step = jaxrnn.make_train_step(MODEL, "mse", jaxrnn.make_optimizer(learning_rate, optimizer=optimizer))
    variables, rng = INIT, np.random.default_rng(0)
    opt_state = jaxrnn.make_optimizer(learning_rate, optimizer=optimizer).init(variables["params"])
    before, losses = [], []
    for _ in range(epochs):
        for idx in jaxrnn.data.epoch_batches(len(x), 6, rng):
            before.append(variables)
            new_variables, new_opt_state, stats = step(variables, opt_state, x[idx], y[idx])
            losses.append(float(stats["loss"]))
            if not (skip and not np.isfinite(losses[-1])):
                variables, opt_state = new_variables, new_opt_state
    return before, losses, variables


def _assert_trees_equal(a, b):
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))


def test_a_non_finite_loss_stops_at_its_step_and_keeps_the_last_checkpoint(tmp_path):
    before, losses, _ = _reference(X, Y, 4, learning_rate=100.0, optimizer="sgd")
    first = int(np.argmin(np.isfinite(losses)))  # the first step with a non-finite loss, from 0
    epoch, batch = first // 4 + 1, first % 4 + 1
    assert epoch >= 2 and not np.isfinite(losses[first]) and np.all(np.isfinite(losses[:first]))
    message = (rf"train: non-finite loss or gradients at epoch {epoch}, step {first + 1} \(batch {batch} of 4 in "
               rf"the epoch\): loss (inf|nan), gradient norm (inf|nan); training stopped, and NonFiniteError.result "
               rf"holds the variables from before that step; the last checkpoint, .*{epoch - 1}, is kept as it was\. "
               r"Lower the learning rate, clip the gradients \(clip_norm\), or skip such steps")
    with pytest.raises(jaxrnn.NonFiniteError, match=message) as info:
        jaxrnn.train(MODEL, INIT, (X, Y), epochs=4, checkpoint_dir=tmp_path, **DIVERGE)
    err = info.value
    assert (err.epoch, err.step) == (epoch, first + 1)
    assert err.checkpoint == str(tmp_path.absolute() / str(epoch - 1))
    _assert_trees_equal(err.result.variables, before[first])  # the variables from before the step
    assert len(err.result.history.loss) == epoch - 1 and len(err.result.history.step_loss) == 4 * (epoch - 1)
    assert_close(err.result.history.step_loss, losses[: 4 * (epoch - 1)], "float32")
    # the checkpoint is the one of the last complete epoch; none was written for the failing one
    assert sorted(p.name for p in tmp_path.iterdir())[-1] == str(epoch - 1)
    variables, meta = jaxrnn.load_checkpoint(tmp_path)
    assert meta["epoch"] == epoch - 1
    _assert_trees_equal(variables, before[4 * (epoch - 1)])


def _nan_example(row=5):
    x = X.copy()
    x[row, 2, 0] = np.nan
    rng = np.random.default_rng(0)  # the steps (from 1) whose batch holds that example, per epoch
    steps = [e * 4 + [row in b for b in jaxrnn.data.epoch_batches(24, 6, rng)].index(True) + 1 for e in range(2)]
    return x, steps


def test_skip_nonfinite_skips_exactly_the_bad_steps():
    x, steps = _nan_example()
    with pytest.warns(RuntimeWarning) as record:
        result = jaxrnn.train(MODEL, INIT, (x, Y), epochs=2, nonfinite="skip", **ADAM)
    messages = [str(w.message) for w in record if "skipped" in str(w.message)]
    assert len(messages) == 2
    for epoch, (text, step) in enumerate(zip(messages, steps), 1):
        assert re.match(rf"train: skipped 1 step\(s\) with non-finite loss or gradients in epoch {epoch}: "
                        rf"step\(s\) \[{step}\]; the first at epoch {epoch}, step {step} ", text), text
    h = result.history
    assert [i + 1 for i, v in enumerate(h.step_loss) if not np.isfinite(v)] == steps
    assert all(np.all(np.isfinite(np.asarray(v))) for v in jax.tree.leaves(result.variables))
    # the epoch's loss is the mean over the steps taken (each batch holds 6 examples)
    for epoch in range(2):
        taken = [v for v in h.step_loss[4 * epoch: 4 * epoch + 4] if np.isfinite(v)]
        assert_close(h.loss[epoch], np.mean(taken), "float32")
    # the same as a loop that leaves those two steps out
    _, losses, expected = _reference(x, Y, 2, learning_rate=0.01, skip=True)
    assert_close(h.step_loss, losses, "float32")
    for a, b in zip(jax.tree.leaves(result.variables), jax.tree.leaves(expected)):
        assert_close(a, b, "float32")


def test_a_nan_in_the_data_stops_at_its_batch():
    x, steps = _nan_example()
    before, _, _ = _reference(x, Y, 1, learning_rate=0.01)
    with pytest.raises(jaxrnn.NonFiniteError, match=rf"at epoch 1, step {steps[0]} \(batch {steps[0]} of 4 in the "
                                                    r"epoch\): loss nan, gradient norm nan; training stopped, and "
                                                    r"NonFiniteError.result holds the variables from before that "
                                                    r"step\. Lower") as info:
        jaxrnn.train(MODEL, INIT, (x, Y), epochs=2, **ADAM)
    assert info.value.checkpoint is None and info.value.result.history.loss == []
    # train's guarded step and make_train_step compile to different fusions: Adam's update agrees
    # to float32 rounding (plain SGD above to the bit)
    for a, b in zip(jax.tree.leaves(info.value.result.variables), jax.tree.leaves(before[steps[0] - 1])):
        assert_close(a, b, "float32")


def test_an_epoch_with_every_step_skipped_stops():
    x = np.full_like(X, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "skipped" warning first: the error says it
        with pytest.raises(jaxrnn.NonFiniteError, match=r"every step of epoch 1 had a non-finite loss or gradients "
                                                        r"and was skipped \(the first at epoch 1, step 1 .*\); "
                                                        r"training stopped\.$"):
            jaxrnn.train(MODEL, INIT, (x, Y), epochs=2, nonfinite="skip", **ADAM)


def test_nonfinite_argument_errors():
    with pytest.raises(ValueError, match=r"train: `nonfinite` must be one of \('stop', 'skip'\), got 'ignore'"):
        jaxrnn.train(MODEL, INIT, (X, Y), epochs=1, nonfinite="ignore", **ADAM)


def test_cli_skip_nonfinite_flag():
    parser = _cli.build_parser()
    for argv, policy in ((["sine"], "stop"), (["sine", "--skip-nonfinite"], "skip")):
        options = _cli._train_options(parser, parser.parse_args(argv), ("jax",))
        assert options.nonfinite == policy and options.train_kwargs("sine")["nonfinite"] == policy
