"""Exercise 1: the shapes of ``output`` and ``h_n``, explained, and checked against ``torch.nn.RNN``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ..linen._recurrent import RNN
from . import _plots
from ._common import (
    ExerciseResult,
    check_framework,
    check_options,
    framework_metrics,
    import_torch,
    single_threaded_torch,
    torch_twin,
)

SHAPE_CONFIGS: tuple[tuple[str, dict[str, Any], tuple[int, int, int]], ...] = (
    ("lesson: RNN(10, 20, num_layers=2)", dict(input_size=10, hidden_size=20, num_layers=2), (32, 15, 10)),
    ("lesson: RNN(10, 20, bidirectional=True)", dict(input_size=10, hidden_size=20, bidirectional=True), (32, 15, 10)),
    ("Exercise 1: RNN(5, 16, num_layers=2)", dict(input_size=5, hidden_size=16, num_layers=2), (8, 20, 5)),
    (
        "Exercise 1: RNN(5, 16, num_layers=2, bidirectional=True)",
        dict(input_size=5, hidden_size=16, num_layers=2, bidirectional=True),
        (8, 20, 5),
    ),
)


def _explain_shapes(cfg: dict, x_shape: tuple, out_shape: tuple, hn_shape: tuple) -> list[str]:
    layers = cfg.get("num_layers", 1)
    d = 2 if cfg.get("bidirectional", False) else 1
    h = cfg["hidden_size"]
    both = "forward and backward states concatenated" if d == 2 else "the forward state"
    rows = (
        f"row k*{d}+d is layer k, direction d (0 forward, 1 backward)" if d == 2
        else "row k is layer k; output holds only the last layer, h_n keeps every layer's final state"
    )
    return [
        f"output {out_shape}: batch={x_shape[0]} sequences; seq_len={x_shape[1]}, the last layer's state at "
        f"every step; {d * h} = {d} x hidden_size {h}, {both}",
        f"h_n {hn_shape}: {layers * d} = num_layers {layers} x directions {d}, one final state per layer and "
        f"direction ({rows}); batch={x_shape[0]}; hidden_size={h}",
    ]


@single_threaded_torch
def shapes(out: Path, *, framework: str = "jax", seed: int = 0, epochs=None, quick: bool = False,
           progress: bool = True) -> ExerciseResult:
    """Exercise 1: the shapes of ``output`` and ``h_n`` for the lesson's configurations.

    Runs each configuration of :data:`SHAPE_CONFIGS` (batch_first, uni- and bidirectional) on
    random input, prints the shapes with one explanation line per dimension, checks that h_n's
    last-layer rows are where they must be in output (the forward state at the last step, the
    backward one at step 0), and with PyTorch runs ``torch.nn.RNN`` with the same weights.
    ``epochs``, ``quick`` and ``progress`` are accepted for a uniform call and not used.
    Figure: where h_n sits in output for the bidirectional Exercise 1 configuration.
    """
    del epochs, quick, progress
    check_options(None, seed, "shapes")
    frameworks = check_framework(framework)
    start = time.perf_counter()
    result = ExerciseResult("shapes", "Exercise 1: hidden state shapes")
    torch = import_torch()[0] if "torch" in frameworks else None
    rng = np.random.default_rng(seed)
    summary, report = [], ["| configuration | input | framework | output | h_n |", "|---|---|---|---|---|"]
    layout_diff, torch_diff = 0.0, 0.0
    explanations = []
    figure_data: Any = None
    for label, cfg, x_shape in SHAPE_CONFIGS:
        rnn = RNN(**cfg, batch_first=True)
        x = rng.standard_normal(x_shape).astype(np.float32)
        variables = rnn.init(jax.random.key(seed), x)
        out_j, hn_j = (np.asarray(a) for a in rnn.apply(variables, x))
        h = cfg["hidden_size"]
        layout_diff = max(layout_diff, float(np.abs(hn_j[-1 if "bidirectional" not in cfg else -2]
                                                    - out_j[:, -1, :h]).max()))
        if cfg.get("bidirectional"):
            layout_diff = max(layout_diff, float(np.abs(hn_j[-1] - out_j[:, 0, h:]).max()))
            figure_data = (out_j, hn_j, h, cfg.get("num_layers", 1))
        shapes_by_fw = {}
        if "jax" in frameworks:
            shapes_by_fw["jax"] = (out_j.shape, hn_j.shape)
        if torch is not None:
            t_rnn = torch_twin(torch, torch.nn.RNN(**cfg, batch_first=True), variables)
            with torch.no_grad():
                out_t, hn_t = (a.numpy() for a in t_rnn(torch.from_numpy(x)))
            torch_diff = max(torch_diff, float(np.abs(out_t - out_j).max()), float(np.abs(hn_t - hn_j).max()))
            shapes_by_fw["torch"] = (out_t.shape, hn_t.shape)
        summary.append(label + f", x {x_shape}")
        for fw, (o, hn) in shapes_by_fw.items():
            summary.append(f"  {fw:5s}  output {o}  h_n {hn}")
            report.append(f"| `{label}` | {x_shape} | {fw} | {o} | {hn} |")
        lines = _explain_shapes(cfg, x_shape, out_j.shape, hn_j.shape)
        summary += ["    " + line for line in lines]
        explanations.append((label, lines))
    per_fw = {"jax": {"hn_vs_output_max_abs_diff": layout_diff}}
    if torch is not None:
        per_fw["jax"]["max_abs_diff_vs_torch"] = torch_diff
        summary.append(f"max |jax - torch| over all outputs and h_n (same weights, float32): {torch_diff:.2e}")
    summary.append(f"h_n's last layer equals output at its final step (max diff {layout_diff:.1e})")
    result.metrics = framework_metrics("shapes", per_fw)
    _plots.shapes(out / "shapes.png", *figure_data)
    result.figures.append(("shapes.png", "Bidirectional Exercise 1 RNN, batch element 0: output (left) and "
                                         "h_n (right); the boxed columns of output are h_n[-2] and h_n[-1]."))
    report.append("")
    for label, lines in explanations:
        report.append(f"- `{label}`: " + "; ".join(lines))
    report += [
        "",
        "Why is `h_n.shape[0] == 2` for `num_layers=2`? `h_n` keeps the final state of *every* layer "
        "(layer 0's final state never appears in `output`, which holds only the last layer). With "
        "`bidirectional=True` each layer has two final states, so the first dimension doubles to "
        "`num_layers * 2`, and `output`'s feature dimension doubles to `2 * hidden_size` (forward and "
        "backward states side by side). The forward direction ends at the last step, so "
        "`h_n[-2] == output[:, -1, :H]`; the backward direction ends at step 0, so "
        f"`h_n[-1] == output[:, 0, H:]` (checked: max difference {layout_diff:.1e}).",
    ]
    if torch is not None:
        report.append(f"JAX and PyTorch with the same weights: max |difference| {torch_diff:.2e} (float32).")
    result.summary, result.report = summary, report
    result.wall_s = time.perf_counter() - start
    return result
