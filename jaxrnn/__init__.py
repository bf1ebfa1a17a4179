"""jaxrnn: PyTorch's recurrent layers in Flax, computing exactly what PyTorch computes.

Public API: the layers ``RNN``, ``LSTM``, ``GRU`` and their cells ``RNNCell``, ``LSTMCell``,
``GRUCell`` (torch.nn's, name for name), ``LSTMState`` (an LSTM's (h, c)), ``Linear`` and
``Embedding`` with torch's parameter layout, ``from_torch`` / ``to_torch`` for weights, the
lesson's models in ``jaxrnn.models``.
"""

from . import models as models
from ._cell import GRUCell as GRUCell
from ._cell import LSTMCell as LSTMCell
from ._cell import LSTMState as LSTMState
from ._cell import RNNCell as RNNCell
from ._interop import from_torch as from_torch
from ._interop import to_torch as to_torch
from ._linear import Embedding as Embedding
from ._linear import Linear as Linear
from ._rnn import GRU as GRU
from ._rnn import LSTM as LSTM
from ._rnn import RNN as RNN

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Embedding",
    "GRUCell",
    "LSTMCell",
    "LSTMState",
    "Linear",
    "RNNCell",
    "from_torch",
    "models",
    "to_torch",
]
