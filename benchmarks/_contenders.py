"""The contenders: each builds, for one shape and one kind of work, a callable that runs it once.

Every contender does the same work on the same float32 data, batch first:
- forward: ``output, h_n = rnn(x)``;
- train: forward, ``loss = mean(output**2) + mean(h_n**2)``, backward, one Adam step (lr 1e-3):
  optax on the JAX side, torch.optim on the torch side.

A built contender is a ``Prepared``: ``run()`` does the work once and waits for the device;
``compile_s`` is the time to compile (JAX jit: lowering plus XLA compilation; torch.compile:
the first call, compilation included); ``peak_bytes`` the peak memory of one call and
``memory_method`` how it was measured. A contender that cannot run here raises ``Unavailable``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ._grid import QUICK_CELL_GRID, QUICK_T_SWEEP, Shape


class Unavailable(Exception):
    """The contender cannot run on this machine or shape; the message says why."""


class Mismatch(Exception):
    """A contender computes something else than ``jaxrnn jit`` on the same weights: not to be timed."""


@dataclasses.dataclass
class Prepared:
    run: Callable[[], None]
    compile_s: float | None = None
    peak_bytes: int | None = None
    memory_method: str | None = None
    # what the work computes from the state it was built with, for the correctness guard (train: the
    # losses of two steps; forward: the outputs); None where no guard compares it
    values: Callable[[], Any] | None = None


@dataclasses.dataclass(frozen=True)
class Contender:
    name: str
    framework: str  # "jax" or "torch"
    build: Callable[..., Prepared]  # (shape, work, x, memory: bool) -> Prepared
    description: str
    # why this contender sits out a cell by default (None: it runs); --everything runs it anyway
    skip: Callable[[str, Shape], str | None] = lambda section, shape: None


def make_input(shape: Shape, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((shape.batch, shape.steps, shape.inputs)).astype(np.float32)


# --------------------------------------------------------------------------- JAX


def _jax():
    import jax
    import jax.numpy as jnp
    import optax

    return jax, jnp, optax


def _jaxrnn_layer(shape: Shape, impl: str | None, module=None, **extra):
    """jaxrnn.RNN / LSTM / GRU (``shape.cell``) of ``module`` (default: the current ``jaxrnn``; ``--baseline``
    passes an earlier commit's), batch first, with its default ``impl`` when None; ``extra``: more of its
    fields (``unroll=4``, ``batch_first=False``)."""
    if module is None:
        import jaxrnn as module

    kw: dict[str, Any] = {"batch_first": True, "bidirectional": shape.bidirectional, **extra}
    if impl is not None:
        kw["impl"] = impl
    return {"rnn": module.RNN, "lstm": module.LSTM, "gru": module.GRU}[shape.cell](
        shape.inputs, shape.hidden, shape.layers, **kw
    )


def _jaxrnn_apply(shape: Shape, impl: str | None, module=None, **extra):
    """(init, apply) for jaxrnn.RNN / LSTM / GRU (``shape.cell``), with its default ``impl`` when None.
    ``extra``: more of the layer's fields, as for ``_jaxrnn_layer``."""
    import jax

    layer = _jaxrnn_layer(shape, impl, module, **extra)

    def init(x):
        return layer.init(jax.random.key(0), x)["params"]

    def apply(params, x):
        return layer.apply({"params": params}, x)

    return init, apply


def torch_keys(params) -> dict:
    """The layer's params ``{'l0_reverse': {'weight_ih': w}}`` as torch's flat keys ``{'weight_ih_l0_reverse': w}``."""
    return {f"{name}_{layer}": value for layer, group in params.items() for name, value in group.items()}


def _functional_apply(shape: Shape, **extra):
    """(init, apply) for ``jaxrnn.functional.rnn / lstm / gru(params, x, batch_first=True)`` over torch-keyed
    flat params, the same weights as the layer's. Unavailable where jaxrnn.functional has no such function."""
    import inspect

    import jaxrnn.functional as F

    fn = getattr(F, shape.cell, None) if hasattr(F, "rnn") else None
    if fn is None:
        raise Unavailable(f"jaxrnn.functional has no {shape.cell} (the functional API is not in this jaxrnn yet)")
    kw: dict[str, Any] = {"batch_first": True, **extra}
    accepted = inspect.signature(fn).parameters  # layers and directions come from the keys, unless it asks
    for name, value in (("num_layers", shape.layers), ("bidirectional", shape.bidirectional)):
        if name in accepted:
            kw[name] = value
    layer_init, _ = _jaxrnn_apply(shape, None)

    def init(x):
        return torch_keys(layer_init(x))

    def apply(params, x):
        return fn(params, x, **kw)

    return init, apply


def _flax_apply(shape: Shape):
    """The plain Flax baseline: a stack of flax.linen.RNN(SimpleCell / LSTMCell / GRUCell), nn.Bidirectional
    for two directions. h_n stacks every final carry array (h, and c for the LSTM)."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    cell = {"rnn": nn.SimpleCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[shape.cell]

    class FlaxStack(nn.Module):
        @nn.compact
        def __call__(self, x):
            finals = []
            for _ in range(shape.layers):
                if shape.bidirectional:
                    rnn = nn.Bidirectional(
                        nn.RNN(cell(shape.hidden), return_carry=True),
                        nn.RNN(cell(shape.hidden), return_carry=True),
                        return_carry=True,
                    )
                    carries, x = rnn(x)
                else:
                    carries, x = nn.RNN(cell(shape.hidden), return_carry=True)(x)
                finals += jax.tree.leaves(carries)
            return x, jnp.stack(finals)

    model = FlaxStack()

    def init(x):
        return model.init(jax.random.key(0), x)["params"]

    def apply(params, x):
        return model.apply({"params": params}, x)

    return init, apply


def _loss(out, h_n):
    """The loss: ``mean(output**2)`` plus ``mean(a**2)`` of every final-state array ``a`` (the LSTM's h and c)."""
    jax, jnp, _ = _jax()
    return jnp.mean(out**2) + sum(jnp.mean(a**2) for a in jax.tree.leaves(h_n))


def _jax_work(init, apply, work: str, x_np: np.ndarray):
    """The function to run and its arguments: forward ``f(params, x)``, or a train step ``f(params, opt, x)``."""
    jax, jnp, optax = _jax()
    x = jnp.asarray(x_np)
    params = init(x)
    if work == "forward":
        return apply, (params, x)

    opt = optax.adam(1e-3)

    def loss(params, x):
        return _loss(*apply(params, x))

    def step(params, opt_state, x):
        value, grads = jax.value_and_grad(loss)(params, x)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return step, (params, opt.init(params), x)


def _jax_runner(fn, args, work: str, jit: bool, disable_jit: bool = False) -> Prepared:
    """Run ``fn`` on ``args``, a train step feeding back its new params and optimizer state."""
    jax, _, _ = _jax()
    state = list(args)
    compile_s = peak = None
    method = None
    if jit:
        t0 = time.perf_counter()
        compiled = jax.jit(fn).lower(*args).compile()
        compile_s = time.perf_counter() - t0
        fn = compiled
        stats = _memory_analysis(compiled)
        if stats is not None:
            peak, method = stats, "XLA memory_analysis: arguments + outputs + temporaries"

    def run():
        if disable_jit:
            with jax.disable_jit():
                result = fn(*state)
        else:
            result = fn(*state)
        if work == "train":
            state[0], state[1] = result[0], result[1]
        jax.block_until_ready(result)

    return Prepared(run, compile_s, peak, method, values=lambda: _values(fn, args, work))


def _values(fn, args, work: str):
    """What ``fn`` computes from ``args``, left as they are: forward, its outputs; train, the losses of two steps
    (the second after one update, so the gradient and the optimizer are checked too)."""
    if work == "forward":
        return fn(*args)
    params, opt_state, x = args
    losses = []
    for _ in range(2):
        params, opt_state, value = fn(params, opt_state, x)
        losses.append(value)
    return losses


def _memory_analysis(compiled) -> int | None:
    try:
        m = compiled.memory_analysis()
    except Exception:  # not every backend implements it
        return None
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


def _build_jaxrnn(impl: str | None, jit: bool, disable_jit: bool = False, module=None, reference: bool = False):
    """``reference``: this build is the NNX contenders' reference (the headline): it leaves its initial
    parameters and its ``values`` for them (see ``_linen_reference``)."""

    def build(shape: Shape, work: str, x: np.ndarray, memory: bool = True) -> Prepared:
        init, apply = _jaxrnn_apply(shape, impl, module)
        fn, args = _jax_work(init, apply, work, x)
        prepared = _jax_runner(fn, args, work, jit=jit, disable_jit=disable_jit)
        if reference:
            _REFERENCE.clear()
            _REFERENCE.update(key=(shape, work), params=args[0], compute=prepared.values)
        return prepared

    return build


def _build_functional(shape: Shape, work: str, x: np.ndarray, memory: bool = True) -> Prepared:
    init, apply = _functional_apply(shape)
    fn, args = _jax_work(init, apply, work, x)
    return _jax_runner(fn, args, work, jit=True)


def _build_flax(shape: Shape, work: str, x: np.ndarray, memory: bool = True) -> Prepared:
    init, apply = _flax_apply(shape)
    fn, args = _jax_work(init, apply, work, x)
    return _jax_runner(fn, args, work, jit=True)


# --------------------------------------------------------------------------- Flax NNX

# The headline's build in the current cell, for the NNX contenders: key (shape, work), its initial params
# and ``compute``, its Prepared.values; ``values`` once computed. One slot: the next cell replaces it.
_REFERENCE: dict[str, Any] = {}
RTOL = 1e-5  # the guard's tolerance, relative, float32


def _linen_reference(shape: Shape, work: str, x: np.ndarray) -> tuple[Any, Any]:
    """The headline's (jaxrnn jit's) initial params and what it computes from them in this cell; built here
    when the headline is not in the run (``--only``)."""
    if _REFERENCE.get("key") != (shape, work):
        _build_jaxrnn(None, jit=True, reference=True)(shape, work, x)
    if "values" not in _REFERENCE:
        _REFERENCE["values"] = _REFERENCE["compute"]()
    return _REFERENCE["params"], _REFERENCE["values"]


def _check_same(work: str, got: Any, want: Any) -> None:
    """Raise ``Mismatch`` unless ``got`` equals the headline's ``want`` to ``RTOL`` (an array's tolerance is
    relative to its largest magnitude)."""
    import jax

    what = "the losses of two training steps" if work == "train" else "the outputs (output, h_n)"
    g, w = jax.tree.leaves(got), jax.tree.leaves(want)
    if len(g) != len(w):
        raise Mismatch(f"{what}: {len(g)} arrays where jaxrnn jit gives {len(w)}")
    for i, (a, b) in enumerate(zip(g, w)):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape:
            raise Mismatch(f"{what}: array {i} has shape {a.shape}, jaxrnn jit's {b.shape}")
        err = float(np.max(np.abs(a - b), initial=0.0)) / max(float(np.max(np.abs(b), initial=0.0)), 1e-30)
        if not err <= RTOL:
            raise Mismatch(
                f"{what} differ from jaxrnn jit's on the same weights: array {i}, relative error "
                f"{err:.1e} > {RTOL:.0e}" + (f" ({a} vs {b})" if a.size == 1 else "")
            )


@functools.cache
def _nnx_functions():
    """The NNX training step and forward pass under ``nnx.jit``, defined once: a user's step is one function,
    and one function (with one optax transformation, which ``nnx.Optimizer`` keeps in the graph's static
    part) lets 'nnx cached' reuse the step that 'nnx jit' compiled for the same shape."""
    from flax import nnx

    @nnx.jit
    def train_step(model, optimizer, x):
        value, grads = nnx.value_and_grad(lambda m: _loss(*m(x)))(model)
        optimizer.update(model, grads)
        return value

    @nnx.jit
    def forward(model, x):
        return model(x)

    _, _, optax = _jax()
    return train_step, forward, optax.adam(1e-3)


def _nnx_model(shape: Shape, params):
    """jaxrnn.nnx.RNN / LSTM / GRU (``shape.cell``), batch first, holding the linen layer's ``params``."""
    from flax import nnx

    import jaxrnn.nnx as jnnx

    layer = {"rnn": jnnx.RNN, "lstm": jnnx.LSTM, "gru": jnnx.GRU}[shape.cell](
        shape.inputs, shape.hidden, shape.layers, batch_first=True, bidirectional=shape.bidirectional,
        rngs=nnx.Rngs(0),
    )
    return jnnx.from_torch(torch_keys(params), layer)


def _build_nnx(pattern: str):
    """The NNX layer holding the headline's weights, run as a user would with ``pattern``: 'jit' (an
    ``nnx.jit`` step on (model, optimizer, x)), 'cached' (that step through ``nnx.cached_partial``) or 'split'
    (``nnx.split`` once, ``jax.jit`` of a functional step on plain dicts with ``nnx.merge`` inside). Before it
    is timed, it must compute what the headline computes (``_check_same``)."""

    def build(shape: Shape, work: str, x: np.ndarray, memory: bool = True) -> Prepared:
        jax, jnp, _ = _jax()
        from flax import nnx

        params, want = _linen_reference(shape, work, x)
        model = _nnx_model(shape, params)
        if pattern == "split":
            graphdef, state, rest = nnx.split(model, nnx.Param, ...)
            # as plain dicts: jax flattens an nnx.State (params in and out, Adam's moments) in Python, ~0.3 ms a
            # step at the lesson's shape (benchmarks/NOTES.md, idea 14); nnx.merge takes the dict as it is
            plain = nnx.to_pure_dict(state)

            def apply(p, x):
                return nnx.merge(graphdef, p, rest)(x)

            fn, args = _jax_work(lambda x: plain, apply, work, x)
            prepared = _jax_runner(fn, args, work, jit=True)
            _check_same(work, prepared.values(), want)
            return prepared
        train_step, forward, tx = _nnx_functions()
        fn, nodes = (forward, (model,)) if work == "forward" else (
            train_step, (model, nnx.Optimizer(model, tx, wrt=nnx.Param)))
        if pattern == "cached":
            fn, nodes = nnx.cached_partial(fn, *nodes), ()
        xj = jnp.asarray(x)
        t0 = time.perf_counter()
        first = jax.block_until_ready(fn(*nodes, xj))  # traces and compiles: nnx.jit has no AOT step to time apart
        compile_s = time.perf_counter() - t0
        _check_same(work, first if work == "forward" else [first, fn(*nodes, xj)], want)

        def run():  # the loss (or the outputs) and the update come out of one executable: waiting on one waits on all
            jax.block_until_ready(fn(*nodes, xj))

        return Prepared(run, compile_s)

    return build


# --------------------------------------------------------------------------- torch


def torch_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _torch_model(shape: Shape):
    import torch

    torch.manual_seed(0)
    return {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[shape.cell](
        shape.inputs, shape.hidden, shape.layers, batch_first=True, bidirectional=shape.bidirectional
    ).to(torch_device())


def _torch_runner(
    model, work: str, x_np: np.ndarray, compiled: bool, threads: int | None = None, memory: bool = True
) -> Prepared:
    import torch

    device = torch_device()
    x = torch.from_numpy(x_np.copy()).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    net = model
    if compiled:
        try:
            torch._dynamo.reset()  # a fresh cache per cell: nn.RNN.forward is one code object for all shapes
            net = torch.compile(model)
        except Exception as e:  # no compiler, unsupported platform
            raise Unavailable(f"torch.compile: {type(e).__name__}: {str(e).splitlines()[0][:120]}") from e

    if work == "forward":

        def run():
            with torch.inference_mode():
                net(x)
            sync()

    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def run():
            opt.zero_grad(set_to_none=True)
            out, h_n = net(x)
            loss = (out**2).mean() + sum((a**2).mean() for a in (h_n if isinstance(h_n, tuple) else (h_n,)))
            loss.backward()
            opt.step()
            sync()

    if threads is not None:  # torch's thread count is process-wide: set it for this call, then put it back
        one_call = run

        def run():
            saved = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                one_call()
            finally:
                torch.set_num_threads(saved)

    compile_s = None
    if compiled:
        t0 = time.perf_counter()
        try:
            run()
        except Exception as e:
            raise Unavailable(f"torch.compile: {type(e).__name__}: {str(e).splitlines()[0][:120]}") from e
        compile_s = time.perf_counter() - t0
    peak, method = _torch_peak_memory(run, device) if memory else (None, None)
    return Prepared(run, compile_s, peak, method)


def _torch_peak_memory(run, device: str) -> tuple[int | None, str | None]:
    """Peak bytes of torch tensors during one call (parameters, inputs and optimizer state included)."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        run()
        return int(torch.cuda.max_memory_allocated()), "torch.cuda.max_memory_allocated"
    try:
        import warnings

        from torch.profiler import ProfilerActivity, profile
        from torch.profiler._memory_profiler import MemoryProfileTimeline

        with warnings.catch_warnings(), _quiet_stderr():
            warnings.simplefilter("ignore")
            with profile(
                activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True
            ) as p:
                run()
            _, sizes = MemoryProfileTimeline(p._memory_profile())._coalesce_timeline(torch.device("cpu"))
        return int(np.asarray(sizes).sum(axis=1).max()), "torch.profiler memory timeline (peak of all categories)"
    except Exception:  # a private API: absent or changed in this torch
        return None, None


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (the profiler's C++ side logs every start and stop there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _build_torch(compiled: bool, threads: int | None = None):
    def build(shape: Shape, work: str, x: np.ndarray, memory: bool = True) -> Prepared:
        return _torch_runner(_torch_model(shape), work, x, compiled, threads, memory)

    return build


# --------------------------------------------------------------------------- the list


LARGE_FLOPS = 20e9  # forward FLOPs above which the slow, overhead-measuring contenders sit out


def _large(section: str, shape: Shape) -> str | None:
    if shape.flops("forward") > LARGE_FLOPS:
        return "left out at the largest shape (time budget); `--everything` runs it"
    return None


def _not_in_sweep(why: str):
    def skip(section: str, shape: Shape) -> str | None:
        if section == "sweep":
            return f"left out of the T sweep ({why})"
        return _large_or_cells(section, shape)

    return skip


def _large_or_cells(section: str, shape: Shape) -> str | None:
    if section == "cells":
        return "left out of the LSTM/GRU grid (time budget); `--everything` runs it"
    return _large(section, shape)


def _large_cells(section: str, shape: Shape) -> str | None:
    """The scan reference and Flax sit out the LSTM/GRU grid's largest shape (time budget)."""
    return _large(section, shape) if section == "cells" else None


def _nnx_skip(section: str, shape: Shape) -> str | None:
    """The NNX layers run where jaxrnn jit runs but at the LSTM/GRU grid's largest shape (as the scan reference
    and Flax: its 4-5 s steps, and the RNN grid's largest shape already shows the compute-bound case). ``--quick``
    runs them on its RNN grid cells and its LSTM cells (a two-array state): its T sweep and its GRU cells would
    add CI time (a compile per pattern), not code paths."""
    if shape in QUICK_T_SWEEP or (shape in QUICK_CELL_GRID and shape.cell == "gru"):
        return "left out of --quick's T sweep and GRU cells (CI time: the code paths of its RNN and LSTM cells)"
    return _large_cells(section, shape)


def _lstm_only(section: str, shape: Shape) -> str | None:
    return None if shape.cell == "lstm" else "the default runs this same loop there"


def baseline_name(ref: str) -> str:
    return f"{HEADLINE} @{ref}"


def contenders(baseline=None) -> list[Contender]:
    """All contenders, the headline first. ``jaxrnn jit`` is the layer as a user calls it.

    ``baseline``: a ``_baseline.Baseline`` (``--baseline REF``): its layers under jit, built exactly as
    ``jaxrnn jit`` is, right after it."""
    ab = []
    if baseline is not None:
        ab.append(
            Contender(
                baseline_name(baseline.ref),
                "jax",
                _build_jaxrnn(None, jit=True, module=baseline.module),
                f"jaxrnn.RNN / LSTM / GRU of {baseline.ref} ({baseline.commit[:10]}), its default impl, under jax.jit",
            )
        )
    return [
        Contender(
            "jaxrnn jit",
            "jax",
            _build_jaxrnn(None, jit=True, reference=True),
            "jaxrnn.RNN / LSTM / GRU (default impl='fused') under jax.jit",
        ),
        *ab,
        Contender(
            "jaxrnn xla jit",
            "jax",
            _build_jaxrnn("xla", jit=True),
            "jaxrnn.LSTM(impl='xla'): the engine's XLA loop, where the default runs the native kernel (LSTM cells "
            "only: elsewhere the default is this loop)",
            _lstm_only,
        ),
        Contender(
            "nnx jit",
            "jax",
            _build_nnx("jit"),
            "jaxrnn.nnx.RNN / LSTM / GRU with jaxrnn jit's weights; train: an nnx.jit step (model, optimizer, x) with "
            "nnx.value_and_grad and nnx.Optimizer(model, adam, wrt=nnx.Param); forward: nnx.jit of model(x) "
            "(compile s: the first call)",
            _nnx_skip,
        ),
        Contender(
            "nnx cached",
            "jax",
            _build_nnx("cached"),
            "the same nnx.jit step (and forward pass) through nnx.cached_partial(step, model, optimizer): the graph "
            "traversal cached (compile s: the first call, which reuses nnx jit's compiled step)",
            _nnx_skip,
        ),
        Contender(
            "nnx split",
            "jax",
            _build_nnx("split"),
            "nnx.split(model, nnx.Param, ...) once, its params as a plain dict (nnx.to_pure_dict), then jax.jit of a "
            "functional step on (params, optax state, x) with nnx.merge inside, AOT-compiled as jaxrnn jit",
            _nnx_skip,
        ),
        Contender(
            "jaxrnn functional jit",
            "jax",
            _build_functional,
            "jaxrnn.functional.rnn / lstm / gru(params, x, batch_first=True) under jax.jit, torch-keyed params "
            "(the layer's weights)",
            _large_cells,
        ),
        Contender(
            "jaxrnn scan jit",
            "jax",
            _build_jaxrnn("scan", jit=True),
            "jaxrnn.RNN(impl='scan'), the nn.scan reference",
            _large_cells,
        ),
        Contender(
            "jaxrnn no-jit",
            "jax",
            _build_jaxrnn(None, jit=False),
            "jaxrnn.RNN without jit: primitives dispatched one by one, loops traced and compiled at every call",
            _not_in_sweep("about flat in T: each call's cost is retracing and compiling its loops"),
        ),
        Contender(
            "jaxrnn disable_jit",
            "jax",
            _build_jaxrnn(None, jit=False, disable_jit=True),
            "jaxrnn.RNN under jax.disable_jit(): the time loop as a Python loop",
            _large_or_cells,
        ),
        Contender(
            "flax jit",
            "jax",
            _build_flax,
            "stack of flax.linen.RNN(SimpleCell / LSTMCell / GRUCell) (+ nn.Bidirectional) under jit",
            _large_cells,
        ),
        Contender("torch eager", "torch", _build_torch(compiled=False), "torch.nn.RNN / LSTM / GRU"),
        Contender(
            "torch eager 1 thread",
            "torch",
            _build_torch(compiled=False, threads=1),
            "torch.nn.RNN with torch.set_num_threads(1) around each call: no OpenMP barriers to stall when "
            "other processes hold a core (a reference point; the targets compare with torch eager)",
        ),
        Contender(
            "torch.compile",
            "torch",
            _build_torch(compiled=True),
            "torch.compile(torch.nn.RNN)",
            _not_in_sweep("it recompiles for every T"),
        ),
    ]


BASELINE = "torch eager"
HEADLINE = "jaxrnn jit"
REFERENCE = "torch eager 1 thread"
NNX = ("nnx jit", "nnx cached", "nnx split")  # reported against HEADLINE in their own table
