"""The native CPU kernel (``jaxrnn.native``) against jaxrnn's XLA loop and against what it promises:
built and loaded here, picked by the default where it should be (and only there), the same values
as the XLA loop on the same inputs, under jit, grad, vmap, hessian and a 2-device training run,
with the threads it is given, and XLA errors (never a crash) for what its FFI handler refuses.

Its parity with torch in float32 over the whole sweep of options is in
``tests/functional/test_lstm_gru_match_torch.py``. ``make asan`` runs this file on an
AddressSanitizer build of the kernel.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import subprocess
import sys
import textwrap
import warnings
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _compare import assert_close

import jaxrnn
from jaxrnn.functional import _native
from jaxrnn.native import _library

F32 = jnp.float32
# big enough for the default to pick the kernel (batch * 4H * H >= 2**20) and for two threads,
# and H = 44 leaves each thread's last block of units short of 8 (the kernel's masked tail)
T, N, I, H = 9, 136, 5, 44
LENGTHS = np.array([9, 3, 1, 0, 7] + [9] * 131)  # unsorted, with an empty sequence


def _cpu_can_run_it() -> bool:
    return platform.system() == "Linux" and platform.machine() == "x86_64" and {"avx2", "fma"} <= _library._cpu_flags()


def _hlo(fn, *args) -> str:
    return jax.jit(fn).lower(*args).as_text()


needs_kernel = pytest.mark.skipif(not _library.status().available,
                                  reason=f"the native kernel is absent here: {_library.status().reason}")


def test_the_kernel_is_built_and_loaded_where_it_can_run():
    """On Linux x86-64 with AVX2 and FMA (CI's machines) the install built it: a build that failed
    silently would otherwise leave every other test here skipped."""
    if not _cpu_can_run_it():
        pytest.skip("the kernel is built for Linux on x86-64 with AVX2 and FMA only")
    status = jaxrnn.native.status()
    assert status.available, status.reason
    assert status.threads >= 1 and os.path.exists(status.path)


@needs_kernel
def test_the_default_runs_the_kernel_for_a_float32_lstm_and_its_gradient():
    layer = jaxrnn.LSTM(I, H, 2, bidirectional=True, batch_first=True)
    x = jax.random.normal(jax.random.key(0), (N, T, I), F32)
    variables = layer.init(jax.random.key(1), x)
    assert jaxrnn.functional.time_loop("lstm", x, H, batch_first=True) == "native"
    hlo = _hlo(lambda v, x: jax.grad(lambda v: jnp.sum(layer.apply(v, x)[0] ** 2))(v), variables, x)
    assert hlo.count(_library.FORWARD) == 4 and hlo.count(_library.BACKWARD) == 4  # 2 layers x 2 directions
    planted = _hlo(lambda v, x: layer.clone(impl="xla").apply(v, x)[0], variables, x)
    assert _library.FORWARD not in planted  # the check can fail: the XLA loop has no such call


@pytest.mark.parametrize("case", ["float64", "gru", "rnn", "small", "projected", "scan", "xla"])
def test_the_default_runs_xla_where_the_kernel_does_not_apply(case):
    dtype = jnp.float64 if case == "float64" else F32
    mode = {"gru": "gru", "rnn": "rnn_tanh"}.get(case, "lstm")
    shape = (T, 2, I) if case == "small" else (T, N, I)
    impl = case if case in ("scan", "xla") else "fused"
    proj = 3 if case == "projected" else 0
    x = jnp.asarray(np.random.default_rng(0).standard_normal(shape), dtype)
    loop = jaxrnn.functional.time_loop(mode, x, H, impl=impl, proj_size=proj)
    assert loop == ("scan" if case in ("scan", "projected") else "xla")
    params = jaxrnn.functional.init_params(jax.random.key(0), mode, I, H, proj_size=proj, dtype=dtype)
    fn = {"lstm": jaxrnn.functional.lstm, "gru": jaxrnn.functional.gru, "rnn_tanh": jaxrnn.functional.rnn}[mode]
    assert _library.FORWARD not in _hlo(lambda p, x: fn(p, x, impl=impl)[0], params, x)


def test_impl_native_refuses_what_the_kernel_cannot_run():
    x = jnp.asarray(np.random.default_rng(0).standard_normal((T, N, I)))  # float64
    params = jaxrnn.functional.init_params(jax.random.key(0), "lstm", I, H, dtype=jnp.float64)
    with pytest.raises(ValueError, match="impl='native': the native kernel runs float32 only, got float64"):
        jaxrnn.functional.lstm(params, x, impl="native")
    gru = jaxrnn.functional.init_params(jax.random.key(0), "gru", I, H)
    with pytest.raises(ValueError, match="impl='native': the native kernel runs the LSTM only, not mode 'gru'"):
        jaxrnn.functional.gru(gru, x.astype(F32), impl="native")


# ------------------------------------------------------------------ native against the XLA loop

# the options that reach the kernel's own code (walk, layout, lengths), on two stacked layers
# with h0 and biases; the whole product of options runs through it against torch
SWEEP = list(itertools.product([False, True], [False, True], [False, True]))


@needs_kernel
@pytest.mark.parametrize("config", SWEEP, ids=lambda c: "-".join(
    ["bi" if c[0] else "uni", "bf" if c[1] else "tm", "len" if c[2] else "full"]))
def test_native_matches_the_xla_loop_on_the_same_inputs(config):
    """Outputs, final states and the gradients of every input and parameter, float32 on both, at
    a size where the kernel splits the hidden units between threads; the functional face (every
    face shares the layers' code)."""
    bidi, batch_first, with_lengths = config
    layers, bias, with_h0 = 2, True, True
    rng = np.random.default_rng(zlib.crc32(repr(config).encode()))
    D = 2 if bidi else 1
    params = jaxrnn.functional.init_params(jax.random.key(0), "lstm", I, H, num_layers=layers, bidirectional=bidi,
                                           bias=bias)
    x = jnp.asarray(rng.standard_normal((N, T, I) if batch_first else (T, N, I)), F32)
    hx = tuple(jnp.asarray(rng.standard_normal((layers * D, N, H)), F32) for _ in range(2)) if with_h0 else None
    lengths = jnp.asarray(LENGTHS) if with_lengths else None
    w_out = jnp.asarray(rng.standard_normal(x.shape[:-1] + (D * H,)), F32)

    def loss(params, x, hx, impl):
        out, (h, c) = jaxrnn.functional.lstm(params, x, hx, batch_first=batch_first, seq_lengths=lengths, impl=impl)
        return jnp.sum(out * w_out) + jnp.sum(jnp.sin(h)) + jnp.sum(c * c), (out, h, c)

    results = [jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True), static_argnums=3)(params, x, hx, impl)
               for impl in ("native", "xla")]
    (_, got), grads = results[0]
    (_, want), want_grads = results[1]
    # float32 rounding of sums over batch and time (N * T = 1224 terms): 1e-5 of the largest entry
    for a, b, what in zip([*got, *jax.tree.leaves(grads)], [*want, *jax.tree.leaves(want_grads)],
                          ["output", "h_n", "c_n"] + [f"grad {k}" for k in range(99)]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * max(1.0, float(jnp.abs(b).max())), err_msg=what)


