"""Bad input: a ValueError/TypeError naming the argument, expected vs got, before any computation,
the same from the linen layers (``jaxrnn.RNN``) and the NNX layers (``jaxrnn.nnx.RNN``): every test
runs on both faces."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxrnn

X = jax.random.normal(jax.random.key(0), (6, 4, 3))  # (T, N, I)


@pytest.fixture(params=["linen", "nnx"])
def face(request):
    return request.param


def _build(face, name, *args, **kwargs):
    """``jaxrnn.<name>`` (linen) or ``jaxrnn.nnx.<name>`` with an ``rngs``."""
    if face == "linen":
        return getattr(jaxrnn, name)(*args, **kwargs)
    return getattr(jaxrnn.nnx, name)(*args, rngs=nnx.Rngs(0), **kwargs)


def _apply(face, layer, x, *args, **kwargs):
    if face == "nnx":
        return layer(x, *args, **kwargs)
    example = jnp.zeros((1, layer.input_size) if "Cell" in type(layer).__name__ else (2, 1, layer.input_size))
    variables = layer.init(jax.random.key(1), example)
    return layer.apply(variables, x, *args, **kwargs)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"hidden_size": 0}, ValueError, r"RNN: `hidden_size` must be a positive int, got 0"),
        ({"hidden_size": 2.5}, TypeError, r"RNN: `hidden_size` must be a positive int, got 2.5 \(float\)"),
        ({"hidden_size": True}, TypeError, r"`hidden_size` must be a positive int, got True \(bool\)"),
        ({"num_layers": -1}, ValueError, r"RNN: `num_layers` must be a positive int, got -1"),
        ({"num_layers": "2"}, TypeError, r"RNN: `num_layers` must be a positive int, got '2' \(str\)"),
        ({"input_size": 0}, ValueError, r"RNN: `input_size` must be a positive int, got 0"),
        (
            {"nonlinearity": "sigmoid"},
            ValueError,
            r"RNN: `nonlinearity` must be one of \('tanh', 'relu'\), got 'sigmoid'",
        ),
        ({"dropout": 1.5}, ValueError, r"RNN: `dropout` must be a number in \[0, 1\], got 1.5"),
        ({"dropout": -0.1}, ValueError, r"RNN: `dropout` must be a number in \[0, 1\], got -0.1"),
        ({"dropout": "0.5"}, TypeError, r"RNN: `dropout` must be a number in \[0, 1\], got '0.5' \(str\)"),
        ({"unroll": 0}, ValueError, r"RNN: `unroll` must be a positive int, got 0"),
    ],
)
def test_constructor_errors(face, kwargs, error, match):
    args = {"input_size": 3, "hidden_size": 5, **kwargs}
    with pytest.raises(error, match=match):
        _build(face, "RNN", **args)


def test_cell_constructor_errors(face):
    with pytest.raises(ValueError, match=r"RNNCell: `nonlinearity` must be one of \('tanh', 'relu'\), got 'gelu'"):
        _build(face, "RNNCell", 3, 5, nonlinearity="gelu")
    with pytest.raises(ValueError, match=r"RNNCell: `hidden_size` must be a positive int, got 0"):
        _build(face, "RNNCell", 3, 0)


def test_dropout_with_one_layer_warns_like_torch(face):
    with pytest.warns(
        UserWarning, match=r"non-zero dropout expects num_layers greater than 1, but got dropout=0.5 and num_layers=1"
    ):
        _build(face, "RNN", 3, 5, dropout=0.5)


@pytest.mark.parametrize(
    "x, match",
    [
        (
            jnp.zeros((2, 6, 4, 3)),
            r"RNN: expected x to be 2D \(unbatched\) or 3D \(batched\), got 4D \(x.shape=\(2, 6, 4, 3\)\)",
        ),
        (jnp.zeros((3,)), r"RNN: expected x to be 2D \(unbatched\) or 3D \(batched\), got 1D"),
        (jnp.zeros((6, 4, 7)), r"RNN: `input_size` is 3 but x has 7 features \(x.shape=\(6, 4, 7\)\)"),
        (jnp.zeros((0, 4, 3)), r"RNN: x has no time steps \(x.shape=\(0, 4, 3\)\)"),
    ],
)
def test_input_shape_errors(face, x, match):
    with pytest.raises(ValueError, match=match):
        _apply(face, _build(face, "RNN", 3, 5), x)


def test_integer_input_is_a_type_error(face):
    with pytest.raises(TypeError, match=r"RNN: `x` must have a floating dtype, got int32"):
        _apply(face, _build(face, "RNN", 3, 5), jnp.arange(72, dtype=jnp.int32).reshape(6, 4, 3))


@pytest.mark.parametrize(
    "args, kwargs, x, h0, match",
    [
        ((3, 5, 2), {}, X, jnp.zeros((1, 4, 5)), r"expected hx of shape \(2, 4, 5\), got \(1, 4, 5\)"),
        (
            (3, 5), {"bidirectional": True},
            X,
            jnp.zeros((1, 4, 5)),
            r"expected hx of shape \(2, 4, 5\), got \(1, 4, 5\)",
        ),
        ((3, 5), {}, X, jnp.zeros((1, 4, 6)), r"expected hx of shape \(1, 4, 5\), got \(1, 4, 6\)"),
        (
            (3, 5),
            {},
            X,
            jnp.zeros((1, 1, 5)),
            r"expected hx of shape \(1, 4, 5\), got \(1, 1, 5\)",
        ),  # no broadcast
        ((3, 5), {}, X, jnp.zeros((4, 5)), r"expected hx of shape \(1, 4, 5\), got \(4, 5\)"),
        (
            (3, 5), {"batch_first": True},
            X,
            jnp.zeros((1, 4, 5)),
            r"expected hx of shape \(1, 6, 5\), got \(1, 4, 5\)",
        ),
        ((3, 5), {}, X[:, 0], jnp.zeros((1, 1, 5)), r"expected hx of shape \(1, 5\), got \(1, 1, 5\)"),
    ],
)
def test_h0_shape_errors(face, args, kwargs, x, h0, match):
    with pytest.raises(ValueError, match=f"RNN: {match}"):
        _apply(face, _build(face, "RNN", *args, **kwargs), x, h0)


@pytest.mark.parametrize(
    "lengths, error, match",
    [
        (jnp.array([1.0, 2.0, 3.0, 4.0]), TypeError, r"`seq_lengths` must be integers, got dtype float"),
        ([1.0, 2.0, 3.0, 4.0], TypeError, r"`seq_lengths` must be integers, got dtype float64"),
        ([[1, 2], [3]], TypeError, r"`seq_lengths` must be an array or what numpy.asarray accepts, got list"),
        (jnp.array([1, 2, 3]), ValueError, r"expected `seq_lengths` of shape \(4,\), got shape \(3,\)"),
        (jnp.array([[1, 2, 3, 4]]), ValueError, r"expected `seq_lengths` of shape \(4,\), got shape \(1, 4\)"),
        (
            jnp.array([-1, 2, 3, 4]),
            ValueError,
            r"`seq_lengths` must lie in \[0, 6\] \(the number of time steps\), got min -1 and max 4",
        ),
        (
            jnp.array([1, 2, 7, 4]),
            ValueError,
            r"`seq_lengths` must lie in \[0, 6\] \(the number of time steps\), got min 1 and max 7",
        ),
        (np.array([1, 2, 7, 4]), ValueError, r"`seq_lengths` must lie in \[0, 6\]"),
        ([1, 2, 7, 4], ValueError, r"`seq_lengths` must lie in \[0, 6\]"),
    ],
)
def test_seq_lengths_errors(face, lengths, error, match):
    with pytest.raises(error, match=f"RNN: {match}"):
        _apply(face, _build(face, "RNN", 3, 5), X, seq_lengths=lengths)


def test_seq_lengths_with_unbatched_input_must_be_one_int(face):
    with pytest.raises(
        ValueError, match=r"RNN: expected `seq_lengths` a scalar \(one length for unbatched x\), got shape \(1,\)"
    ):
        _apply(face, _build(face, "RNN", 3, 5), X[:, 0], seq_lengths=jnp.array([3]))


def test_cell_call_errors(face):
    cell = _build(face, "RNNCell", 3, 5)
    with pytest.raises(ValueError, match=r"RNNCell: `input_size` is 3 but x has 4 features"):
        _apply(face, cell, jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"RNNCell: expected h of shape \(2, 5\), got \(1, 5\)"):
        _apply(face, cell, jnp.zeros((2, 3)), jnp.zeros((1, 5)))
    with pytest.raises(
        ValueError, match=r"RNNCell: expected x to be 1D \(unbatched\) or 2D \(batch, input_size\), got 3D"
    ):
        _apply(face, cell, jnp.zeros((1, 2, 3)))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"proj_size": 5}, ValueError, r"LSTM: `proj_size` must be smaller than `hidden_size` \(5\), got 5"),
        ({"proj_size": -1}, ValueError, r"LSTM: `proj_size` must be a non-negative int, got -1"),
        ({"proj_size": 1.0}, TypeError, r"LSTM: `proj_size` must be a non-negative int, got 1.0 \(float\)"),
        ({"num_layers": 0}, ValueError, r"LSTM: `num_layers` must be a positive int, got 0"),
    ],
)
def test_lstm_constructor_errors(face, kwargs, error, match):
    with pytest.raises(error, match=match):
        _build(face, "LSTM", 3, 5, **kwargs)


def test_gru_has_torchs_constructor_without_nonlinearity(face):
    with pytest.raises(TypeError, match="nonlinearity"):
        _build(face, "GRU", 3, 5, nonlinearity="relu")
    with pytest.raises(ValueError, match=r"GRU: `dropout` must be a number in \[0, 1\], got 2"):
        _build(face, "GRU", 3, 5, 2, True, False, 2)


@pytest.mark.parametrize(
    "hx, error, match",
    [
        (jnp.zeros((2, 4, 2)), TypeError, r"LSTM: `hx` must be a pair \(h, c\), got ArrayImpl"),
        ((jnp.zeros((2, 4, 2)),), TypeError, r"LSTM: `hx` must be a pair \(h, c\), got tuple"),
        (
            (jnp.zeros((2, 4, 5)), jnp.zeros((2, 4, 5))),
            ValueError,
            r"LSTM: expected hx\[0\] of shape \(2, 4, 2\), got \(2, 4, 5\)",
        ),
        (
            (jnp.zeros((2, 4, 2)), jnp.zeros((2, 4, 2))),
            ValueError,
            r"LSTM: expected hx\[1\] of shape \(2, 4, 5\), got \(2, 4, 2\)",
        ),
    ],
)
def test_lstm_hx_errors(face, hx, error, match):
    lstm = _build(face, "LSTM", 3, 5, num_layers=2, proj_size=2)
    with pytest.raises(error, match=match):
        _apply(face, lstm, X, hx)


@pytest.mark.parametrize(
    "check, value, error, match",
    [
        ("integer", -3, None, -3),
        ("positive_int", np.int64(4), None, 4),
        ("positive_int", 0, ValueError, r"f: `n` must be a positive int, got 0"),
        ("non_negative_int", 0, None, 0),
        ("non_negative_int", -1, ValueError, r"f: `n` must be a non-negative int, got -1"),
        ("non_negative_int", True, TypeError, r"f: `n` must be a non-negative int, got True \(bool\)"),
        ("integer", 2.0, TypeError, r"f: `n` must be an int, got 2.0 \(float\)"),
        ("positive_number", 3, None, 3.0),
        ("positive_number", float("inf"), ValueError, r"f: `n` must be a positive finite number, got inf"),
        ("non_negative_number", 0, None, 0.0),
        ("non_negative_number", "0", TypeError, r"f: `n` must be a non-negative number, got '0' \(str\)"),
        ("probability", 1, None, 1.0),
        ("open_fraction", 0.0, ValueError, r"f: `n` must be a number in \(0, 1\), got 0.0"),
    ],
)
def test_shared_checks_name_the_argument_and_return_plain_numbers(check, value, error, match):
    from jaxrnn.functional import _checks

    if error is None:
        got = getattr(_checks, check)("n", value, "f")
        assert got == match and type(got) is type(match)
    else:
        with pytest.raises(error, match=match):
            getattr(_checks, check)("n", value, "f")
