"""Inputs as pytrees: a variable-length classifier trained on ``(ids, lengths)``, against torch.

torch: Embedding -> 2-layer bidirectional LSTM over ``pack_padded_sequence(..., enforce_sorted=False)``
-> Linear on the last layer's final forward and backward states, trained by ``torchref.train`` with
``x=(ids, lengths)`` (``model(ids, lengths)``). jaxrnn: the same in Flax (``LSTM(seq_lengths=lengths)``),
trained by ``jaxrnn.train`` on the same batches. Float64, Adam with clipping, unsorted lengths in
[1, T] padded with a nonzero id: every step's loss and gradient norm, every epoch number and the
final parameters agree to 1e-10, on one device and on two (a subprocess: the last batch is padded).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from _compare import assert_close, assert_trees_close

import jaxrnn
import torchref.train

VOCAB, EMBED, HIDDEN, CLASSES, T = 12, 5, 6, 3, 9
PAD = VOCAB - 1  # a real row of the embedding: padding that leaks in changes the numbers
F64 = jnp.float64


class TorchLengthClassifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(VOCAB, EMBED)
        self.lstm = torch.nn.LSTM(EMBED, HIDDEN, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = torch.nn.Linear(2 * HIDDEN, CLASSES)

    def forward(self, ids, lengths):
        packed = torch.nn.utils.rnn.pack_padded_sequence(self.embedding(ids), lengths, batch_first=True,
                                                         enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)
        return self.fc(torch.cat([h_n[-2], h_n[-1]], dim=-1))


class Batch(NamedTuple):
    ids: np.ndarray
    lengths: np.ndarray


def _classify(ids, lengths):
    """The torch model's layers, built inside the calling module's compact method."""
    emb = jaxrnn.Embedding(VOCAB, EMBED, param_dtype=F64, name="embedding")(ids)
    _, (h_n, _) = jaxrnn.LSTM(EMBED, HIDDEN, num_layers=2, bidirectional=True, batch_first=True, param_dtype=F64,
                              name="lstm")(emb, seq_lengths=lengths)
    return jaxrnn.Linear(2 * HIDDEN, CLASSES, param_dtype=F64, name="fc")(jnp.concatenate([h_n[-2], h_n[-1]], -1))


class LengthClassifier(nn.Module):
    """The torch model in Flax, ``model(ids, lengths)``."""

    @nn.compact
    def __call__(self, ids, lengths):
        return _classify(ids, lengths)


class BatchClassifier(nn.Module):
    """The same, called with one :class:`Batch` (and nothing else)."""

    @nn.compact
    def __call__(self, batch):
        if not isinstance(batch, Batch):
            raise TypeError(f"BatchClassifier takes one Batch, got {type(batch).__name__}")
        return _classify(batch.ids, batch.lengths)


def _data(n, seed):
    """Random ids below PAD, random lengths in [1, T] (both ends present, unsorted), PAD after each length."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, n)
    lengths[:2] = [T, 1]
    rng.shuffle(lengths)
    ids = rng.integers(0, PAD, (n, T))
    ids[np.arange(T) >= lengths[:, None]] = PAD
    return (ids, lengths), rng.integers(0, CLASSES, n)


# 19 examples in batches of 4: five steps (4, 4, 4, 4, 3)
TRAIN, TEST = _data(19, 0), _data(7, 1)
KWARGS = dict(epochs=1, batch_size=4, clip_norm=0.5, seed=2)


def _torch_run():
    torch.manual_seed(0)
    model_t = TorchLengthClassifier().double()
    start = {k: v.clone() for k, v in model_t.state_dict().items()}
    history = torchref.train.train(model_t, *TRAIN, loss="cross_entropy", lr=0.05, x_test=TEST[0], y_test=TEST[1],
                                   metric="accuracy", **KWARGS)
    return start, model_t, history


def _jax_run(start, devices=1, form=tuple):
    """jaxrnn.train from torch's starting weights, the inputs as a tuple, a dict or a Batch (``form``)."""
    model = BatchClassifier() if form is Batch else LengthClassifier()
    (ids, lengths), _ = TRAIN
    variables = jaxrnn.from_torch(start, LengthClassifier(), ids[:2], lengths[:2])
    train, test = (((form(ids=x[0], lengths=x[1]) if form is not tuple else x), y) for x, y in (TRAIN, TEST))
    return jaxrnn.train(model, variables, train, loss="cross_entropy", learning_rate=0.05, test_data=test,
                        metric="accuracy", progress=False, devices=devices, **KWARGS)