@needs_kernel
def test_vmap_over_weights_and_inputs_matches_a_loop():
    """vmap over a stack of parameter sets and of inputs: each slice as its own call."""
    rng = np.random.default_rng(3)
    stack = [jaxrnn.functional.init_params(jax.random.key(k), "lstm", I, H) for k in range(3)]
    params = jax.tree.map(lambda *a: jnp.stack(a), *stack)
    xs = jnp.asarray(rng.standard_normal((3, T, N, I)), F32)

    def f(p, x):
        out, (h, c) = jaxrnn.functional.lstm(p, x, impl="native")
        return out, jax.grad(lambda p: jnp.sum(jaxrnn.functional.lstm(p, x, impl="native")[0] ** 2))(p)

    out, grads = jax.jit(jax.vmap(f))(params, xs)
    for k in range(3):
        want_out, want_grads = jax.jit(f)(stack[k], xs[k])
        assert_close(out[k], want_out, "float32", what="output")
        for key in want_grads:
            assert_close(grads[key][k], want_grads[key], "float32", what=key)


@needs_kernel
def test_hessian_matches_the_scan_reference_and_forward_mode_says_what_to_do():
    rng = np.random.default_rng(4)
    params = jaxrnn.functional.init_params(jax.random.key(0), "lstm", 2, 8)
    x = jnp.asarray(rng.standard_normal((4, 3, 2)), F32)
    lengths = jnp.asarray([4, 2, 1])

    def loss(w, impl):
        return jnp.sum(jnp.sin(jaxrnn.functional.lstm({**params, "bias_ih_l0": w}, x, seq_lengths=lengths,
                                                      impl=impl)[0]))

    w = params["bias_ih_l0"]
    assert_close(jax.hessian(loss)(w, "native"), jax.hessian(loss)(w, "scan"), "float32", what="hessian")
    with pytest.raises(TypeError, match="impl='scan'"):
        jax.jvp(lambda w: loss(w, "native"), (w,), (w,))


