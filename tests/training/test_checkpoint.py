"""Checkpoints (orbax): resume gives the uninterrupted run bit for bit, a save killed half way keeps
the last good checkpoint, a checkpoint of another run or a corrupt one is a clear error, and the
CLI's --checkpoint-dir/--resume and `export` (to safetensors, loaded by torch)."""

from __future__ import annotations

import hashlib
import json
import shutil

import flax.linen as nn
import jax
import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch
from _compare import assert_close

import jaxrnn
import jaxrnn.models
import torchref.models
from jaxrnn.interop import _safetensors
from jaxrnn.lesson import _cli
from jaxrnn.training import CheckpointError

X, Y = jaxrnn.data.generate_sin_data(8, 40, seed=0)
X_TEST, Y_TEST = jaxrnn.data.generate_sin_data(8, 10, seed=1)
MODEL = jaxrnn.models.SinPredictor()
INIT = MODEL.init(jax.random.key(0), X[:1])
# 40 examples in batches of 16: the last batch of every epoch holds 8
KWARGS = dict(loss="mse", batch_size=16, learning_rate=0.01, clip_norm=0.5, seed=3, test_data=(X_TEST, Y_TEST),
              metric="mse", progress=False)


def _train(epochs, **kwargs):
    return jaxrnn.train(MODEL, INIT, (X, Y), epochs=epochs, **{**KWARGS, **kwargs})


def _assert_same_run(a, b):
    """Bit for bit: every history entry and every parameter."""
    assert a.history.to_dict() == b.history.to_dict()
    assert jax.tree.structure(a.variables) == jax.tree.structure(b.variables)
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a.variables), jax.tree.leaves(b.variables)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))


def _steps(directory):
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("nonfinite", ["stop", "skip"])
def test_resume_gives_the_uninterrupted_run_bit_for_bit(tmp_path, nonfinite):
    """2 epochs, then --resume to 4: the history, the parameters (and so every later number) of one
    uninterrupted 4-epoch run. With nonfinite='skip' the optimizer state is wrapped by
    optax.apply_if_finite, whose counters the checkpoint keeps too."""
    full = _train(4, nonfinite=nonfinite)
    first = _train(2, checkpoint_dir=tmp_path, nonfinite=nonfinite)
    assert _steps(tmp_path) == ["1", "2"]
    resumed = _train(4, checkpoint_dir=tmp_path, resume=True, nonfinite=nonfinite)
    assert len(first.history.loss) == 2 and len(resumed.history.step_loss) == 4 * 3
    _assert_same_run(resumed, full)
    assert _steps(tmp_path) == ["3", "4"]  # the two newest are kept
    # resuming a finished run trains nothing and gives the same result again
    _assert_same_run(_train(4, checkpoint_dir=tmp_path, resume=True, nonfinite=nonfinite), full)
    # the checkpoint itself: the variables, the model, the epoch and step, the history
    variables, meta = jaxrnn.load_checkpoint(tmp_path)
    _assert_same_run(jaxrnn.TrainResult(variables, jaxrnn.History(**meta["history"])), full)
    assert meta["run"]["model"] == {"name": "SinPredictor",
                                    "config": {"cell": "rnn", "dtype": None, "param_dtype": "float32"}}
    assert (meta["epoch"], meta["step"]) == (4, 12)


class DropoutSin(nn.Module):
    """SinPredictor's shape with dropout 0.3 between two RNN layers (``deterministic`` switches it)."""

    @nn.compact
    def __call__(self, x, *, deterministic: bool = True):
        out, _ = jaxrnn.RNN(1, 16, num_layers=2, dropout=0.3, batch_first=True, name="rnn")(
            x, deterministic=deterministic)
        return jaxrnn.Linear(16, 1, name="fc")(out[:, -1])[:, 0]


