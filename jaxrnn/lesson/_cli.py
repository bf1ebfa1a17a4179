"""The ``jaxrnn`` command: run the lesson's exercises, write metrics.json, figures and REPORT.md.

    jaxrnn {shapes,sine,sentiment,clipping,tagging,gradflow,compare,all} [--epochs N] [--seed S] [--out DIR]
           [--framework jax|torch|both] [--quick] [--no-progress]
           [--checkpoint-dir DIR [--resume] [--checkpoint-every N]] [--devices N] [--skip-nonfinite]
           [--coordinator HOST:PORT --num-processes N --process-id I [--init-timeout S] [--heartbeat-timeout S]]
    jaxrnn export --checkpoint-dir DIR --out FILE.safetensors
    jaxrnn launch [-n N] [--local-devices K] COMMAND [ARGS...]

Also ``python -m jaxrnn``. ``make demo`` runs ``jaxrnn all --framework both --out runs/latest``.
With ``--coordinator``, the process is one of N that train together (``jax.distributed``), started
alike but for ``--process-id``; ``jaxrnn launch`` starts N such processes on this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from .._figures import require_matplotlib
from ..interop import _safetensors
from ..training import CheckpointError, DistributedError, NonFiniteError, _checkpoint, _distributed, _sharding
from . import _common, _launch, _report, clipping, section5, section9, sentiment, shapes, sine, tagging

# the lesson's exercises, then section 5 (gradient flow) and section 9 (RNN vs LSTM vs GRU), computed
RUNNERS = {"shapes": shapes.shapes, "sine": sine.sine, "sentiment": sentiment.sentiment, "clipping": clipping.clipping,
           "tagging": tagging.tagging, "gradflow": section5.gradflow_exercise, "compare": section9.compare_exercise}
COMMANDS = (*RUNNERS, "all")
TRAINING = ("sine", "sentiment", "clipping", "tagging")
"""The exercises that train, and take ``options`` (:class:`jaxrnn.lesson._common.TrainOptions`)."""


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
        epilog="jaxrnn export --checkpoint-dir DIR --out FILE.safetensors writes the newest checkpoint of one "
        "training run (DIR/<run>, as written by --checkpoint-dir) as a PyTorch state dict in safetensors: "
        "model.load_state_dict(safetensors.torch.load_file(FILE)). jaxrnn launch -n N --local-devices K COMMAND ... "
        "starts N processes of COMMAND on this machine's CPU that train together (see jaxrnn launch --help).",
    )
    parser.add_argument(
        "command",
        choices=(*COMMANDS, "export"),
        help="shapes (Exercise 1), sine (2), sentiment (3), clipping (4), tagging (5), gradflow (section 5's "
        "gradient flow), compare (section 9: RNN vs LSTM vs GRU; both JAX only), or all of them",
    )
    parser.add_argument("--epochs", type=_positive_int, default=None,
                        help="override the number of training epochs of every exercise (default: the lesson's)")
    parser.add_argument("--seed", type=_seed, default=0, help="seeds the data, the initial weights and the "
                        "batch order (default 0)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default runs/latest); for "
                        "export, the safetensors file")
    parser.add_argument("--framework", choices=_common.FRAMEWORKS, default="jax",
                        help="jax (default), torch (the torchref models), or both, side by side on the same data")
    parser.add_argument("--quick", action="store_true",
                        help="small data and few epochs: a smoke test, not the lesson's numbers")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="save the training state of every JAX training run (orbax) in DIR/<run>, e.g. "
                        "DIR/sine_seq_len_30, every --checkpoint-every epochs and at the end")
    parser.add_argument("--checkpoint-every", type=_positive_int, default=None, metavar="N",
                        help="checkpoint every N epochs (default 1; always after the last)")
    parser.add_argument("--resume", action="store_true",
                        help="continue each run from its newest checkpoint in --checkpoint-dir up to --epochs in "
                        "total: the result of one uninterrupted run")
    parser.add_argument("--devices", type=_positive_int, default=None, metavar="N",
                        help="train data-parallel over N devices (jax.sharding; default 1); on a CPU, "
                        "XLA_FLAGS=--xla_force_host_platform_device_count=N makes N devices")
    parser.add_argument("--skip-nonfinite", action="store_true",
                        help="skip a step whose loss or gradients are NaN or infinite (default: stop with an error "
                        "naming the step, keeping the last checkpoint)")
    multi = parser.add_argument_group(
        "several processes", "train as one of N processes (jax.distributed), each started with the same arguments "
        "but its own --process-id; --devices then counts the devices of all of them (default: all). Only process 0 "
        "writes --out; --checkpoint-dir must be a directory every process reaches")
    multi.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                       help="address of process 0, where it starts the coordination service (e.g. 127.0.0.1:12355)")
    multi.add_argument("--num-processes", type=_positive_int, default=None, metavar="N", help="the number of processes")
    multi.add_argument("--process-id", type=_seed, default=None, metavar="I", help="this process's id, in [0, N)")
    multi.add_argument("--init-timeout", type=_positive_int, default=300, metavar="S",
                       help="seconds to wait for every process to join (default 300)")
    multi.add_argument("--heartbeat-timeout", type=_positive_int, default=100, metavar="S",
                       help="seconds after which a silent process counts as dead and the others stop with an error "
                       "(default 100)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (argument errors exit with status 2; a run that
    cannot go on, at a checkpoint in the way or a non-finite loss, prints why and returns 1)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["launch"]:
        return _launch.main(args[1:])
    try:
        return _main(argv)
    except (CheckpointError, DistributedError, NonFiniteError) as err:
        print(f"jaxrnn: error: {err}", file=sys.stderr)
        return 1


def _train_options(parser: argparse.ArgumentParser, args: argparse.Namespace,
                   frameworks: tuple[str, ...]) -> _common.TrainOptions:
    """The checkpoint, device and non-finite flags, checked, as the training exercises' options."""
    if args.checkpoint_dir is None:
        for flag, given in (("--resume", args.resume), ("--checkpoint-every", args.checkpoint_every is not None)):
            if given:
                parser.error(f"argument {flag}: needs --checkpoint-dir")
    else:
        if frameworks == ("torch",):
            parser.error("argument --checkpoint-dir: checkpoints hold the JAX runs; --framework torch trains none")
        if args.checkpoint_dir.exists() and not args.checkpoint_dir.is_dir():
            parser.error(f"argument --checkpoint-dir: {str(args.checkpoint_dir)!r} exists and is not a directory")
    if args.devices is not None:
        try:
            _sharding.check_devices(args.devices, owner=None)
        except ValueError as err:
            parser.error(f"argument --devices: {err}")
    return _common.TrainOptions(checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every or 1,
                                resume=args.resume, devices=args.devices,
                                nonfinite="skip" if args.skip_nonfinite else "stop")


