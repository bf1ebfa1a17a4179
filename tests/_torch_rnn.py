"""Run torch.nn.RNN the way a PyTorch user would, returning numpy results and gradients."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def torch_rnn(rnn: torch.nn.RNN, x, h0=None, lengths=None, out_weight=None, hn_weight=None):
    """Forward (and backward, when weights for the loss are given) of ``rnn`` on numpy inputs.

    With ``lengths`` the input is packed (``enforce_sorted=False``) and the output padded back to
    the input's length. The loss is ``sum(output * out_weight) + sum(h_n * hn_weight)``.
    Returns a dict: output, h_n, and when a loss is given, grads of x, h0 and every parameter.
    """
    dtype = next(rnn.parameters()).dtype
    x_t = torch.tensor(x, dtype=dtype, requires_grad=True)
    h0_t = None if h0 is None else torch.tensor(h0, dtype=dtype, requires_grad=True)
    rnn.zero_grad()
    if lengths is None:
        out, h_n = rnn(x_t, h0_t)
    else:
        packed = pack_padded_sequence(x_t, torch.as_tensor(lengths), batch_first=rnn.batch_first, enforce_sorted=False)
        out, h_n = rnn(packed, h0_t)
        out, _ = pad_packed_sequence(out, batch_first=rnn.batch_first, total_length=x_t.shape[1 if rnn.batch_first else 0])
    result = {"output": out.detach().numpy(), "h_n": h_n.detach().numpy()}
    if out_weight is not None:
        loss = (out * torch.tensor(out_weight, dtype=dtype)).sum() + (h_n * torch.tensor(hn_weight, dtype=dtype)).sum()
        loss.backward()
        result["grad_x"] = x_t.grad.numpy()
        result["grad_h0"] = None if h0_t is None else h0_t.grad.numpy()
        result["grad_params"] = {k: p.grad.numpy() for k, p in rnn.named_parameters()}
    return result


def state_dict_numpy(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}
