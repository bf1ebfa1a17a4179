"""The native LSTM kernel (jaxrnn/native/lstm.cc), built at install with the machine's C++ compiler.

Everything else about the package is in pyproject.toml. The kernel is optional: where it cannot
be built (no compiler, another OS or architecture, no OpenBLAS or XLA headers) the install goes
on without it, says why, and jaxrnn runs its XLA engine (``jaxrnn.native.status()`` tells).
"""

import importlib.util
import os
import platform
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _jaxlib_include() -> str:
    """XLA's FFI headers, where jax.ffi.include_dir() finds them (without importing jax)."""
    spec = importlib.util.find_spec("jaxlib")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("jaxlib is not installed, and its XLA FFI headers are needed")
    return os.path.join(list(spec.submodule_search_locations)[0], "include")


class OptionalBuildExt(build_ext):
    def build_extension(self, ext):
        try:
            if sys.platform != "linux" or platform.machine() != "x86_64":
                raise RuntimeError(f"it is written for Linux on x86-64, this is {sys.platform} on {platform.machine()}")
            import scipy_openblas32

            ext.include_dirs += [_jaxlib_include(), scipy_openblas32.get_include_dir()]
            ext.library_dirs += [scipy_openblas32.get_lib_dir()]
            ext.libraries += [scipy_openblas32.get_library()]
            super().build_extension(ext)
        except Exception as error:  # the install goes on: jaxrnn then runs its XLA engine
            print(f"jaxrnn: the native LSTM kernel was not built ({type(error).__name__}: {error}); "
                  "jaxrnn will run its XLA engine", file=sys.stderr)


setup(
    ext_modules=[
        Extension(
            "jaxrnn.native._lstm_kernel",
            sources=["jaxrnn/native/lstm.cc"],
            depends=["jaxrnn/native/lstm_simd.inc"],
            language="c++",
            extra_compile_args=["-std=c++17", "-O3", "-mavx2", "-mfma", "-pthread"],
            extra_link_args=["-pthread"],
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
