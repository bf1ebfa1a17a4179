"""jaxrnn.data: the generators follow their stated rules, are seeded, and refuse bad arguments."""

from __future__ import annotations

import re

import numpy as np
import pytest

from jaxrnn import data


@pytest.mark.parametrize("seq_len", [1, 7, 30])
def test_sin_data_is_a_sine_sampled_over_two_periods(seq_len):
    """Evenly spaced samples of sin obey sin(a + 2d) = 2 cos(d) sin(a + d) - sin(a), d = 4 pi / seq_len;
    the target is the next sample of the same recurrence."""
    x, y = data.generate_sin_data(seq_len, 50, seed=3)
    assert x.shape == (50, seq_len, 1) and y.shape == (50,) and x.dtype == y.dtype == np.float32
    seq = np.concatenate([x[..., 0], y[:, None]], axis=1).astype(np.float64)
    d = 4 * np.pi / seq_len
    # the window spans two periods: the first and the (seq_len+1)-th sample are equal
    np.testing.assert_allclose(seq[:, 0], seq[:, -1], atol=1e-6)
    if seq.shape[1] >= 3:
        np.testing.assert_allclose(seq[:, 2:], 2 * np.cos(d) * seq[:, 1:-1] - seq[:, :-2], atol=1e-5)
    # the phases are spread over the circle: starting values cover [-1, 1]
    assert seq[:, 0].min() < -0.8 and seq[:, 0].max() > 0.8


def test_generators_are_seeded():
    for make in (lambda s: data.generate_sin_data(5, 10, seed=s),
                 lambda s: data.generate_tagging_data(10, 5, seed=s),
                 lambda s: data.generate_sentiment_data(20, seed=s)[1:]):
        a, b, c = make(0), make(0), make(1)
        for u, v, w in zip(a, b, c):
            np.testing.assert_array_equal(u, v)
        assert any(not np.array_equal(u, w) for u, w in zip(a, c))


def test_sentiment_labels_follow_the_word_rule():
    ds = data.generate_sentiment_data(200, seed=0)
    assert len(ds.sentences) == len(set(ds.sentences)) == 200
    assert ds.ids.shape == (200, max(map(len, ds.sentences))) and ds.ids.dtype == np.int32
    assert ds.labels.sum() == 100  # balanced
    for sentence, label, length, ids in zip(ds.sentences, ds.labels, ds.lengths, ds.ids):
        words = sentence.split()
        positive = [w for w in words if w in data.POSITIVE_WORDS]
        negative = [w for w in words if w in data.NEGATIVE_WORDS]
        assert len(positive) + len(negative) == 1, sentence
        assert label == (1 if positive else 0), sentence
        assert re.fullmatch("[a-z ]+", sentence) and length == len(sentence)
        # left padding: spaces first, then the sentence
        assert np.all(ids[: len(ids) - length] == 0)
        assert data.decode(ids) == sentence
    # the sentiment word is not always at the same place
    positions = {s.index(next(w for w in s.split() if w in data.POSITIVE_WORDS + data.NEGATIVE_WORDS))
                 for s in ds.sentences}
    assert len(positions) > 5


def test_sentiment_right_padding():
    ds = data.generate_sentiment_data(10, seed=0, padding="right")
    for ids, length in zip(ds.ids, ds.lengths):
        assert np.all(ids[length:] == 0) and ids[0] != 0


def test_encode_uses_a_space_then_a_to_z():
    assert data.VOCAB == " " + "".join(chr(c) for c in range(ord("a"), ord("z") + 1))
    np.testing.assert_array_equal(data.encode("az b"), [1, 26, 0, 2])
    np.testing.assert_array_equal(data.encode("ab", 4, padding="left"), [0, 0, 1, 2])
    assert data.decode(data.encode("hello world", 15)) == "hello world"