def _assert_matches_torch(history, params, history_t, model_t, what):
    assert history.keys() == history_t.keys()
    assert len(history["step_loss"]) == 5
    for key in ("step_loss", "step_grad_norm", "loss", "grad_norm", "train_metric", "test_loss", "test_metric"):
        assert_close(history[key], history_t[key], what=f"{what}: {key}")
    assert_trees_close(params, {k: p.detach().numpy() for k, p in model_t.named_parameters()},
                       what=f"{what}: params after training")


def test_train_on_ids_and_lengths_matches_torch():
    start, model_t, history_t = _torch_run()
    result = _jax_run(start)
    _assert_matches_torch(result.history.to_dict(), jaxrnn.to_torch(result.variables), history_t, model_t, "1 device")
    assert max(history_t["step_grad_norm"]) > 0.5  # clipping was active
    # the comparison means something: the weights moved, and the padding would change the numbers
    assert max(np.abs(start[k].numpy() - p.detach().numpy()).max() for k, p in model_t.named_parameters()) > 1e-2
    (ids, lengths), _ = TEST
    model = LengthClassifier()
    full = np.full_like(lengths, T)
    assert np.abs(jaxrnn.predict(model, result.variables, (ids, lengths))
                  - jaxrnn.predict(model, result.variables, (ids, full))).max() > 1e-3
    # predict and evaluate pass the tuple as the positional arguments too, as torchref does
    logits_t = torchref.train.predict(model_t, (ids, lengths))
    assert_close(jaxrnn.predict(model, result.variables, (ids, lengths)), logits_t, what="predict")
    assert_close(jaxrnn.evaluate(model, result.variables, (ids, lengths), TEST[1], loss="cross_entropy")["loss"],
                 torchref.train.evaluate(model_t, (ids, lengths), TEST[1], "cross_entropy")["loss"], what="evaluate")


@pytest.mark.parametrize("form", [dict, Batch], ids=["dict", "namedtuple"])
def test_a_dict_goes_in_as_keywords_and_a_namedtuple_as_one_argument(form):
    """``{'ids': ..., 'lengths': ...}`` is ``model(ids=..., lengths=...)`` and ``Batch(ids, lengths)``
    is ``model(batch)``: both train as the tuple does, against torch (torchref takes the dict as
    keywords too)."""
    torch.manual_seed(0)
    model_t = TorchLengthClassifier().double()
    start = {k: v.clone() for k, v in model_t.state_dict().items()}
    (ids, lengths), y = TRAIN
    x_t = {"ids": ids, "lengths": lengths} if form is dict else (ids, lengths)
    history_t = torchref.train.train(model_t, x_t, y, loss="cross_entropy", lr=0.05, x_test=TEST[0], y_test=TEST[1],
                                     metric="accuracy", **KWARGS)
    result = _jax_run(start, form=form)
    _assert_matches_torch(result.history.to_dict(), jaxrnn.to_torch(result.variables), history_t, model_t,
                          form.__name__)


SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    sys.path[:0] = sys.argv[1:3]
    import jaxrnn
    import test_train_lengths_match_torch as case

    assert len(jax.devices()) >= 2, jax.devices()
    start, _, _ = case._torch_run()
    result = case._jax_run(start, devices=2)
    print(json.dumps({"history": result.history.to_dict(),
                      "params": {k: v.tolist() for k, v in jaxrnn.to_torch(result.variables).items()}}))
""")


def test_train_on_ids_and_lengths_on_two_devices_matches_torch():
    """The same on two devices: the tuple's leaves are sharded together, the last batch (3) is
    padded to 4 and masked. In this process when it has two devices, else in a subprocess."""
    start, model_t, history_t = _torch_run()
    if len(jax.devices()) >= 2:
        result = _jax_run(start, devices=2)
        history, params = result.history.to_dict(), jaxrnn.to_torch(result.variables)
    else:
        here = os.path.dirname(os.path.abspath(__file__))
        env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
        done = subprocess.run([sys.executable, "-c", SCRIPT, here, os.path.dirname(here)], capture_output=True,
                              text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-4000:]
        out = json.loads(done.stdout.strip().splitlines()[-1])
        history, params = out["history"], {k: np.asarray(v) for k, v in out["params"].items()}
    _assert_matches_torch(history, params, history_t, model_t, "2 devices")
