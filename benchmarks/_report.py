"""The results as JSON, markdown tables, PNG plots, and the README's benchmark section."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import numpy as np

from ._contenders import BASELINE, HEADLINE, NNX, REFERENCE

README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"
MiB = 2**20
# "where compute dominates", for the NNX target: cells whose linen training step takes at least this long, 20x
# nnx.jit's per-call cost on the 2-core CPU (~2.5 ms, benchmarks/NOTES.md idea 14), so 5% is the program's share
NNX_COMPUTE_S = 50e-3
NNX_TOLERANCE = 1.05


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _num(x: float | None, fmt: str, scale: float = 1.0, missing: str = "n/a") -> str:
    return missing if x is None else format(x / scale, fmt)


def _ratio(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.2f}x"


def _cells(results: dict, section: str, work: str) -> list[dict]:
    return [c for c in results["cells"] if c["section"] == section and c["work"] == work]


def _entry(cell: dict, name: str) -> dict | None:
    return cell["contenders"].get(name)


def targets(results: dict) -> list[tuple[str, bool | None, str]]:
    """The issue's targets, each (what, met or not, the figures behind it)."""
    out: list[tuple[str, bool | None, str]] = []
    speedups = _headline_speedups(results, "train")
    if speedups:
        slower = {k: v for k, v in speedups.items() if v < 1}
        out.append(
            (
                "train: jaxrnn jit faster than torch eager at every grid shape",
                not slower,
                "slower at: " + ", ".join(f"{k} ({v:.2f}x)" for k, v in slower.items()) if slower else "all faster",
            )
        )
        med = float(np.median(list(speedups.values())))
        out.append(("train: median speedup over the grid >= 2x", med >= 2, f"median {med:.2f}x"))
    out += _never_slower(_headline_speedups(results, "forward"), "forward: jaxrnn jit never slower than torch eager")
    big = [c for c in _cells(results, "grid", "train") if c["shape"]["name"] == results.get("largest")]
    entry = _entry(big[0], HEADLINE) if big else None
    if entry is not None and entry.get("gemm_fraction") is not None:
        frac = entry["gemm_fraction"]
        out.append(
            (
                "largest shape (train): >= 75% of the GEMM rate",
                frac >= 0.75,
                f"{100 * frac:.0f}% ({entry['gflops']:.1f} of {big[0]['gemm_gflops']:.1f} GFLOP/s)",
            )
        )
    for work in ("train", "forward"):
        what = f"LSTM/GRU {work}: jaxrnn jit never slower than torch.nn.LSTM / torch.nn.GRU eager"
        out += _never_slower(_headline_speedups(results, work, section="cells"), what)
    out += _nnx_targets(results)
    return out


def _nnx_ratio(cell: dict, name: str) -> float | None:
    """An NNX contender's median / the headline's in the same cell (> 1: the NNX layer is slower)."""
    mine, linen = _median(cell, name), _median(cell, HEADLINE)
    return None if mine is None or linen is None else mine / linen


def _nnx_targets(results: dict) -> list[tuple[str, bool | None, str]]:
    """Each NNX pattern's training step within 5% of the linen one wherever compute dominates."""
    out: list[tuple[str, bool | None, str]] = []
    heavy = [
        c
        for c in results["cells"]
        if c["work"] == "train" and (_median(c, HEADLINE) or 0) >= NNX_COMPUTE_S
    ]
    for name in NNX:
        ratios = {_cell_label(c): r for c in heavy if (r := _nnx_ratio(c, name)) is not None}
        if not ratios:
            continue
        over = {k: v for k, v in ratios.items() if v > NNX_TOLERANCE}
        worst = max(ratios, key=ratios.get)  # type: ignore[arg-type]
        out.append(
            (
                f"train: {name} within {100 * (NNX_TOLERANCE - 1):.0f}% of {HEADLINE} where its step takes "
                f">= {NNX_COMPUTE_S * 1e3:.0f} ms ({len(ratios)} cells)",
                not over,
                ("over at: " + ", ".join(f"{k} ({v:.3f}x)" for k, v in over.items()))
                if over
                else f"highest {ratios[worst]:.3f}x ({worst})",
            )
        )
    return out


