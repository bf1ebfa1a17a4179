"""Run torch.nn.RNN the way a PyTorch user would, returning numpy results and gradients; the faces
a sweep strides across; and the sweep of jaxrnn's RNN against torch.nn.RNN (configurations, paths,
the comparison)."""

from __future__ import annotations

import functools
import itertools
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import torch
from _compare import assert_close, assert_trees_close
from flax import nnx
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import jaxrnn


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


# --------------------------------------------------------------------------------------------
# The faces and how a sweep strides across them

FACES = ("linen", "functional", "nnx")


def face_of(config) -> str:
    """The face that runs ``config`` in a sweep: chosen by a hash of the configuration, so it is
    uncorrelated with every option of the product (a stride would tie it to the last option)."""
    return FACES[zlib.crc32(repr(config).encode()) % len(FACES)]


def torch_params(module: torch.nn.Module) -> dict[str, jnp.ndarray]:
    """A torch module's ``state_dict()`` as ``jaxrnn.functional``'s params, as a user writes it."""
    return {k: jnp.asarray(v.detach().numpy()) for k, v in module.state_dict().items()}


def faces_params(face: str, module: torch.nn.Module, linen_layer, nnx_layer):
    """What a face's call takes as parameters, from a torch module: torch's keys (functional), the
    variables' params (linen), the layer's ``nnx.State`` (nnx, merged with its graphdef under ``jax.jit``)."""
    if face == "functional":
        return torch_params(module)
    if face == "linen":
        return jaxrnn.from_torch(module.state_dict(), linen_layer)["params"]
    return nnx.state(jaxrnn.nnx.from_torch(module.state_dict(), nnx_layer))


# --------------------------------------------------------------------------------------------
# jaxrnn's RNN (both faces) against torch.nn.RNN: the configurations and the comparison that
# test_rnn_matches_torch.py runs

T, N, I, H = 7, 4, 3, 5  # time, batch, input and hidden sizes
LENGTHS = np.array([3, T, 1, 5])  # unsorted, with the extremes 1 and T

# (num_layers, bidirectional, nonlinearity, bias, batch_first, h0 given, seq_lengths given).
# Layers 1 and 2: a third layer is built and fed exactly as the second (input D*H, h0 rows).
BATCHED = list(itertools.product([1, 2], [False, True], ["tanh", "relu"], [True, False], [False, True],
                                 [False, True], [False, True]))
# (num_layers, bidirectional, nonlinearity, bias, h0 given): x (T, I)
UNBATCHED = list(itertools.product([1, 2], [False, True], ["tanh", "relu"], [True, False], [False, True]))


def config_id(config) -> str:
    layers, bidi, act, bias, *rest = config
    names = [f"L{layers}", "bi" if bidi else "uni", act, "bias" if bias else "nobias"]
    if len(rest) == 3:
        names += ["bf" if rest[0] else "tm", "h0" if rest[1] else "noh0", "len" if rest[2] else "full"]
    else:
        names += ["h0" if rest[0] else "noh0"]
    return "-".join(names)


def path_id(path) -> str:
    face, impl, unroll = path
    return f"{face}-{impl}" + (f"-u{unroll}" if unroll != 1 else "")


