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
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ._grid import Shape


class Unavailable(Exception):
    """The contender cannot run on this machine or shape; the message says why."""


@dataclasses.dataclass
class Prepared:
    run: Callable[[], None]
    compile_s: float | None = None
    peak_bytes: int | None = None
    memory_method: str | None = None


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


def _jax_work(init, apply, work: str, x_np: np.ndarray):
    """The function to run and its arguments: forward ``f(params, x)``, or a train step ``f(params, opt, x)``."""
    jax, jnp, optax = _jax()
    x = jnp.asarray(x_np)
    params = init(x)
    if work == "forward":
        return apply, (params, x)

    opt = optax.adam(1e-3)

    def loss(params, x):  # h_n: every final-state array (the LSTM's h and c)
        out, h_n = apply(params, x)
        return jnp.mean(out**2) + sum(jnp.mean(a**2) for a in jax.tree.leaves(h_n))

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

    return Prepared(run, compile_s, peak, method)


def _memory_analysis(compiled) -> int | None:
    try:
        m = compiled.memory_analysis()
    except Exception:  # not every backend implements it
        return None
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


def _build_jaxrnn(impl: str | None, jit: bool, disable_jit: bool = False, module=None):
    def build(shape: Shape, work: str, x: np.ndarray, memory: bool = True) -> Prepared:
        init, apply = _jaxrnn_apply(shape, impl, module)
        fn, args = _jax_work(init, apply, work, x)
        return _jax_runner(fn, args, work, jit=jit, disable_jit=disable_jit)

    return build


def _build_functional(shape: Shape, work: str, x: np.ndarray, memory: bool = True) -> Prepared:
    init, apply = _functional_apply(shape)
    fn, args = _jax_work(init, apply, work, x)
    return _jax_runner(fn, args, work, jit=True)


def _build_flax(shape: Shape, work: str, x: np.ndarray, memory: bool = True) -> Prepared:
    init, apply = _flax_apply(shape)
    fn, args = _jax_work(init, apply, work, x)
    return _jax_runner(fn, args, work, jit=True)


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
            _build_jaxrnn(None, jit=True),
            "jaxrnn.RNN / LSTM / GRU (default impl='fused') under jax.jit",
        ),
        *ab,
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
