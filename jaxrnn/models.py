"""The lesson's models in Flax: same names, signatures and parameter names as ``torchref.models``.

All are batch-first, as in the lesson. ``jaxrnn.from_torch(torch_model.state_dict(), model)``
gives the variables that make each compute what its PyTorch twin computes. Every model takes
``cell`` ('rnn', the lesson's, 'lstm' or 'gru'; an LSTM's final state is its h_n) and the
keyword extras ``dtype`` (computation) and ``param_dtype`` (parameters), passed to every layer.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from .functional import LSTMState, _checks
from .linen import GRU, LSTM, RNN, Embedding, Linear

Array = jax.Array

__all__ = ["CharRNN", "RNNClassifier", "RNNSeq2Seq", "SinPredictor"]

_RECURRENT = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


def _recurrent(owner: nn.Module, *args, **kwargs) -> nn.Module:
    """RNN, LSTM or GRU by the owner's ``cell`` name."""
    _checks.one_of("cell", owner.cell, tuple(_RECURRENT), type(owner).__name__)
    return _RECURRENT[owner.cell](*args, dtype=owner.dtype, param_dtype=owner.param_dtype, **kwargs)


def _hidden(state) -> Array:
    """h_n of an RNN/GRU; h_n of an LSTM's LSTMState(h_n, c_n)."""
    return state.h if isinstance(state, LSTMState) else state


class RNNClassifier(nn.Module):
    """Sequence classification: ``fc(h_n[-1])``, the last layer's final state.

    x (batch, seq, input_size) -> logits (batch, num_classes).

    >>> import jax
    >>> model = RNNClassifier(input_size=10, hidden_size=20, num_classes=3, num_layers=2)
    >>> x = jax.random.normal(jax.random.key(0), (4, 15, 10))
    >>> model.apply(model.init(jax.random.key(1), x), x).shape
    (4, 3)
    """

    input_size: int
    hidden_size: int
    num_classes: int
    num_layers: int = 1
    cell: str = "rnn"
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def setup(self):
        self.rnn = _recurrent(self, self.input_size, self.hidden_size, num_layers=self.num_layers, batch_first=True)
        self.fc = Linear(self.hidden_size, self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype)

    def _example_input(self) -> Array:
        return jnp.zeros((1, 1, self.input_size))

    def __call__(self, x: Array, *, seq_lengths: Array | None = None) -> Array:
        _, h_n = self.rnn(x, seq_lengths=seq_lengths)
        return self.fc(_hidden(h_n)[-1])


class RNNSeq2Seq(nn.Module):
    """Many-to-many: ``fc`` applied to the output at every step.

    x (batch, seq, input_size) -> (batch, seq, output_size).

    >>> import jax
    >>> model = RNNSeq2Seq(input_size=3, hidden_size=16, output_size=3)
    >>> x = jax.random.normal(jax.random.key(0), (4, 12, 3))
    >>> model.apply(model.init(jax.random.key(1), x), x).shape
    (4, 12, 3)
    """

    input_size: int
    hidden_size: int
    output_size: int
    cell: str = "rnn"
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def setup(self):
        self.rnn = _recurrent(self, self.input_size, self.hidden_size, batch_first=True)
        self.fc = Linear(self.hidden_size, self.output_size, dtype=self.dtype, param_dtype=self.param_dtype)

    def _example_input(self) -> Array:
        return jnp.zeros((1, 1, self.input_size))

    def __call__(self, x: Array, *, seq_lengths: Array | None = None) -> Array:
        output, _ = self.rnn(x, seq_lengths=seq_lengths)
        return self.fc(output)


class SinPredictor(nn.Module):
    """The lesson's sine model: RNN(1, 32) then Linear(32, 1) on the final state, squeezed.

    x (batch, seq, 1) -> (batch,) (a scalar for batch 1, as torch's ``squeeze()`` gives).

    >>> import jax
    >>> model = SinPredictor()
    >>> x = jax.random.normal(jax.random.key(0), (8, 30, 1))
    >>> model.apply(model.init(jax.random.key(1), x), x).shape
    (8,)
    """

    cell: str = "rnn"
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def setup(self):
        self.rnn = _recurrent(self, 1, 32, batch_first=True)
        self.fc = Linear(32, 1, dtype=self.dtype, param_dtype=self.param_dtype)

    def _example_input(self) -> Array:
        return jnp.zeros((1, 1, 1))

    def __call__(self, x: Array) -> Array:
        _, h_n = self.rnn(x)
        return jnp.squeeze(self.fc(_hidden(h_n)[-1]))


class CharRNN(nn.Module):
    """Character-level classifier: Embedding -> RNN -> Linear on the final state.

    With ``bidirectional=True`` the final forward and backward states (``h_n[-2]``, ``h_n[-1]``)
    are concatenated before the Linear (the lesson's Exercise 3), so ``fc`` takes 2*hidden_size.
    ids (batch, seq) int -> logits (batch, num_classes).

    >>> import jax, jax.numpy as jnp
    >>> model = CharRNN(vocab_size=27, embed_size=32, hidden_size=64, num_classes=5)
    >>> ids = jnp.arange(40).reshape(4, 10) % 27
    >>> model.apply(model.init(jax.random.key(0), ids), ids).shape
    (4, 5)
    """

    vocab_size: int
    embed_size: int
    hidden_size: int
    num_classes: int
    bidirectional: bool = False
    cell: str = "rnn"
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def setup(self):
        self.embedding = Embedding(self.vocab_size, self.embed_size, dtype=self.dtype, param_dtype=self.param_dtype)
        self.rnn = _recurrent(
            self, self.embed_size, self.hidden_size, batch_first=True, bidirectional=self.bidirectional
        )
        self.fc = Linear(
            self.hidden_size * (2 if self.bidirectional else 1),
            self.num_classes,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )

    def _example_input(self) -> Array:
        return jnp.zeros((1, 1), jnp.int32)

    def __call__(self, ids: Array, *, seq_lengths: Array | None = None) -> Array:
        _, state = self.rnn(self.embedding(ids), seq_lengths=seq_lengths)
        h_n = _hidden(state)
        final = jnp.concatenate([h_n[-2], h_n[-1]], axis=-1) if self.bidirectional else h_n[-1]
        return self.fc(final)