def _never_slower(speedups: dict[str, float], what: str) -> list[tuple[str, bool | None, str]]:
    if not speedups:
        return []
    slower = {k: v for k, v in speedups.items() if v < 1}
    detail = "slower at: " + ", ".join(f"{k} ({v:.2f}x)" for k, v in slower.items()) if slower else "never slower"
    return [(what, not slower, detail)]


def _headline_speedups(results: dict, work: str, over: str = BASELINE, section: str = "grid") -> dict[str, float]:
    """Shape name -> the headline's speedup over ``over``, for the section's cells that have both."""
    out = {}
    for c in _cells(results, section, work):
        mine, theirs = _median(c, HEADLINE), _median(c, over)
        if mine is not None and theirs is not None:
            out[c["shape"]["name"]] = theirs / mine
    return out


def reference_lines(results: dict) -> list[str]:
    """The same comparisons against torch with one thread, which contention does not stall."""
    lines = []
    for section, work in itertools.product(("grid", "cells"), ("train", "forward")):
        sp = _headline_speedups(results, work, REFERENCE, section)
        if sp:
            worst = min(sp, key=sp.get)  # type: ignore[arg-type]
            lines.append(
                f"- {'LSTM/GRU ' if section == 'cells' else ''}{work}, vs {REFERENCE}: "
                f"median {np.median(list(sp.values())):.2f}x, "
                f"lowest {sp[worst]:.2f}x ({worst}); " + ", ".join(f"{k}: {v:.2f}x" for k, v in sp.items())
            )
    return lines


def _ab_ratios(results: dict) -> list[tuple[dict, float]]:
    return [(c, c["ab_ratio"]) for c in results["cells"] if c.get("ab_ratio") is not None]


def _cell_label(cell: dict) -> str:
    return f"{cell['section']} {cell['work']} {cell['shape']['name']}"


def ab_summary(results: dict) -> str:
    """One line: min / median / max over the cells of the A/B ratio (REF's median / the current median)."""
    ab = results["ab"]
    head = f"A/B, {ab['baseline_name']} median / {ab['current_name']} median (> 1: the current code is faster)"
    ratios = _ab_ratios(results)
    if not ratios:
        return f"{head}: no cell has both"
    lo, hi = min(ratios, key=lambda cr: cr[1]), max(ratios, key=lambda cr: cr[1])
    med = float(np.median([r for _, r in ratios]))
    return (
        f"{head}: min {lo[1]:.3f}x ({_cell_label(lo[0])}), median {med:.3f}x, "
        f"max {hi[1]:.3f}x ({_cell_label(hi[0])}) over {len(ratios)} cells"
    )


