"""Seeded numpy data for the lesson's exercises, shared by the JAX and the PyTorch runs.

This module imports only numpy, so both frameworks train on the very same arrays: the sine
series of section 6 (Exercise 2), a toy sentiment set encoded as characters (Exercise 3),
and integer sequences tagged with ``element % 3`` (Exercise 5). Every generator takes a
``seed`` and draws from its own ``numpy.random.default_rng(seed)``: the same seed gives the
same arrays, and no global random state is touched.

The minibatch order of a training run is also defined here (:func:`epoch_batches`), so two
runs with the same seed visit the same examples in the same order.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .functional import _checks

__all__ = [
    "NEGATIVE_WORDS",
    "POSITIVE_WORDS",
    "VOCAB",
    "SentimentData",
    "decode",
    "encode",
    "epoch_batches",
    "generate_sentiment_data",
    "generate_sin_data",
    "generate_tagging_data",
    "one_hot",
    "split_indices",
]

VOCAB = " abcdefghijklmnopqrstuvwxyz"
"""The character vocabulary of Exercise 3: space (id 0, also the padding) then a-z (ids 1-26)."""

_CHAR_TO_ID = {c: i for i, c in enumerate(VOCAB)}

POSITIVE_WORDS = ("good", "great", "excellent", "lovely", "fun")
"""A sentence of :func:`generate_sentiment_data` is positive (label 1) iff it holds one of these."""

NEGATIVE_WORDS = ("bad", "awful", "terrible", "boring", "poor")
"""A sentence of :func:`generate_sentiment_data` is negative (label 0) iff it holds one of these."""

_SUBJECTS = (
    "the movie", "this film", "the food", "my day", "the book", "our trip",
    "the show", "that game", "the weather", "his song", "the hotel", "her talk",
)
_VERBS = ("was", "is", "seemed", "felt", "looked")
_INTENSIFIERS = ("", "really ", "very ", "so ", "quite ")
_TAILS = ("", " today", " overall", " to me", " again", " as always")


def generate_sin_data(seq_len: int = 50, n_samples: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The lesson's sine windows: predict the value that follows ``seq_len`` samples of sin.

    Each sample starts at a phase drawn from U(0, 2*pi) and samples ``seq_len + 1`` evenly
    spaced points over two periods, ``sin(linspace(start, start + 4*pi, seq_len + 1))``: the
    first ``seq_len`` are the input, the last is the target. As in the lesson, the window always
    spans two periods, so a longer ``seq_len`` samples the same curve more densely.

    Args:
      seq_len: the number of input steps.
      n_samples: the number of windows.
      seed: seeds the phases.

    Returns:
      ``(X, y)``: X float32 (n_samples, seq_len, 1), (batch, time, features); y float32 (n_samples,).

    >>> X, y = generate_sin_data(seq_len=30, n_samples=4, seed=0)
    >>> X.shape, y.shape, X.dtype
    ((4, 30, 1), (4,), dtype('float32'))
    >>> bool(np.allclose(y, np.sin(np.arcsin(y))))
    True
    """
    seq_len = _checks.positive_int("seq_len", seq_len, "generate_sin_data")
    n_samples = _checks.positive_int("n_samples", n_samples, "generate_sin_data")
    rng = np.random.default_rng(_checks.non_negative_int("seed", seed, "generate_sin_data"))
    start = rng.uniform(0.0, 2 * np.pi, size=(n_samples, 1))
    seq = np.sin(start + np.linspace(0.0, 4 * np.pi, seq_len + 1)[None, :])
    return seq[:, :-1, None].astype(np.float32), seq[:, -1].astype(np.float32)


