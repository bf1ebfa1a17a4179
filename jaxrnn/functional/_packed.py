r"""torch's packed sequences (``torch.nn.utils.rnn``) as a JAX pytree that passes through ``jax.jit``.

torch packs a padded batch into ``data`` (sum(lengths), *): time-major, at each step t the
sequences still running (length > t) in descending-length order, with ``batch_sizes[t]`` of them.
That layout has a data-dependent size, which XLA cannot compile; so a :class:`PackedSequence`
here stores the same information with static shapes, and computes torch's fields on demand:

    padded  (time, batch, *)  the sequences time-major in the original batch order, zeros at t >= length
    lengths (batch,)          ints in [1, time]
    sorted_indices, unsorted_indices (batch,) or None (None when packed with enforce_sorted=True)

A recurrent layer given a PackedSequence runs on ``padded`` with ``seq_lengths=lengths``
(``jaxrnn.functional.lstm``, ``jaxrnn.LSTM``, ...), which is what torch computes on its packed
``data``; the public home of these names is ``jaxrnn.utils.rnn``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from . import _checks

Array = jax.Array

_UNSORTED = ("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. You can pass "
             "`enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to sidestep this requirement if "
             "you do not need ONNX exportability.")


def _show(value: Any) -> str:
    """A field for ``repr``: None, a known 1-D int array as a list, anything else as dtype[shape]."""
    if value is None:
        return "None"
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is None or dtype is None:
        return repr(value)
    if len(shape) == 1 and jnp.issubdtype(dtype, jnp.integer) and _checks.is_concrete(value):
        return str(np.asarray(value).tolist())
    return f"{dtype}{list(shape)}"


def _valid(lengths: Array, steps: int, ndim: int) -> Array:
    """(steps, batch, 1, ...) of rank ``ndim``: True where t < length."""
    mask = jnp.arange(steps)[:, None] < jnp.asarray(lengths)[None, :]
    return jnp.reshape(mask, mask.shape + (1,) * (ndim - 2))


@jax.tree_util.register_pytree_node_class
class PackedSequence:
    r"""torch's ``PackedSequence``, stored padded so that it has static shapes under ``jax.jit``.

    Fields (the leaves of the pytree): ``padded`` (time, batch, \*), time-major in the original
    batch order, zeros at positions t >= length; ``lengths`` (batch,) ints; ``sorted_indices``
    (batch,), the batch in descending-length order (a stable sort, as torch's), and
    ``unsorted_indices``, its inverse, or both None when packed with ``enforce_sorted=True``.
    Known lengths and indices are numpy int64 arrays (host metadata, as torch keeps lengths on
    the CPU), so they stay known inside a jitted function that closes over them; passed into
    ``jax.jit`` as an argument they are traced like ``padded``. Build one with
    :func:`pack_padded_sequence` or :func:`pack_sequence`; the constructor stores its arguments
    as they are.

    torch's fields, computed from these (they need concrete lengths, so not under ``jax.jit``):
    ``batch_sizes[t] = #{b : lengths[b] > t}`` for t < max(lengths), and ``data``
    (sum(lengths), \*), the rows ``padded[t, b]`` with t < lengths[b], ordered by t and, within
    a step, in sorted order.

    >>> import numpy as np
    >>> from jaxrnn.utils.rnn import pack_padded_sequence
    >>> seq = np.array([[1, 2, 0], [3, 0, 0], [4, 5, 6]])  # (batch, time)
    >>> packed = pack_padded_sequence(seq, [2, 1, 3], batch_first=True, enforce_sorted=False)
    >>> packed.lengths, packed.sorted_indices, packed.unsorted_indices
    (array([2, 1, 3]), array([2, 0, 1]), array([1, 2, 0]))
    >>> packed.data.tolist(), packed.batch_sizes
    ([4, 1, 3, 5, 2, 6], array([3, 2, 1]))
    >>> packed.padded.T.tolist()  # (time, batch) stored; zeros past each length
    [[1, 2, 0], [3, 0, 0], [4, 5, 6]]
    """

    def __init__(self, padded: Any, lengths: Any, sorted_indices: Any = None, unsorted_indices: Any = None):
        self.padded = padded
        self.lengths = lengths
        self.sorted_indices = sorted_indices
        self.unsorted_indices = unsorted_indices

    def tree_flatten(self):
        return (self.padded, self.lengths, self.sorted_indices, self.unsorted_indices), None

    @classmethod
    def tree_unflatten(cls, aux_data, children):
        return cls(*children)

    def replace(self, padded: Any) -> PackedSequence:
        """The same lengths and indices around other ``padded`` (a layer's output)."""
        return PackedSequence(padded, self.lengths, self.sorted_indices, self.unsorted_indices)

    def _known(self, what: str) -> tuple[np.ndarray, np.ndarray]:
        """Concrete ``(lengths, sorted order)`` as numpy, or a ValueError saying ``what`` needs them."""
        fields = [self.lengths] + ([] if self.sorted_indices is None else [self.sorted_indices])
        if not all(_checks.is_concrete(f) for f in fields):
            raise ValueError(f"PackedSequence: `{what}` needs concrete lengths (its size depends on their values), "
                             "but they are traced here (under jax.jit); use `.padded` (time, batch, *) and `.lengths`, "
                             "or pad_packed_sequence(..., total_length=T)")
        lengths = np.asarray(self.lengths)
        order = np.arange(lengths.shape[0]) if self.sorted_indices is None else np.asarray(self.sorted_indices)
        return lengths, order

    @property
    def batch_sizes(self) -> np.ndarray:
        """torch's ``batch_sizes`` (max(lengths),), int64: how many sequences run at each step."""
        lengths, _ = self._known("batch_sizes")
        steps = int(lengths.max()) if lengths.size else 0
        return np.sum(lengths[None, :] > np.arange(steps)[:, None], axis=1).astype(np.int64)

    @property
    def data(self) -> Array:
        """torch's ``data`` (sum(lengths), \\*): at each step, the running sequences in sorted order."""
        lengths, order = self._known("data")
        steps = int(lengths.max()) if lengths.size else 0
        rows = [order[lengths[order] > t] for t in range(steps)]
        times = np.concatenate([np.full(len(r), t) for t, r in enumerate(rows)] + [np.zeros(0, int)])
        batch = np.concatenate(rows + [np.zeros(0, int)])
        return jnp.asarray(self.padded)[times, batch]

    def __repr__(self) -> str:
        return (f"PackedSequence(padded={_show(self.padded)}, lengths={_show(self.lengths)}, "
                f"sorted_indices={_show(self.sorted_indices)}, unsorted_indices={_show(self.unsorted_indices)})")


def _pack(input: Any, lengths: Any, batch_first: bool, enforce_sorted: bool, owner: str) -> PackedSequence:
    x = _checks.array("input", input, owner)
    if x.ndim < 2:
        raise ValueError(f"{owner}: expected `input` of at least 2 dimensions, (time, batch, *) or (batch, time, *) "
                         f"with batch_first, got shape {tuple(x.shape)}")
    if batch_first:
        x = jnp.swapaxes(x, 0, 1)
    steps, batch = x.shape[0], x.shape[1]
    lengths = _checks.array("lengths", lengths, owner)
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"{owner}: `lengths` must be integers, got dtype {lengths.dtype}")
    if lengths.shape != (batch,):
        raise ValueError(f"{owner}: expected `lengths` of shape ({batch},) (one per sequence of the batch), "
                         f"got shape {tuple(lengths.shape)}")
    message = (f"{owner}: `lengths` must lie in [1, {steps}] (torch: every length must be greater than 0, and at "
               "most the number of time steps), got min {lo} and max {hi}")
    sorted_indices: Any = None
    unsorted_indices: Any = None
    if _checks.is_concrete(lengths):  # host metadata, as torch keeps lengths on the CPU: numpy int64
        lengths = np.asarray(lengths).astype(np.int64)
        if lengths.size and (lengths.min() < 1 or lengths.max() > steps):
            raise ValueError(message.format(lo=lengths.min(), hi=lengths.max()))
        if enforce_sorted and np.any(lengths[1:] > lengths[:-1]):
            raise ValueError(f"{owner}: {_UNSORTED} Got lengths {lengths.tolist()}")
        if not enforce_sorted:
            sorted_indices = np.argsort(-lengths, kind="stable")  # torch's sort(descending=True): ties in batch order
            unsorted_indices = np.argsort(sorted_indices)
    else:
        checkify.debug_check(jnp.all((lengths >= 1) & (lengths <= steps)), message,
                             lo=jnp.min(lengths), hi=jnp.max(lengths))
        if enforce_sorted:
            checkify.debug_check(jnp.all(lengths[1:] <= lengths[:-1]), f"{owner}: {_UNSORTED}")
        else:
            sorted_indices = jnp.argsort(lengths, descending=True, stable=True)
            unsorted_indices = jnp.argsort(sorted_indices)
    x = jnp.asarray(x)
    padded = jnp.where(_valid(lengths, steps, x.ndim), x, jnp.zeros_like(x))  # padding gets zero gradient, as torch's
    return PackedSequence(padded, lengths, sorted_indices, unsorted_indices)


def pack_padded_sequence(input: Any, lengths: Any, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    r"""torch's ``pack_padded_sequence``: a padded batch of variable-length sequences as a
    :class:`PackedSequence`.

    Args:
      input: (time, batch, \*), or (batch, time, \*) with ``batch_first``; positions t >= length
        are ignored (stored as zeros, so they get zero gradient, as in torch).
      lengths: (batch,) ints in [1, time]: a list, a numpy or JAX array, or a CPU torch tensor.
      batch_first: input is (batch, time, \*).
      enforce_sorted: lengths must be non-increasing (torch's requirement for ONNX export); with
        False any order, and the sequence records ``sorted_indices`` / ``unsorted_indices``.

    Returns:
      A :class:`PackedSequence` with ``padded`` (time, batch, \*) time-major, whatever
      ``batch_first`` says. Known lengths out of [1, time], or unsorted with ``enforce_sorted``,
      raise a ValueError; traced ones (under ``jax.jit``) are checked under
      ``jax.experimental.checkify.checkify(f, errors=checkify.user_checks)``.

    >>> import jax
    >>> x = jax.random.normal(jax.random.key(0), (4, 6, 3))  # (batch, time, features)
    >>> packed = pack_padded_sequence(x, [6, 2, 4, 1], batch_first=True, enforce_sorted=False)
    >>> packed.padded.shape, packed.data.shape, packed.batch_sizes
    ((6, 4, 3), (13, 3), array([4, 3, 2, 2, 1, 1]))
    """
    return _pack(input, lengths, batch_first, enforce_sorted, "pack_padded_sequence")


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: Any = 0.0,
                        total_length: int | None = None) -> tuple[Array, Any]:
    r"""torch's ``pad_packed_sequence``: a :class:`PackedSequence` back to a padded batch, in the
    original batch order.

    Args:
      sequence: a :class:`PackedSequence` (a recurrent layer's output on a packed input, say).
      batch_first: return (batch, time, \*) instead of (time, batch, \*).
      padding_value: the value at positions t >= length.
      total_length: the time steps of the result; None pads to max(lengths), which needs concrete
        lengths (under ``jax.jit`` pass the input's T). Smaller than max(lengths) is a ValueError.

    Returns:
      ``(padded, lengths)``: padded (total_length or max(lengths), batch, \*) in ``batch_first``'s
      layout, and the lengths in the original order: an int64 numpy array, as torch's CPU tensor,
      when they are known, the traced array under ``jax.jit``.

    >>> import numpy as np
    >>> from jaxrnn.utils.rnn import pack_padded_sequence
    >>> packed = pack_padded_sequence(np.arange(1.0, 7.0).reshape(3, 2), [3, 1])  # (time, batch)
    >>> padded, lengths = pad_packed_sequence(packed, batch_first=True, padding_value=-1.0, total_length=4)
    >>> padded.tolist(), lengths
    ([[1.0, 3.0, 5.0, -1.0], [2.0, -1.0, -1.0, -1.0]], array([3, 1]))
    """
    owner = "pad_packed_sequence"
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"{owner}: `sequence` must be a PackedSequence, got {type(sequence).__name__}")
    padded, lengths = jnp.asarray(sequence.padded), sequence.lengths
    concrete = _checks.is_concrete(lengths)
    longest = (int(np.max(lengths)) if np.size(lengths) else 0) if concrete else None
    if total_length is None:
        if longest is None:
            raise ValueError(f"{owner}: without `total_length` the result has max(lengths) steps, which is unknown "
                             "here: the lengths are traced (under jax.jit); pass total_length=T (e.g. the input's "
                             "number of time steps)")
        steps = longest
    else:
        steps = _checks.positive_int("total_length", total_length, owner)
        if longest is not None and steps < longest:
            raise ValueError(f"{owner}: expected `total_length` to be at least the length of the longest sequence "
                             f"in the input, but got total_length={steps} and max sequence length being {longest}")
        if longest is None:
            checkify.debug_check(jnp.all(lengths <= steps), f"{owner}: expected `total_length` to be at least the "
                                 f"length of the longest sequence, got total_length={steps} and lengths up to "
                                 "{hi}", hi=jnp.max(lengths))
    if steps <= padded.shape[0]:
        padded = padded[:steps]
    else:
        padded = jnp.pad(padded, [(0, steps - padded.shape[0])] + [(0, 0)] * (padded.ndim - 1))
    fill = jnp.asarray(padding_value, padded.dtype)
    padded = jnp.where(_valid(lengths, steps, padded.ndim), padded, fill)
    if batch_first:
        padded = jnp.swapaxes(padded, 0, 1)
    return padded, (np.asarray(lengths).astype(np.int64) if concrete else lengths)


