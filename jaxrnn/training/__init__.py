"""Training with optax: losses, clipping, the step, the loop, checkpoints and data parallelism.

One file per idea, data flowing one way: ``_loop`` (``train``, ``evaluate``, ``predict``) calls
``_step`` (the jitted step), which calls ``_inputs`` (how a pytree of inputs and the training or
evaluation mode reach the model), ``_optim`` (Adam behind torch's clipping) and ``_losses``;
``_checkpoint`` (orbax), ``_sharding`` (``jax.sharding``), ``_distributed`` (``jax.distributed``:
runs of several processes) and ``_progress`` (rich) serve the loop.
"""

from ._checkpoint import CheckpointError as CheckpointError
from ._checkpoint import load_checkpoint as load_checkpoint
from ._distributed import DistributedError as DistributedError
from ._distributed import initialize as initialize_distributed
from ._loop import History as History
from ._loop import NonFiniteError as NonFiniteError
from ._loop import TrainResult as TrainResult
from ._loop import evaluate as evaluate
from ._loop import predict as predict
from ._loop import train as train
from ._losses import accuracy as accuracy
from ._losses import cross_entropy_loss as cross_entropy_loss
from ._losses import mse_loss as mse_loss
from ._optim import clip_grad_norm as clip_grad_norm
from ._optim import global_norm as global_norm
from ._optim import make_optimizer as make_optimizer
from ._step import make_train_step as make_train_step

__all__ = [
    "CheckpointError",
    "DistributedError",
    "History",
    "NonFiniteError",
    "TrainResult",
    "accuracy",
    "clip_grad_norm",
    "cross_entropy_loss",
    "evaluate",
    "global_norm",
    "initialize_distributed",
    "load_checkpoint",
    "make_optimizer",
    "make_train_step",
    "mse_loss",
    "predict",
    "train",
]
