"""Timing: contenders alternated round by round in one process, medians over rounds after warm-up."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import numpy as np


def _time_calls(run: Callable[[], None], number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        run()
    return (time.perf_counter() - t0) / number


def alternate(
    runners: dict[str, Callable[[], None]],
    *,
    budget_s: float,
    min_rounds: int,
    max_rounds: int,
    min_sample_s: float,
    warmup: int = 1,
) -> dict[str, dict]:
    """Time every runner in rounds, one sample of each per round, the order rotating each round.

    ``warmup`` calls each come first, the last of them timed to estimate a runner's cost (a call
    that takes seconds is warm after one); a sample repeats the call ``number`` times so it lasts
    at least ``min_sample_s`` (fast calls are not timed alone).
    The number of rounds fits ``budget_s`` within [min_rounds, max_rounds].
    Returns, per runner: the per-call seconds of each sample, their median, and ``number``.
    """
    names = list(runners)
    estimate = {}
    for name in names:
        for _ in range(warmup - 1):
            runners[name]()
        estimate[name] = _time_calls(runners[name], 1)
        if estimate[name] < 0.5:  # a fast call: estimate again, warm
            estimate[name] = _time_calls(runners[name], 1)
    number = {n: max(1, math.ceil(min_sample_s / max(estimate[n], 1e-9))) for n in names}
    per_round = sum(number[n] * estimate[n] for n in names)
    rounds = int(min(max_rounds, max(min_rounds, budget_s // max(per_round, 1e-9))))
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            samples[name].append(_time_calls(runners[name], number[name]))
    return {n: {"samples_s": samples[n], "median_s": float(np.median(samples[n])), "number": number[n]} for n in names}


def gemm_runner(n: int, framework: str = "jax", shape: tuple[int, int, int] | None = None
                ) -> tuple[Callable[[], None], float]:
    """One float32 matmul (n, n) x (n, n), or (m, k) x (k, p) for ``shape`` (m, k, p), compiled
    and warm: (run, flops). ``framework``: 'jax' (XLA), 'torch', or 'openblas' (the library the
    native LSTM kernel calls, on the threads the kernel may use)."""
    m, k, p = shape or (n, n, n)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k), np.float32), rng.standard_normal((k, p), np.float32)
    if framework == "jax":
        import jax
        import jax.numpy as jnp

        ja, jb = jnp.asarray(a), jnp.asarray(b)
        f = jax.jit(jnp.matmul).lower(ja, jb).compile()

        def run():
            f(ja, jb).block_until_ready()

    elif framework == "openblas":
        from jaxrnn.native import _library

        threads = _library.status().threads

        def run():
            _library.sgemm(a, b, threads)

    else:
        import torch

        from ._contenders import torch_device

        device = torch_device()
        ta, tb = torch.from_numpy(a).to(device), torch.from_numpy(b).to(device)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

        def run():
            torch.mm(ta, tb)
            sync()

    run()
    return run, 2.0 * m * k * p


def machine() -> dict:
    """What the numbers were measured on: CPU, cores, load, library versions and thread counts."""
    import platform

    import jax
    import torch

    from ._contenders import torch_device

    cpu, fields = platform.processor() or "", {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "cpu family", "model") and key.strip() not in fields:
                    fields[key.strip()] = value.strip()
    except OSError:
        pass
    cpu = fields.get("model name", cpu)
    if "cpu family" in fields:
        cpu += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    from jaxrnn.native import status

    native = status()
    device = torch_device()
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "torch": torch.__version__,
        "torch_device": device,
        "torch_threads": torch.get_num_threads(),
        "load_avg_start": list(os.getloadavg()),
        "native": f"built, {native.threads} threads, {native.isa}" if native.available else f"absent: {native.reason}",
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    import flax
    import optax

    info["flax"] = flax.__version__
    info["optax"] = optax.__version__
    return info
