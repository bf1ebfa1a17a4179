"""The lesson's exercises in their short mode (quick=True): each runs end to end, learns, and
writes its figures. The full runs (make demo) stay out of the suite."""

from __future__ import annotations

import math

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
    # ... and where they part, torch nudged by one ulp parts from itself as far: rounding, not a difference
    m = result.metrics
    assert m["torch.sentiment.drift.quiet_steps"] >= 20 and m["torch.sentiment.drift.quiet_gap"] < 1e-5
    if not math.isnan(m["torch.sentiment.drift.step"]):
        assert m["torch.sentiment.drift.torch_1ulp_max_gap"] > 10 * m["torch.sentiment.drift.quiet_gap"]
        assert any(line.startswith("Why the two frameworks' numbers differ") for line in result.report)
    _check_figures(result, tmp_path)


def test_drift_finds_where_two_runs_part():
    """Two step-loss curves equal to 1e-7 for 50 steps, then a gap doubling every step."""
    a = np.zeros(100)
    b = np.r_[np.full(50, 1e-7), 1e-7 * 2.0 ** np.arange(1, 51)]
    d = sentiment.drift(a, b, 20)
    # 1e-7 * 2^k passes 1e-5 at k = 7 (step 57), 1e-4 at k = 10 (step 60), 1e-2 at k = 17 (step 67)
    assert (d["step"], d["epoch"], d["quiet_steps"], d["grow_from_step"], d["grow_to_step"]) == (60, 3, 56, 57, 67)
    assert d["doubling_steps"] == 1.0
    assert math.isnan(sentiment.drift(np.zeros(40), np.full(40, 1e-6), 20)["step"])


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


# --------------------------------------------------------------------------------------------
# the figures' layout: drawn from made-up numbers (no training), then measured as matplotlib drew them


def _drawn_figures(monkeypatch, *modules):
    """The figures the plotting functions of ``modules`` save, kept for measuring after the save."""
    figures = []
    for module in modules:
        def save(fig, path, real=module.save_figure):
            figures.append(fig)
            return real(fig, path)

        monkeypatch.setattr(module, "save_figure", save)
    return figures


