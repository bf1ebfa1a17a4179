"""jaxrnn: PyTorch's recurrent layers in Flax, computing exactly what PyTorch computes.

Public API: the layers ``RNN``, ``LSTM``, ``GRU`` and their cells ``RNNCell``, ``LSTMCell``,
``GRUCell`` (torch.nn's, name for name), ``LSTMState`` (an LSTM's (h, c)), ``Linear`` and
``Embedding`` with torch's parameter layout, ``from_torch`` / ``to_torch`` for weights, the
lesson's models in ``jaxrnn.models``, its data in ``jaxrnn.data``, and optax training (``train``,
with checkpoints read back by ``load_checkpoint``).
"""

from . import data as data
from . import diagnostics as diagnostics
from . import models as models
from .linen._cells import GRUCell as GRUCell
from .linen._cells import LSTMCell as LSTMCell
from .linen._cells import LSTMState as LSTMState
from .linen._cells import RNNCell as RNNCell
from .training._checkpoint import CheckpointError as CheckpointError
from .training._checkpoint import load_checkpoint as load_checkpoint
from .interop._torch import from_torch as from_torch
from .interop._torch import to_torch as to_torch
from .linen._linear import Embedding as Embedding
from .linen._linear import Linear as Linear
from .linen._recurrent import GRU as GRU
from .linen._recurrent import LSTM as LSTM
from .linen._recurrent import RNN as RNN
from .interop._safetensors import load_torch as load_torch
from .interop._safetensors import save_torch as save_torch
from .training._train import History as History
from .training._train import NonFiniteError as NonFiniteError
from .training._train import TrainResult as TrainResult
from .training._train import accuracy as accuracy
from .training._train import clip_grad_norm as clip_grad_norm
from .training._train import cross_entropy_loss as cross_entropy_loss
from .training._train import evaluate as evaluate
from .training._train import global_norm as global_norm
from .training._train import make_optimizer as make_optimizer
from .training._train import make_train_step as make_train_step
from .training._train import mse_loss as mse_loss
from .training._train import predict as predict
from .training._train import train as train

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
    "History",
    "NonFiniteError",
    "TrainResult",
    "accuracy",
    "clip_grad_norm",
    "cross_entropy_loss",
    "data",
    "diagnostics",
    "evaluate",
    "from_torch",
    "global_norm",
    "load_checkpoint",
    "load_torch",
    "make_optimizer",
    "make_train_step",
    "models",
    "mse_loss",
    "predict",
    "save_torch",
    "to_torch",
    "train",
]