def _start_processes(parser: argparse.ArgumentParser, args: argparse.Namespace) -> bool:
    """Join the run of several processes that ``--coordinator`` names (before anything uses JAX),
    and check that every process was started with the same arguments; False without it."""
    given = {"--coordinator": args.coordinator, "--num-processes": args.num_processes,
             "--process-id": args.process_id}
    if all(value is None for value in given.values()):
        return False
    missing = [flag for flag, value in given.items() if value is None]
    if missing:
        parser.error(f"argument {missing[0]}: a run of several processes needs --coordinator, --num-processes and "
                     "--process-id together")
    if args.command == "export":
        parser.error("argument --coordinator: export reads a checkpoint in one process")
    if args.framework != "jax":
        parser.error(f"argument --framework: the PyTorch reference trains in one process; --framework "
                     f"{args.framework} cannot run with --coordinator")
    try:
        _distributed.parse_address(args.coordinator, owner="jaxrnn")
    except ValueError as err:
        parser.error(f"argument --coordinator: {str(err).split(': ', 1)[1]}")
    if args.process_id >= args.num_processes:
        parser.error(f"argument --process-id: must be in [0, {args.num_processes}) for --num-processes "
                     f"{args.num_processes}, got {args.process_id}")
    _distributed.initialize(args.coordinator, args.num_processes, args.process_id, init_timeout=args.init_timeout,
                            heartbeat_timeout=args.heartbeat_timeout)
    same = {("command" if k == "command" else "--" + k.replace("_", "-")): v for k, v in vars(args).items()
            if k not in ("process_id", "out", "progress")}
    if same["--checkpoint-dir"] is not None:
        same["--checkpoint-dir"] = str(same["--checkpoint-dir"].absolute())
    _distributed.check_same(same, owner=None)
    return True


