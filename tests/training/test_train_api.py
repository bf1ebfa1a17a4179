"""The training API: losses and metric against torch.nn, the history, the progress bar, and every
argument error with its message."""

from __future__ import annotations

import io
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from _compare import assert_close

import jaxrnn
import jaxrnn.models
from jaxrnn.training._progress import progress_bar

rng = np.random.default_rng(3)


def test_mse_loss_matches_torch():
    pred, target = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    expected = torch.nn.MSELoss()(torch.from_numpy(pred), torch.from_numpy(target)).item()
    assert_close(jaxrnn.mse_loss(jnp.asarray(pred), jnp.asarray(target)), expected)


def test_mse_loss_of_a_squeezed_batch_of_one_matches_torch():
    """SinPredictor squeezes a batch of one to a scalar; torch's MSELoss of it against y (1,)."""
    pred, target = rng.standard_normal(()), rng.standard_normal((1,))
    with pytest.warns(UserWarning):  # torch broadcasts and warns
        expected = torch.nn.MSELoss()(torch.tensor(pred), torch.from_numpy(target)).item()
    assert_close(jaxrnn.mse_loss(jnp.asarray(pred), jnp.asarray(target)), expected)


def test_mse_loss_refuses_a_broadcast():
    with pytest.raises(ValueError, match=r"same shape \(up to size-1 axes\), got \(4, 1\) and \(3,\)"):
        jaxrnn.mse_loss(jnp.zeros((4, 1)), jnp.zeros(3))


@pytest.mark.parametrize("shape", [(6, 4), (3, 5, 4)])
def test_cross_entropy_loss_matches_torch(shape):
    """(batch, C) as nn.CrossEntropyLoss; (batch, seq, C) as the loss over all batch * seq tokens."""
    logits = rng.standard_normal(shape)
    labels = rng.integers(0, shape[-1], shape[:-1])
    expected = torch.nn.CrossEntropyLoss()(
        torch.from_numpy(logits).reshape(-1, shape[-1]), torch.from_numpy(labels).reshape(-1)
    ).item()
    assert_close(jaxrnn.cross_entropy_loss(jnp.asarray(logits), jnp.asarray(labels)), expected)


def test_cross_entropy_loss_errors():
    with pytest.raises(ValueError, match=r"got logits \(3, 4\) and labels \(4,\)"):
        jaxrnn.cross_entropy_loss(jnp.zeros((3, 4)), jnp.zeros(4, jnp.int32))
    with pytest.raises(TypeError, match="integer class ids, got dtype float"):
        jaxrnn.cross_entropy_loss(jnp.zeros((3, 4)), jnp.zeros(3))


def test_accuracy_matches_numpy():
    logits = rng.standard_normal((7, 9, 3))
    labels = rng.integers(0, 3, (7, 9))
    expected = np.mean(np.argmax(logits, -1) == labels)
    assert float(jaxrnn.accuracy(jnp.asarray(logits), jnp.asarray(labels))) == expected


def test_global_norm_matches_numpy():
    tree = {"a": rng.standard_normal((3, 4)), "b": {"c": rng.standard_normal(5)}}
    expected = np.sqrt(np.sum(tree["a"] ** 2) + np.sum(tree["b"]["c"] ** 2))
    assert_close(jaxrnn.global_norm(jax.tree.map(jnp.asarray, tree)), expected)


def _setup(n=24):
    x, y = jaxrnn.data.generate_sin_data(6, n, seed=0)
    model = jaxrnn.models.SinPredictor()
    return model, model.init(jax.random.key(0), x[:1]), x, y


def test_train_history_and_batch_of_one():
    """25 examples in batches of 8: the last batch holds one example (a scalar prediction)."""
    model, variables, x, y = _setup(25)
    result = jaxrnn.train(model, variables, (x, y), loss="mse", epochs=2, batch_size=8, learning_rate=0.01,
                          metric="mse", progress=False)
    h = result.history
    assert isinstance(h, jaxrnn.History) and h.metric == "mse"
    assert len(h.loss) == len(h.grad_norm) == len(h.train_metric) == 2
    assert len(h.step_loss) == len(h.step_grad_norm) == 2 * 4
    assert h.test_loss == [] and h.test_metric == []
    # the epoch loss is the batch losses weighted by batch size
    np.testing.assert_allclose(h.loss[0], np.dot([8, 8, 8, 1], h.step_loss[:4]) / 25, rtol=1e-6)
    np.testing.assert_allclose(h.grad_norm[1], np.mean(h.step_grad_norm[4:]), rtol=1e-6)
    # the metric is the loss here, so the two records agree
    np.testing.assert_allclose(h.train_metric, h.loss, rtol=1e-6)
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), result.variables, variables)
    assert max(jax.tree.leaves(moved)) > 0


def test_train_is_deterministic_for_a_seed_and_depends_on_it():
    model, variables, x, y = _setup()
    kwargs = dict(loss="mse", epochs=2, batch_size=5, learning_rate=0.01, progress=False)
    a = jaxrnn.train(model, variables, (x, y), seed=1, **kwargs).history.step_loss
    b = jaxrnn.train(model, variables, (x, y), seed=1, **kwargs).history.step_loss
    c = jaxrnn.train(model, variables, (x, y), seed=2, **kwargs).history.step_loss
    assert a == b
    assert a != c


