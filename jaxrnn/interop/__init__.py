"""PyTorch state dicts and safetensors files in and out of jaxrnn."""

from ._safetensors import load_safetensors as load_safetensors
from ._safetensors import save_safetensors as save_safetensors
from ._torch import from_torch as from_torch
from ._torch import to_torch as to_torch

__all__ = ["from_torch", "load_safetensors", "save_safetensors", "to_torch"]