# ------------------------------------------------------------------ the FFI handler's checks


@needs_kernel
@pytest.mark.parametrize("bad", ["weight_hh", "h0", "lengths_shape", "lengths_value", "dtype", "xp"])
def test_the_handler_refuses_bad_shapes_dtypes_and_lengths_with_an_xla_error(bad):
    n, t, h = 3, 4, 8
    xp = jnp.broadcast_to(jnp.arange(4 * h, dtype=F32) / 100, (t, n, 4 * h))
    args = dict(xp=xp, w_hh=jnp.eye(4 * h, h, dtype=F32), bias=jnp.zeros(4 * h, F32), h0=jnp.zeros((n, h), F32),
                c0=jnp.zeros((n, h), F32), lengths=jnp.full((n,), t, jnp.int32))
    message = {
        "weight_hh": r"weight_hh must be \(32, 8\), got \(32, 7\)",
        "h0": r"h0 must be \(3, 8\), got \(2, 8\)",
        "lengths_shape": r"lengths must be \(3\), got \(4\)",
        "lengths_value": r"lengths must lie in \[0, 4\], got 5 at batch row 1",
        "dtype": "[Ww]rong buffer dtype",
        "xp": r"xp must be \(time, batch, 4 \* hidden\), got \(4, 3, 30\)",
    }[bad]
    if bad == "weight_hh":
        args["w_hh"] = args["w_hh"][:, :7]
    elif bad == "h0":
        args["h0"] = args["h0"][:2]
    elif bad == "lengths_shape":
        args["lengths"] = jnp.full((4,), t, jnp.int32)
    elif bad == "lengths_value":
        args["lengths"] = jnp.asarray([4, 5, 1], jnp.int32)
    elif bad == "dtype":
        args["c0"] = args["c0"].astype(jnp.float64)
    else:
        args["xp"] = xp[..., :30]
    # XLA's error status, raised as JaxRuntimeError (or, by some of JAX's dispatch paths, ValueError)
    with pytest.raises((jax.errors.JaxRuntimeError, ValueError), match=message):
        _native._forward_call(*args.values(), reverse=False, axis=0, save=True)[0].block_until_ready()
    # the process lives on, and a good call still runs
    zeros = jnp.zeros((n, h), F32)
    good = _native._forward_call(xp, jnp.eye(4 * h, h, dtype=F32), jnp.zeros(4 * h, F32), zeros, zeros,
                                 jnp.full((n,), t, jnp.int32), reverse=False, axis=0, save=False)
    assert float(jnp.abs(good[0]).max()) > 0


