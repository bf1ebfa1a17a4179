"""Bad input: a ValueError/TypeError naming the argument, expected vs got, before any computation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn

X = jax.random.normal(jax.random.key(0), (6, 4, 3))  # (T, N, I)


def _apply(layer, x, *args, **kwargs):
    variables = layer.init(jax.random.key(1), jnp.zeros((2, 1, layer.input_size)))
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
def test_constructor_errors(kwargs, error, match):
    args = {"input_size": 3, "hidden_size": 5, **kwargs}
    with pytest.raises(error, match=match):
        jaxrnn.RNN(**args)


def test_cell_constructor_errors():
    with pytest.raises(ValueError, match=r"RNNCell: `nonlinearity` must be one of \('tanh', 'relu'\), got 'gelu'"):
        jaxrnn.RNNCell(3, 5, nonlinearity="gelu")
    with pytest.raises(ValueError, match=r"RNNCell: `hidden_size` must be a positive int, got 0"):
        jaxrnn.RNNCell(3, 0)


def test_dropout_with_one_layer_warns_like_torch():
    with pytest.warns(
        UserWarning, match=r"non-zero dropout expects num_layers greater than 1, but got dropout=0.5 and num_layers=1"
    ):
        jaxrnn.RNN(3, 5, dropout=0.5)


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
def test_input_shape_errors(x, match):
    with pytest.raises(ValueError, match=match):
        _apply(jaxrnn.RNN(3, 5), x)


def test_integer_input_is_a_type_error():
    with pytest.raises(TypeError, match=r"RNN: `x` must have a floating dtype, got int32"):
        _apply(jaxrnn.RNN(3, 5), jnp.arange(72, dtype=jnp.int32).reshape(6, 4, 3))


@pytest.mark.parametrize(
    "layer, x, h0, match",
    [
        (jaxrnn.RNN(3, 5, 2), X, jnp.zeros((1, 4, 5)), r"expected hx of shape \(2, 4, 5\), got \(1, 4, 5\)"),
        (
            jaxrnn.RNN(3, 5, bidirectional=True),
            X,
            jnp.zeros((1, 4, 5)),
            r"expected hx of shape \(2, 4, 5\), got \(1, 4, 5\)",
        ),
        (jaxrnn.RNN(3, 5), X, jnp.zeros((1, 4, 6)), r"expected hx of shape \(1, 4, 5\), got \(1, 4, 6\)"),
        (
            jaxrnn.RNN(3, 5),
            X,
            jnp.zeros((1, 1, 5)),
            r"expected hx of shape \(1, 4, 5\), got \(1, 1, 5\)",
        ),  # no broadcast
        (jaxrnn.RNN(3, 5), X, jnp.zeros((4, 5)), r"expected hx of shape \(1, 4, 5\), got \(4, 5\)"),
        (
            jaxrnn.RNN(3, 5, batch_first=True),
            X,
            jnp.zeros((1, 4, 5)),
            r"expected hx of shape \(1, 6, 5\), got \(1, 4, 5\)",
        ),
        (jaxrnn.RNN(3, 5), X[:, 0], jnp.zeros((1, 1, 5)), r"expected hx of shape \(1, 5\), got \(1, 1, 5\)"),
    ],
)
def test_h0_shape_errors(layer, x, h0, match):
    with pytest.raises(ValueError, match=f"RNN: {match}"):
        _apply(layer, x, h0)


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
def test_seq_lengths_errors(lengths, error, match):
    with pytest.raises(error, match=f"RNN: {match}"):
        _apply(jaxrnn.RNN(3, 5), X, seq_lengths=lengths)


def test_seq_lengths_with_unbatched_input_must_be_one_int():
    with pytest.raises(
        ValueError, match=r"RNN: expected `seq_lengths` a scalar \(one length for unbatched x\), got shape \(1,\)"
    ):
        _apply(jaxrnn.RNN(3, 5), X[:, 0], seq_lengths=jnp.array([3]))


def test_cell_call_errors():
    cell = jaxrnn.RNNCell(3, 5)
    variables = cell.init(jax.random.key(0), jnp.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"RNNCell: `input_size` is 3 but x has 4 features"):
        cell.apply(variables, jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"RNNCell: expected h of shape \(2, 5\), got \(1, 5\)"):
        cell.apply(variables, jnp.zeros((2, 3)), jnp.zeros((1, 5)))
    with pytest.raises(
        ValueError, match=r"RNNCell: expected x to be 1D \(unbatched\) or 2D \(batch, input_size\), got 3D"
    ):
        cell.apply(variables, jnp.zeros((1, 2, 3)))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"proj_size": 5}, ValueError, r"LSTM: `proj_size` must be smaller than `hidden_size` \(5\), got 5"),
        ({"proj_size": -1}, ValueError, r"LSTM: `proj_size` must be a non-negative int, got -1"),
        ({"proj_size": 1.0}, TypeError, r"LSTM: `proj_size` must be a non-negative int, got 1.0 \(float\)"),
        ({"num_layers": 0}, ValueError, r"LSTM: `num_layers` must be a positive int, got 0"),
    ],
)
def test_lstm_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        jaxrnn.LSTM(3, 5, **kwargs)


def test_gru_has_torchs_constructor_without_nonlinearity():
    with pytest.raises(TypeError, match="nonlinearity"):
        jaxrnn.GRU(3, 5, nonlinearity="relu")
    with pytest.raises(ValueError, match=r"GRU: `dropout` must be a number in \[0, 1\], got 2"):
        jaxrnn.GRU(3, 5, 2, True, False, 2)


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
def test_lstm_hx_errors(hx, error, match):
    lstm = jaxrnn.LSTM(3, 5, num_layers=2, proj_size=2)
    with pytest.raises(error, match=match):
        _apply(lstm, X, hx)


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