def _redraw(fig):
    """The renderer of ``fig`` drawn again as saved (110 dpi; save_figure closed its canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.set_dpi(110)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _tick_labels(axis, drawn=True):
    """The tick labels of ``axis`` whose ticks lie inside its limits (the ones drawn), or the others."""
    lo, hi = sorted(axis.get_view_interval())
    slack = 1e-9 * (hi - lo)
    return [label for tick in axis.get_major_ticks() + axis.get_minor_ticks()
            if (lo - slack <= tick.get_loc() <= hi + slack) == drawn for label in (tick.label1, tick.label2)
            if label.get_visible() and label.get_text().strip()]


def _texts(fig, renderer):
    """``(text, window extent)`` of every drawn, non-empty text: titles, axis and tick labels,
    legend entries, annotations."""
    from matplotlib.text import Text

    undrawn = {id(label) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis) for label in _tick_labels(axis, False)}
    return [(text.get_text(), text.get_window_extent(renderer)) for text in fig.findobj(Text)
            if id(text) not in undrawn and text.get_visible() and text.get_text().strip()]


def _check_layout(fig):
    """No two texts overlap, neighbouring tick labels are an em apart at least, every text lies
    inside the figure, and no legend covers a data point."""
    renderer = _redraw(fig)
    page = fig.bbox
    texts = _texts(fig, renderer)
    for name, box in texts:
        assert page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1 and page.y0 - 1 <= box.y0 and box.y1 <= page.y1 + 1, (
            f"{name!r} runs off the figure")
    for i, (a, box_a) in enumerate(texts):
        for b, box_b in texts[i + 1:]:
            assert not box_a.padded(1).overlaps(box_b.padded(1)), f"{a!r} overlaps {b!r}"
    for ax in fig.axes:  # tick labels closer than a letter's width read as one ("4.2 s1st epoch")
        for axis, lo, hi in ((ax.xaxis, "x0", "x1"), (ax.yaxis, "y0", "y1")):
            labels = sorted(_tick_labels(axis), key=lambda t: getattr(t.get_window_extent(renderer), lo))
            for left, right in zip(labels, labels[1:]):
                gap = getattr(right.get_window_extent(renderer), lo) - getattr(left.get_window_extent(renderer), hi)
                em = min(left.get_size(), right.get_size()) * fig.dpi / 72
                assert gap >= em, f"tick labels {left.get_text()!r} and {right.get_text()!r}: {gap:.0f} px apart"
    legends = [leg for leg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if leg is not None]
    for ax in fig.axes:
        points = [line.get_transform().transform(line.get_xydata()) for line in ax.get_lines()]
        points += [c.get_offset_transform().transform(c.get_offsets()) for c in ax.collections]
        for legend in legends:
            box = legend.get_window_extent(renderer)
            for xy in points:
                inside = (box.x0 < xy[:, 0]) & (xy[:, 0] < box.x1) & (box.y0 < xy[:, 1]) & (xy[:, 1] < box.y1)
                assert not inside.any(), f"a legend covers {int(inside.sum())} data points of {ax.get_title()!r}"


def _made_up_figures(out):
    from jaxrnn.lesson import _plots, section9

    rng = np.random.default_rng(0)
    t = np.arange(16)
    x = np.sin(0.7 * t[None, :15] + np.arange(5)[:, None])[..., None]
    y = np.sin(0.7 * 15 + np.arange(5))
    _plots.sine_predictions(out / "sine_predictions.png", x, y, {"jax": y - 0.03, "torch": y - 0.031})
    runs = [f"{fw} {opt} {clip}" for fw in ("jax", "torch") for opt in ("adam", "sgd")
            for clip in ("unclipped", "clipped")]
    _plots.curves(out / "curves.png", {r: np.exp(rng.normal(0, 2, 8)) for r in runs}, logy=True,
                  hline=(1.0, "max_norm"),
                  title="Exercise 4: 5-layer RNN, 30 steps, weights N(0, 2.0^2),\nwith and without clipping at 1.0",
                  xlabel="epoch", ylabel="training MSE (epoch mean)")
    _plots.seq_len_sweep(out / "sweep.png", [8, 15, 30], {"jax": [4e-3, 1e-3, 2e-3], "torch": [4e-3, 1e-3, 2e-3]},
                         {n: np.geomspace(1e-5, 1e-3, n) for n in (8, 15, 30)}, epochs=[8, 8, 8])
    output, h_n = np.tanh(rng.normal(size=(8, 20, 32))), np.tanh(rng.normal(size=(4, 8, 16)))
    _plots.shapes(out / "shapes.png", output, h_n, 16, 2)
    tokens = rng.integers(0, 10, (3, 20))
    _plots.tagging(out / "tagging.png", tokens, tokens % 3, {"jax": tokens % 3, "torch": (tokens + (tokens == 4)) % 3})
    s = section9.settings(quick=True)
    metrics = {"compare.chance": 0.25}
    for i, cell in enumerate(section9.CELLS):
        metrics |= {f"compare.{cell}.k{k}.accuracy": 1.0 - 0.1 * i * j for j, k in enumerate(s["ks"])}
        metrics |= {f"compare.{cell}.time_per_epoch": 0.023 * (1 + i), f"compare.{cell}.first_epoch_s": 3.6 + i}
    section9.plot_compare(out / "compare.png", s, metrics, section9.CELLS)
    curves = {c: {k: np.linspace(0.25, 1.0, n) for k, n in zip(s["ks"], (3, 15, 8))} for c in section9.CELLS}
    section9.plot_curves(out / "compare_curves.png", s, curves)


def test_figures_have_no_overlapping_text_and_no_legend_over_data(tmp_path, monkeypatch):
    """Every figure of the exercises (but the gradient-flow ones of jaxrnn.diagnostics), drawn from
    made-up numbers of the quick runs' sizes: titles, axis labels and tick labels apart and inside
    the figure, legends off the data."""
    from jaxrnn.lesson import _plots, section9

    figures = _drawn_figures(monkeypatch, _plots, section9)
    _made_up_figures(tmp_path)
    assert len(figures) == 7
    for fig in figures:
        _check_layout(fig)
