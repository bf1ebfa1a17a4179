"""The Flax linen face: torch.nn's recurrent layers, cells, Linear and Embedding as linen modules.

Each module declares torch's parameters and calls the core (``jaxrnn.functional``); the same
names are re-exported at the top level (``jaxrnn.RNN`` is ``jaxrnn.linen.RNN``).
"""

from ._cells import GRUCell as GRUCell
from ._cells import LSTMCell as LSTMCell
from ._cells import RNNCell as RNNCell
from ._linear import Embedding as Embedding
from ._linear import Linear as Linear
from ._recurrent import GRU as GRU
from ._recurrent import LSTM as LSTM
from ._recurrent import RNN as RNN

__all__ = ["GRU", "LSTM", "RNN", "Embedding", "GRUCell", "LSTMCell", "Linear", "RNNCell"]