def encode(text: str, length: int | None = None, padding: str = "right") -> np.ndarray:
    """Character ids of ``text`` in :data:`VOCAB` (space 0, a-z 1-26), padded with spaces (id 0).

    Args:
      text: lower-case letters and spaces only.
      length: pad to this many ids (None: ``len(text)``); must be at least ``len(text)``.
      padding: ``'right'`` puts the spaces after the text, ``'left'`` before it.

    Returns:
      int32 (length,).

    >>> encode("hi there", 10)
    array([ 8,  9,  0, 20,  8,  5, 18,  5,  0,  0], dtype=int32)
    >>> encode("hi", 4, padding="left")
    array([0, 0, 8, 9], dtype=int32)
    """
    if not isinstance(text, str):
        raise TypeError(f"encode: `text` must be a str, got {type(text).__name__}")
    bad = sorted({c for c in text if c not in _CHAR_TO_ID})
    if bad:
        raise ValueError(f"encode: `text` may hold only a-z and space, got {bad} in {text!r}")
    length = len(text) if length is None else _checks.positive_int("length", length, "encode")
    if length < len(text):
        raise ValueError(f"encode: `length` is {length} but `text` has {len(text)} characters")
    _checks.one_of("padding", padding, ("right", "left"), "encode")
    ids = np.zeros(length, np.int32)
    start = 0 if padding == "right" else length - len(text)
    ids[start : start + len(text)] = [_CHAR_TO_ID[c] for c in text]
    return ids


def decode(ids) -> str:
    """The text of character ids (inverse of :func:`encode`, padding on either side removed).

    >>> decode(encode("good day", 12))
    'good day'
    """
    return "".join(VOCAB[int(i)] for i in np.asarray(ids)).strip(" ")


class SentimentData(NamedTuple):
    """The toy sentiment set of Exercise 3.

    Attributes:
      sentences: the n sentences, as text.
      ids: int32 (n, max_len): character ids, padded with spaces (id 0) on the left or the right.
      lengths: int32 (n,): the length of each sentence before padding.
      labels: int32 (n,): 1 positive, 0 negative.
    """

    sentences: list[str]
    ids: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray


