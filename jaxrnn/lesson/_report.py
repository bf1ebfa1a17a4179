"""REPORT.md and metrics.json for a run of the exercises."""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import jax

from ._common import ExerciseResult

# the lesson's targets, checked in the report: (metric, comparison, threshold)
THRESHOLDS = (
    ("sine.test_mse", "<=", 1e-3),
    ("sentiment.test_accuracy", ">=", 0.95),
    ("tagging.token_accuracy", ">=", 0.99),
)
QUICK_NOTE = ("A quick run (`--quick`: small data and few epochs, a smoke test): the targets are the lesson's for "
              "a full run, so they are not applicable here and nothing is marked pass or FAIL.")
HEADLINE = ("sine.test_mse", "sentiment.test_accuracy", "tagging.token_accuracy",
            "clipping.grad_norm_before", "clipping.grad_norm_after")


def write_metrics(path: Path, results: Sequence[ExerciseResult]) -> dict[str, float]:
    """Merge the results' metrics into one flat ``{key: float}`` and write it as sorted JSON."""
    metrics: dict[str, float] = {}
    for result in results:
        metrics.update(result.metrics)
    metrics = {k: float(v) for k, v in sorted(metrics.items())}
    Path(path).write_text(json.dumps(metrics, indent=2, allow_nan=True) + "\n")
    return metrics


def _versions() -> str:
    parts = []
    for package in ("jax", "flax", "optax", "numpy", "torch", "matplotlib"):
        try:
            parts.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(parts)


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return f"{value:.4g}" if 1e-3 <= abs(value) < 1e5 or value == 0 else f"{value:.3e}"


def _passes(value: float, op: str, threshold: float) -> bool:
    return value <= threshold if op == "<=" else value >= threshold


def _processes() -> str:
    """``'; trained by 2 processes with 4 devices in all (jax.distributed)'``, or nothing for one process."""
    if jax.process_count() == 1:
        return ""
    return f"; trained by {jax.process_count()} processes with {jax.device_count()} devices in all (jax.distributed)"


def write_report(
    path: Path,
    results: Sequence[ExerciseResult],
    metrics: dict[str, float],
    *,
    command: str,
    frameworks: Sequence[str],
    wall_s: float,
    quick: bool = False,
) -> Path:
    """One Markdown report: the headline numbers against the lesson's targets (JAX next to
    PyTorch), then each exercise's settings, table, discussion and figures (relative paths),
    then every metric of metrics.json.

    The targets are the lesson's, for its full runs: with ``quick`` (the CLI's ``--quick``: small
    data, few epochs) each targeted number is marked not applicable instead of pass or FAIL.
    """
    fws = list(frameworks)
    same_start = " (both start from the same weights and see the same data in the same order)" if len(fws) > 1 else ""
    lines = [
        "# jaxrnn: the lesson \"RNN basics\", Exercises 1-5",
        "",
        f"Command: `{command}`. Frameworks: {', '.join(fws)}{same_start}. "
        f"Wall time: {wall_s:.1f} s in all ("
        + ", ".join(f"{r.name} {r.wall_s:.1f} s" for r in results)
        + f"), on {os.cpu_count()} CPU cores ({platform.machine()}, {platform.system()}, "
        f"Python {platform.python_version()}; {_versions()}){_processes()}.",
        "",
        "## Headline numbers",
        "",
        *([QUICK_NOTE, ""] if quick else []),
        "| metric | target | " + " | ".join(fws) + " |",
        "|---|---|" + "---|" * len(fws),
    ]
    thresholds = {name: (op, value) for name, op, value in THRESHOLDS}
    for name in HEADLINE:
        if not any(f"{fw}.{name}" in metrics for fw in fws):
            continue
        target = ""
        cells = []
        for fw in fws:
            value = metrics.get(f"{fw}.{name}")
            if value is None:
                cells.append("")
                continue
            cell = _fmt(value)
            if name in thresholds:
                op, limit = thresholds[name]
                if quick:
                    cell += " (quick run: not applicable)"
                else:
                    cell += " (pass)" if _passes(value, op, limit) else " (FAIL)"
            cells.append(cell)
        if name in thresholds:
            target = f"{thresholds[name][0]} {thresholds[name][1]:g}"
        lines.append(f"| `{name}` | {target} | " + " | ".join(cells) + " |")
    for result in results:
        lines += ["", f"## {result.title}", "", f"Wall time: {result.wall_s:.1f} s.", "", *result.report, ""]
        for filename, caption in result.figures:
            lines += [f"![{Path(filename).stem}]({filename})", "", f"*{caption}*", ""]
    lines += ["## All metrics (metrics.json)", "", "| key | value |", "|---|---|"]
    lines += [f"| `{k}` | {_fmt(v)} |" for k, v in metrics.items()]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path
