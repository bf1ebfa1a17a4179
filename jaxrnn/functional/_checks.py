"""Argument checks shared by the public modules: clear errors before any computation.

Every check names the owner and the argument, says what was expected and shows what came: a
TypeError for the wrong kind of value, a ValueError for a value of the right kind out of range.
jax is imported only by the checks that need it, so ``jaxrnn.data`` stays numpy-only.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

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


def array(name: str, value, owner: str):
    """``value`` as an array: a JAX or NumPy array (a tracer too) as it is, anything else through
    ``numpy.asarray`` (a list, a CPU torch tensor); a TypeError naming ``name`` and the conversion
    when numpy cannot take it (a torch tensor that requires grad, one on a GPU, ragged lists)."""
    import jax

    if isinstance(value, (jax.Array, np.ndarray, jax.core.Tracer)):
        return value
    try:
        converted = np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as error:
        fix = " (for a torch tensor: t.detach().cpu().numpy())" if hasattr(value, "detach") else ""
        raise TypeError(f"{owner}: `{name}` must be an array or what numpy.asarray accepts{fix}, got "
                        f"{type(value).__name__}: {error}") from error
    if converted.dtype == object:
        raise TypeError(f"{owner}: `{name}` must be an array or what numpy.asarray accepts, got "
                        f"{type(value).__name__}")
    return converted


def floating_array(name: str, value, owner: str):
    """``value`` as an array (:func:`array`); raise unless it has a floating dtype (bfloat16 included)."""
    import jax.numpy as jnp

    value = array(name, value, owner)
    if not jnp.issubdtype(value.dtype, jnp.floating):
        raise TypeError(f"{owner}: `{name}` must have a floating dtype, got {value.dtype}")
    return value


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
    value = floating_array(name, value, owner)
    if tuple(value.shape) != tuple(expected):
        raise ValueError(f"{owner}: expected {name} of shape {tuple(expected)}, got {tuple(value.shape)}")
    return value


def initial_state(hx: Any, h0: Any, owner: str) -> tuple[Any, str]:
    """The initial state given as torch's ``hx`` or as ``h0`` (an alias), with the name it came
    under: ``(state, name)``; a TypeError when both are given."""
    if h0 is None:
        return hx, "hx"
    if hx is not None:
        raise TypeError(f"{owner}: got both `hx` and `h0`, two names for the initial state (torch's is hx); pass one")
    return h0, "h0"


def recurrent_call(x, hx, seq_lengths, *, input_size: int, batch_first: bool, carry_shapes, hx_name: str, owner: str):
    """torch's input checks of a recurrent layer's call, plus pack_padded_sequence's length checks.

    ``carry_shapes(lead)`` gives the expected hx shapes for leading axes ``lead``. Returns
    ``(x, hx, seq_lengths)`` as arrays: hx a carry of ``carry_shapes``'s type (None stays None),
    seq_lengths (batch,) int, or () for unbatched x. Known lengths must lie in [0, time]; traced
    ones (under jit) are checked by ``jax.experimental.checkify`` when the caller checkifies
    (``errors=checkify.user_checks``), and otherwise act as clipped to [0, time].
    """
    import jax.numpy as jnp
    from jax.experimental import checkify

    x = floating_array("x", x, owner)
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
        seq_lengths = array("seq_lengths", seq_lengths, owner)
        if not jnp.issubdtype(seq_lengths.dtype, jnp.integer):
            raise TypeError(f"{owner}: `seq_lengths` must be integers, got dtype {seq_lengths.dtype}")
        expected = (x.shape[1 - time_axis],) if batched else ()
        if seq_lengths.shape != expected:
            what = f"of shape {expected}" if batched else "a scalar (one length for unbatched x)"
            raise ValueError(f"{owner}: expected `seq_lengths` {what}, got shape {seq_lengths.shape}")
        message = (f"{owner}: `seq_lengths` must lie in [0, {steps}] (the number of time steps), "
                   "got min {lo} and max {hi}")
        if is_concrete(seq_lengths):
            lengths = np.asarray(seq_lengths)
            if lengths.size and (lengths.min() < 0 or lengths.max() > steps):
                raise ValueError(message.format(lo=lengths.min(), hi=lengths.max()))
        else:
            checkify.debug_check(jnp.all((seq_lengths >= 0) & (seq_lengths <= steps)), message,
                                 lo=jnp.min(seq_lengths), hi=jnp.max(seq_lengths))
    return x, hx, seq_lengths
