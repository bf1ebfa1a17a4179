"""jaxrnn benchmarks: jit vs eager vs PyTorch (run ``python -m benchmarks``)."""
