"""jaxrnn's core: PyTorch's recurrent layers as pure functions over torch-layout parameters.

No Flax object in sight: call these from plain JAX, Equinox, or any framework. ``params`` is a
flat dict keyed exactly as torch's ``state_dict()`` of the bare module (``weight_ih_l0``,
``weight_hh_l1_reverse``, ``bias_hh_l0``, ``weight_hr_l0``, ...), so a torch model's weights are
``{k: jnp.asarray(v.numpy()) for k, v in torch_lstm.state_dict().items()}`` as they are.

- ``rnn``, ``lstm``, ``gru``: torch's ``RNN``/``LSTM``/``GRU`` forward, ``(output, h_n)``
  (``(output, LSTMState(h_n, c_n))``), with unbatched input, ``batch_first``, h0,
  ``seq_lengths`` (packed semantics), bidirectional, stacked layers and dropout between layers;
  x may also be a ``jaxrnn.utils.rnn.PackedSequence`` (torch's packed input, output packed alike).
- ``rnn_cell``, ``lstm_cell``, ``gru_cell``: one step, torch's ``RNNCell``/``LSTMCell``/``GRUCell``.
- ``init_params``: a fresh params dict with torch's keys, shapes and init.
- ``time_loop``: which time loop a call runs (the native CPU kernel, the XLA loop, the scan
  reference); ``impl`` chooses (``'fused'``, the default, picks the fastest for the call).

The linen layers (``jaxrnn.RNN``, ...) are shells over these same functions.

>>> import jax, jax.numpy as jnp
>>> from jaxrnn import functional as F
>>> params = F.init_params(jax.random.key(0), "lstm", 10, 20, num_layers=2, bidirectional=True)
>>> x = jax.random.normal(jax.random.key(1), (4, 15, 10))
>>> lengths = jnp.array([15, 3, 9, 1])
>>> out, (h_n, c_n) = jax.jit(lambda p, x: F.lstm(p, x, batch_first=True, seq_lengths=lengths))(params, x)
>>> out.shape, h_n.shape, float(jnp.abs(out[1, 3:]).max())
((4, 15, 40), (4, 4, 20), 0.0)
"""

from ._api import gru as gru
from ._api import gru_cell as gru_cell
from ._api import lstm as lstm
from ._api import lstm_cell as lstm_cell
from ._api import rnn as rnn
from ._api import rnn_cell as rnn_cell
from ._api import time_loop as time_loop
from ._params import init_params as init_params
from ._specs import LSTMState as LSTMState

__all__ = ["LSTMState", "gru", "gru_cell", "init_params", "lstm", "lstm_cell", "rnn", "rnn_cell", "time_loop"]