def test_train_shows_a_progress_bar(capsys):
    model, variables, x, y = _setup()
    jaxrnn.train(model, variables, (x, y), loss="mse", epochs=2, batch_size=12, learning_rate=0.01,
                 test_data=(x, y), desc="sine demo")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("sine demo ")
    assert lines[-1].startswith("sine demo ") and " 100% " in lines[-1] and "4/4" in lines[-1]
    assert re.search(r"loss=[0-9.e-]+, test_loss=[0-9.e-]+$", lines[-1])


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(epochs=0), ValueError, "`epochs` must be a positive int, got 0"),
        (dict(epochs=1.5), TypeError, r"`epochs` must be a positive int, got 1.5 \(float\)"),
        (dict(batch_size=True), TypeError, r"`batch_size` must be a positive int, got True \(bool\)"),
        (dict(learning_rate=-0.1), ValueError, "`learning_rate` must be a positive finite number, got -0.1"),
        (dict(learning_rate=float("nan")), ValueError, "`learning_rate` must be a positive finite number, got nan"),
        (dict(clip_norm=0.0), ValueError, "`clip_norm` must be a positive finite number, got 0.0"),
        (dict(optimizer="rmsprop"), ValueError, r"`optimizer` must be one of \('adam', 'sgd'\), got 'rmsprop'"),
        (dict(loss="l1"), ValueError, r"`loss` must be one of \['cross_entropy', 'mse'\] or a function, got 'l1'"),
        (dict(loss=3), TypeError, r"`loss` must be one of .* or a function, got int"),
        (dict(metric="f1"), ValueError, r"`metric` must be one of \['accuracy', 'mse'\] or a function, got 'f1'"),
        (dict(seed=-1), ValueError, "train: `seed` must be a non-negative int, got -1"),
        (dict(seed=0.5), TypeError, r"train: `seed` must be a non-negative int, got 0.5 \(float\)"),
        (dict(train_data=(np.zeros((3, 6, 1)), np.zeros(4))), ValueError,
         r"train: `train_data` x has 3 examples \(shape \(3, 6, 1\)\) but y has 4 \(shape \(4,\)\)$"),
        (dict(train_data=np.zeros((3, 6, 1))), TypeError,
         r"`train_data` must be a pair \(x, y\): the model's inputs and the targets, got ndarray$"),
        (dict(train_data=(np.zeros((4, 6, 1)),)), TypeError,
         r"`train_data` must be a pair \(x, y\): the model's inputs and the targets, got tuple of length 1$"),
        (dict(test_data=(np.zeros((0, 6, 1)), np.zeros(0))), ValueError,
         r"`test_data` is empty \(y has shape \(0,\)\)"),
        (dict(train_data=((np.zeros((4, 6, 1)), np.arange(3)), np.zeros(4))), ValueError,
         r"train: `train_data` x\[1\] has 3 examples \(shape \(3,\)\) but y has 4 \(shape \(4,\)\)$"),
        (dict(train_data=({"x": np.zeros((4, 6, 1)), "seq_lengths": 5}, np.zeros(4))), ValueError,
         r"train: `train_data` x\['seq_lengths'\] needs a leading batch axis, got a scalar \(shape \(\)\)$"),
        (dict(train_data=((np.zeros((4, 6, 1)), np.array(list("abcd"))), np.zeros(4))), TypeError,
         r"train: `train_data` x\[1\] must be a numeric array, got dtype <U1$"),
        (dict(train_data=((np.zeros((4, 6, 1)), [[1, 2], [3]]), np.zeros(4))), TypeError,
         r"train: `train_data` x\[1\] must be an array or what numpy.asarray accepts, got list"),
        (dict(train_data=({"x": np.zeros((4, 6, 1)), "rngs": np.zeros(4)}, np.zeros(4))), ValueError,
         r"train: `train_data` x is a dict, passed to the model as keyword arguments, and its key 'rngs' is a "
         r"keyword of Module.apply itself; rename it$"),
        (dict(train_data=({"x": np.zeros((4, 6, 1)), "train": np.zeros(4)}, np.zeros(4)),
              train_kwargs={"train": True}), ValueError,
         r"train: `train_data` x is a dict, passed to the model as keyword arguments, and its key 'train' is a "
         r"keyword of the model's mode; rename it$"),
        (dict(train_data=((), np.zeros(4))), ValueError, r"train: `train_data` x holds no array, got \(\)$"),
        (dict(train_data=(np.zeros((4, 6, 1)), 1.0)), ValueError,
         r"train: `train_data` y needs a leading batch axis, got a scalar \(shape \(\)\)$"),
        (dict(test_data=((np.zeros((3, 6, 1)), np.zeros(2)), np.zeros(3))), ValueError,
         r"train: `test_data` x\[1\] has 2 examples \(shape \(2,\)\) but y has 3 \(shape \(3,\)\)$"),
        (dict(variables={"weights": {}}), TypeError, "`variables` must be a mapping with a 'params' entry"),
        (dict(model=lambda x: x), TypeError, "`model` must be a flax.linen Module, got function"),
    ],
)
def test_train_rejects_bad_arguments(kwargs, error, message):
    model, variables, x, y = _setup()
    args = dict(model=model, variables=variables, train_data=(x, y), loss="mse", epochs=1, batch_size=4,
                learning_rate=0.01, progress=False)
    args.update(kwargs)
    with pytest.raises(error, match=message):
        jaxrnn.train(args.pop("model"), args.pop("variables"), args.pop("train_data"), **args)


