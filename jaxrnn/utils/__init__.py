"""Helpers with torch's names: ``jaxrnn.utils.rnn`` is ``torch.nn.utils.rnn`` (packed sequences)."""

from . import rnn as rnn

__all__ = ["rnn"]
