"""jaxrnn's layers as Flax NNX modules: torch's constructors, calls and parameter names.

``RNN``, ``LSTM``, ``GRU``, their cells ``RNNCell``, ``LSTMCell``, ``GRUCell``, ``Linear``,
``Embedding`` and the lesson's models (``jaxrnn.nnx.models``) are thin NNX shells over the same
core as the linen layers (``jaxrnn.functional``): the same values, shapes and error messages.
Each is built eagerly with torch's arguments plus the keyword-only ``rngs``, holds its parameters
as ``nnx.Param`` attributes named as torch's (``lstm.weight_ih_l0``), starts in train mode, and
switches dropout with ``model.eval()`` / ``model.train()``. ``from_torch`` loads a torch
``state_dict()`` in place; ``to_torch`` gives one back (from a module, or from the gradient
``nnx.State`` that ``nnx.grad`` returns).

>>> import jax, optax
>>> from flax import nnx
>>> import jaxrnn
>>> model = jaxrnn.nnx.LSTM(10, 20, num_layers=2, batch_first=True, rngs=nnx.Rngs(0))
>>> optimizer = nnx.Optimizer(model, optax.chain(jaxrnn.clip_grad_norm(1.0), optax.adam(1e-3)), wrt=nnx.Param)
>>> x, y = jax.random.normal(jax.random.key(1), (4, 15, 10)), jax.random.normal(jax.random.key(2), (4, 15, 20))
>>> @nnx.jit
... def step(model, optimizer, x, y):
...     loss, grads = nnx.value_and_grad(lambda m: ((m(x)[0] - y) ** 2).mean())(model)
...     optimizer.update(model, grads)
...     return loss
>>> bool(step(model, optimizer, x, y) > 0), sorted(jaxrnn.nnx.to_torch(model))[:2]
(True, ['bias_hh_l0', 'bias_hh_l1'])
"""

from . import models as models
from ._cells import GRUCell as GRUCell
from ._cells import LSTMCell as LSTMCell
from ._cells import RNNCell as RNNCell
from ._interop import from_torch as from_torch
from ._interop import to_torch as to_torch
from ._linear import Embedding as Embedding
from ._linear import Linear as Linear
from ._recurrent import GRU as GRU
from ._recurrent import LSTM as LSTM
from ._recurrent import RNN as RNN

__all__ = ["GRU", "LSTM", "RNN", "Embedding", "GRUCell", "LSTMCell", "Linear", "RNNCell", "from_torch", "models",
           "to_torch"]
