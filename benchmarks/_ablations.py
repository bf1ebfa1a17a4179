"""``python -m benchmarks --ablations``: the fast path's ideas measured one at a time, side by side.

Every variant computes the same thing (jaxrnn.RNN's forward, or a full Adam training step) on
the same weights, under jax.jit, alternated round by round with the others and torch eager. Each
goes through jaxrnn's public API or through plain JAX written here; none reaches into the
library's internals, which change under it (the history of each idea, with the rows the internals
once gave, is in benchmarks/NOTES.md):

- ``step-proj autodiff`` (local): the input projection inside the loop (W_ih x(t) per step), autodiff;
- ``hoisted autodiff`` (local): the projection as one GEMM before the loop, a loop of one matmul,
  one add and one tanh, autodiff of lax.scan for the backward pass (what nn.scan over the cell
  does); the reference every row is compared with;
- ``hoisted autodiff, one loop`` (local, bidirectional shapes only): the same with both directions
  in one loop, their matmuls batched (NOTES.md idea 4; the library's custom-VJP version of it is
  gone, this is its autodiff rendition, to compare with ``hoisted autodiff``);
- ``layer``: jaxrnn.RNN as a user calls it (its default impl, 'fused');
- ``layer, impl='scan'``: jaxrnn.RNN's reference path, ``nn.scan`` over ``RNNCell`` with
  autodiff (against ``hoisted autodiff``: what Flax's lifting costs at run time);
- ``layer, via time-major``: jaxrnn.RNN(batch_first=False) with the batch-first input transposed
  to time-major and the output back (NOTES.md idea 6: what the loops' in-place stepping saves);
- ``layer uK``: jaxrnn.RNN(unroll=K) (NOTES.md idea 5);
- ``functional``: jaxrnn.functional.rnn on the same weights with torch's keys (where it exists);
- ``flax``: the plain Flax baseline of ``python -m benchmarks`` (``flax jit``).

Rows that measured toggles of the library's internals are gone with them: the "vjp split"
rows (now the ``layer`` row), and ``W^T folded`` (W_hh^T made once against the transpose folded
into the dot: the ``Where the time goes`` table below still times both forms of the loop, locally).

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
REFERENCE = "hoisted autodiff"


def _reference_stack(params, x, shape: _grid.Shape, hoisted: bool, one_loop: bool = False):
    """The layer's maths with plain lax.scan and autodiff; ``hoisted=False`` projects inside the loop,
    ``one_loop`` (hoisted, two directions) runs both directions in one loop."""
    import jax
    import jax.numpy as jnp

    x = jnp.swapaxes(x, 0, 1)
    finals = []
    for layer in range(shape.layers):
        ps = [params[f"l{layer}{'_reverse' if d else ''}"] for d in range(shape.directions)]
        h0 = jnp.zeros((x.shape[1], shape.hidden), x.dtype)
        if one_loop and len(ps) == 2:
            # (T, 2, N, H): the reverse direction's inputs flipped in time, so one walk serves both
            fwd, bwd = (x @ p["weight_ih"].T + p["bias_ih"] + p["bias_hh"] for p in ps)
            inputs = jnp.stack([fwd, bwd[::-1]], axis=1)
            w_hh = jnp.stack([p["weight_hh"] for p in ps])

            def both(h, u, w_hh=w_hh):
                h = jnp.tanh(u + jnp.einsum("dnk,dhk->dnh", h, w_hh))
                return h, h

            h_n, ys = jax.lax.scan(both, jnp.stack([h0, h0]), inputs)
            outs = [ys[:, 0], ys[::-1, 1]]
            finals += [h_n[0], h_n[1]]
        else:
            outs = []
            for d, p in enumerate(ps):
                b = p["bias_ih"] + p["bias_hh"]
                if hoisted:  # the input half of every step, one GEMM; the loop adds it
                    inputs, w_in, b_in = x @ p["weight_ih"].T + b, None, None
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


def _variants(shape: _grid.Shape) -> tuple[dict[str, tuple[Callable, Callable]], dict[str, str]]:
    """({name: (init(x), apply(params, x))}, {name: why it is not measured}) for this shape.

    Every init but Flax's gives the same weights: the layer's, keyed as the layer keys them (the
    functional API: as torch does)."""
    import jax.numpy as jnp

    layer_init, layer_apply = _contenders._jaxrnn_apply(shape, None)
    time_major = _contenders._jaxrnn_apply(shape, None, batch_first=False)[1]

    def via_time_major(params, x):
        out, h_n = time_major(params, jnp.swapaxes(x, 0, 1))
        return jnp.swapaxes(out, 0, 1), h_n

    def local(**kw):
        return layer_init, lambda p, x: _reference_stack(p, x, shape, **kw)

    out: dict[str, tuple[Callable, Callable]] = {
        "step-proj autodiff": local(hoisted=False),
        REFERENCE: local(hoisted=True),
    }
    if shape.bidirectional:
        out["hoisted autodiff, one loop"] = local(hoisted=True, one_loop=True)
    out["layer"] = (layer_init, layer_apply)
    out["layer, impl='scan'"] = (layer_init, _contenders._jaxrnn_apply(shape, "scan")[1])
    out["layer, via time-major"] = (layer_init, via_time_major)
    for k in UNROLLS:
        out[f"layer u{k}"] = (layer_init, _contenders._jaxrnn_apply(shape, None, unroll=k)[1])
    missing = {}
    try:
        out["functional"] = _contenders._functional_apply(shape)
    except _contenders.Unavailable as e:
        missing["functional"] = str(e)
    out["flax"] = _contenders._flax_apply(shape)
    return out, missing


def _run_shape(shape, work, budget, quick: bool) -> dict:
    x = _contenders.make_input(shape)
    variants, missing = _variants(shape)
    runners, entries = {}, {}
    for name, (init, apply) in variants.items():
        fn, args = _contenders._jax_work(init, apply, work, x)
        prepared = _contenders._jax_runner(fn, args, work, jit=True)
        runners[name] = prepared.run
        entries[name] = {"compile_s": prepared.compile_s, "peak_bytes": prepared.peak_bytes}
    runners["torch eager"] = _contenders._build_torch(compiled=False)(shape, work, x, memory=False).run
    entries["torch eager"] = {}
    timed = _measure.alternate(
        runners,
        budget_s=budget,
        min_rounds=1 if quick else 3,
        max_rounds=1 if quick else 21,
        min_sample_s=0.0 if quick else 0.05,
    )
    flops = shape.flops(work)
    ref = timed[REFERENCE]["median_s"]
    torch_s = timed["torch eager"]["median_s"]
    for name, t in timed.items():
        entries[name].update(t)
        entries[name]["gflops"] = flops / t["median_s"] / 1e9
        entries[name]["vs_hoisted"] = ref / t["median_s"]
        entries[name]["vs_torch"] = torch_s / t["median_s"]
    return {"shape": shape.as_dict(), "work": work, "variants": entries, "unavailable": missing}


def _run_blocking(fn, args) -> None:
    import jax

    jax.block_until_ready(fn(*args))


def _pieces(budget: float, quick: bool) -> list[dict]:
    """Where a training step's time goes at the largest shape's sizes (one layer-direction of its
    second layer, T shortened): each piece's GFLOP/s and its fraction of the GEMM rate, timed
    alternating with one (2048, 2048) x (2048, 2048) matmul.

    The loops are written here in plain JAX, the way the fused path runs them (the library's own
    pieces are not public); the last row is the public layer itself, its full forward and backward."""
    import jax
    import jax.numpy as jnp

    import jaxrnn

    n, t, i, h = (4, 5, 6, 8) if quick else (64, 50, 1024, 512)
    k = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(k[0], (t, n, i))
    w_ih = jax.random.normal(k[1], (h, i)) / i**0.5
    w_hh = jax.random.normal(k[2], (h, h)) / h**0.5
    h0 = jnp.zeros((n, h))
    xp = x @ w_ih.T
    dys = jax.random.normal(k[3], (t, n, h))
    rec, proj = 2.0 * t * n * h * h, 2.0 * t * n * i * h

    def forward_loop(xp, w, h0, pretransposed: bool):
        """h(t) = tanh(xp(t) + h(t-1) W^T): W^T made once (kept apart from the dot by a barrier, so each
        step is a plain GEMM), or the transpose left to XLA, which folds it into the dot."""
        w_t = jax.lax.optimization_barrier(w.T) if pretransposed else w.T

        def body(hh, xp_t):
            hh = jnp.tanh(xp_t + hh @ w_t)
            return hh, hh

        return jax.lax.scan(body, h0, xp)

    def backward_loop(dys, ys, w, dh_n):
        """The sequential part of the backward pass, carrying dh only: da(t) = (dh + dy(t)) (1 - y(t)^2),
        dh = da(t) W. Returns (dh0, da)."""

        def body(dh, inp):
            dy_t, y_t = inp
            da_t = (dh + dy_t) * (1 - y_t**2)
            return da_t @ w, da_t

        return jax.lax.scan(body, dh_n, (dys, ys), reverse=True)

    def weight_grad(da, ys, h0):
        """dW_hh = sum over steps and batch of da(t)^T h(t-1): one (H, T*N) x (T*N, H) GEMM."""
        h_prev = jnp.concatenate([h0[None], ys[:-1]])
        return da.reshape(-1, h).T @ h_prev.reshape(-1, h)

    ys = forward_loop(xp, w_hh, h0, True)[1]
    da = backward_loop(dys, ys, w_hh, h0)[1]
    layer = jaxrnn.RNN(i, h)  # time-major, one layer, one direction, biases
    params = layer.init(jax.random.key(1), x)["params"]

    def layer_step(x, params, dys):
        def f(x, params):
            return jnp.sum(layer.apply({"params": params}, x)[0] * dys)

        return jax.grad(f, argnums=(0, 1))(x, params)

    cases: dict[str, tuple[Callable[..., Any], tuple, float]] = {
        "forward loop (W^T made once)": (functools.partial(forward_loop, pretransposed=True), (xp, w_hh, h0), rec),
        "forward loop (h @ W^T folded)": (functools.partial(forward_loop, pretransposed=False), (xp, w_hh, h0), rec),
        "backward loop (carries dh)": (backward_loop, (dys, ys, w_hh, h0), rec),
        "dW_hh: one GEMM (+ h_prev)": (weight_grad, (da, ys, h0), rec),
        "projection x W_ih^T": (lambda a, w: a @ w.T, (x, w_ih), proj),
        "dx = da W_ih": (lambda d, w: d @ w, (da, w_ih), proj),
        "dW_ih = da^T x": (lambda d, a: jnp.einsum("tnh,tni->hi", d, a), (da, x), proj),
        "one layer-direction fwd+bwd (jaxrnn.RNN)": (layer_step, (x, params, dys), 3 * (rec + proj)),
    }
    runners: dict[str, Callable[[], None]] = {}
    for name, (f, args, _) in cases.items():
        compiled = jax.jit(f).lower(*args).compile()
        runners[name] = functools.partial(_run_blocking, compiled, args)
    gemm_run, gemm_flops = _measure.gemm_runner(256 if quick else 2048)
    runners["gemm"] = gemm_run
    timed = _measure.alternate(
        runners, budget_s=budget, min_rounds=1 if quick else 7, max_rounds=1 if quick else 31, min_sample_s=0.1
    )
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
    lines.append("cN.Ns: XLA compile time. The variants: `benchmarks/_ablations.py`'s docstring.")
    missing = sorted({(n, why) for r in res["rows"] for n, why in r.get("unavailable", {}).items()})
    if missing:
        lines += ["", "Not measured:", ""] + [f"- {n}: {why}" for n, why in missing]
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
            row = _run_shape(shape, work, budget, args.quick)
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
