"""Finding, loading and registering the native kernel, and saying why it is absent.

The kernel is ``lstm.cc`` built at install into ``_lstm_kernel*.so`` beside this file (or the
file ``JAXRNN_NATIVE_LIBRARY`` names: the AddressSanitizer build of ``make asan``). It links
OpenBLAS from the ``scipy-openblas32`` package, which is loaded first (by path, so that the
kernel's dependency on it resolves; locally, so that its symbols reach nothing else). Nothing here runs at
import: the first :func:`status` call loads the library, registers its three FFI targets with XLA
for the CPU, and remembers the outcome; every failure becomes a reason, never an exception.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import platform
import warnings
from typing import NamedTuple

import jax

FORWARD = "jaxrnn_lstm_forward"
BACKWARD = "jaxrnn_lstm_backward"
GEMM = "jaxrnn_gemm"
"""The FFI targets: one direction's forward loop (saving activations for the backward pass, or
not), its backward loop, and a float32 GEMM ``op(a) op(b)`` (the input projection and its
gradients) on the same library and threads."""

_HERE = os.path.dirname(os.path.abspath(__file__))


class NativeStatus(NamedTuple):
    """Whether the native CPU kernel is loaded: ``available``; else ``reason`` says why not.
    ``path``: the library file; ``threads``: how many threads a call may use (the knob is
    ``JAXRNN_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the cores ``taskset`` gives the process);
    ``isa``: the instruction set of the step's GEMM, ``'avx512'`` where the CPU has it, else ``'avx2'``
    (``JAXRNN_NATIVE_ISA=avx2`` asks for AVX2 on any CPU)."""

    available: bool
    reason: str
    path: str | None = None
    threads: int = 0
    isa: str = ""


def _library_path() -> str | None:
    override = os.environ.get("JAXRNN_NATIVE_LIBRARY")
    if override:
        return override
    found = sorted(glob.glob(os.path.join(_HERE, "_lstm_kernel*.so")))
    return found[0] if found else None


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.cache
def status() -> NativeStatus:
    """Load the kernel once and say whether it runs here.

    >>> s = status()
    >>> isinstance(s.available, bool) and (s.available or bool(s.reason))
    True
    """
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return NativeStatus(False, f"the native kernel is built for Linux on x86-64 only, this is "
                                   f"{platform.system()} on {platform.machine()}")
    missing = {"avx2", "fma"} - _cpu_flags()
    if missing:
        return NativeStatus(False, f"this CPU lacks {', '.join(sorted(missing))}, which the native kernel needs")
    path = _library_path()
    if path is None:
        return NativeStatus(False, "the native kernel was not built when jaxrnn was installed (no C++ compiler, "
                                   "or its build failed: reinstall with `pip install -v` to see why)")
    try:
        import scipy_openblas32

        blas = os.path.join(scipy_openblas32.get_lib_dir(), scipy_openblas32.get_library(fullname=True))
        ctypes.CDLL(blas)  # local: the kernel's DT_NEEDED finds it loaded, nothing else sees its symbols
    except (ImportError, OSError, IndexError) as error:
        return NativeStatus(False, f"OpenBLAS (the scipy-openblas32 package) could not be loaded: {error}", path)
    try:
        lib = ctypes.CDLL(path)
        jax.ffi.register_ffi_target(FORWARD, jax.ffi.pycapsule(lib.JaxrnnLstmForward), platform="cpu")
        jax.ffi.register_ffi_target(BACKWARD, jax.ffi.pycapsule(lib.JaxrnnLstmBackward), platform="cpu")
        jax.ffi.register_ffi_target(GEMM, jax.ffi.pycapsule(lib.JaxrnnGemm), platform="cpu")
        threads = int(lib.jaxrnn_native_threads())
        lib.jaxrnn_native_isa.restype = ctypes.c_char_p
        isa = lib.jaxrnn_native_isa().decode()
    except (OSError, AttributeError) as error:
        return NativeStatus(False, f"the native kernel {path} could not be loaded: {error}", path)
    return NativeStatus(True, "", path, threads, isa)


def target(name: str) -> str:
    """An FFI target's name, once the kernel is loaded and the target registered."""
    s = status()
    if not s.available:
        raise RuntimeError(f"jaxrnn's native kernel is absent: {s.reason}")
    return name


@functools.cache
def warn_absent() -> None:
    """Say once, where the default would run the kernel, that it is absent and why."""
    warnings.warn(f"jaxrnn runs its XLA engine for the LSTM on the CPU: {status().reason}", RuntimeWarning,
                  stacklevel=2)


def sgemm(a, b, threads: int):
    """``a @ b`` for float32 numpy matrices through the kernel's GEMM library, on ``threads``
    threads: the benchmark's same-run GEMM rate of that library."""
    import numpy as np

    lib = ctypes.CDLL(status().path if target("sgemm") else "")
    a, b = np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32)
    c = np.empty((a.shape[0], b.shape[1]), np.float32)
    ptr = ctypes.POINTER(ctypes.c_float)
    lib.jaxrnn_native_sgemm(ctypes.c_int64(a.shape[0]), ctypes.c_int64(b.shape[1]), ctypes.c_int64(a.shape[1]),
                            a.ctypes.data_as(ptr), b.ctypes.data_as(ptr), c.ctypes.data_as(ptr), ctypes.c_int(threads))
    return c