@needs_kernel
@pytest.mark.parametrize("trans_a,trans_b", list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("m,n,k", [(7, 5, 3), (1000, 72, 33), (40, 20, 0), (0, 6, 4)])
def test_the_gemm_matches_numpy_in_every_transpose_layout(m, n, k, trans_a, trans_b):
    """The projection's GEMM ``op(a) op(b)``: one thread at (7, 5, 3), the team's row split at
    (1000, 72, 33) (blocks of 16 rows, the last one short), k = 0 (zeros) and m = 0 (empty)."""
    rng = np.random.default_rng(m + n + k)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    want = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    got = np.asarray(_native._gemm(jnp.asarray(a), jnp.asarray(b), trans_a, trans_b))
    assert got.shape == (m, n)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(1, k) ** 0.5)


@needs_kernel
@pytest.mark.parametrize("bad", ["contracted", "vector", "transposed"])
def test_the_gemm_handler_refuses_mismatched_operands_with_an_xla_error(bad):
    a, b = jnp.arange(12, dtype=F32).reshape(3, 4), jnp.arange(20, dtype=F32).reshape(4, 5)
    trans_b = False
    if bad == "contracted":
        b, message = b[:3], r"b must be \(4, n\) \(a's contracted dimension\), got \(3, 5\)"
    elif bad == "vector":
        a, message = a.reshape(-1), r"a must be a matrix, got \(12\)"
    else:
        trans_b, message = True, r"b must be \(n, 4\) \(a's contracted dimension\), got \(4, 5\)"
    out = jax.ShapeDtypeStruct((3, 5), F32)
    call = jax.ffi.ffi_call(_library.target(_library.GEMM), out)
    with pytest.raises((jax.errors.JaxRuntimeError, ValueError), match=message):
        call(a, b, trans_a=np.int64(0), trans_b=np.int64(trans_b)).block_until_ready()
    good = np.asarray(_native._gemm(jnp.arange(12, dtype=F32).reshape(3, 4), jnp.arange(20, dtype=F32).reshape(4, 5),
                                    False, False))
    np.testing.assert_allclose(good, np.arange(12.0).reshape(3, 4) @ np.arange(20.0).reshape(4, 5))


# ------------------------------------------------------------------ absent, threads, training


def test_an_absent_kernel_falls_back_to_xla_says_why_once_and_impl_native_names_the_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXRNN_NATIVE_LIBRARY", str(tmp_path / "missing.so"))
    _library.status.cache_clear()
    _library.warn_absent.cache_clear()
    try:
        status = jaxrnn.native.status()
        assert not status.available and "could not be loaded" in status.reason and "missing.so" in status.reason
        params = jaxrnn.functional.init_params(jax.random.key(0), "lstm", I, H)
        x = jnp.asarray(np.random.default_rng(0).standard_normal((T, N, I)), F32)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = jaxrnn.functional.lstm(params, x)[0]
            jaxrnn.functional.lstm(params, x[:, :-1])  # another shape: traced again, no second warning
        said = [w for w in caught if issubclass(w.category, RuntimeWarning) and "XLA engine" in str(w.message)]
        assert len(said) == 1 and "missing.so" in str(said[0].message)
        assert_close(out, jaxrnn.functional.lstm(params, x, impl="xla")[0], "float32", what="output")
        with pytest.raises(ValueError, match="impl='native': the native kernel .*missing.so could not be loaded"):
            jaxrnn.functional.lstm(params, x[:, 1:], impl="native")
    finally:
        monkeypatch.undo()
        _library.status.cache_clear()
        _library.warn_absent.cache_clear()
    assert jaxrnn.native.status().available == _cpu_can_run_it() or not _cpu_can_run_it()


THREADS_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    import jaxrnn
    params = jaxrnn.functional.init_params(jax.random.key(0), "lstm", 5, 44, bidirectional=True)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((9, 34, 5)), jnp.float32)
    grad = jax.grad(lambda p: jnp.sum(jaxrnn.functional.lstm(p, x, impl="native")[0] ** 2))(params)
    np.save(sys.argv[1], np.concatenate([np.ravel(a) for a in jax.tree.leaves(grad)]))
    status = jaxrnn.native.status()
    print(json.dumps([status.threads, status.isa]))
