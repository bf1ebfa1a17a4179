"""The lesson's models as NNX modules: ``torchref.models``' names, constructors and attributes.

All are batch-first, as in the lesson, with submodules ``rnn``, ``fc`` (and ``embedding``) as
torch's, so ``nnx.state(model, nnx.Param)`` paths are the torch model's ``state_dict()`` keys and
``jaxrnn.nnx.from_torch(torch_model.state_dict(), model)`` loads its weights. Every model takes
``cell`` ('rnn', the lesson's, 'lstm' or 'gru') and the keyword-only ``rngs``, ``dtype`` and
``param_dtype``, passed to every layer; the maths is the linen models' (``jaxrnn.models``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from ..functional import _checks
from ..models import _hidden
from ._linear import Embedding, Linear
from ._recurrent import GRU, LSTM, RNN

Array = jax.Array

__all__ = ["CharRNN", "RNNClassifier", "RNNSeq2Seq", "SinPredictor"]

_RECURRENT = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


def _recurrent(owner: str, cell: str, *args, **kwargs) -> nnx.Module:
    """RNN, LSTM or GRU by the owner's ``cell`` name."""
    _checks.one_of("cell", cell, tuple(_RECURRENT), owner)
    return _RECURRENT[cell](*args, **kwargs)


class RNNClassifier(nnx.Module):
    """Sequence classification: ``fc(h_n[-1])``, the last layer's final state.

    x (batch, seq, input_size) -> logits (batch, num_classes).

    >>> import jax
    >>> from flax import nnx
    >>> model = RNNClassifier(10, 20, 3, num_layers=2, rngs=nnx.Rngs(0))
    >>> model(jax.random.normal(jax.random.key(1), (4, 15, 10))).shape
    (4, 3)
    """

    def __init__(self, input_size: int, hidden_size: int, num_classes: int, num_layers: int = 1, cell: str = "rnn",
                 *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.rnn = _recurrent("RNNClassifier", cell, input_size, hidden_size, num_layers=num_layers,
                              batch_first=True, **kw)
        self.fc = Linear(hidden_size, num_classes, **kw)

    def __call__(self, x: Array, *, seq_lengths: Array | None = None) -> Array:
        _, h_n = self.rnn(x, seq_lengths=seq_lengths)
        return self.fc(_hidden(h_n)[-1])


class RNNSeq2Seq(nnx.Module):
    """Many-to-many: ``fc`` applied to the output at every step.

    x (batch, seq, input_size) -> (batch, seq, output_size).

    >>> import jax
    >>> from flax import nnx
    >>> model = RNNSeq2Seq(3, 16, 3, rngs=nnx.Rngs(0))
    >>> model(jax.random.normal(jax.random.key(1), (4, 12, 3))).shape
    (4, 12, 3)
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, cell: str = "rnn", *, rngs: nnx.Rngs,
                 dtype: Any = None, param_dtype: Any = jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.rnn = _recurrent("RNNSeq2Seq", cell, input_size, hidden_size, batch_first=True, **kw)
        self.fc = Linear(hidden_size, output_size, **kw)

    def __call__(self, x: Array, *, seq_lengths: Array | None = None) -> Array:
        output, _ = self.rnn(x, seq_lengths=seq_lengths)
        return self.fc(output)


class SinPredictor(nnx.Module):
    """The lesson's sine model: RNN(1, 32) then Linear(32, 1) on the final state, squeezed.

    x (batch, seq, 1) -> (batch,) (a scalar for batch 1, as torch's ``squeeze()`` gives).

    >>> import jax
    >>> from flax import nnx
    >>> SinPredictor(rngs=nnx.Rngs(0))(jax.random.normal(jax.random.key(1), (8, 30, 1))).shape
    (8,)
    """

    def __init__(self, cell: str = "rnn", *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.rnn = _recurrent("SinPredictor", cell, 1, 32, batch_first=True, **kw)
        self.fc = Linear(32, 1, **kw)

    def __call__(self, x: Array) -> Array:
        _, h_n = self.rnn(x)
        return jnp.squeeze(self.fc(_hidden(h_n)[-1]))


class CharRNN(nnx.Module):
    """Character-level classifier: Embedding -> RNN -> Linear on the final state.

    With ``bidirectional=True`` the final forward and backward states (``h_n[-2]``, ``h_n[-1]``)
    are concatenated before the Linear (the lesson's Exercise 3). ids (batch, seq) int -> logits
    (batch, num_classes).

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> model = CharRNN(27, 32, 64, 5, rngs=nnx.Rngs(0))
    >>> model(jnp.arange(40).reshape(4, 10) % 27).shape
    (4, 5)
    """

    def __init__(self, vocab_size: int, embed_size: int, hidden_size: int, num_classes: int,
                 bidirectional: bool = False, cell: str = "rnn", *, rngs: nnx.Rngs, dtype: Any = None,
                 param_dtype: Any = jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.bidirectional = bool(bidirectional)
        self.embedding = Embedding(vocab_size, embed_size, **kw)
        self.rnn = _recurrent("CharRNN", cell, embed_size, hidden_size, batch_first=True,
                              bidirectional=bidirectional, **kw)
        self.fc = Linear(hidden_size * (2 if bidirectional else 1), num_classes, **kw)

    def __call__(self, ids: Array, *, seq_lengths: Array | None = None) -> Array:
        _, state = self.rnn(self.embedding(ids), seq_lengths=seq_lengths)
        h_n = _hidden(state)
        final = jnp.concatenate([h_n[-2], h_n[-1]], axis=-1) if self.bidirectional else h_n[-1]
        return self.fc(final)
