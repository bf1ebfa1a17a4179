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
        raise TypeError(
            f"{owner}: `{name}` must be a number in [0, 1], got {value!r} ({type(value).__name__})"
        )
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