def _export(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``jaxrnn export``: the newest checkpoint of one run as a safetensors file with torch's keys."""
    import json

    if args.checkpoint_dir is None:
        parser.error("argument --checkpoint-dir: export needs --checkpoint-dir DIR")
    if args.out is None:
        parser.error("argument --out: export needs --out FILE.safetensors")
    if args.out.is_dir():
        parser.error(f"argument --out: {str(args.out)!r} is a directory; export writes a file")
    try:
        _safetensors.require_safetensors()
    except ImportError as err:
        parser.error(f"argument --out: {err}")
    runs = _checkpoint.find_runs(args.checkpoint_dir)
    if not runs:
        parser.error(f"argument --checkpoint-dir: no checkpoint in {str(args.checkpoint_dir)!r}")
    if len(runs) > 1:
        parser.error(f"argument --checkpoint-dir: {str(args.checkpoint_dir)!r} holds the checkpoints of several runs "
                     f"({', '.join(p.name for p in runs)}); pass one of them, e.g. {str(runs[0])!r}")
    variables, meta = _checkpoint.load_checkpoint(runs[0])
    model = meta["run"]["model"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    _safetensors.save_safetensors(variables, args.out, metadata={
        "jaxrnn.model": model["name"], "jaxrnn.config": json.dumps(model["config"]),
        "jaxrnn.epoch": str(meta["epoch"]), "jaxrnn.step": str(meta["step"])})
    print(f"wrote {args.out}: {model['name']} after epoch {meta['epoch']} of {runs[0]}, with torch's keys "
          f"(model.load_state_dict(safetensors.torch.load_file(...)))")
    return 0


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    several = _start_processes(parser, args)
    if args.command == "export":
        return _export(parser, args)
    if args.out is None:
        args.out = Path("runs/latest")
    if several and not _distributed.is_primary():
        # the same exercises (the same collectives) as process 0, writing nothing that is kept
        with tempfile.TemporaryDirectory(prefix="jaxrnn-process-") as scratch, \
                contextlib.redirect_stdout(io.StringIO()):
            args.out, args.progress = Path(scratch), False
            return _run(parser, args, argv)
    return _run(parser, args, argv)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    frameworks = _common.check_framework(args.framework)
    options = _train_options(parser, args, frameworks)
    if "torch" in frameworks:
        try:
            _common.import_torch()
        except ImportError as err:
            parser.error(f"argument --framework: {args.framework!r} needs PyTorch, which cannot be imported: {err}")
    try:
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
            progress=args.progress, **({"options": options} if name in TRAINING else {}),
        )
        results.append(result)
        for line in result.summary:
            print(line)
        print(f"({result.wall_s:.1f} s)", flush=True)
    wall_s = time.perf_counter() - start
    metrics = _report.write_metrics(args.out / "metrics.json", results)
    command = "jaxrnn " + shlex.join(list(sys.argv[1:] if argv is None else argv))
    report = _report.write_report(args.out / "REPORT.md", results, metrics, command=command,
                                  frameworks=frameworks, wall_s=wall_s, quick=args.quick)
    print(f"wrote {args.out / 'metrics.json'}, {report} and "
          f"{sum(len(r.figures) for r in results)} figures in {wall_s:.1f} s")
    return 0