def test_resume_with_dropout_gives_the_uninterrupted_run_bit_for_bit(tmp_path):
    """Step k draws its masks from fold_in(key(seed), k) with k counted over the whole run (the
    checkpointed step), so the resumed epochs draw the masks of the uninterrupted run."""
    model = DropoutSin()
    init = model.init(jax.random.key(0), X[:1])

    def run(epochs, **kwargs):
        return jaxrnn.train(model, init, (X, Y), epochs=epochs, **{**KWARGS, **kwargs})

    full = run(4)
    run(2, checkpoint_dir=tmp_path)
    _assert_same_run(run(4, checkpoint_dir=tmp_path, resume=True), full)
    # dropout was on: the run without it takes other steps
    off = run(4, train_kwargs={"deterministic": True}).history.step_loss
    assert all(a != b for a, b in zip(off, full.history.step_loss))
    # a mode given by hand is part of the run
    with pytest.raises(CheckpointError, match=r"differs in: training\.train_kwargs: not in the checkpoint, this run "
                                              r"\{'deterministic': False\}$"):
        run(5, checkpoint_dir=tmp_path, resume=True, train_kwargs={"deterministic": False})


def test_the_data_fingerprint_of_one_array_is_as_before_and_a_pytree_holds_its_structure():
    """One input array hashes as ``fingerprint(x, y)`` did before inputs could be pytrees (old
    checkpoints still resume); a tuple or a dict of the same arrays hashes otherwise."""
    from jaxrnn.training import _checkpoint, _loop

    x, y = np.asarray(X), np.asarray(Y)
    digest = hashlib.sha256()
    for array in (x, y):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    assert _loop._fingerprint(x, y) == _checkpoint.fingerprint(x, y) == digest.hexdigest()
    prints = {_loop._fingerprint(inputs, y) for inputs in (x, (x,), {"x": x}, {"seq": x}, (x, x[:, 0]))}
    assert len(prints) == 5


def test_resume_across_the_stop_and_skip_policies(tmp_path):
    """A run checkpointed with nonfinite='stop' resumes with 'skip' (and back): the checkpoint holds
    the optimizer's own state. The two policies compile different steps (apply_if_finite's
    lax.cond), so the result is the uninterrupted run's up to float32 rounding, not bit for bit."""
    full = _train(3)
    _train(1, checkpoint_dir=tmp_path)
    _train(2, checkpoint_dir=tmp_path, resume=True, nonfinite="skip")
    resumed = _train(3, checkpoint_dir=tmp_path, resume=True)
    for key, values in full.history.to_dict().items():
        if key != "metric":
            assert_close(resumed.history.to_dict()[key], values, "float32", what=key)
    for a, b in zip(jax.tree.leaves(resumed.variables), jax.tree.leaves(full.variables)):
        assert_close(a, b, "float32")


def test_a_save_killed_half_way_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    """orbax writes a step into a temporary directory and renames it when complete; a crash before
    the rename (here: the rename raises) leaves epoch 1 as the newest checkpoint, and resuming from
    it gives the uninterrupted run."""
    from orbax.checkpoint._src.path import atomicity

    finalize = atomicity.AtomicRenameTemporaryPath.finalize

    class Killed(Exception):
        """Stands for the process dying (an ordinary exception: a KeyboardInterrupt raised in
        orbax's event loop would be re-delivered to the main thread later, at a random point)."""

    async def crash_at_epoch_2(self, *args, **kwargs):
        if self.get_final().name == "2":
            raise Killed("killed while saving epoch 2")
        return await finalize(self, *args, **kwargs)

    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", crash_at_epoch_2)
    with pytest.raises(Killed, match="killed while saving epoch 2"):
        _train(2, checkpoint_dir=tmp_path)
    monkeypatch.undo()
    names = _steps(tmp_path)
    assert names[0] == "1" and len(names) == 2 and names[1].startswith("2.orbax-checkpoint-tmp")
    assert (tmp_path / names[1] / "variables").is_dir()  # half written: the data is there, not committed
    assert jaxrnn.load_checkpoint(tmp_path)[1]["epoch"] == 1
    resumed = _train(2, checkpoint_dir=tmp_path, resume=True)
    _assert_same_run(resumed, _train(2))
    assert _steps(tmp_path) == ["1", "2"]  # the temporary directory is cleaned up


