"""torchref: the lesson's PyTorch models, exactly as the lesson writes them. Never imports jaxrnn."""

from . import models as models

__all__ = ["models"]