@functools.cache
def _jax_fn(config: tuple, batched: bool, path: tuple, with_h0: bool, with_lengths: bool):
    """One compiled function per configuration and path (face, impl, unroll): outputs and the
    gradients of a weighted sum. The functional face takes torch's keys, the linen face its tree, the
    NNX face its layer's state, merged with the graphdef (``nnx.split`` / ``nnx.merge`` + ``jax.jit``)."""
    layers, bidi, act, bias = config[:4]
    batch_first = config[4] if batched else False
    face, impl, unroll = path
    graphdef = nnx.graphdef(jaxrnn.nnx.RNN(I, H, layers, nonlinearity=act, bias=bias, batch_first=batch_first,
                                           bidirectional=bidi, unroll=unroll, impl=impl, rngs=nnx.Rngs(0)))

    def forward(params, x, h0, lengths):
        if face == "functional":
            return jaxrnn.functional.rnn(params, x, h0, nonlinearity=act, batch_first=batch_first, seq_lengths=lengths,
                                         impl=impl, unroll=unroll)
        if face == "nnx":
            return nnx.merge(graphdef, params)(x, h0, seq_lengths=lengths)
        layer = jaxrnn.RNN(I, H, layers, nonlinearity=act, bias=bias, batch_first=batch_first, bidirectional=bidi,
                           unroll=unroll, impl=impl)
        return layer.apply({"params": params}, x, h0, seq_lengths=lengths)

    def loss(params, x, h0, lengths, out_w, hn_w):
        out, h_n = forward(params, x, h0 if with_h0 else None, lengths if with_lengths else None)
        return jnp.sum(out * out_w) + jnp.sum(h_n * hn_w), (out, h_n)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))


def compare_rnn_with_torch(config: tuple, batched: bool, dtype: str, path: tuple) -> None:
    """torch.nn.RNN with ``config`` against jaxrnn on ``path`` = (face, impl, unroll), loaded with
    the same weights: output, h_n and the gradients of x, h0 and every parameter, within
    ``TOL[dtype]``. The data are seeded by the configuration alone, so every path sees the same numbers."""
    if batched:
        layers, bidi, act, bias, batch_first, with_h0, with_lengths = config
    else:
        layers, bidi, act, bias, with_h0 = config
        batch_first, with_lengths = False, False
    seed = zlib.crc32(repr(config).encode())
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    rnn_t = torch.nn.RNN(I, H, layers, nonlinearity=act, bias=bias, batch_first=batch_first, bidirectional=bidi)
    rnn_t = rnn_t.to(getattr(torch, dtype))
    directions = 2 if bidi else 1
    if batched:
        x = rng.standard_normal((N, T, I) if batch_first else (T, N, I)).astype(dtype)
        h0 = rng.standard_normal((layers * directions, N, H)).astype(dtype)
    else:
        x = rng.standard_normal((T, I)).astype(dtype)
        h0 = rng.standard_normal((layers * directions, H)).astype(dtype)
    lengths = LENGTHS if with_lengths else None
    out_w = rng.standard_normal(x.shape[:-1] + (directions * H,)).astype(dtype)
    hn_w = rng.standard_normal(h0.shape).astype(dtype)
    expected = torch_rnn(rnn_t, x, h0 if with_h0 else None, lengths, out_w, hn_w)

    kw = dict(nonlinearity=act, bias=bias, batch_first=batch_first, bidirectional=bidi)
    params = faces_params(path[0], rnn_t, jaxrnn.RNN(I, H, layers, **kw),
                          jaxrnn.nnx.RNN(I, H, layers, **kw, rngs=nnx.Rngs(0)))
    fn = _jax_fn(config[:5] if batched else config[:4], batched, path, with_h0, with_lengths)
    (_, (out, h_n)), (g_params, g_x, g_h0) = fn(
        params, x, h0, None if lengths is None else jnp.asarray(lengths), out_w, hn_w
    )
    assert out.dtype == np.dtype(dtype)
    assert_close(out, expected["output"], dtype, "output")
    assert_close(h_n, expected["h_n"], dtype, "h_n")
    assert_close(g_x, expected["grad_x"], dtype, "grad x")
    if with_h0:
        assert_close(g_h0, expected["grad_h0"], dtype, "grad h0")
    else:
        assert not np.any(np.asarray(g_h0)), "h0 that is not passed must get no gradient"
    grads = {"functional": lambda g: g, "linen": jaxrnn.to_torch, "nnx": jaxrnn.nnx.to_torch}[path[0]](g_params)
    assert_trees_close(grads, expected["grad_params"], dtype, "grad params")
