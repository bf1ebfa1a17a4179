"""PyTorch state dicts and safetensors files in and out of jaxrnn."""