def test_tagging_labels_are_element_mod_3():
    tokens, labels = data.generate_tagging_data(300, 11, num_values=7, seed=2)
    assert tokens.shape == labels.shape == (300, 11)
    np.testing.assert_array_equal(labels, tokens % 3)
    assert set(np.unique(tokens)) == set(range(7))


def test_one_hot():
    ids = np.array([[2, 0], [1, 2]])
    out = data.one_hot(ids, 3)
    assert out.shape == (2, 2, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out.argmax(-1), ids)
    np.testing.assert_array_equal(out.sum(-1), np.ones((2, 2)))


def test_split_indices_is_a_partition():
    train, test = data.split_indices(200, 0.2, seed=4)
    assert len(train) == 160 and len(test) == 40
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(200))
    assert not np.array_equal(test, np.arange(40))  # shuffled


def test_epoch_batches_cover_every_example_once():
    rng = np.random.default_rng(0)
    first = data.epoch_batches(10, 4, rng)
    second = data.epoch_batches(10, 4, rng)
    assert [len(b) for b in first] == [4, 4, 2]
    for batches in (first, second):
        np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(10))
    assert not np.array_equal(np.concatenate(first), np.concatenate(second))  # a new order every epoch


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: data.generate_sin_data(0), ValueError, "generate_sin_data: `seq_len` must be a positive int, got 0"),
        (lambda: data.generate_sin_data(5, 2.5), TypeError, r"`n_samples` must be a positive int, got 2.5 \(float\)"),
        (lambda: data.generate_sin_data(5, 5, seed=-1), ValueError,
         "generate_sin_data: `seed` must be a non-negative int, got -1"),
        (lambda: data.generate_sin_data(5, 5, seed=1.0), TypeError,
         r"`seed` must be a non-negative int, got 1.0 \(float\)"),
        (lambda: data.generate_tagging_data(10, 5, seed=-2), ValueError,
         "generate_tagging_data: `seed` must be a non-negative int, got -2"),
        (lambda: data.generate_sentiment_data(10, seed=-3), ValueError, "`seed` must be a non-negative int, got -3"),
        (lambda: data.split_indices(10, seed=np.int64(-4)), ValueError, "`seed` must be a non-negative int, got -4"),
        (lambda: data.split_indices(10, seed="0"), TypeError, r"`seed` must be a non-negative int, got '0' \(str\)"),
        (lambda: data.generate_sentiment_data(20000), ValueError, "`n_samples` must be at most 10000, got 20000"),
        (lambda: data.generate_sentiment_data(10, padding="both"), ValueError,
         r"generate_sentiment_data: `padding` must be one of \('right', 'left'\), got 'both'"),
        (lambda: data.generate_tagging_data(10, 5, num_values=2), ValueError,
         "`num_values` must be at least 3 .*, got 2"),
        (lambda: data.encode("Hi!"), ValueError, r"only a-z and space, got \['!', 'H'\]"),
        (lambda: data.encode("hello", 3), ValueError, "`length` is 3 but `text` has 5 characters"),
        (lambda: data.encode(5), TypeError, "`text` must be a str, got int"),
        (lambda: data.one_hot(np.array([0, 3]), 3), ValueError, r"`ids` must lie in \[0, 2\], got min 0 and max 3"),
        (lambda: data.one_hot(np.array([0.0]), 3), TypeError, "`ids` must be integers, got dtype float64"),
        (lambda: data.encode("hi", padding="center"), ValueError,
         r"encode: `padding` must be one of \('right', 'left'\), got 'center'"),
        (lambda: data.split_indices(10, 1.0), ValueError, r"`test_fraction` must be a number in \(0, 1\), got 1.0"),
        (lambda: data.split_indices(10, True), TypeError,
         r"`test_fraction` must be a number in \(0, 1\), got True \(bool\)"),
        (lambda: data.split_indices(1), ValueError, "`n` must be at least 2"),
        (lambda: data.epoch_batches(5, 0, np.random.default_rng(0)), ValueError,
         "`batch_size` must be a positive int, got 0"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()
