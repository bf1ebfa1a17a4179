"""``python -m benchmarks --ablations``: the fast path's ideas measured one at a time, side by side.

Every variant computes the same thing (jaxrnn.RNN's forward, or a full Adam training step) on
the same params, under jax.jit, alternated round by round with the others and torch eager:

- ``step-proj autodiff``: the input projection inside the loop (W_ih x(t) per step), autodiff;
- ``hoisted autodiff``: the projection as one GEMM before the loop, a loop of one matmul, one
  add and one tanh, autodiff of lax.scan for the backward pass (what nn.scan over the cell does);
- ``layer``: jaxrnn.RNN as a user calls it (its default impl);
- ``layer, impl='scan'``: jaxrnn.RNN's reference path, ``nn.scan`` over ``RNNCell`` with
  autodiff (against ``hoisted autodiff``: what Flax's lifting costs at run time);
- ``vjp split``: jaxrnn._fused, custom VJP (backward loop carries dh only, dW_hh one GEMM),
  one loop per direction, W_hh^T made once before the forward loop;
- ``vjp split, W^T folded``: the same, with ``h @ W_hh.T`` left to XLA, which folds the
  transpose into the dot (a transposed-operand GEMM every step);
- ``vjp split, via time-major``: the same, with the batch-first input transposed to time-major
  and the output back (as the layer did before its loops learned to step along axis 1);
- ``vjp fused``: the same with both directions in one loop (bidirectional shapes only);
- ``vjp uK``: ``vjp split`` with its loops unrolled K steps.

Writes results/ablations.json and results/ablations.md.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import _contenders, _grid, _measure

UNROLLS = (4,)


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
            if hoisted:  # the input half of every step, one GEMM; the loop adds it
                inputs = x @ p["weight_ih"].T + b
                w_in, b_in = None, None
            else:  # the loop projects each step's input itself
                inputs, w_in, b_in = x, p["weight_ih"], b

            def body(h, u, w_hh=p["weight_hh"], w_in=w_in, b_in=b_in):
                a = u if w_in is None else u @ w_in.T + b_in
                h = jnp.tanh(a + h @ w_hh.T)
                return h, h

            h_n, ys = jax.lax.scan(body, h0, inputs, reverse=bool(d))
            outs.append(ys)
            finals.append(h_n)
        x = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=-1)
    return jnp.swapaxes(x, 0, 1), jnp.stack(finals)


def _variants(shape: _grid.Shape) -> tuple[Callable, dict[str, Callable]]:
    """(init, {name: apply(params, x)}) for this shape."""
    import jax.numpy as jnp

    from jaxrnn.functional import _fused

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

    def via_time_major(params, x):
        out, h_n = _fused.elman_stack(
            params, jnp.swapaxes(x, 0, 1), num_layers=shape.layers, bidirectional=shape.bidirectional
        )
        return jnp.swapaxes(out, 0, 1), h_n

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
        "layer, impl='scan'": _contenders._jaxrnn_apply(shape, "scan")[1],
        "vjp split": fused(False, 1),
        "vjp split, W^T folded": folded_transpose(fused(False, 1)),
        "vjp split, via time-major": via_time_major,
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
    timed = _measure.alternate(runners, budget_s=budget, min_rounds=3, max_rounds=21, min_sample_s=0.05)
    flops = shape.flops(work)
    ref = timed["hoisted autodiff"]["median_s"]
    torch_s = timed["torch eager"]["median_s"]
    for name, t in timed.items():
        entries[name].update(t)
        entries[name]["gflops"] = flops / t["median_s"] / 1e9
        entries[name]["vs_hoisted"] = ref / t["median_s"]
        entries[name]["vs_torch"] = torch_s / t["median_s"]
    return {"shape": shape.as_dict(), "work": work, "variants": entries}


def _run_blocking(fn, args) -> None:
    import jax

    jax.block_until_ready(fn(*args))


def _pieces(budget: float, quick: bool) -> list[dict]:
    """Where a training step's time goes at the largest shape's sizes (one layer-direction of its
    second layer, T shortened): each piece's GFLOP/s and its fraction of the GEMM rate, timed
    alternating with one (2048, 2048) x (2048, 2048) matmul."""
    import jax
    import jax.numpy as jnp

    from jaxrnn.functional import _fused

    n, t, i, h = (4, 5, 6, 8) if quick else (64, 50, 1024, 512)
    k = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(k[0], (t, n, i))
    w_ih = jax.random.normal(k[1], (h, i)) / i**0.5
    w_hh = jax.random.normal(k[2], (h, h)) / h**0.5
    h0 = jnp.zeros((n, h))
    xp = x @ w_ih.T
    ys, _ = _fused.elman(xp, w_hh, h0)
    dys = jax.random.normal(k[3], (t, n, h))
    da = dys * (1 - ys**2)
    rec, proj = 2.0 * t * n * h * h, 2.0 * t * n * i * h

    def layer_step(x, w_ih, w_hh, dys):
        def f(x, w_ih, w_hh):
            return jnp.sum(_fused.elman(x @ w_ih.T, w_hh, h0)[0] * dys)

        return jax.grad(f, argnums=(0, 1, 2))(x, w_ih, w_hh)

    def folded(xp, w, h0):  # h @ W^T with the transpose left to XLA
        def body(hh, xp_t):
            hh = jnp.tanh(xp_t + hh @ w.T)
            return hh, hh

        return jax.lax.scan(body, h0, xp)

    cases: dict[str, tuple[Callable[..., Any], tuple, float]] = {
        "forward loop (W^T made once)": (
            lambda a, w, b: _fused._forward(a, None, w, b, None, False, "tanh", None, 1, 0),
            (xp, w_hh, h0),
            rec,
        ),
        "forward loop (h @ W^T folded)": (folded, (xp, w_hh, h0), rec),
        "backward loop (carries dh)": (
            lambda d, y, w, b: _fused._backward_loop(d, y, w, b, None, False, "tanh", None, 1),
            (dys, ys, w_hh, h0),
            rec,
        ),
        "dW_hh: one GEMM (+ h_prev)": (
            lambda d, y, b: _fused._weight_grad(d, _fused._previous_states(y, b, None, False), None),
            (da, ys, h0),
            rec,
        ),
        "projection x W_ih^T": (lambda a, w: a @ w.T, (x, w_ih), proj),
        "dx = da W_ih": (lambda d, w: d @ w, (da, w_ih), proj),
        "dW_ih = da^T x": (lambda d, a: jnp.einsum("tnh,tni->hi", d, a), (da, x), proj),
        "one layer-direction fwd+bwd": (layer_step, (x, w_ih, w_hh, dys), 3 * (rec + proj)),
    }
    runners: dict[str, Callable[[], None]] = {}
    for name, (f, args, _) in cases.items():
        compiled = jax.jit(f).lower(*args).compile()
        runners[name] = functools.partial(_run_blocking, compiled, args)
    gemm_run, gemm_flops = _measure.gemm_runner(256 if quick else 2048)
    runners["gemm"] = gemm_run
    timed = _measure.alternate(runners, budget_s=budget, min_rounds=1 if quick else 7, max_rounds=31, min_sample_s=0.1)
    gemm_rate = gemm_flops / timed["gemm"]["median_s"] / 1e9
    rows = [{"piece": "GEMM (2048^3)", "ms": timed["gemm"]["median_s"] * 1e3, "gflops": gemm_rate, "fraction": 1.0}]
    for name, (_, _, flops) in cases.items():
        rate = flops / timed[name]["median_s"] / 1e9
        rows.append({"piece": name, "ms": timed[name]["median_s"] * 1e3, "gflops": rate, "fraction": rate / gemm_rate})
    return rows


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
    if res.get("pieces"):
        lines += [
            "",
            "### Where the time goes (largest shape's sizes: N=64, H=512, I=2H, T=50; one layer-direction)",
            "",
            "| piece | ms | GFLOP/s | of GEMM |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['piece']} | {r['ms']:.2f} | {r['gflops']:.1f} | {100 * r['fraction']:.0f}% |" for r in res["pieces"]
        ]
    return "\n".join(lines) + "\n"


def main(args, out: Path) -> None:
    shapes = _grid.QUICK_GRID if args.quick else _grid.GRID
    works = [w.strip() for w in args.works.split(",") if w.strip()]
    budget = args.budget or (1.0 if args.quick else 6.0)
    res: dict[str, Any] = {
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
    res["pieces"] = _pieces(budget * 2, args.quick)
    print("pieces: " + ", ".join(f"{r['piece']} {100 * r['fraction']:.0f}%" for r in res["pieces"]), file=sys.stderr)
    res["load_end"] = list(os.getloadavg())
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablations.json").write_text(json.dumps(res, indent=1))
    (out / "ablations.md").write_text(_markdown(res))
    print(f"wrote {out / 'ablations.md'}", file=sys.stderr)
