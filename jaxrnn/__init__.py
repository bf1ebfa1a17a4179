"""jaxrnn: PyTorch's recurrent layers in Flax, computing exactly what PyTorch computes.

Public API: the layer ``RNN`` and its cell ``RNNCell`` (``torch.nn.RNN`` / ``torch.nn.RNNCell``),
``Linear`` and ``Embedding`` with torch's parameter layout, ``from_torch`` / ``to_torch`` for
weights, and the lesson's models in ``jaxrnn.models``.
"""

from . import models as models
from ._cell import RNNCell as RNNCell
from ._interop import from_torch as from_torch
from ._interop import to_torch as to_torch
from ._linear import Embedding as Embedding
from ._linear import Linear as Linear
from ._rnn import RNN as RNN

__all__ = ["RNN", "Embedding", "Linear", "RNNCell", "from_torch", "models", "to_torch"]