def ab_markdown(results: dict) -> list[str]:
    """The A/B section (``--baseline``): per cell both medians and their ratio, then the summary line."""
    ab = results.get("ab")
    if not ab:
        return []
    cur, base = ab["current_name"], ab["baseline_name"]
    lines = [
        f"### A/B: {cur} against {base}",
        "",
        f"Current: {ab['current']}. Baseline: `{ab['ref']}` = {ab['commit'][:10]}, its `jaxrnn/` imported as "
        "`jaxrnn_baseline` in the same process, built and jitted the same way, timed in the same alternating "
        f"rounds. Ratio: {base}'s median / {cur}'s (> 1: the current code is faster; "
        + (
            "one round per cell in --quick: noise; `--budget` gives more)."
            if results.get("settings", {}).get("max_rounds") == 1
            else "medians over the rounds)."
        )
        + (
            f" Absolute imports rewritten in: {', '.join(ab['rewritten_imports'])}."
            if ab.get("rewritten_imports")
            else ""
        ),
        "",
        f"| section | work | shape | {cur} ms | {base} ms | ratio | rounds |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in results["cells"]:
        if "ab_ratio" not in c:
            continue
        a, b = _entry(c, cur) or {}, _entry(c, base) or {}
        lines.append(
            f"| {c['section']} | {c['work']} | {c['shape']['name']} | {_ms(a.get('median_s'))} | "
            f"{_ms(b.get('median_s'))} | {_num(c['ab_ratio'], '.3f')} | {len(a.get('samples_s', []))} |"
        )
    lines += ["", ab_summary(results) + ".", ""]
    return lines


def _median(cell: dict, name: str) -> float | None:
    e = _entry(cell, name)
    return None if e is None else e.get("median_s")


def _speedup(cell: dict, name: str) -> float | None:
    e = _entry(cell, name)
    return None if e is None else e.get("speedup")


def markdown(results: dict) -> str:
    m = results["machine"]
    names = results["contender_names"]
    lines = [
        f"Measured {results['date']} with `{results['command']}`.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['platform']}); JAX {m['jax']} on {m['jax_backend']} "
        f"(default threads), torch {m['torch']} on {m['torch_device']}"
        + (f" ({m['gpu']})" if m.get("gpu") else "")
        + f" ({m['torch_threads']} threads, its default); flax {m['flax']}, optax {m['optax']}; jaxrnn's native "
        f"kernel {m.get('native', 'not recorded')}. "
        f"Load average (1 min) {m['load_avg_start'][0]:.1f} at the start"
        f"{'' if m['load_avg_start'][0] < 0.5 else ' (other processes were running)'}, "
        f"{m.get('load_avg_end', [float('nan')])[0]:.1f} at the end.",
        "",
        "GEMM rate, one (n, n) x (n, n) float32 matmul: "
        + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in results["gemm"].items())
        + f" (n = {results['gemm_n']})"
        + ("; the LSTM's per-step GEMM {} x {} x {}: ".format(*results["step_gemm_shape"])
           + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in results["step_gemm"].items()) if results.get("step_gemm")
           else "") + ".",
        "",
        "Cells: median time in ms over rounds that alternate the contenders (speedup over torch eager); "
        "float32, batch first. Train = forward, loss, backward and one Adam step.",
        "",
        *ab_markdown(results),
    ]
    for section, title in (("grid", "Grid"), ("sweep", "Sequence length sweep"), ("cells", "LSTM and GRU")):
        for work in ("train", "forward"):
            cells = _cells(results, section, work)
            if not cells:
                continue
            present = [n for n in names if n not in NNX and any(_entry(c, n) for c in cells)]
            if not present:
                continue
            lines += [f"### {title}: {work}", ""]
            lines.append("| shape | " + " | ".join(present) + " |")
            lines.append("|---|" + "---|" * len(present))
            for c in cells:
                row = [c["shape"]["name"]]
                for n in present:
                    e = _entry(c, n)
                    if e is None:
                        row.append("")
                    elif "skipped" in e:
                        row.append("–")
                    elif e.get("median_s") is None:
                        row.append("n/a")
                    else:
                        row.append(f"{_ms(e['median_s'])} ({_ratio(e.get('speedup'))})")
                lines.append("| " + " | ".join(row) + " |")
            lines.append("")
    lines += nnx_markdown(results)
    lines += [f"### {HEADLINE}: throughput, compile time, memory", ""]
    lines.append("| work | shape | ms | vs torch | GFLOP/s | of GEMM | compile s | peak MiB |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for section, work in itertools.product(("grid", "cells"), ("train", "forward")):
        for c in _cells(results, section, work):
            e = _entry(c, HEADLINE)
            if not e or e.get("median_s") is None:
                continue
            lines.append(
                f"| {work} | {c['shape']['name']} | {_ms(e['median_s'])} | {_ratio(e.get('speedup'))} | "
                f"{e['gflops']:.1f} | {100 * e['gemm_fraction']:.0f}% | "
                f"{_num(e.get('compile_s'), '.2f')} | {_num(e.get('peak_bytes'), '.1f', MiB)} |"
            )
    lines.append("")
    tgt = [] if results.get("quick") else targets(results)
    if tgt:
        lines += ["### Targets (CPU, float32)", ""]
        for what, met, detail in tgt:
            lines.append(f"- {'met' if met else 'MISSED'}: {what}: {detail}")
        ref = reference_lines(results)
        if ref:
            lines += [
                "",
                f"For reference, jaxrnn jit against {REFERENCE} (torch's threads stall when other processes "
                "hold a core; one thread does not):",
                "",
                *ref,
            ]
        lines.append("")
    wrong = results.get("mismatched", {})
    if wrong:
        lines += ["### WRONG RESULTS (not timed)", ""]
        lines += [f"- {where}: {why}" for where, why in wrong.items()]
        lines.append("")
    notes = {(name, f"n/a: {why}") for name, why in results.get("unavailable", {}).items()}
    for c in results["cells"]:
        notes |= {(name, f"– {e['skipped']}") for name, e in c["contenders"].items() if "skipped" in e}
    if notes:
        lines += ["### Not measured", ""]
        lines += [f"- {name}: {why}" for name, why in sorted(notes)]
        lines.append("")
    lines += [
        "FLOPs: 2·N·G·H·(I_l + H) per step per layer-direction (I_l = D·H above layer 0; G = 1 for the RNN, 4 "
        "for the LSTM, 3 for the GRU) forward, 3x that for a "
        "training step; GFLOP/s = FLOPs / median time; 'of GEMM' divides by the JAX GEMM rate measured "
        "alternating with the contenders in the same cell. Peak memory: JAX jit from XLA's memory_analysis "
        "(arguments + outputs + temporaries), torch from "
        + (
            "torch.cuda.max_memory_allocated."
            if m["torch_device"] == "cuda"
            else "the torch profiler's memory timeline (peak of all tensor categories)."
        ),
        "",
    ]
    return "\n".join(lines)


def nnx_markdown(results: dict) -> list[str]:
    """The NNX layers against the linen one: both medians from the same rounds, and their ratio."""
    names = [n for n in NNX if n in results["contender_names"]]
    cells = [c for c in results["cells"] if any("skipped" not in (_entry(c, n) or {"skipped": 1}) for n in names)]
    if not names or not cells:
        return []
    lines = [
        "### NNX vs linen",
        "",
        f"`jaxrnn.nnx` layers holding {HEADLINE}'s weights, the same loss and Adam step: median ms and the ratio "
        f"to {HEADLINE}'s median in the same rounds (1.00x: as fast; > 1: slower). nnx jit: an `nnx.jit` step on "
        "(model, optimizer, x); nnx cached: that step through `nnx.cached_partial(step, model, optimizer)`; "
        "nnx split: `nnx.split` once, then `jax.jit` of a functional step on plain dicts (`nnx.to_pure_dict`) with "
        "`nnx.merge` inside. "
        f"Last column: nnx jit's median minus {HEADLINE}'s, the per-call cost of `nnx.jit`'s graph traversal "
        "where the step itself is short. Each was checked before timing to give the linen step's losses (or "
        "outputs) on the same weights, to 1e-5.",
        "",
        f"| section | work | shape | {HEADLINE} ms | " + " | ".join(names) + " | nnx jit − linen µs |",
        "|---|---|---|---|" + "---|" * len(names) + "---|",
    ]
    for c in cells:
        row = [c["section"], c["work"], c["shape"]["name"], _ms(_median(c, HEADLINE))]
        for n in names:
            e = _entry(c, n)
            if e is None:
                row.append("")
            elif "skipped" in e:
                row.append("–")
            elif e.get("median_s") is None:
                row.append("wrong result" if str(e.get("error", "")).startswith("wrong result") else "n/a")
            else:
                row.append(f"{_ms(e['median_s'])} ({_nnx_num(_nnx_ratio(c, n))})")
        mine, linen = _median(c, "nnx jit"), _median(c, HEADLINE)
        row.append("n/a" if mine is None or linen is None else f"{(mine - linen) * 1e6:+.0f}")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    return lines


def _nnx_num(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}x"


def details_markdown(results: dict) -> str:
    lines = [
        "| section | work | shape | contender | ms | vs torch | GFLOP/s | of GEMM | compile s | peak MiB | rounds |"
    ]
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for c in results["cells"]:
        for name, e in c["contenders"].items():
            if e.get("median_s") is None:
                why = e.get("skipped") or f"n/a: {e.get('error')}"
                lines.append(f"| {c['section']} | {c['work']} | {c['shape']['name']} | {name} | {why} |||||||")
                continue
            lines.append(
                f"| {c['section']} | {c['work']} | {c['shape']['name']} | {name} | {_ms(e['median_s'])} | "
                f"{_ratio(e.get('speedup'))} | {e['gflops']:.2f} | {100 * e['gemm_fraction']:.1f}% | "
                f"{_num(e.get('compile_s'), '.2f', missing='')} | {_num(e.get('peak_bytes'), '.1f', MiB, '')} | "
                f"{len(e['samples_s'])} |"
            )
    ab = ab_markdown(results)
    return "\n".join(lines) + "\n" + ("\n" + "\n".join(ab) if ab else "")


def plots(results: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    every = results["contender_names"]
    color = {n: f"C{i}" for i, n in enumerate(every)}  # one colour per contender in every plot
    names = [n for n in every if n not in NNX]  # the NNX layers have their own figure
    sweep = {w: _cells(results, "sweep", w) for w in ("train", "forward")}
    if any(sweep.values()):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
        for ax, (work, cells) in zip(axes, sweep.items()):
            for n in names:
                pts = [(c["shape"]["steps"], t * 1e3) for c in cells if (t := _median(c, n)) is not None]
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=n, color=color[n])
            if cells:
                ax.set_title(f"{work}: {cells[0]['shape']['name'].split(' ', 2)[2]} (N={cells[0]['shape']['batch']})")
            ax.set(xscale="log", yscale="log", xlabel="sequence length T", ylabel="median ms")
            ax.grid(True, which="both", alpha=0.3)
        axes[0].legend(fontsize=8)
        path = out / "time_vs_T.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    for section, filename in (("grid", "speedup.png"), ("cells", "speedup_cells.png")):
        path = _speedup_plot(results, section, out / filename, names, color)
        if path is not None:
            written.append(path)
    path = _nnx_plot(results, out / "nnx_vs_linen.png", color)
    if path is not None:
        written.append(path)
    return written


def _nnx_plot(results: dict, path: Path, color: dict) -> Path | None:
    """Bars: each NNX contender's median / the linen headline's, per cell, train and forward."""
    import matplotlib.pyplot as plt

    names = [n for n in NNX if n in results["contender_names"]]
    grid = {w: [c for c in results["cells"] if c["work"] == w and _median(c, HEADLINE) is not None] for w in
            ("train", "forward")}
    if not names or not any(_nnx_ratio(c, n) is not None for cells in grid.values() for c in cells for n in names):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), constrained_layout=True)
    for ax, (work, cells) in zip(axes, grid.items()):
        width = 0.8 / len(names)
        for i, n in enumerate(names):
            pts = [(j, r) for j, c in enumerate(cells) if (r := _nnx_ratio(c, n)) is not None]
            if pts:
                xs, ys = zip(*pts)
                ax.bar([x + (i - (len(names) - 1) / 2) * width for x in xs], ys, width, label=n, color=color[n])
        ax.axhline(1.0, color="k", lw=0.8)
        ax.axhline(NNX_TOLERANCE, color="k", lw=0.8, ls="--")
        labels = [f"{c['section']}\n" + c["shape"]["name"].replace(" ", "\n") for c in cells]
        ax.set_xticks(range(len(cells)), labels, fontsize=6)
        ax.set(yscale="log", ylabel=f"median / {HEADLINE}'s (> 1: slower)", title=f"NNX vs linen: {work}")
        ax.grid(True, axis="y", which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _speedup_plot(results: dict, section: str, path: Path, names: list[str], color: dict) -> Path | None:
    import matplotlib.pyplot as plt

    grid = {w: _cells(results, section, w) for w in ("train", "forward")}
    if any(grid.values()):
        cells_all = [c for cells in grid.values() for c in cells]
        others = [n for n in names if n != BASELINE and any(_speedup(c, n) is not None for c in cells_all)]
        if not others:  # no torch eager in the run (--only): no speedups to draw
            return None
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), constrained_layout=True)
        for ax, (work, cells) in zip(axes, grid.items()):
            width = 0.8 / max(1, len(others))
            for i, n in enumerate(others):
                xs, ys = [], []
                for j, c in enumerate(cells):
                    s = _speedup(c, n)
                    if s is not None:
                        xs.append(j + (i - (len(others) - 1) / 2) * width)
                        ys.append(s)
                ax.bar(xs, ys, width, label=n, color=color[n])
            ax.axhline(1.0, color="k", lw=0.8)
            ax.set_xticks(range(len(cells)), [c["shape"]["name"].replace(" ", "\n") for c in cells], fontsize=6)
            ax.set(yscale="log", ylabel="speedup over torch eager", title=work)
            ax.grid(True, axis="y", which="both", alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path
    return None


def write(results: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=1))
    (out / "bench.md").write_text(markdown(results))
    (out / "details.md").write_text(details_markdown(results))
    return [out / "bench.json", out / "bench.md", out / "details.md", *plots(results, out)]


