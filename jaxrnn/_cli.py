"""The ``jaxrnn`` command: run the lesson's exercises, write metrics.json, figures and REPORT.md.

    jaxrnn {shapes,sine,sentiment,clipping,tagging,gradflow,compare,all} [--epochs N] [--seed S] [--out DIR]
           [--framework jax|torch|both] [--quick] [--no-progress]

Also ``python -m jaxrnn``. ``make demo`` runs ``jaxrnn all --framework both --out runs/latest``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import _compare, _exercises, _report

# the lesson's exercises, then section 5 (gradient flow) and section 9 (RNN vs LSTM vs GRU), computed
RUNNERS = {**_exercises.EXERCISES, "gradflow": _compare.gradflow_exercise, "compare": _compare.compare_exercise}
COMMANDS = (*RUNNERS, "all")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxrnn",
        description="Run the exercises of the lesson 'RNN basics' in JAX (jaxrnn), optionally next to the "
        "PyTorch reference (torchref), and write DIR/metrics.json, PNG figures and DIR/REPORT.md.",
    )
    parser.add_argument(
        "command",
        choices=COMMANDS,
        help="shapes (Exercise 1), sine (2), sentiment (3), clipping (4), tagging (5), gradflow (section 5's "
        "gradient flow), compare (section 9: RNN vs LSTM vs GRU; both JAX only), or all of them",
    )
    parser.add_argument("--epochs", type=_positive_int, default=None,
                        help="override the number of training epochs of every exercise (default: the lesson's)")
    parser.add_argument("--seed", type=_seed, default=0, help="seeds the data, the initial weights and the "
                        "batch order (default 0)")
    parser.add_argument("--out", type=Path, default=Path("runs/latest"), help="output directory (default runs/latest)")
    parser.add_argument("--framework", choices=_exercises.FRAMEWORKS, default="jax",
                        help="jax (default), torch (the torchref models), or both, side by side on the same data")
    parser.add_argument("--quick", action="store_true",
                        help="small data and few epochs: a smoke test, not the lesson's numbers")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (argument errors exit with status 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    frameworks = _exercises.check_framework(args.framework)
    if "torch" in frameworks:
        try:
            _exercises.load_torch()
        except ImportError as err:
            parser.error(f"argument --framework: {args.framework!r} needs PyTorch, which cannot be imported: {err}")
    try:
        from ._plots import require_matplotlib

        require_matplotlib()
    except ImportError as err:
        parser.error(str(err))
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"argument --out: {str(args.out)!r} exists and is not a directory")
    args.out.mkdir(parents=True, exist_ok=True)

    names = tuple(RUNNERS) if args.command == "all" else (args.command,)
    start = time.perf_counter()
    results = []
    for name in names:
        print(f"== {name} ==", flush=True)
        result = RUNNERS[name](
            args.out, framework=args.framework, seed=args.seed, epochs=args.epochs, quick=args.quick,
            progress=args.progress,
        )
        results.append(result)
        for line in result.summary:
            print(line)
        print(f"({result.wall_s:.1f} s)", flush=True)
    wall_s = time.perf_counter() - start
    metrics = _report.write_metrics(args.out / "metrics.json", results)
    command = "jaxrnn " + shlex.join(list(sys.argv[1:] if argv is None else argv))
    report = _report.write_report(args.out / "REPORT.md", results, metrics, command=command,
                                  frameworks=frameworks, wall_s=wall_s)
    print(f"wrote {args.out / 'metrics.json'}, {report} and "
          f"{sum(len(r.figures) for r in results)} figures in {wall_s:.1f} s")
    return 0