def test_a_checkpoint_of_another_run_names_what_differs(tmp_path):
    _train(1, checkpoint_dir=tmp_path)
    gru = jaxrnn.models.SinPredictor(cell="gru")
    with pytest.raises(CheckpointError, match=r"written for a different run; it differs in: model\.config\.cell: "
                                              r"checkpoint 'rnn', this run 'gru'; .*weight_hh.*: checkpoint "
                                              r"'float32\[32, 32\]', this run 'float32\[96, 32\]'"):
        jaxrnn.train(gru, gru.init(jax.random.key(0), X[:1]), (X, Y), epochs=2, checkpoint_dir=tmp_path,
                     resume=True, **KWARGS)
    with pytest.raises(CheckpointError, match=r"differs in: training\.learning_rate: checkpoint 0\.01, this run "
                                              r"0\.02$"):
        _train(2, checkpoint_dir=tmp_path, resume=True, learning_rate=0.02)
    with pytest.raises(CheckpointError, match=r"differs in: data\.train: checkpoint '[0-9a-f]{64}', this run"):
        jaxrnn.train(MODEL, INIT, (X[::-1], Y[::-1]), epochs=2, checkpoint_dir=tmp_path, resume=True, **KWARGS)


def test_a_corrupt_checkpoint_is_a_clear_error(tmp_path):
    _train(2, checkpoint_dir=tmp_path)
    meta = tmp_path / "2" / "meta" / "metadata"
    meta.write_text(meta.read_text()[:40])  # truncated JSON
    with pytest.raises(CheckpointError, match=r"the checkpoint .*2 cannot be read \(.*\); it is corrupt or "
                                              r"incomplete: move it away to resume from an earlier one"):
        _train(3, checkpoint_dir=tmp_path, resume=True)
    shutil.rmtree(tmp_path / "2")
    for path in (tmp_path / "1" / "variables").rglob("*"):  # the array data of epoch 1
        if path.is_file() and path.parent.name == "d":
            path.write_bytes(b"\0" * 16)
    with pytest.raises(CheckpointError, match=r"the checkpoint .*1 cannot be read"):
        _train(3, checkpoint_dir=tmp_path, resume=True)


def test_checkpoint_argument_errors(tmp_path):
    _train(2, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match=r"already holds a checkpoint \(epoch 2\); pass resume=True"):
        _train(2, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="`epochs` is 1 but the checkpoint in .* has already completed 2 epochs"):
        _train(1, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="`resume=True` needs a `checkpoint_dir` to resume from, got None"):
        _train(1, resume=True)
    with pytest.raises(TypeError, match=r"`resume` must be a bool, got 'yes' \(str\)"):
        _train(1, checkpoint_dir=tmp_path, resume="yes")
    with pytest.raises(ValueError, match="`checkpoint_every` must be a positive int, got 0"):
        _train(1, checkpoint_every=0)
    (tmp_path / "file").write_text("")
    with pytest.raises(CheckpointError, match="`checkpoint_dir` '.*file' exists and is not a directory"):
        _train(1, checkpoint_dir=tmp_path / "file")
    with pytest.raises(CheckpointError, match=r"no checkpoint in .*empty"):
        jaxrnn.load_checkpoint(tmp_path / "empty")
    with pytest.raises(CheckpointError, match=r"`epoch` 5 has no checkpoint in .*; there are \[1, 2\]"):
        jaxrnn.load_checkpoint(tmp_path, epoch=5)


# --------------------------------------------------------------------------------------------
# the command line


def _cli_run(*argv):
    assert _cli.main([*argv, "--no-progress"]) == 0


