"""What the lesson's exercises share: their options and result, the framework switch, the
PyTorch twin of a JAX model, and the tables and lines of their reports.

Both frameworks get the same numpy data (``jaxrnn.data``) and the same starting weights: the
JAX model is initialised with ``seed`` and its weights are loaded into the torchref model
(:func:`torch_twin`), so the two runs differ only by float32 rounding. The PyTorch side
(``torchref``) is imported only when a framework other than ``'jax'`` is asked for
(:func:`import_torch`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..functional import _checks
from ..interop import to_torch
from ..training._progress import progress_bar

FRAMEWORKS = ("jax", "torch", "both")


@dataclass(frozen=True)
class TrainOptions:
    """How the JAX side of a training exercise trains, beyond the lesson's settings (the CLI's
    ``--checkpoint-dir``, ``--checkpoint-every``, ``--resume``, ``--devices``, ``--skip-nonfinite``).

    Attributes:
      checkpoint_dir: each JAX training run checkpoints into its own subdirectory of it, named
        after the run (``sine_seq_len_30``, ``sentiment``, ``clipping_adam_clipped``, ``tagging``);
        None: no checkpoints.
      checkpoint_every: save every this many epochs (and after the last).
      resume: continue each run from its newest checkpoint (see ``jaxrnn.train``).
      devices: data-parallel over this many devices (None: one).
      nonfinite: ``'stop'`` or ``'skip'`` at a non-finite loss or gradient.
    """

    checkpoint_dir: Path | None = None
    checkpoint_every: int = 1
    resume: bool = False
    devices: int | None = None
    nonfinite: str = "stop"

    def train_kwargs(self, run: str) -> dict[str, Any]:
        """The keyword arguments of ``jaxrnn.train`` for the run named ``run``."""
        return dict(checkpoint_dir=None if self.checkpoint_dir is None else Path(self.checkpoint_dir) / run,
                    checkpoint_every=self.checkpoint_every, resume=self.resume, devices=self.devices,
                    nonfinite=self.nonfinite)


@dataclass
class ExerciseResult:
    """What one exercise produced.

    Attributes:
      name: the subcommand (``'sine'``).
      title: the heading for the report.
      metrics: flat ``{key: float}``; unprefixed keys hold JAX's values (PyTorch's when only it
        ran), ``'jax.'``/``'torch.'`` prefixed copies each framework's.
      figures: ``(file name in out, caption)`` pairs.
      summary: lines printed after the run.
      report: Markdown lines for REPORT.md (figures are added by the report writer).
      settings: the sizes, batch size, learning rate and epochs used.
      histories: each training run's history (the layout of ``History.to_dict()``), by run name
        (``'jax'``, ``'torch seq_len 100'``, ``'jax sgd clipped'``, ...).
      wall_s: seconds the exercise took.
    """

    name: str
    title: str
    metrics: dict[str, float] = field(default_factory=dict)
    figures: list[tuple[str, str]] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    report: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    histories: dict[str, dict] = field(default_factory=dict)
    wall_s: float = 0.0


def check_framework(framework: str) -> tuple[str, ...]:
    """``'jax'``, ``'torch'`` or ``'both'`` as the tuple of frameworks to run."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"`framework` must be one of {FRAMEWORKS}, got {framework!r}")
    return ("jax", "torch") if framework == "both" else (framework,)


def import_torch():
    """``(torch, torchref.models, torchref.train)``, or an ImportError that says what to install."""
    try:
        import torch

        from torchref import models as torch_models
        from torchref import train as torch_train
    except ImportError as err:
        raise ImportError(
            f"the PyTorch side (--framework torch/both) needs torch: pip install 'jaxrnn[torch]' ({err})"
        ) from err
    return torch, torch_models, torch_train


def single_threaded_torch(exercise):
    """Run ``exercise`` with PyTorch on one intra-op thread when it uses PyTorch (restored after).

    These RNNs are tiny: on a few shared cores torch's intra-op threads cost far more than they
    gain (a SinPredictor step took ~3 ms on one thread and ~100-400 ms on two busy cores).
    """

    @functools.wraps(exercise)
    def run(*args, framework: str = "jax", **kwargs):
        with contextlib.ExitStack() as stack:
            if framework in ("torch", "both"):
                torch = import_torch()[0]
                threads = torch.get_num_threads()
                torch.set_num_threads(1)
                stack.callback(torch.set_num_threads, threads)
            return exercise(*args, framework=framework, **kwargs)

    return run


def check_options(epochs, seed, owner: str) -> None:
    """Raise unless ``epochs`` is None or a positive int and ``seed`` a non-negative int."""
    if epochs is not None:  # None: the exercise's own number
        _checks.positive_int("epochs", epochs, owner)
    _checks.non_negative_int("seed", seed, owner)


def torch_twin(torch, torch_module, variables, dtype=None):
    """``torch_module`` with the JAX ``variables`` loaded (cast to ``dtype`` when given)."""
    state = {k: torch.from_numpy(np.array(v)) for k, v in to_torch(variables).items()}
    if dtype is not None:
        torch_module = torch_module.to(dtype)
        state = {k: v.to(dtype) for k, v in state.items()}
    torch_module.load_state_dict(state)
    return torch_module


def torch_train(tt, model, x, y, settings, desc, progress, **kwargs):
    """torchref.train with a jaxrnn progress bar."""
    steps = settings["epochs"] * math.ceil(len(x) / settings["batch_size"])
    with progress_bar(steps, desc, enabled=progress) as bar:
        return tt.train(
            model, x, y, epochs=settings["epochs"], batch_size=settings["batch_size"], lr=settings["lr"],
            seed=settings["seed"], progress=bar, **kwargs,
        )


def framework_metrics(name: str, per_framework: dict[str, dict[str, float]]) -> dict[str, float]:
    """Flat metrics of exercise ``name``: ``'<fw>.<name>.<key>'`` for each framework, and
    ``'<name>.<key>'`` with JAX's values (PyTorch's when only it ran)."""
    out = {}
    for fw, values in per_framework.items():
        out.update({f"{fw}.{name}.{k}": float(v) for k, v in values.items()})
    primary = per_framework.get("jax", per_framework.get("torch", {}))
    out.update({f"{name}.{k}": float(v) for k, v in primary.items()})
    return out


def table(rows: list[tuple[str, dict[str, float]]], frameworks: tuple[str, ...], fmt: str = "{:.4g}") -> list[str]:
    """A Markdown table: one row per quantity, one column per framework."""
    lines = ["| quantity | " + " | ".join(frameworks) + " |", "|---|" + "---|" * len(frameworks)]
    for label, values in rows:
        cells = [fmt.format(values[fw]) if fw in values else "" for fw in frameworks]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def side_by_side(label: str, values: dict[str, Any], fmt: str = "{:.4g}") -> str:
    """``'label: jax 0.01, torch 0.01'``: one summary line, the frameworks side by side."""
    return f"{label}: " + ", ".join(f"{fw} {fmt.format(v)}" for fw, v in values.items())


def settings_line(settings: dict[str, Any]) -> str:
    """``'seq_len=30, batch_size=32, ...'``: an exercise's settings for its report."""
    return ", ".join(f"{k}={v}" for k, v in settings.items())


def skipped(name: str, title: str, start: float, module: str) -> ExerciseResult:
    """The result of a JAX-only exercise (of ``module``) run with ``framework='torch'``: a note, nothing measured."""
    result = ExerciseResult(name, title)
    note = f"{name}: JAX only ({module}); skipped with --framework torch"
    result.summary, result.report = [note], [note + "."]
    result.wall_s = time.perf_counter() - start
    return result
