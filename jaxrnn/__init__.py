"""jaxrnn: PyTorch's recurrent layers in Flax, computing exactly what PyTorch computes.

Public API: the core ``jaxrnn.functional`` (pure functions over torch-keyed parameters: ``rnn``,
``lstm``, ``gru``, their cells and ``init_params``) and, as linen shells over it, the layers
``RNN``, ``LSTM``, ``GRU`` and their cells ``RNNCell``, ``LSTMCell``, ``GRUCell`` (torch.nn's,
name for name), ``LSTMState`` (an LSTM's (h, c)), ``Linear`` and ``Embedding`` with torch's
parameter layout; ``from_torch`` / ``to_torch`` for weights and ``save_safetensors`` /
``load_safetensors`` for files; the lesson's models in ``jaxrnn.models``, its data in
``jaxrnn.data``, and optax training (``train``, with checkpoints read back by ``load_checkpoint``, over several
processes after ``initialize_distributed``).
The same layers and models as Flax NNX modules are in ``jaxrnn.nnx``, and torch's packed
sequences (``pack_padded_sequence``, ``pad_packed_sequence``) in ``jaxrnn.utils.rnn``.
"""

from . import data as data
from . import diagnostics as diagnostics
from . import functional as functional
from . import models as models
from . import nnx as nnx
from . import utils as utils
from .functional import LSTMState as LSTMState
from .interop import from_torch as from_torch
from .interop import load_safetensors as load_safetensors
from .interop import save_safetensors as save_safetensors
from .interop import to_torch as to_torch
from .interop._safetensors import load_torch as load_torch  # deprecated name of load_safetensors
from .interop._safetensors import save_torch as save_torch  # deprecated name of save_safetensors
from .linen import GRU as GRU
from .linen import LSTM as LSTM
from .linen import RNN as RNN
from .linen import Embedding as Embedding
from .linen import GRUCell as GRUCell
from .linen import Linear as Linear
from .linen import LSTMCell as LSTMCell
from .linen import RNNCell as RNNCell
from .training import CheckpointError as CheckpointError
from .training import DistributedError as DistributedError
from .training import History as History
from .training import NonFiniteError as NonFiniteError
from .training import TrainResult as TrainResult
from .training import accuracy as accuracy
from .training import clip_grad_norm as clip_grad_norm
from .training import cross_entropy_loss as cross_entropy_loss
from .training import evaluate as evaluate
from .training import global_norm as global_norm
from .training import initialize_distributed as initialize_distributed
from .training import load_checkpoint as load_checkpoint
from .training import make_optimizer as make_optimizer
from .training import make_train_step as make_train_step
from .training import mse_loss as mse_loss
from .training import predict as predict
from .training import train as train

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
    "CheckpointError",
    "DistributedError",
    "History",
    "NonFiniteError",
    "TrainResult",
    "accuracy",
    "clip_grad_norm",
    "cross_entropy_loss",
    "data",
    "diagnostics",
    "functional",
    "evaluate",
    "from_torch",
    "global_norm",
    "initialize_distributed",
    "load_checkpoint",
    "load_safetensors",
    "load_torch",
    "make_optimizer",
    "make_train_step",
    "models",
    "nnx",
    "utils",
    "mse_loss",
    "predict",
    "save_safetensors",
    "save_torch",
    "to_torch",
    "train",
]