def test_cli_sine_resume_matches_one_run(tmp_path, capsys):
    """`sine --epochs 2` then `sine --epochs 4 --resume` (same seed and directory): the metrics and
    the final parameters of one uninterrupted 4-epoch run, bit for bit."""
    ckpt, once = tmp_path / "ckpt", tmp_path / "once"
    _cli_run("sine", "--quick", "--epochs", "2", "--seed", "1", "--checkpoint-dir", str(ckpt), "--out",
             str(tmp_path / "a"))
    _cli_run("sine", "--quick", "--epochs", "4", "--seed", "1", "--checkpoint-dir", str(ckpt), "--resume", "--out",
             str(tmp_path / "a"))
    _cli_run("sine", "--quick", "--epochs", "4", "--seed", "1", "--checkpoint-dir", str(once), "--out",
             str(tmp_path / "b"))
    resumed = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert resumed == json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert "sine.test_mse" in resumed and "sine.seq_len_8.input_grad_ratio" in resumed
    assert sorted(p.name for p in ckpt.iterdir()) == ["sine_seq_len_15", "sine_seq_len_8"]
    for run in ("sine_seq_len_15", "sine_seq_len_8"):
        (a, meta_a), (b, meta_b) = jaxrnn.load_checkpoint(ckpt / run), jaxrnn.load_checkpoint(once / run)
        _assert_same_run(jaxrnn.TrainResult(a, jaxrnn.History(**meta_a["history"])),
                         jaxrnn.TrainResult(b, jaxrnn.History(**meta_b["history"])))
        assert meta_a["epoch"] == 4

    # export the trained model for PyTorch: torchref's SinPredictor loads it and computes the same
    out = tmp_path / "sine.safetensors"
    _cli_run("export", "--checkpoint-dir", str(ckpt / "sine_seq_len_15"), "--out", str(out))
    assert f"wrote {out}" in capsys.readouterr().out
    model_t = torchref.models.SinPredictor()
    model_t.load_state_dict(safetensors.torch.load_file(out))
    variables, _ = jaxrnn.load_checkpoint(ckpt / "sine_seq_len_15")
    x = np.random.default_rng(0).standard_normal((5, 15, 1)).astype(np.float32)
    with torch.no_grad():
        assert_close(MODEL.apply(variables, x), model_t(torch.from_numpy(x)).numpy(), "float32")
    metadata = safetensors.safe_open(out, "np").metadata()
    assert metadata["jaxrnn.model"] == "SinPredictor" and metadata["jaxrnn.epoch"] == "4"
    assert json.loads(metadata["jaxrnn.config"]) == {"cell": "rnn", "dtype": None, "param_dtype": "float32"}

    # a directory with several runs: say which
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(["export", "--checkpoint-dir", str(ckpt), "--out", str(out)])
    assert exit_info.value.code == 2
    assert "holds the checkpoints of several runs (sine_seq_len_15, sine_seq_len_8); pass one" in \
        capsys.readouterr().err
    # a checkpoint directory already used, without --resume: a clear error, exit status 1
    assert _cli.main(["sine", "--quick", "--epochs", "4", "--seed", "1", "--checkpoint-dir", str(once), "--out",
                      str(tmp_path / "b"), "--no-progress"]) == 1
    assert "already holds a checkpoint (epoch 4); pass resume=True" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sine", "--resume"], "argument --resume: needs --checkpoint-dir"),
        (["sine", "--checkpoint-every", "2"], "argument --checkpoint-every: needs --checkpoint-dir"),
        (["sine", "--checkpoint-dir", "c", "--framework", "torch"],
         "argument --checkpoint-dir: checkpoints hold the JAX runs; --framework torch trains none"),
        (["sine", "--devices", "0"], "argument --devices: expected a positive integer, got 0"),
        (["sine", "--devices", "2"], "argument --devices: `devices` must be between 1 and the 1 available cpu "
                                     "device(s), got 2; on a CPU, set XLA_FLAGS"),
        (["export"], "argument --checkpoint-dir: export needs --checkpoint-dir DIR"),
        (["export", "--checkpoint-dir", "c"], "argument --out: export needs --out FILE.safetensors"),
    ],
)
def test_cli_checkpoint_and_device_argument_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_export_without_safetensors_is_a_clear_error(monkeypatch, capsys, tmp_path):
    def no_safetensors():
        raise ImportError("safetensors files need the safetensors package: pip install 'jaxrnn[safetensors]' (No "
                          "module named 'safetensors')")

    monkeypatch.setattr(_safetensors, "require_safetensors", no_safetensors)
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(["export", "--checkpoint-dir", str(tmp_path), "--out", str(tmp_path / "w.safetensors")])
    assert exit_info.value.code == 2
    assert "argument --out: safetensors files need the safetensors package: pip install 'jaxrnn[safetensors]'" in \
        capsys.readouterr().err
