"""``python -m benchmarks``: jaxrnn (jit, no jit, disable_jit), plain Flax, torch eager and torch.compile.

    python -m benchmarks                  # RNN grid, T sweep, LSTM/GRU grid (~15 min on 2 cores)
    python -m benchmarks --quick          # CI smoke: tiny shapes, one round; checks it runs, not how fast
    python -m benchmarks --update-readme  # copy the latest results/bench.md into README.md
    python -m benchmarks --ablations      # the fast path's ideas one by one (benchmarks/NOTES.md)

Results go to benchmarks/results/ (--quick: benchmarks/results/quick/): bench.json, bench.md,
details.md, time_vs_T.png, speedup.png.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import _contenders, _grid, _measure, _report

SECTIONS = ("grid", "sweep", "cells")  # the RNN grid, the T sweep, the LSTM/GRU grid
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
    p.add_argument("--budget", type=float, default=None, help="seconds of timed rounds per cell")
    p.add_argument("--everything", action="store_true", help="run every contender in every cell (much longer)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default benchmarks/results[/quick])")
    return p.parse_args(argv)


def _cell(section, shape, work, chosen, settings: dict[str, Any], unavailable: dict[str, str]) -> dict:
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
    return {
        "section": section,
        "work": work,
        "shape": shape.as_dict(),
        "flops": flops,
        "gemm_gflops": gemm_gflops,
        "contenders": entries,
    }


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
    return f"{cell['section']:5s} {cell['work']:7s} {cell['shape']['name']:28s} " + ", ".join(parts)


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
    chosen = _contenders.contenders()
    if args.only:
        chosen = [c for c in chosen if c.name in args.only]
        if not chosen:
            raise SystemExit(
                f"--only: no contender named {args.only}; known: {[c.name for c in _contenders.contenders()]}"
            )
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    works = [w.strip() for w in args.works.split(",") if w.strip()]
    for s in sections:
        if s not in SECTIONS:
            raise SystemExit(f"--sections: expected some of {', '.join(SECTIONS)}, got {s!r}")
    for w in works:
        if w not in _grid.WORKS:
            raise SystemExit(f"--works: expected train and/or forward, got {w!r}")
    shapes = {
        "grid": _grid.QUICK_GRID if quick else _grid.GRID,
        "sweep": _grid.QUICK_T_SWEEP if quick else _grid.T_SWEEP,
        "cells": _grid.QUICK_CELL_GRID if quick else _grid.CELL_GRID,
    }
    t_start = time.perf_counter()
    info = _measure.machine()
    _log(
        f"machine: {info['cpu']}, {info['cores']} cores, load {info['load_avg_start'][0]:.1f}; jax {info['jax']} "
        f"({info['jax_backend']}), torch {info['torch']} ({info['torch_device']}, {info['torch_threads']} threads)"
    )
    gemm_runs = {fw: _measure.gemm_runner(settings["gemm_n"], fw) for fw in ("jax", "torch")}
    g = _measure.alternate(
        {fw: r for fw, (r, _) in gemm_runs.items()},
        budget_s=3.0 if not quick else 0.1,
        min_rounds=settings["min_rounds"],
        max_rounds=7,
        min_sample_s=settings["min_sample_s"],
    )
    gemm = {f"{fw} matmul": gemm_runs[fw][1] / g[fw]["median_s"] / 1e9 for fw in gemm_runs}
    _log("GEMM: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in gemm.items()))
    unavailable: dict[str, str] = {}
    cells = []
    for section in sections:
        for shape in shapes[section]:
            for work in works:
                if quick and section == "sweep" and work != "train":
                    continue  # the smoke run keeps one kind of work for the sweep's plot
                cell = _cell(section, shape, work, chosen, settings, unavailable)
                cells.append(cell)
                _log(f"[{time.perf_counter() - t_start:6.0f}s] " + _summary_line(cell))
    info["load_avg_end"] = list(os.getloadavg())
    command = "python -m benchmarks" + (" --quick" if quick else "")
    default_sections = args.sections == ",".join(SECTIONS)
    if args.only or not default_sections or args.works != "train,forward" or args.budget or args.everything:
        command += " " + " ".join(sys.argv[1:]) if sys.argv[1:] else ""
    return {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "command": command,
        "quick": quick,
        "machine": info,
        "settings": settings,
        "gemm_n": settings["gemm_n"],
        "gemm": gemm,
        "contender_names": [c.name for c in chosen],
        "contender_descriptions": {c.name: c.description for c in chosen},
        "largest": _grid.largest(shapes["grid"]).name,
        "cells": cells,
        "unavailable": unavailable,
        "total_s": time.perf_counter() - t_start,
    }


def main(argv=None) -> int:
    args = _parse(argv)
    out = args.out or (HERE / "results" / ("quick" if args.quick else ""))
    if args.update_readme:
        _report.update_readme(ROOT / "README.md", HERE / "results")
        _log(f"README.md: benchmark section updated from {HERE / 'results' / 'bench.md'}")
        return 0
    if args.ablations:
        from . import _ablations

        _ablations.main(args, out)
        return 0
    results = run(args)
    written = _report.write(results, out)
    _log(f"done in {results['total_s']:.0f}s; wrote " + ", ".join(os.path.relpath(p) for p in written))
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
