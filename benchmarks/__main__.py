"""``python -m benchmarks``: jaxrnn (jit, no jit, disable_jit, NNX), plain Flax, torch eager and torch.compile.

    python -m benchmarks                  # RNN grid, T sweep, LSTM/GRU grid (~20 min on 2 cores)
    python -m benchmarks --quick          # CI smoke: tiny shapes, one round; checks it runs, not how fast
    python -m benchmarks --update-readme  # copy the latest results/bench.md into README.md
    python -m benchmarks --ablations      # the fast path's ideas one by one (benchmarks/NOTES.md)
    python -m benchmarks --baseline HEAD~3 --only "jaxrnn jit"   # A/B: this tree against a commit, same rounds

Results go to benchmarks/results/ (--quick: benchmarks/results/quick/; --baseline: benchmarks/results/ab/
[quick/]): bench.json, bench.md, details.md, time_vs_T.png, speedup.png.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import _baseline, _contenders, _grid, _measure, _report

SECTIONS = ("grid", "sweep", "cells")  # the RNN grid, the T sweep, the LSTM/GRU grid
STEP_GEMM = (64, 256, 1024)  # the LSTM's per-step GEMM at N64 H256: h (N, H) x W_hh^T (H, 4H)


def _native_available() -> bool:
    from jaxrnn.native import status

    return status().available
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny shapes, one round: a smoke test for CI")
    p.add_argument("--update-readme", action="store_true", help="copy results/bench.md into README.md and exit")
    p.add_argument("--ablations", action="store_true", help="measure the fast path's ideas one by one")
    p.add_argument("--only", action="append", default=None, metavar="NAME", help="run only these contenders")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma list of: grid, sweep, cells (default all)")
    p.add_argument("--works", default="train,forward", help="comma list of: train, forward")
    p.add_argument("--cells", default="lstm,gru", help="the cells section's layers: comma list of lstm, gru")
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds of timed rounds per cell (with --quick: rounds up to 15 instead of one)",
    )
    p.add_argument("--everything", action="store_true", help="run every contender in every cell (much longer)")
    p.add_argument(
        "--baseline",
        default=None,
        metavar="REF",
        help="also time REF's jaxrnn (a git ref: HEAD~3, a hash) as 'jaxrnn jit @REF' next to 'jaxrnn jit' in "
        "every cell, in the same rounds, and report the ratio (writes to benchmarks/results/ab/ by default)",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default benchmarks/results[/ab][/quick])")
    return p.parse_args(argv)


def _cell(
    section, shape, work, chosen, settings: dict[str, Any], unavailable: dict[str, str], mismatched: dict[str, str]
) -> dict:
    x = _contenders.make_input(shape)
    runners: dict[str, Callable[[], None]] = {}
    entries: dict[str, dict[str, Any]] = {}
    for c in chosen:
        why = None if settings["everything"] else c.skip(section, shape)
        if why is not None:
            entries[c.name] = {"median_s": None, "skipped": why}
            continue
        t0 = time.perf_counter()
        try:
            prepared = c.build(shape, work, x, memory=section == "grid")  # torch's costs a profiled call
        except _contenders.Unavailable as e:
            unavailable[c.name] = str(e)
            entries[c.name] = {"median_s": None, "error": str(e)}
            continue
        except _contenders.Mismatch as e:  # a wrong program: not timed, and the run fails at the end
            mismatched[f"{section} {work} {shape.name}: {c.name}"] = str(e)
            entries[c.name] = {"median_s": None, "error": f"wrong result: {e}"}
            _log(f"  {c.name}: WRONG RESULT, not timed: {e}")
            continue
        except Exception as e:  # a contender that breaks must not take the others down
            msg = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
            unavailable[c.name] = msg
            entries[c.name] = {"median_s": None, "error": msg}
            _log(f"  {c.name}: failed: {msg}")
            continue
        runners[c.name] = prepared.run
        entries[c.name] = {
            "compile_s": prepared.compile_s,
            "peak_bytes": prepared.peak_bytes,
            "memory_method": prepared.memory_method,
            "build_s": time.perf_counter() - t0,
        }
    gemm_run, gemm_flops = _measure.gemm_runner(settings["gemm_n"], "jax")
    runners["gemm"] = gemm_run
    timed = _measure.alternate(
        runners,
        budget_s=settings["budget"][section],
        min_rounds=settings["min_rounds"],
        max_rounds=settings["max_rounds"],
        min_sample_s=settings["min_sample_s"],
    )
    gemm = timed.pop("gemm")
    gemm_gflops = gemm_flops / gemm["median_s"] / 1e9
    flops = shape.flops(work)
    base = timed.get(_contenders.BASELINE, {}).get("median_s")
    for name, t in timed.items():
        entry = entries[name]
        entry.update(t)
        entry["gflops"] = flops / t["median_s"] / 1e9
        entry["gemm_fraction"] = entry["gflops"] / gemm_gflops
        entry["speedup"] = None if base is None else base / t["median_s"]
    cell = {
        "section": section,
        "work": work,
        "shape": shape.as_dict(),
        "flops": flops,
        "gemm_gflops": gemm_gflops,
        "contenders": entries,
    }
    if settings.get("ab") is not None:  # --baseline: REF's median / the current one's (> 1: the current is faster)
        current, before = (timed.get(n, {}).get("median_s") for n in settings["ab"])
        cell["ab_ratio"] = None if current is None or before is None else before / current
    return cell


def _summary_line(cell: dict) -> str:
    parts = []
    for name, e in cell["contenders"].items():
        if "skipped" in e:
            continue
        if e.get("median_s") is None:
            parts.append(f"{name} n/a")
        else:
            s = e.get("speedup")
            parts.append(f"{name} {e['median_s'] * 1e3:.3g}ms" + ("" if s is None else f" ({s:.2f}x)"))
    ab = ""
    if "ab_ratio" in cell:
        ab = " | A/B " + ("n/a" if cell["ab_ratio"] is None else f"{cell['ab_ratio']:.3f}x")
    return f"{cell['section']:5s} {cell['work']:7s} {cell['shape']['name']:28s} " + ", ".join(parts) + ab


def run(args) -> dict:
    quick = args.quick
    settings: dict[str, Any] = {
        "gemm_n": 256 if quick else 2048,
        "budget": {"grid": 1.0, "sweep": 1.0, "cells": 1.0} if quick else {"grid": 4.0, "sweep": 2.0, "cells": 3.0},
        "everything": args.everything,
        "min_rounds": 1 if quick else 3,
        "max_rounds": 1 if quick else 15,
        "min_sample_s": 0.0 if quick else 0.05,
    }
    if args.budget is not None:
        settings["budget"] = {k: args.budget for k in settings["budget"]}
        if quick:  # tiny shapes, but rounds to fill the budget (a quick A/B with ratios worth reading)
            settings.update(max_rounds=15, min_sample_s=0.01)
    # before anything imports the current jaxrnn, so that _baseline can tell the two apart
    baseline = None if args.baseline is None else _baseline.load(args.baseline)
    every = _contenders.contenders(baseline)
    chosen = every
    if args.only:
        chosen = [c for c in every if c.name in args.only]
        if not chosen:
            raise SystemExit(f"--only: no contender named {args.only}; known: {[c.name for c in every]}")
    ab_info = None
    if baseline is not None:  # the A/B pair runs whatever --only says about the rest
        pair = (_contenders.HEADLINE, _contenders.baseline_name(baseline.ref))
        chosen = [c for c in every if c in chosen or c.name in pair]
        settings["ab"] = pair
        ab_info = {
            "ref": baseline.ref,
            "commit": baseline.commit,
            "current": _baseline.current_version(),
            "current_name": pair[0],
            "baseline_name": pair[1],
            "rewritten_imports": list(baseline.rewritten),
        }
        _log(
            f"A/B: {pair[0]} ({ab_info['current']}) against {pair[1]} ({baseline.commit[:10]}, "
            f"from {os.path.dirname(baseline.module.__file__)})"
            + (f"; absolute imports rewritten in {', '.join(baseline.rewritten)}" if baseline.rewritten else "")
        )
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    works = [w.strip() for w in args.works.split(",") if w.strip()]
    for s in sections:
        if s not in SECTIONS:
            raise SystemExit(f"--sections: expected some of {', '.join(SECTIONS)}, got {s!r}")
    for w in works:
        if w not in _grid.WORKS:
            raise SystemExit(f"--works: expected train and/or forward, got {w!r}")
    kinds = [k.strip() for k in args.cells.split(",") if k.strip()]
    for k in kinds:
        if k not in ("lstm", "gru"):
            raise SystemExit(f"--cells: expected lstm and/or gru, got {k!r}")
    shapes = {
        "grid": _grid.QUICK_GRID if quick else _grid.GRID,
        "sweep": _grid.QUICK_T_SWEEP if quick else _grid.T_SWEEP,
        "cells": [s for s in (_grid.QUICK_CELL_GRID if quick else _grid.CELL_GRID) if s.cell in kinds],
    }
    t_start = time.perf_counter()
    info = _measure.machine()
    _log(
        f"machine: {info['cpu']}, {info['cores']} cores, load {info['load_avg_start'][0]:.1f}; jax {info['jax']} "
        f"({info['jax_backend']}), torch {info['torch']} ({info['torch_device']}, {info['torch_threads']} threads)"
    )
    # the GEMM rates of the libraries in play, side by side: one large GEMM, and the LSTM's per-step
    # GEMM (N64 H256: (64, 256) x (256, 1024)) through XLA and through the native kernel's OpenBLAS
    libraries = ("jax", "torch", "openblas") if _native_available() else ("jax", "torch")
    gemm_runs = {f"{fw} matmul": _measure.gemm_runner(settings["gemm_n"], fw) for fw in libraries}
    gemm_runs |= {f"{fw} step GEMM": _measure.gemm_runner(0, fw, STEP_GEMM) for fw in libraries if fw != "torch"}
    g = _measure.alternate(
        {name: r for name, (r, _) in gemm_runs.items()},
        budget_s=3.0 if not quick else 0.1,
        min_rounds=settings["min_rounds"],
        max_rounds=7,
        min_sample_s=settings["min_sample_s"],
    )
    rates = {name: gemm_runs[name][1] / g[name]["median_s"] / 1e9 for name in gemm_runs}
    gemm = {name: v for name, v in rates.items() if "step" not in name}
    step_gemm = {name.replace(" step GEMM", ""): v for name, v in rates.items() if "step" in name}
    _log("GEMM: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in rates.items()))
    unavailable: dict[str, str] = {}
    mismatched: dict[str, str] = {}
    cells = []
    for section in sections:
        for shape in shapes[section]:
            for work in works:
                if quick and section == "sweep" and work != "train":
                    continue  # the smoke run keeps one kind of work for the sweep's plot
                cell = _cell(section, shape, work, chosen, settings, unavailable, mismatched)
                cells.append(cell)
                _log(f"[{time.perf_counter() - t_start:6.0f}s] " + _summary_line(cell))
    info["load_avg_end"] = list(os.getloadavg())
    command = "python -m benchmarks" + (" --quick" if quick else "")
    default_sections = args.sections == ",".join(SECTIONS)
    if (
        args.only
        or not default_sections
        or args.works != "train,forward"
        or args.cells != "lstm,gru"
        or args.budget
        or args.everything
        or args.baseline
    ):
        command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in getattr(args, "argv", sys.argv[1:]))
    return {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "command": command,
        "quick": quick,
        "machine": info,
        "settings": settings,
        "gemm_n": settings["gemm_n"],
        "gemm": gemm,
        "step_gemm": step_gemm,
        "step_gemm_shape": STEP_GEMM,
        "contender_names": [c.name for c in chosen],
        "contender_descriptions": {c.name: c.description for c in chosen},
        "largest": _grid.largest(shapes["grid"]).name,
        "cells": cells,
        "ab": ab_info,
        "unavailable": unavailable,
        "mismatched": mismatched,
        "total_s": time.perf_counter() - t_start,
    }


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parse(argv)
    args.argv = argv
    out = args.out or (HERE / "results" / ("ab" if args.baseline else "") / ("quick" if args.quick else ""))
    if args.update_readme:
        _report.update_readme(ROOT / "README.md", HERE / "results")
        _log(f"README.md: benchmark section updated from {HERE / 'results' / 'bench.md'}")
        return 0
    if args.ablations:
        if args.baseline:
            raise SystemExit("--baseline: not with --ablations (time the layers' A/B with the plain run)")
        from . import _ablations

        _ablations.main(args, out)
        return 0
    results = run(args)
    written = _report.write(results, out)
    _log(f"done in {results['total_s']:.0f}s; wrote " + ", ".join(os.path.relpath(p) for p in written))
    if results["ab"] is not None:
        _log("  " + _report.ab_summary(results))
    if results["mismatched"]:
        for where, why in results["mismatched"].items():
            _log(f"  WRONG RESULT at {where}: {why}")
        return 1
    if args.quick:
        _log("  --quick checks that every contender runs, not how fast: no targets evaluated")
        return 0
    for what, met, detail in _report.targets(results):
        _log(f"  {'met' if met else 'MISSED'}: {what}: {detail}")
    for line in _report.reference_lines(results):
        _log("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