def pad_sequence(sequences: Sequence[Any], batch_first: bool = False, padding_value: Any = 0.0,
                 padding_side: str = "right") -> Array:
    r"""torch's ``pad_sequence``: a list of (L_i, \*) arrays as one (max L_i, batch, \*) array,
    or (batch, max L_i, \*) with ``batch_first``; ``padding_side='left'`` pads in front.

    >>> import numpy as np
    >>> pad_sequence([np.array([1, 2, 3]), np.array([4])], batch_first=True).tolist()
    [[1, 2, 3], [4, 0, 0]]
    """
    owner = "pad_sequence"
    _checks.one_of("padding_side", padding_side, ("right", "left"), owner)
    arrays = [_checks.array(f"sequences[{i}]", s, owner) for i, s in enumerate(sequences)]
    if not arrays:
        raise ValueError(f"{owner}: `sequences` is empty; expected at least one (L, *) array")
    for i, a in enumerate(arrays):
        if a.ndim < 1 or a.shape[1:] != arrays[0].shape[1:]:
            raise ValueError(f"{owner}: every sequence must be (L, *) with the same trailing shape "
                             f"{tuple(arrays[0].shape[1:])}, got sequences[{i}] of shape {tuple(a.shape)}")
    steps = max(a.shape[0] for a in arrays)
    dtype = jnp.result_type(*arrays)

    def pad(a):
        gap = (0, steps - a.shape[0]) if padding_side == "right" else (steps - a.shape[0], 0)
        return jnp.pad(jnp.asarray(a, dtype), [gap] + [(0, 0)] * (a.ndim - 1), constant_values=padding_value)

    return jnp.stack([pad(a) for a in arrays], axis=0 if batch_first else 1)


def pack_sequence(sequences: Sequence[Any], enforce_sorted: bool = True) -> PackedSequence:
    r"""torch's ``pack_sequence``: a list of (L_i, \*) arrays as a :class:`PackedSequence`, which is
    ``pack_padded_sequence(pad_sequence(sequences), [L_i], enforce_sorted=enforce_sorted)``.

    >>> import numpy as np
    >>> packed = pack_sequence([np.array([1, 2, 3]), np.array([4, 5]), np.array([6])])
    >>> packed.data.tolist(), packed.batch_sizes
    ([1, 4, 6, 2, 5, 3], array([3, 2, 1]))
    """
    padded = pad_sequence(sequences)
    lengths = np.array([np.shape(s)[0] for s in sequences], dtype=np.int64)
    return _pack(padded, lengths, False, enforce_sorted, "pack_sequence")
