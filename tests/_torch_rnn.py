"""Run torch.nn.RNN the way a PyTorch user would, returning numpy results and gradients."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def torch_rnn(rnn: torch.nn.RNNBase, x, h0=None, lengths=None, out_weight=None, hn_weight=None):
    """Forward (and backward, when weights for the loss are given) of ``rnn`` on numpy inputs.

    ``rnn`` is a torch.nn.RNN, GRU or LSTM; for an LSTM, ``h0`` and ``hn_weight`` are (h, c) pairs.
    With ``lengths`` the input is packed (``enforce_sorted=False``) and the output padded back to
    the input's length. The loss is ``sum(output * out_weight) + sum(h_n * hn_weight)`` (summed
    over h and c for an LSTM). Returns a dict: output, h_n (a (h, c) pair for an LSTM), and when
    a loss is given, grads of x, h0 (a pair for an LSTM) and every parameter.
    """
    dtype = next(rnn.parameters()).dtype
    pair = isinstance(rnn, torch.nn.LSTM)

    def tensor(a, grad=False):
        return torch.tensor(a, dtype=dtype, requires_grad=grad)

    x_t = tensor(x, True)
    h0_t = None if h0 is None else (tuple(tensor(a, True) for a in h0) if pair else tensor(h0, True))
    rnn.zero_grad()
    if lengths is None:
        out, h_n = rnn(x_t, h0_t)
    else:
        packed = pack_padded_sequence(x_t, torch.as_tensor(lengths), batch_first=rnn.batch_first, enforce_sorted=False)
        out, h_n = rnn(packed, h0_t)
        out, _ = pad_packed_sequence(
            out, batch_first=rnn.batch_first, total_length=x_t.shape[1 if rnn.batch_first else 0]
        )
    h_n = tuple(h_n) if pair else (h_n,)
    result = {"output": out.detach().numpy(), "h_n": tuple(a.detach().numpy() for a in h_n)}
    if out_weight is not None:
        weights = hn_weight if pair else (hn_weight,)
        loss = (out * tensor(out_weight)).sum() + sum((a * tensor(w)).sum() for a, w in zip(h_n, weights))
        loss.backward()
        result["grad_x"] = x_t.grad.numpy()
        if h0_t is not None:
            result["grad_h0"] = tuple(a.grad.numpy() for a in h0_t) if pair else (h0_t.grad.numpy(),)
        result["grad_params"] = {k: p.grad.numpy() for k, p in rnn.named_parameters()}
    if not pair:
        result["h_n"] = result["h_n"][0]
        if "grad_h0" in result:
            result["grad_h0"] = result["grad_h0"][0]
    return result


def state_dict_numpy(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}
