"""jaxrnn's core: PyTorch's recurrent layers as pure functions over torch-layout parameters."""
