"""jaxrnn.lesson.section9: the marked-recall data, checked step by step, and a quick comparison run end to end."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from jaxrnn.lesson import section5, section9
from jaxrnn.models import RNNClassifier


@pytest.mark.parametrize("seq_len,k,num_symbols", [(9, 0, 3), (9, 4, 4), (9, 8, 6), (30, 17, 2)])
def test_recall_data_labels_are_right(seq_len, k, num_symbols):
    """Decode every sequence by hand: one symbol per step, one marker, at step T-1-k; the label is
    the symbol shown there."""
    x, y = section9.recall_data(50, seq_len, k, num_symbols, seed=3)
    assert x.shape == (50, seq_len, num_symbols + 1) and x.dtype == np.float32 and y.dtype == np.int32
    for seq, label in zip(x, y):
        markers = [t for t in range(seq_len) if seq[t, num_symbols] == 1.0]
        assert markers == [seq_len - 1 - k]
        shown = []
        for t in range(seq_len):
            hot = [s for s in range(num_symbols) if seq[t, s] == 1.0]
            assert len(hot) == 1 and seq[t, :num_symbols].sum() == 1.0
            shown.append(hot[0])
        assert label == shown[seq_len - 1 - k]
    assert set(np.unique(x)) == {0.0, 1.0}


def test_recall_data_is_seeded_and_balanced():
    x, y = section9.recall_data(4000, 12, 5, 4, seed=7)
    x2, y2 = section9.recall_data(4000, 12, 5, 4, seed=7)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(section9.recall_data(4000, 12, 5, 4, seed=8)[1], y)
    np.testing.assert_allclose(np.bincount(y, minlength=4) / 4000, 0.25, atol=0.03)
    # the symbols away from the marked step do not predict the label (no leak): step T-1 agrees by chance
    last = x[:, -1, :4].argmax(-1)
    assert abs(np.mean(last == y) - 0.25) < 0.03


def test_recall_data_errors():
    with pytest.raises(ValueError, match=r"`k` must lie in \[0, seq_len - 1\] = \[0, 9\], got 10"):
        section9.recall_data(4, 10, 10)
    with pytest.raises(TypeError, match="`k` must be an int, got 2.0"):
        section9.recall_data(4, 10, 2.0)
    with pytest.raises(ValueError, match="`num_symbols` must be at least 2, got 1"):
        section9.recall_data(4, 10, 2, num_symbols=1)
    with pytest.raises(ValueError, match="`n_samples` must be a positive int, got 0"):
        section9.recall_data(0, 10, 2)
    with pytest.raises(ValueError, match="recall_data: `seed` must be a non-negative int, got -1"):
        section9.recall_data(4, 10, 2, seed=-1)
    with pytest.raises(TypeError, match=r"settings: `seed` must be a non-negative int, got 1.5 \(float\)"):
        section9.settings(seed=1.5)
    with pytest.raises(ValueError, match="settings: `seed` must be a non-negative int, got -1"):
        section9.settings(seed=-1)
    with pytest.raises(ValueError, match=r"`cells` must be a non-empty sequence of .* got \('lstn',\)"):
        section9.run_compare("unused", cells=("lstn",))


def test_with_forget_bias_moves_only_the_forget_gate():
    model = RNNClassifier(5, 6, 4, cell="lstm")
    variables = model.init(jax.random.key(0), np.zeros((1, 3, 5), np.float32))
    shifted = section9.with_forget_bias(variables, 1.0, 6)
    before = np.asarray(variables["params"]["rnn"]["l0"]["bias_ih"])
    after = np.asarray(shifted["params"]["rnn"]["l0"]["bias_ih"])
    np.testing.assert_array_equal(after - before, np.r_[np.zeros(6), np.ones(6), np.zeros(12)].astype(np.float32))
    np.testing.assert_array_equal(shifted["params"]["fc"]["weight"], variables["params"]["fc"]["weight"])
    assert before is not after
    with pytest.raises(ValueError, match=r"expected an LSTM bias_ih of shape \(32,\), got \(24,\)"):
        section9.with_forget_bias(variables, 1.0, 8)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The CLI's ``compare --quick`` (run_compare inside an ExerciseResult), run once for the module."""
    out = tmp_path_factory.mktemp("compare")
    result = section9.compare_exercise(out, framework="both", quick=True, seed=0, progress=False)
    return out, result.metrics, result


def test_run_compare_quick_writes_figures_and_finite_metrics(quick_run):
    out, metrics, _ = quick_run
    s = section9.settings(quick=True)
    for name in ("compare.png", "compare_curves.png", "compare_gradflow.png"):
        assert (out / name).stat().st_size > 10_000, name
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["compare.chance"] == 0.25
    for cell in section9.CELLS:
        assert 0 < metrics[f"compare.{cell}.time_per_epoch"] < metrics[f"compare.{cell}.first_epoch_s"]
        for k in s["ks"]:
            assert 0.0 <= metrics[f"compare.{cell}.k{k}.accuracy"] <= 1.0
            assert 1 <= metrics[f"compare.{cell}.k{k}.epochs"] <= s["max_epochs"]
            # training stops early exactly when the target is reached
            reached = metrics[f"compare.{cell}.k{k}.accuracy"] >= s["target"]
            assert reached or metrics[f"compare.{cell}.k{k}.epochs"] == s["max_epochs"]


def test_quick_lstm_and_gru_beat_chance_at_moderate_k(quick_run):
    _, metrics, _ = quick_run
    for cell in ("lstm", "lstm_fb1", "gru"):
        assert metrics[f"compare.{cell}.k8.accuracy"] > 0.5, cell  # chance is 0.25


def test_compare_exercise_report_holds_the_measured_table(quick_run):
    out, metrics, result = quick_run
    assert [name for name, _ in result.figures] == ["compare.png", "compare_curves.png", "compare_gradflow.png"]
    report = "\n".join(result.report)
    for cell in section9.CELLS:
        row = next(line for line in result.report if line.startswith(f"| {section9.LABELS[cell]} |"))
        assert f"{metrics[f'compare.{cell}.k8.accuracy']:.3f} ({metrics[f'compare.{cell}.k8.epochs']:.0f})" in row
    assert "JAX only" in report and result.wall_s > 0


def test_exercises_are_skipped_for_torch_only(tmp_path):
    for exercise in (section9.compare_exercise, section5.gradflow_exercise):
        result = exercise(tmp_path, framework="torch", quick=True)
        assert result.metrics == {} and result.figures == [] and "skipped" in result.summary[0]
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="`framework` must be one of"):
        section9.compare_exercise(tmp_path, framework="tf")


def test_gradflow_exercise(tmp_path):
    result = section5.gradflow_exercise(tmp_path, quick=True)
    assert (tmp_path / "gradflow.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.metrics["gradflow.rnn_rho0p5.ratio_d50"] < 1e-10 < 1e4 < result.metrics["gradflow.rnn_rho3.ratio_d50"]
    assert any(f"{result.metrics['gradflow.lstm.ratio_d50']:.2e}" in line for line in result.report)