def update_readme(readme: Path, results_dir: Path) -> None:
    """Put results_dir/bench.md between the README's bench markers (placed before '## Development', else at the end)."""
    table = (results_dir / "bench.md").read_text()
    rel = results_dir.relative_to(readme.parent) if results_dir.is_relative_to(readme.parent) else results_dir
    section = (
        f"{README_START}\n## Benchmarks\n\n"
        "`make bench` (`python -m benchmarks`) measures jaxrnn under jit, without jit and under "
        "`jax.disable_jit()`, its NNX layers (`nnx.jit`, `nnx.cached_partial`, `nnx.split` + `jax.jit`), a plain "
        "Flax RNN stack, `torch.nn.RNN` and `torch.compile` of it, and jaxrnn's "
        "LSTM and GRU against `torch.nn.LSTM` / `torch.nn.GRU`, and writes "
        f"`{rel}/` (JSON, markdown, plots); `python -m benchmarks --update-readme` copies the latest table here. "
        "Notes on what was tried and what it gave: `benchmarks/NOTES.md`.\n\n"
        f"{table}\n"
        f"![time vs sequence length]({rel}/time_vs_T.png)\n![speedup per shape]({rel}/speedup.png)\n"
        f"![LSTM and GRU speedup per shape]({rel}/speedup_cells.png)\n"
        f"![NNX vs linen per shape]({rel}/nnx_vs_linen.png)\n"
        f"{README_END}"
    )
    text = readme.read_text() if readme.exists() else ""
    if README_START in text and README_END in text:
        text = re.sub(re.escape(README_START) + r".*?" + re.escape(README_END), lambda _: section, text, flags=re.S)
    elif "\n## Development" in text:
        i = text.index("\n## Development")
        text = text[: i + 1] + section + "\n\n" + text[i + 1 :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    readme.write_text(text)
