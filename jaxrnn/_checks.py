"""Argument checks shared by the public modules: clear errors before any computation."""

from __future__ import annotations

import numbers

import jax
import numpy as np


def positive_int(name: str, value, owner: str) -> None:
    """Raise unless ``value`` is a positive Python or NumPy integer (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{owner}: `{name}` must be a positive int, got {value!r} ({type(value).__name__})")
    if value <= 0:
        raise ValueError(f"{owner}: `{name}` must be a positive int, got {value}")


def one_of(name: str, value, choices: tuple[str, ...], owner: str) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{owner}: `{name}` must be one of {choices}, got {value!r}")


def probability(name: str, value, owner: str) -> None:
    """Raise unless ``value`` is a real number in [0, 1] (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: `{name}` must be a number in [0, 1], got {value!r} ({type(value).__name__})")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{owner}: `{name}` must be a number in [0, 1], got {value}")


def floating_array(name: str, value, owner: str) -> None:
    """Raise unless ``value`` has a shape and a floating dtype."""
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        raise TypeError(f"{owner}: `{name}` must be an array, got {type(value).__name__}")
    if not jax.numpy.issubdtype(value.dtype, jax.numpy.floating):
        raise TypeError(f"{owner}: `{name}` must have a floating dtype, got {value.dtype}")


def is_concrete(value) -> bool:
    """True when ``value`` holds known numbers (not a tracer under jit/grad/vmap)."""
    return not isinstance(value, jax.core.Tracer)


def non_negative_int(name: str, value, owner: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{owner}: `{name}` must be a non-negative int, got {value!r} ({type(value).__name__})")
    if value < 0:
        raise ValueError(f"{owner}: `{name}` must be a non-negative int, got {value}")


def proj_size(value, hidden_size: int, owner: str) -> None:
    """torch's LSTM rule: 0 <= proj_size < hidden_size."""
    non_negative_int("proj_size", value, owner)
    if value >= hidden_size:
        raise ValueError(f"{owner}: `proj_size` must be smaller than `hidden_size` ({hidden_size}), got {value}")


def carry(value, expected, name: str, owner: str):
    """Check a recurrent state against ``expected`` shapes: an array for a shape tuple, a
    ``(h, c)`` pair for an ``LSTMState`` of shapes. Returns the state in ``expected``'s type."""
    if isinstance(expected, tuple) and expected and isinstance(expected[0], tuple):  # (h, c)
        if not isinstance(value, (tuple, list)) or len(value) != len(expected):
            raise TypeError(f"{owner}: `{name}` must be a pair (h, c), got {type(value).__name__}")
        parts = [carry(v, e, f"{name}[{i}]", owner) for i, (v, e) in enumerate(zip(value, expected))]
        return type(expected)(*parts)
    floating_array(name, value, owner)
    if tuple(value.shape) != tuple(expected):
        raise ValueError(f"{owner}: expected {name} of shape {tuple(expected)}, got {tuple(value.shape)}")
    return value
