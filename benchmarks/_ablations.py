"""``python -m benchmarks --ablations``: the fast path's ideas measured one at a time, side by side.

Every variant computes the same thing (jaxrnn.RNN's forward, or a full Adam training step) on
the same params, under jax.jit, alternated round by round with the others and torch eager:

- ``step-proj autodiff``: the input projection inside the loop (W_ih x(t) per step), autodiff;
- ``hoisted autodiff``: the projection as one GEMM before the loop, a loop of one matmul, one
  add and one tanh, autodiff of lax.scan for the backward pass (what nn.scan over the cell does);
- ``layer``: jaxrnn.RNN as a user calls it (its default impl);
- ``vjp split``: jaxrnn._fused, custom VJP (backward loop carries dh only, dW_hh one GEMM),
  one loop per direction, W_hh^T made once before the forward loop;
- ``vjp split, W^T folded``: the same, with ``h @ W_hh.T`` left to XLA, which folds the
  transpose into the dot (a transposed-operand GEMM every step);
- ``vjp fused``: the same with both directions in one loop (bidirectional shapes only);
- ``vjp uK``: ``vjp split`` with its loops unrolled K steps.

Writes results/ablations.json and results/ablations.md.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from pathlib import Path

from . import _contenders, _grid, _measure

UNROLLS = (2, 4, 8)


def _reference_stack(params, x, shape: _grid.Shape, hoisted: bool):
    """The layer's maths with plain lax.scan and autodiff; ``hoisted=False`` projects inside the loop."""
    import jax
    import jax.numpy as jnp

    x = jnp.swapaxes(x, 0, 1)
    finals = []
    for layer in range(shape.layers):
        outs = []
        for d in range(shape.directions):
            p = params[f"l{layer}{'_reverse' if d else ''}"]
            h0 = jnp.zeros((x.shape[1], shape.hidden), x.dtype)
            b = p["bias_ih"] + p["bias_hh"]
            if hoisted:
                xp = x @ p["weight_ih"].T + b

                def body(h, xp_t, w=p["weight_hh"]):
                    h = jnp.tanh(xp_t + h @ w.T)
                    return h, h

                h_n, ys = jax.lax.scan(body, h0, xp, reverse=bool(d))
            else:

                def body(h, x_t, p=p, b=b):
                    h = jnp.tanh(x_t @ p["weight_ih"].T + b + h @ p["weight_hh"].T)
                    return h, h

                h_n, ys = jax.lax.scan(body, h0, x, reverse=bool(d))
            outs.append(ys)
            finals.append(h_n)
        x = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=-1)
    return jnp.swapaxes(x, 0, 1), jnp.stack(finals)


def _variants(shape: _grid.Shape) -> dict:
    """name -> apply(params, x) for this shape."""
    from jaxrnn import _fused

    def fused(fuse_directions, unroll):
        def apply(params, x):
            return _fused.elman_stack(
                params,
                x,
                num_layers=shape.layers,
                bidirectional=shape.bidirectional,
                batch_first=True,
                fuse_directions=fuse_directions,
                unroll=unroll,
            )

        return apply

    def folded_transpose(apply):
        """``apply`` traced with h @ W_hh^T left to XLA (a transposed-operand GEMM in the loop)."""

        def traced(params, x):
            saved, _fused._PRETRANSPOSE = _fused._PRETRANSPOSE, False
            try:
                return apply(params, x)
            finally:
                _fused._PRETRANSPOSE = saved

        return traced

    layer_init, layer_apply = _contenders._jaxrnn_apply(shape, None)
    out = {
        "step-proj autodiff": lambda p, x: _reference_stack(p, x, shape, hoisted=False),
        "hoisted autodiff": lambda p, x: _reference_stack(p, x, shape, hoisted=True),
        "layer": layer_apply,
        "vjp split": fused(False, 1),
        "vjp split, W^T folded": folded_transpose(fused(False, 1)),
    }
    if shape.bidirectional:
        out["vjp fused"] = fused(True, 1)
    for k in UNROLLS:
        out[f"vjp u{k}"] = fused(False, k)
    return layer_init, out


def _run_shape(shape, work, budget) -> dict:
    x = _contenders.make_input(shape)
    init, variants = _variants(shape)
    runners, entries = {}, {}
    for name, apply in variants.items():
        fn, args = _contenders._jax_work(init, apply, work, x)
        prepared = _contenders._jax_runner(fn, args, work, jit=True)
        runners[name] = prepared.run
        entries[name] = {"compile_s": prepared.compile_s, "peak_bytes": prepared.peak_bytes}
    runners["torch eager"] = _contenders._build_torch(compiled=False)(shape, work, x).run
    entries["torch eager"] = {}
    timed = _measure.alternate(runners, budget_s=budget, min_rounds=5, max_rounds=21, min_sample_s=0.05)
    flops = shape.flops(work)
    ref = timed["hoisted autodiff"]["median_s"]
    torch_s = timed["torch eager"]["median_s"]
    for name, t in timed.items():
        entries[name].update(t)
        entries[name]["gflops"] = flops / t["median_s"] / 1e9
        entries[name]["vs_hoisted"] = ref / t["median_s"]
        entries[name]["vs_torch"] = torch_s / t["median_s"]
    return {"shape": shape.as_dict(), "work": work, "variants": entries}


def _markdown(res: dict) -> str:
    lines = [
        f"Measured {res['date']} with `python -m benchmarks --ablations`; load average {res['load'][0]:.1f} -> "
        f"{res['load_end'][0]:.1f} on {res['cores']} cores.",
        "",
        "Median ms over alternated rounds; in brackets the speedup over `hoisted autodiff` (the scan "
        "reference) and over torch eager.",
        "",
    ]
    for work in ("train", "forward"):
        rows = [r for r in res["rows"] if r["work"] == work]
        if not rows:
            continue
        names = []
        for r in rows:
            names += [n for n in r["variants"] if n not in names]
        lines += [f"### {work}", "", "| shape | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for r in rows:
            cells = []
            for n in names:
                e = r["variants"].get(n)
                cells.append(
                    ""
                    if e is None
                    else f"{e['median_s'] * 1e3:.3g} ({e['vs_hoisted']:.2f}x / {e['vs_torch']:.2f}x)"
                    + ("" if e.get("compile_s") is None else f" c{e['compile_s']:.1f}s")
                )
            lines.append(f"| {r['shape']['name']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("cN.Ns: XLA compile time.")
    return "\n".join(lines) + "\n"


def main(args, out: Path) -> None:
    shapes = _grid.QUICK_GRID if args.quick else _grid.GRID
    works = [w.strip() for w in args.works.split(",") if w.strip()]
    budget = args.budget or (1.0 if args.quick else 12.0)
    res = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "load": list(os.getloadavg()),
        "cores": os.cpu_count(),
        "rows": [],
    }
    t0 = time.perf_counter()
    for shape in shapes:
        for work in works:
            row = _run_shape(shape, work, budget)
            res["rows"].append(row)
            summary = ", ".join(
                f"{n} {e['median_s'] * 1e3:.3g}ms ({e['vs_hoisted']:.2f}x)" for n, e in row["variants"].items()
            )
            print(f"[{time.perf_counter() - t0:5.0f}s] {work:7s} {shape.name}: {summary}", file=sys.stderr, flush=True)
    res["load_end"] = list(os.getloadavg())
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablations.json").write_text(json.dumps(res, indent=1))
    (out / "ablations.md").write_text(_markdown(res))
    print(f"wrote {out / 'ablations.md'}", file=sys.stderr)
