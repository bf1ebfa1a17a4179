"""What the training functions pass to the model: its inputs, and the mode it runs in.

Inputs are any pytree of arrays that share a leading (batch) axis: one array, a tuple
``(ids, lengths)``, a dict ``{'x': ..., 'seq_lengths': ...}``, a NamedTuple... ``train`` batches,
shuffles, pads and shards its leaves together. The model is called with

- a plain ``tuple`` (exactly ``tuple``, not a NamedTuple) as positional arguments: ``model(*inputs)``;
- a ``dict`` as keyword arguments: ``model(**inputs)``;
- anything else (an array, a NamedTuple, another pytree) as one positional argument: ``model(inputs)``.

A ``list`` is read as one array (``numpy.asarray``), as numpy reads it, not as a pytree: group
several inputs in a tuple or a dict.

The mode: training runs the model as torch's ``model.train()`` does, evaluation as ``model.eval()``.
Flax has no such switch; its convention is a keyword of ``__call__``. :func:`detect_mode` reads
the signature of ``type(model).__call__``: ``deterministic`` (jaxrnn's layers, ``flax.linen.Dropout``)
gives ``deterministic=False`` in training and ``deterministic=True`` in evaluation; else ``train``
gives ``train=True`` / ``train=False``; else the model is called without either.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from ..functional import _checks

__all__ = ["apply_model", "check_inputs", "check_mode", "detect_mode", "is_list", "split_call"]

_APPLY_KEYWORDS = ("rngs", "method", "mutable", "capture_intermediates")
"""Keywords of ``Module.apply`` itself, which a dict of inputs cannot use."""

_NOT_NUMBERS = "OUSVMm"
"""numpy dtype kinds that are not numbers: object, strings, bytes, void, datetimes."""


def is_list(value: Any) -> bool:
    """Lists are leaves (arrays) of an inputs tree, not pytree nodes."""
    return isinstance(value, list)


def split_call(inputs) -> tuple[tuple, dict]:
    """``(args, kwargs)`` of the model's call for ``inputs``.

    >>> split_call((1, 2)), split_call({"x": 1}), split_call(3)
    (((1, 2), {}), ((), {'x': 1}), ((3,), {}))
    """
    if type(inputs) is tuple:
        return inputs, {}
    if isinstance(inputs, dict):
        return (), dict(inputs)
    return (inputs,), {}


def apply_model(model: nn.Module, variables, inputs, mode: Mapping[str, Any], rngs=None):
    """``model.apply(variables, *args, **kwargs, **mode, rngs=rngs)`` with ``args, kwargs = split_call(inputs)``."""
    args, kwargs = split_call(inputs)
    return model.apply(variables, *args, **kwargs, **mode, rngs=rngs)


def detect_mode(model: nn.Module) -> tuple[dict[str, bool], dict[str, bool]]:
    """``(training keywords, evaluation keywords)`` for ``model``, from the signature of
    ``type(model).__call__``: ``deterministic`` first, then ``train``, then none (a ``**kwargs``
    catch-all names neither, so gets neither).

    >>> from jaxrnn import LSTM, Linear
    >>> detect_mode(LSTM(3, 4)), detect_mode(Linear(3, 4))
    (({'deterministic': False}, {'deterministic': True}), ({}, {}))
    """
    try:
        parameters = inspect.signature(type(model).__call__).parameters
    except (TypeError, ValueError):  # no signature to read: call the model as it is
        return {}, {}
    for name, training, evaluation in (("deterministic", False, True), ("train", True, False)):
        parameter = parameters.get(name)
        if parameter is not None and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            return {name: training}, {name: evaluation}
    return {}, {}


def check_mode(name: str, mode, owner: str) -> tuple[tuple[str, Any], ...] | None:
    """``mode`` (keyword arguments for the model's call, or None) as sorted ``(key, value)`` items,
    or a TypeError: a mapping of str keys to hashable values (they are fixed in the compiled step)."""
    if mode is None:
        return None
    if not isinstance(mode, Mapping):
        raise TypeError(f"{owner}: `{name}` must be a mapping of keyword arguments for the model's call, such as "
                        f"{{'deterministic': True}}, or None, got {type(mode).__name__}")
    for key, value in mode.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise TypeError(f"{owner}: `{name}` keys must be keyword names (str), got {key!r}")
        if key in _APPLY_KEYWORDS:
            raise ValueError(f"{owner}: `{name}` cannot set {key!r}, a keyword of Module.apply itself")
        try:
            hash(value)
        except TypeError:
            raise TypeError(f"{owner}: `{name}[{key!r}]` is fixed in the compiled step and must be hashable "
                            f"(a bool, number or string), got {type(value).__name__}") from None
    return tuple(sorted(mode.items()))


def check_inputs(label: str, inputs, n: int | None, owner: str, *, mode: Mapping[str, Any] | None = None,
                 to_numpy: bool = True, y_shape: tuple | None = None, y_name: str = "y"):
    """``inputs`` with every leaf checked: an array (``to_numpy``: as a numpy array, else a JAX
    array or tracer as it is), numeric, with a leading axis of size ``n`` (the number of examples
    in y, called ``y_name`` in the messages; None: the leaves only have to agree with each other).
    A dict's keys must be keyword names, none of them one of ``mode`` or of ``Module.apply``'s
    own. Errors start with ``owner: `` and name the leaf as ``label`` followed by its path
    (``x[1]``, ``x['lengths']``).

    >>> check_inputs("x", (np.zeros((4, 3)), np.arange(4)), 4, "train")[1]
    array([0, 1, 2, 3])
    >>> check_inputs("x", (np.zeros((4, 3)), np.arange(5)), 4, "train")
    Traceback (most recent call last):
    ...
    ValueError: train: x[1] has 5 examples (shape (5,)) but y has 4
    """
    mode = mode or {}
    if isinstance(inputs, dict):
        for key in inputs:
            if not isinstance(key, str) or not key.isidentifier():
                raise TypeError(f"{owner}: {label} is a dict, passed to the model as keyword arguments, so its keys "
                                f"must be keyword names (str), got {key!r}")
            if key in mode or key in _APPLY_KEYWORDS:
                what = "a keyword of the model's mode" if key in mode else "a keyword of Module.apply itself"
                raise ValueError(f"{owner}: {label} is a dict, passed to the model as keyword arguments, and its "
                                 f"key {key!r} is {what}; rename it")
    leaves, treedef = jax.tree_util.tree_flatten_with_path(inputs, is_leaf=is_list)
    if not leaves:
        raise ValueError(f"{owner}: {label} holds no array, got {inputs!r}")
    checked, first = [], None
    for path, leaf in leaves:
        where = _join(label, jax.tree_util.keystr(path))
        leaf = _array(where, leaf, owner)
        if to_numpy:
            leaf = np.asarray(leaf)
        try:
            kind = np.dtype(leaf.dtype).kind
        except TypeError:  # an extended dtype (a PRNG key): not numpy's, allowed
            kind = ""
        if kind and kind in _NOT_NUMBERS:
            raise TypeError(f"{owner}: {where} must be a numeric array, got dtype {leaf.dtype}")
        shape = tuple(np.shape(leaf))
        if not shape:
            raise ValueError(f"{owner}: {where} needs a leading batch axis, got a scalar (shape ())")
        if n is not None and shape[0] != n:
            shown = "" if y_shape is None else f" (shape {tuple(y_shape)})"
            raise ValueError(f"{owner}: {where} has {shape[0]} examples (shape {shape}) but {y_name} has {n}{shown}")
        if first is not None and shape[0] != first[1]:
            raise ValueError(f"{owner}: {where} has {shape[0]} examples (shape {shape}) but {first[0]} has "
                             f"{first[1]}; every input needs the same leading batch axis")
        first = first or (where, shape[0])
        checked.append(leaf)
    return jax.tree.unflatten(treedef, checked)


def _join(label: str, path: str) -> str:
    """The leaf's name: ``x`` and ``[1]`` give ``x[1]``; a label in backticks takes the path inside them."""
    return f"{label[:-1]}{path}`" if label.endswith("`") else label + path


def _array(where: str, leaf, owner: str):
    """``leaf`` as an array (``_checks.array``), its error naming the leaf."""
    try:
        return _checks.array("leaf", leaf, owner)
    except TypeError as err:
        raise TypeError(str(err).replace("`leaf`", where, 1)) from None
