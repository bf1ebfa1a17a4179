"""The lesson's exercises in their short mode (quick=True): each runs end to end, learns, and
writes its figures. The full runs (make demo) stay out of the suite."""

from __future__ import annotations

import numpy as np
import pytest

from jaxrnn.lesson import clipping, sentiment, shapes, sine, tagging

PNG = b"\x89PNG\r\n\x1a\n"


def _check_figures(result, out):
    assert result.figures, "every exercise draws something"
    for filename, caption in result.figures:
        assert (out / filename).read_bytes()[:8] == PNG, filename
        assert caption


def _falls(history, factor):
    """The epoch loss ends below `factor` times where it started."""
    return history["loss"][-1] < factor * history["loss"][0]


def test_shapes_match_the_formulas_and_torch(tmp_path):
    result = shapes.shapes(tmp_path, framework="both")
    for label, cfg, (batch, seq, _) in shapes.SHAPE_CONFIGS:
        d = 2 if cfg.get("bidirectional") else 1
        layers, hidden = cfg.get("num_layers", 1), cfg["hidden_size"]
        for fw in ("jax", "torch"):
            row = f"| `{label}` | {(batch, seq, cfg['input_size'])} | {fw} | {(batch, seq, d * hidden)} | " \
                  f"{(layers * d, batch, hidden)} |"
            assert row in result.report, row
    assert result.metrics["shapes.hn_vs_output_max_abs_diff"] == 0.0
    assert result.metrics["shapes.max_abs_diff_vs_torch"] < 1e-5  # float32, same weights
    _check_figures(result, tmp_path)


def test_sine_learns(tmp_path):
    result = sine.sine(tmp_path, quick=True, progress=False)
    s = result.settings
    history = result.histories[f"jax seq_len {s['seq_len']}"]
    assert len(history["loss"]) == s["epochs"]
    assert _falls(history, 0.1)
    # sin has variance 1/2: predicting a constant gives MSE 0.5
    assert result.metrics["sine.test_mse"] < 0.02
    for seq_len in s["sweep"]:
        assert result.metrics[f"sine.seq_len_{seq_len}.test_mse"] < 0.05
        # the first input step moves the loss less than the last (the vanishing gradient)
        assert result.metrics[f"sine.seq_len_{seq_len}.input_grad_ratio"] < 1
    _check_figures(result, tmp_path)


def test_sentiment_learns_in_both_frameworks(tmp_path):
    result = sentiment.sentiment(tmp_path, framework="both", quick=True, progress=False)
    for fw in ("jax", "torch"):
        assert result.metrics[f"{fw}.sentiment.test_accuracy"] >= 0.75  # chance: 0.5
        assert _falls(result.histories[fw], 0.5)
    assert result.metrics["sentiment.test_accuracy"] == result.metrics["jax.sentiment.test_accuracy"]
    # same data, weights and batch order: the first epochs agree to float32 rounding
    np.testing.assert_allclose(result.histories["jax"]["step_loss"][:10], result.histories["torch"]["step_loss"][:10],
                               rtol=1e-4)
    _check_figures(result, tmp_path)


def test_clipping_bounds_every_step(tmp_path):
    result = clipping.clipping(tmp_path, quick=True, progress=False)
    m, s = result.metrics, result.settings
    assert m["clipping.grad_norm_before"] > 1e3  # exploding at N(0, 2^2) weights
    np.testing.assert_allclose(m["clipping.grad_norm_after"], s["max_norm"], rtol=1e-6)
    # clipped SGD moves the weights by at most lr * max_norm per step, so their norm stays put ...
    steps = len(result.histories["jax sgd clipped"]["step_loss"])
    drift = abs(m["clipping.sgd.clipped.weight_norm"] - m["clipping.initial_weight_norm"])
    assert drift <= steps * s["lr_sgd"] * s["max_norm"] * (1 + 1e-9)
    # ... unclipped SGD's first step alone throws them far away
    assert m["clipping.sgd.unclipped.weight_norm"] > 10 * m["clipping.initial_weight_norm"]
    for name, history in result.histories.items():
        assert all(np.isfinite(history["loss"])), name
        # every run starts from the same weights and batch: the same first gradient norm
        first = result.histories["jax adam unclipped"]["step_grad_norm"][0]
        assert history["step_grad_norm"][0] == pytest.approx(first, rel=1e-12), name
    _check_figures(result, tmp_path)


def test_tagging_learns(tmp_path):
    result = tagging.tagging(tmp_path, quick=True, progress=False)
    assert result.metrics["tagging.token_accuracy"] >= 0.9  # chance: 1/3
    assert _falls(result.histories["jax"], 0.3)
    _check_figures(result, tmp_path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(framework="tensorflow"), r"`framework` must be one of \('jax', 'torch', 'both'\), got 'tensorflow'"),
        (dict(epochs=0), "tagging: `epochs` must be a positive int, got 0"),
        (dict(seed=-2), "tagging: `seed` must be a non-negative int, got -2"),
    ],
)
def test_exercises_reject_bad_options(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tagging.tagging(tmp_path, **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(epochs=2.5), r"tagging: `epochs` must be a positive int, got 2.5 \(float\)"),
        (dict(seed="0"), r"tagging: `seed` must be a non-negative int, got '0' \(str\)"),
    ],
)
def test_exercises_reject_options_of_the_wrong_type(tmp_path, kwargs, message):
    with pytest.raises(TypeError, match=message):
        tagging.tagging(tmp_path, **kwargs)
