"""Exercise 5: many-to-many sequence labelling (each element tagged with ``element % 3``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from .. import data as _data
from ..models import RNNSeq2Seq
from ..training import predict, train
from . import _plots
from ._common import (
    ExerciseResult,
    TrainOptions,
    check_framework,
    check_options,
    framework_metrics,
    import_torch,
    settings_line,
    side_by_side,
    single_threaded_torch,
    table,
    torch_train,
    torch_twin,
)


def _tagging_settings(epochs, seed, quick):
    s = dict(n_samples=1000, seq_len=20, num_values=10, hidden_size=32, test_fraction=0.2, batch_size=32,
             lr=0.002, epochs=30)
    if quick:
        s.update(n_samples=256, epochs=6, lr=0.01)
    if epochs is not None:
        s["epochs"] = epochs
    s["seed"] = seed
    return s


@single_threaded_torch
def tagging(out: Path, *, framework: str = "jax", seed: int = 0, epochs: int | None = None, quick: bool = False,
            progress: bool = True, options: TrainOptions | None = None) -> ExerciseResult:
    """Exercise 5: RNNSeq2Seq tags every element of an integer sequence with ``element % 3``.

    Elements 0-9 (one-hot inputs), 20 per sequence, 1000 sequences split 80/20; cross-entropy over
    all steps at once, 30 epochs of Adam (batch 32, lr 2e-3). Metrics: ``tagging.token_accuracy``
    (held-out per-token accuracy), ``tagging.sequence_accuracy`` (sequences with every tag right),
    ``tagging.test_loss``. Figures: tagging_predictions.png (3 test sequences),
    tagging_accuracy.png.
    """
    check_options(epochs, seed, "tagging")
    frameworks = check_framework(framework)
    opts = options or TrainOptions()
    start = time.perf_counter()
    s = _tagging_settings(epochs, seed, quick)
    result = ExerciseResult("tagging", "Exercise 5: many-to-many sequence labelling")
    result.settings = dict(s)
    tokens, labels = _data.generate_tagging_data(s["n_samples"], s["seq_len"], s["num_values"], seed=seed)
    inputs = _data.one_hot(tokens, s["num_values"])
    train_idx, test_idx = _data.split_indices(s["n_samples"], s["test_fraction"], seed=seed)
    x, y, x_test, y_test = inputs[train_idx], labels[train_idx], inputs[test_idx], labels[test_idx]
    model = RNNSeq2Seq(s["num_values"], s["hidden_size"], 3)
    init = model.init(jax.random.key(seed), x[:1])
    runs: dict[str, dict[str, Any]] = {}
    if "jax" in frameworks:
        trained = train(model, init, (x, y), loss="cross_entropy", metric="accuracy", epochs=s["epochs"],
                        batch_size=s["batch_size"], learning_rate=s["lr"], seed=seed, test_data=(x_test, y_test),
                        progress=progress, desc="jax tagging", **opts.train_kwargs("tagging"))
        runs["jax"] = dict(history=trained.history.to_dict(), logits=predict(model, trained.variables, x_test))
    if "torch" in frameworks:
        torch, tm, tt = import_torch()
        t_model = torch_twin(torch, tm.RNNSeq2Seq(s["num_values"], s["hidden_size"], 3), init)
        h = torch_train(tt, t_model, x, y, s, "torch tagging", progress, loss="cross_entropy", metric="accuracy",
                         x_test=x_test, y_test=y_test)
        runs["torch"] = dict(history=h, logits=tt.predict(t_model, x_test))
    result.histories = {fw: r["history"] for fw, r in runs.items()}
    per_fw = {}
    for fw, r in runs.items():
        r["pred"] = r["logits"].argmax(-1)
        per_fw[fw] = {"token_accuracy": float(np.mean(r["pred"] == y_test)),
                      "sequence_accuracy": float(np.mean(np.all(r["pred"] == y_test, axis=1))),
                      "test_loss": r["history"]["test_loss"][-1]}
    result.metrics = framework_metrics("tagging", per_fw)
    _plots.tagging(out / "tagging_predictions.png", tokens[test_idx[:3]], y_test[:3],
                   {fw: r["pred"][:3] for fw, r in runs.items()})
    series = {f"{fw} held-out tokens": r["history"]["test_metric"] for fw, r in runs.items()}
    _plots.curves(out / "tagging_accuracy.png", series, styles={f"{fw} held-out tokens": _plots.STYLES[fw]
                                                                for fw in runs},
                  xlabel="epoch", ylabel="per-token accuracy", title="Exercise 5: held-out per-token accuracy",
                  hline=(0.99, "target 0.99"))
    result.figures += [("tagging_predictions.png", "Three held-out sequences: true labels (bars) and predictions."),
                       ("tagging_accuracy.png", "Held-out per-token accuracy per epoch.")]
    acc = {fw: v["token_accuracy"] for fw, v in per_fw.items()}
    result.summary = [side_by_side(f"per-token accuracy ({len(test_idx)} held-out sequences)", acc, "{:.4f}")]
    result.report = [
        f"Settings: {settings_line(s)}. Inputs: one-hot vectors of the elements (input_size {s['num_values']}); "
        "loss: cross-entropy over all batch x seq_len tokens at once (torch: `CrossEntropyLoss` on the "
        "logits reshaped to (batch * seq_len, 3)).",
        "",
        *table([("per-token accuracy", acc),
                 ("sequences with every tag right", {fw: v["sequence_accuracy"] for fw, v in per_fw.items()}),
                 ("held-out cross-entropy", {fw: v["test_loss"] for fw, v in per_fw.items()})], tuple(runs), "{:.4f}"),
        "",
        "Each label depends only on the current element, so the task needs no memory: the many-to-many "
        "structure (a prediction at every step from `fc(output)`) is what is being exercised.",
    ]
    result.wall_s = time.perf_counter() - start
    return result