""")


@needs_kernel
@pytest.mark.parametrize("how", ["JAXRNN_NUM_THREADS=1", "OMP_NUM_THREADS=1", "taskset -c 0", "JAXRNN_NATIVE_ISA=avx2"])
def test_the_kernel_uses_the_threads_and_instructions_it_is_given_with_the_same_result(how, tmp_path):
    """A subprocess given one thread (each knob in turn) reports 1, or asked for the AVX2 step GEMM
    reports it, and computes this process's gradients (on all the cores it has, and AVX-512 where
    the CPU has it)."""
    knobs = ("JAXRNN_NUM_THREADS", "OMP_NUM_THREADS", "JAXRNN_NATIVE_ISA")
    env = {k: v for k, v in os.environ.items() if k not in knobs}
    env["JAX_PLATFORMS"] = "cpu"
    command = [sys.executable, "-c", THREADS_SCRIPT, str(tmp_path / "grad.npy")]
    if how.startswith("taskset"):
        command = how.split() + command
    else:
        key, value = how.split("=")
        env[key] = value
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    threads, isa = json.loads(done.stdout.strip().splitlines()[-1])
    cores = len(os.sched_getaffinity(0))
    assert (threads, isa) == ((cores, "avx2") if "ISA" in how else (1, jaxrnn.native.status().isa))
    params = jaxrnn.functional.init_params(jax.random.key(0), "lstm", 5, 44, bidirectional=True)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((9, 34, 5)), F32)
    grad = jax.grad(lambda p: jnp.sum(jaxrnn.functional.lstm(p, x, impl="native")[0] ** 2))(params)
    here = np.concatenate([np.ravel(a) for a in jax.tree.leaves(grad)])
    assert jaxrnn.native.status().threads == cores
    assert jaxrnn.native.status().isa == ("avx512" if "avx512f" in _library._cpu_flags() else "avx2")
    np.testing.assert_allclose(np.load(tmp_path / "grad.npy"), here, rtol=1e-5, atol=1e-5 * np.abs(here).max())


TRAIN_SCRIPT = textwrap.dedent("""
    import json
    import jax, jax.numpy as jnp, numpy as np
    import flax.linen as nn
    import jaxrnn

    class Model(nn.Module):
        impl: str

        @nn.compact
        def __call__(self, x):
            out, _ = jaxrnn.LSTM(1, 48, batch_first=True, impl=self.impl)(x)
            return jaxrnn.Linear(48, 1)(out[:, -1])

    assert len(jax.devices()) == 2
    x, y = jaxrnn.data.generate_sin_data(12, 64, seed=0)
    runs = {}
    for impl, devices in (("native", 1), ("native", 2), ("xla", 1)):
        model = Model(impl)
        init = model.init(jax.random.key(0), x[:1])
        result = jaxrnn.train(model, init, (x, y), loss="mse", epochs=2, batch_size=32, learning_rate=0.01,
                              devices=devices, progress=False)
        runs[f"{impl}{devices}"] = result.history.to_dict()["step_loss"]
    hlo = jax.jit(lambda v, x: Model("native").apply(v, x)).lower(init, x[:32]).as_text()
    print(json.dumps({"runs": runs, "native_ran": "jaxrnn_lstm_forward" in hlo}))
""")


@needs_kernel
def test_training_on_the_kernel_over_two_devices_matches_one_and_the_xla_loop():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", TRAIN_SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["native_ran"]
    runs = out["runs"]
    assert len(runs["native1"]) == 4 and len(set(runs["native1"])) == 4  # 2 epochs x 2 batches, a changing loss
    np.testing.assert_allclose(runs["native2"], runs["native1"], rtol=1e-5)
    np.testing.assert_allclose(runs["xla1"], runs["native1"], rtol=1e-5)