def generate_sentiment_data(n_samples: int = 200, seed: int = 0, padding: str = "left") -> SentimentData:
    """Distinct toy sentences, labelled by a simple word rule (the lesson's Exercise 3).

    A sentence reads ``<subject> <verb> [<intensifier>] <word>[ <tail>]``, for example "the food
    was really awful today". It holds exactly one sentiment word: positive (label 1) when that
    word is in :data:`POSITIVE_WORDS`, negative (label 0) when it is in :data:`NEGATIVE_WORDS`.
    Labels are balanced: n_samples // 2 of each (one more positive when n_samples is odd), in a
    shuffled order. The word sits at a different character position from sentence to sentence,
    so the model has to find it, not count characters.

    Sentences are padded with spaces to the longest one, on the left by default, so that a
    forward RNN's final state comes right after the last character. With padding on the right a
    short sentence ends in up to ~25 spaces, and a simple RNN forgets the sentence while it reads
    them: the lesson's bidirectional CharRNN then stays at chance accuracy for 20 epochs.

    Args:
      n_samples: the number of distinct sentences, at most 10000.
      seed: seeds the choice of words and the order.
      padding: ``'left'`` or ``'right'`` (see above).

    Returns:
      :class:`SentimentData`; ``ids`` is padded to the longest sentence.

    >>> data = generate_sentiment_data(n_samples=6, seed=0)
    >>> data.ids.shape == (6, int(data.lengths.max())), data.labels.tolist().count(1)
    (True, 3)
    >>> all((decode(i) == s) for i, s in zip(data.ids, data.sentences))
    True
    """
    n_samples = _checks.positive_int("n_samples", n_samples, "generate_sentiment_data")
    if n_samples > 10000:
        raise ValueError(f"generate_sentiment_data: `n_samples` must be at most 10000, got {n_samples}")
    _checks.one_of("padding", padding, ("right", "left"), "generate_sentiment_data")
    rng = np.random.default_rng(_checks.non_negative_int("seed", seed, "generate_sentiment_data"))
    labels = np.zeros(n_samples, np.int32)
    labels[: (n_samples + 1) // 2] = 1
    labels = rng.permutation(labels)

    def pick(options):
        return options[rng.integers(len(options))]

    seen: set[str] = set()
    sentences = []
    for label in labels:
        while True:
            word = pick(POSITIVE_WORDS if label == 1 else NEGATIVE_WORDS)
            text = f"{pick(_SUBJECTS)} {pick(_VERBS)} {pick(_INTENSIFIERS)}{word}{pick(_TAILS)}"
            if text not in seen:
                break
        seen.add(text)
        sentences.append(text)
    max_len = max(len(s) for s in sentences)
    ids = np.stack([encode(s, max_len, padding) for s in sentences])
    lengths = np.array([len(s) for s in sentences], np.int32)
    return SentimentData(sentences, ids, lengths, labels.astype(np.int32))


def generate_tagging_data(
    n_samples: int = 1000, seq_len: int = 20, num_values: int = 10, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Integer sequences and their per-element labels ``element % 3`` (the lesson's Exercise 5).

    Args:
      n_samples: the number of sequences.
      seq_len: the length of each sequence.
      num_values: elements are drawn uniformly from 0 .. num_values - 1 (at least 3).
      seed: seeds the elements.

    Returns:
      ``(tokens, labels)``, both int32 (n_samples, seq_len), labels = tokens % 3. Feed the
      tokens to an RNN as :func:`one_hot` vectors.

    >>> tokens, labels = generate_tagging_data(n_samples=2, seq_len=5, seed=0)
    >>> bool(np.all(labels == tokens % 3)), tokens.shape
    (True, (2, 5))
    """
    owner = "generate_tagging_data"
    n_samples = _checks.positive_int("n_samples", n_samples, owner)
    seq_len = _checks.positive_int("seq_len", seq_len, owner)
    num_values = _checks.positive_int("num_values", num_values, owner)
    if num_values < 3:
        raise ValueError(f"{owner}: `num_values` must be at least 3 (three classes), got {num_values}")
    rng = np.random.default_rng(_checks.non_negative_int("seed", seed, owner))
    tokens = rng.integers(0, num_values, size=(n_samples, seq_len)).astype(np.int32)
    return tokens, tokens % 3


def one_hot(ids, num_classes: int) -> np.ndarray:
    """float32 one-hot vectors: ids of shape (...) give (..., num_classes).

    >>> one_hot(np.array([[2, 0]]), 3)
    array([[[0., 0., 1.],
            [1., 0., 0.]]], dtype=float32)
    """
    num_classes = _checks.positive_int("num_classes", num_classes, "one_hot")
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"one_hot: `ids` must be integers, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        raise ValueError(f"one_hot: `ids` must lie in [0, {num_classes - 1}], got min {ids.min()} and max {ids.max()}")
    return np.eye(num_classes, dtype=np.float32)[ids]


def split_indices(n: int, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random train/test split of ``range(n)``.

    Returns ``(train_idx, test_idx)``, int arrays that together hold each index once;
    ``test_idx`` has ``round(n * test_fraction)`` entries (at least 1, at most n - 1).

    >>> train, test = split_indices(10, 0.2, seed=0)
    >>> len(train), len(test), sorted(np.concatenate([train, test]).tolist()) == list(range(10))
    (8, 2, True)
    """
    n = _checks.positive_int("n", n, "split_indices")
    if n < 2:
        raise ValueError(f"split_indices: `n` must be at least 2 to leave a train and a test example, got {n}")
    test_fraction = _checks.open_fraction("test_fraction", test_fraction, "split_indices")
    n_test = min(max(int(round(n * test_fraction)), 1), n - 1)
    order = np.random.default_rng(_checks.non_negative_int("seed", seed, "split_indices")).permutation(n)
    return order[n_test:], order[:n_test]


def epoch_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch's minibatches: ``rng.permutation(n)`` cut into chunks of ``batch_size``.

    The last batch is smaller when ``batch_size`` does not divide n (as a torch DataLoader with
    ``shuffle=True, drop_last=False``). A training run makes ``rng = default_rng(seed)`` once and
    calls this at every epoch, so the same seed gives the same order in both frameworks.

    >>> batches = epoch_batches(5, 2, np.random.default_rng(0))
    >>> [len(b) for b in batches], sorted(np.concatenate(batches).tolist())
    ([2, 2, 1], [0, 1, 2, 3, 4])
    """
    n = _checks.positive_int("n", n, "epoch_batches")
    batch_size = _checks.positive_int("batch_size", batch_size, "epoch_batches")
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]
