"""Data-parallel training (jax.sharding): 4 CPU devices give the loss history of 1, batches that do
not divide by 4 are padded and masked (no example dropped), and a 4-device run checkpoints and
resumes bit for bit. The 4 devices exist only in a subprocess that sets XLA_FLAGS before jax is
imported; this process keeps its single device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import jaxrnn
import jaxrnn.models
from jaxrnn.training import _sharding

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    import jaxrnn, jaxrnn.models

    assert len(jax.devices()) == 4, jax.devices()
    out = {}

    def run(name, model, data, test, **kwargs):
        init = model.init(jax.random.key(0), data[0][:1])
        one = jaxrnn.train(model, init, data, test_data=test, progress=False, **kwargs)
        four = jaxrnn.train(model, init, data, test_data=test, devices=4, progress=False, **kwargs)
        h1, h4 = one.history.to_dict(), four.history.to_dict()
        out[name] = {
            "steps": [len(h1["step_loss"]), len(h4["step_loss"])],
            "max_rel_diff": {k: float(np.max(np.abs(np.subtract(h4[k], h1[k])) / np.abs(h1[k])))
                             for k in ("loss", "step_loss", "grad_norm", "train_metric", "test_loss", "test_metric")},
            "params_max_abs_diff": max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in
                                       zip(jax.tree.leaves(one.variables), jax.tree.leaves(four.variables))),
            "replicated": jax.tree.leaves(four.variables)[0].sharding.is_fully_replicated,
            "devices": len(jax.tree.leaves(four.variables)[0].sharding.device_set),
        }
        return model, init, four

    # 25 examples in batches of 6: every batch is padded (6 -> 8, the last, 1 -> 4)
    x, y = jaxrnn.data.generate_sin_data(8, 25, seed=0)
    xt, yt = jaxrnn.data.generate_sin_data(8, 9, seed=1)
    kw = dict(loss="mse", metric="mse", epochs=2, batch_size=6, learning_rate=0.01, seed=3)
    model, init, four = run("sine", jaxrnn.models.SinPredictor(), (x, y), (xt, yt), **kw)

    # 4 devices, checkpointed after epoch 1 and resumed: the uninterrupted 4-device run, bit for bit
    first = jaxrnn.train(model, init, (x, y), devices=4, progress=False, checkpoint_dir=sys.argv[1],
                         **{**kw, "epochs": 1}, test_data=(xt, yt))
    resumed = jaxrnn.train(model, init, (x, y), devices=4, progress=False, checkpoint_dir=sys.argv[1],
                           resume=True, **kw, test_data=(xt, yt))
    out["resume_equal"] = (resumed.history.to_dict() == four.history.to_dict() and all(
        np.array_equal(a, b) for a, b in zip(jax.tree.leaves(resumed.variables), jax.tree.leaves(four.variables))))

    # many-to-many with cross-entropy and accuracy over (batch, seq) tokens: 18 in batches of 8
    # (8 and 8 split evenly, the last 2 -> 4 padded)
    tokens, labels = jaxrnn.data.generate_tagging_data(24, 7, seed=0)
    inputs = jaxrnn.data.one_hot(tokens, 10)
    run("tagging", jaxrnn.models.RNNSeq2Seq(10, 16, 3), (inputs[:18], labels[:18]), (inputs[18:], labels[18:]),
        loss="cross_entropy", metric="accuracy", epochs=2, batch_size=8, learning_rate=0.01, seed=3)
    print(json.dumps(out))
""")


def test_four_devices_give_the_history_of_one_and_resume_bit_for_bit(tmp_path):
    """One subprocess (jax starts once, 4 devices). float32 on both sides: the sharded step sums the
    gradient over the devices in another order, and a padded batch's loss is a masked mean of
    per-example losses; that is rounding (stated tolerance 1e-5 relative), while an unmasked or
    dropped example would change the loss by ~1e-1."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "ckpt")], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for name, steps in (("sine", 2 * 5), ("tagging", 2 * 3)):
        r = out[name]
        assert r["steps"] == [steps, steps], name  # every batch, the ragged last one included
        for key, diff in r["max_rel_diff"].items():
            assert diff < 1e-5, (name, key, diff)
        assert r["params_max_abs_diff"] < 1e-6, name
        assert r["replicated"] is True and r["devices"] == 4, name  # a copy on each of the 4 devices
    assert out["resume_equal"] is True


def test_pad_batch_pads_with_the_last_example_and_masks_it():
    x = np.arange(15).reshape(5, 3)
    y = np.arange(5) * 10
    (px, py), mask = _sharding.pad_batch([x, y], 4)
    np.testing.assert_array_equal(px, np.concatenate([x, x[[4, 4, 4]]]))
    np.testing.assert_array_equal(py, [0, 10, 20, 30, 40, 40, 40, 40])
    np.testing.assert_array_equal(mask, [True] * 5 + [False] * 3)
    (same,), none = _sharding.pad_batch([x[:4]], 4)
    assert none is None and np.array_equal(same, x[:4])


def test_masked_mean_is_the_mean_over_the_real_examples():
    """The padded loss equals the loss of the real rows alone (mse and cross-entropy over tokens)."""
    from jaxrnn.training._step import masked_mean as _masked_mean

    rng = np.random.default_rng(0)
    pred, target = rng.standard_normal(7), rng.standard_normal(7)
    mask = np.arange(7) < 5
    np.testing.assert_allclose(_masked_mean(jaxrnn.mse_loss, pred, target, mask),
                               jaxrnn.mse_loss(pred[:5], target[:5]), rtol=1e-12)
    logits, labels = rng.standard_normal((4, 3, 5)), rng.integers(0, 5, (4, 3))
    np.testing.assert_allclose(_masked_mean(jaxrnn.cross_entropy_loss, logits, labels, np.arange(4) < 3),
                               jaxrnn.cross_entropy_loss(logits[:3], labels[:3]), rtol=1e-12)


def test_more_devices_than_there_are_is_a_clear_error():
    assert len(jax.devices()) == 1  # this process: one CPU device
    x, y = jaxrnn.data.generate_sin_data(4, 8, seed=0)
    model = jaxrnn.models.SinPredictor()
    args = (model, model.init(jax.random.key(0), x[:1]), (x, y))
    kwargs = dict(loss="mse", epochs=1, batch_size=4, learning_rate=0.01, progress=False)
    with pytest.raises(ValueError, match=r"train: `devices` must be between 1 and the 1 available cpu device\(s\), "
                                         r"got 4; on a CPU, set XLA_FLAGS=--xla_force_host_platform_device_count=4"):
        jaxrnn.train(*args, devices=4, **kwargs)
    with pytest.raises(TypeError, match=r"train: `devices` must be a positive int, got '2' \(str\)"):
        jaxrnn.train(*args, devices="2", **kwargs)
    mesh = _sharding.make_mesh(1)
    assert mesh.axis_names == ("batch",) and mesh.size == 1
