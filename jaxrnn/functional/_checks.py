"""Argument checks shared by the public modules: clear errors before any computation.

Every check names the owner and the argument, says what was expected and shows what came: a
TypeError for the wrong kind of value, a ValueError for a value of the right kind out of range.
jax is imported only by the checks that need it, so ``jaxrnn.data`` stays numpy-only.
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def _int(name: str, value, what: str, owner: str) -> int:
    """``value`` as an int, or a TypeError for anything but a Python or NumPy integer (bools too)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{owner}: `{name}` must be {what}, got {value!r} ({type(value).__name__})")
    return int(value)


def _real(name: str, value, what: str, owner: str) -> float:
    """``value`` as a float, or a TypeError for anything but a real number (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: `{name}` must be {what}, got {value!r} ({type(value).__name__})")
    return float(value)


def integer(name: str, value, owner: str) -> int:
    """``value`` as an int; a TypeError unless it is a Python or NumPy integer (bools are refused)."""
    return _int(name, value, "an int", owner)


def positive_int(name: str, value, owner: str) -> int:
    """``value`` as an int; a TypeError unless it is a Python or NumPy integer (bools are refused),
    a ValueError unless it is positive."""
    value = _int(name, value, "a positive int", owner)
    if value <= 0:
        raise ValueError(f"{owner}: `{name}` must be a positive int, got {value}")
    return value


def non_negative_int(name: str, value, owner: str) -> int:
    """``value`` as an int; a TypeError unless it is a Python or NumPy integer (bools are refused),
    a ValueError when it is negative. Seeds are checked with this."""
    value = _int(name, value, "a non-negative int", owner)
    if value < 0:
        raise ValueError(f"{owner}: `{name}` must be a non-negative int, got {value}")
    return value


def positive_number(name: str, value, owner: str) -> float:
    """``value`` as a float; a TypeError unless it is a real number (bools are refused), a
    ValueError unless it is positive and finite."""
    number = _real(name, value, "a positive number", owner)
    if not (number > 0 and math.isfinite(number)):
        raise ValueError(f"{owner}: `{name}` must be a positive finite number, got {value}")
    return number


def non_negative_number(name: str, value, owner: str) -> float:
    """``value`` as a float; a TypeError unless it is a real number (bools are refused), a
    ValueError unless it is non-negative and finite."""
    number = _real(name, value, "a non-negative number", owner)
    if not (number >= 0 and math.isfinite(number)):
        raise ValueError(f"{owner}: `{name}` must be a non-negative finite number, got {value}")
    return number


def one_of(name: str, value, choices: tuple[str, ...], owner: str) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{owner}: `{name}` must be one of {choices}, got {value!r}")


def probability(name: str, value, owner: str) -> float:
    """``value`` as a float; a TypeError unless it is a real number (bools are refused), a
    ValueError unless it lies in [0, 1]."""
    number = _real(name, value, "a number in [0, 1]", owner)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{owner}: `{name}` must be a number in [0, 1], got {value}")
    return number


def open_fraction(name: str, value, owner: str) -> float:
    """``value`` as a float; a TypeError unless it is a real number (bools are refused), a
    ValueError unless it lies strictly between 0 and 1 (a share that leaves something either side)."""
    number = _real(name, value, "a number in (0, 1)", owner)
    if not 0.0 < number < 1.0:
        raise ValueError(f"{owner}: `{name}` must be a number in (0, 1), got {value}")
    return number


def floating_array(name: str, value, owner: str) -> None:
    """Raise unless ``value`` has a shape and a floating dtype (bfloat16 included)."""
    import jax.numpy as jnp

    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        raise TypeError(f"{owner}: `{name}` must be an array, got {type(value).__name__}")
    if not jnp.issubdtype(value.dtype, jnp.floating):
        raise TypeError(f"{owner}: `{name}` must have a floating dtype, got {value.dtype}")


def is_concrete(value) -> bool:
    """True when ``value`` holds known numbers (not a tracer under jit/grad/vmap)."""
    import jax

    return not isinstance(value, jax.core.Tracer)


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


def recurrent_call(x, hx, seq_lengths, *, input_size: int, batch_first: bool, carry_shapes, hx_name: str, owner: str):
    """torch's input checks of a recurrent layer's call, plus pack_padded_sequence's length checks.

    ``carry_shapes(lead)`` gives the expected hx shapes for leading axes ``lead``. Returns hx as a
    carry of ``carry_shapes``'s type (None stays None).
    """
    import jax.numpy as jnp

    floating_array("x", x, owner)
    if x.ndim not in (2, 3):
        raise ValueError(f"{owner}: expected x to be 2D (unbatched) or 3D (batched), got {x.ndim}D (x.shape={x.shape})")
    if x.shape[-1] != input_size:
        raise ValueError(f"{owner}: `input_size` is {input_size} but x has {x.shape[-1]} features (x.shape={x.shape})")
    batched = x.ndim == 3
    time_axis = 1 if (batched and batch_first) else 0
    steps = x.shape[time_axis]
    if steps == 0:
        raise ValueError(f"{owner}: x has no time steps (x.shape={x.shape})")
    if hx is not None:
        hx = carry(hx, carry_shapes((x.shape[1 - time_axis],) if batched else ()), hx_name, owner)
    if seq_lengths is not None:
        if not batched:
            raise ValueError(f"{owner}: `seq_lengths` needs batched 3D input, got unbatched x of shape {x.shape}")
        if not hasattr(seq_lengths, "dtype") or not jnp.issubdtype(seq_lengths.dtype, jnp.integer):
            got = getattr(seq_lengths, "dtype", type(seq_lengths).__name__)
            raise TypeError(f"{owner}: `seq_lengths` must be an integer array, got {got}")
        batch = x.shape[1 - time_axis]
        if seq_lengths.shape != (batch,):
            raise ValueError(f"{owner}: expected `seq_lengths` of shape ({batch},), got {seq_lengths.shape}")
        if is_concrete(seq_lengths):
            lengths = np.asarray(seq_lengths)
            if lengths.min() < 1 or lengths.max() > steps:
                raise ValueError(
                    f"{owner}: `seq_lengths` must lie in [1, {steps}] (the number of time steps), "
                    f"got min {lengths.min()} and max {lengths.max()}"
                )
    return hx