def test_evaluate_predict_and_the_step_check_their_inputs():
    model, variables, x, y = _setup()
    with pytest.raises(ValueError, match=r"evaluate: `inputs\[1\]` has 3 examples \(shape \(3,\)\) but `targets` "
                                         r"has 24 \(shape \(24,\)\)$"):
        jaxrnn.evaluate(model, variables, (x, np.arange(3)), y, loss="mse")
    with pytest.raises(ValueError, match=r"evaluate: `targets` needs a leading batch axis, got a scalar"):
        jaxrnn.evaluate(model, variables, x, 0.5, loss="mse")
    with pytest.raises(ValueError, match=r"predict: `inputs\['b'\]` has 3 examples \(shape \(3, 2\)\) but "
                                         r"`inputs\['a'\]` has 24; every input needs the same leading batch axis$"):
        jaxrnn.predict(model, variables, {"a": x, "b": np.zeros((3, 2))})
    with pytest.raises(ValueError, match=r"predict: `inputs` needs a leading batch axis, got a scalar"):
        jaxrnn.predict(model, variables, 1.0)
    tx = jaxrnn.make_optimizer(0.01)
    step = jaxrnn.make_train_step(model, "mse", tx)
    with pytest.raises(ValueError, match=r"make_train_step's step: x has 24 examples \(shape \(24, 6, 1\)\) but y "
                                         r"has 4 \(shape \(4,\)\)$"):
        step(variables, tx.init(variables["params"]), x, y[:4])
    with pytest.raises(TypeError, match=r"make_train_step: `optimizer` must be an optax GradientTransformation"):
        jaxrnn.make_train_step(model, "mse", 0.01)


def test_a_nested_list_is_one_input_array():
    """A list is read as numpy reads it (one array), as before inputs could be pytrees (Python
    floats make float64 arrays: compared with the float64 arrays)."""
    model, variables, x, y = _setup()
    x, y = x.astype(np.float64), y.astype(np.float64)
    kwargs = dict(loss="mse", epochs=1, batch_size=8, learning_rate=0.01, progress=False)
    as_list = jaxrnn.train(model, variables, (x.tolist(), y.tolist()), **kwargs).history
    assert as_list.to_dict() == jaxrnn.train(model, variables, (x, y), **kwargs).history.to_dict()
    np.testing.assert_array_equal(jaxrnn.predict(model, variables, x[:3].tolist()), model.apply(variables, x[:3]))


class _Terminal(io.StringIO):
    def isatty(self):
        return True


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_progress_bar_in_a_log_writes_the_first_step_and_each_quarter():
    stream = io.StringIO()
    with progress_bar(8, "job", stream=stream) as bar:
        for i in range(8):
            bar.update(loss=float(i))
    lines = stream.getvalue().splitlines()
    assert [re.search(r" (\d+)% ", line)[1] for line in lines] == ["12", "25", "50", "75", "100"]
    assert all(line.startswith("job ") for line in lines)
    assert [re.search(r" (\d)/8 ", line)[1] for line in lines] == ["1", "2", "4", "6", "8"]
    assert lines[0].endswith("loss=0") and lines[-1].endswith("loss=7")
    assert "\x1b" not in stream.getvalue()  # no colours or cursor moves in a log


def test_progress_bar_on_a_terminal_redraws_one_line():
    stream = _Terminal()
    with progress_bar(3, "job", stream=stream) as bar:
        for _ in range(3):
            bar.update(loss=0.25)
    text = stream.getvalue()
    drawn = _ANSI.sub("", text)
    assert drawn.count("\n") == 1 and drawn.endswith("\n")  # one line, redrawn in place
    assert drawn.count("\r") >= 2
    last = drawn.removesuffix("\n").split("\r")[-1]
    assert last.startswith("job ") and " 100% " in last and "3/3" in last and last.endswith("loss=0.25")


def test_progress_bar_disabled_writes_nothing():
    stream = io.StringIO()
    with progress_bar(3, stream=stream, enabled=False) as bar:
        bar.update(3)
    assert stream.getvalue() == "" and bar.count == 3


def test_train_without_progress_writes_nothing(capsys):
    model, variables, x, y = _setup()
    jaxrnn.train(model, variables, (x, y), loss="mse", epochs=1, batch_size=12, learning_rate=0.01, progress=False)
    assert capsys.readouterr().err == ""


def test_progress_bar_rejects_a_bad_total():
    with pytest.raises(ValueError, match="`total` must be a non-negative int, got -1"):
        with progress_bar(-1):
            pass
