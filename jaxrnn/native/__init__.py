"""jaxrnn's native CPU kernel: the LSTM's time loop in C++, forward and backward, through XLA's FFI.

The engine (``jaxrnn.functional``'s ``impl='fused'``, the default) runs it for a float32 LSTM on
the CPU when it was built at install, and its XLA loop otherwise; ``impl='native'`` insists on
it, ``impl='xla'`` never uses it. :func:`status` says whether it is loaded and why not;
``jaxrnn.functional.time_loop`` says which loop a layer will run.

Threads: one pool for the process, of ``JAXRNN_NUM_THREADS`` threads, else ``OMP_NUM_THREADS``,
else the cores of the process's affinity mask (``taskset``); a call made while another holds the
pool runs on its calling thread alone. ``JAXRNN_NATIVE_ISA=avx2`` asks for the AVX2 step GEMM on a
CPU with AVX-512.
"""

from ._library import NativeStatus as NativeStatus
from ._library import status as status

__all__ = ["NativeStatus", "status"]
