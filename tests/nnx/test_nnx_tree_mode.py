"""The NNX layers under Flax's planned tree mode (``nnx.set_graph_mode(False)``, the default of
``docs_nnx/flip/5310-tree-mode-nnx.md``): built, called, trained with ``nnx.Optimizer`` under
``nnx.jit``, split and merged, on both impls, with torch's results (float64, 1e-10)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from _compare import assert_close, assert_trees_close
from flax import nnx

import jaxrnn


@pytest.mark.parametrize("impl", ["fused", "scan"])
def test_tree_mode_lstm_trains_as_torch(impl):
    torch.manual_seed(0)
    lstm_t = torch.nn.LSTM(3, 5, 2, batch_first=True, bidirectional=True).double()
    x = np.random.default_rng(1).standard_normal((4, 6, 3))
    lengths = np.array([6, 2, 5, 1])
    opt_t = torch.optim.Adam(lstm_t.parameters(), lr=1e-2)
    losses_t = []
    for _ in range(2):
        opt_t.zero_grad()
        packed = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), batch_first=True,
                                                         enforce_sorted=False)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(lstm_t(packed)[0], batch_first=True, total_length=6)
        loss = (out ** 2).sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lstm_t.parameters(), 1.0)
        opt_t.step()
        losses_t.append(loss.item())

    with nnx.set_graph_mode(False):
        torch.manual_seed(0)
        start = torch.nn.LSTM(3, 5, 2, batch_first=True, bidirectional=True).double()
        model = jaxrnn.nnx.from_torch(start.state_dict(), jaxrnn.nnx.LSTM(
            3, 5, 2, batch_first=True, bidirectional=True, impl=impl, rngs=nnx.Rngs(0)))
        optimizer = nnx.Optimizer(model, optax.chain(jaxrnn.clip_grad_norm(1.0), optax.adam(1e-2)), wrt=nnx.Param)

        @nnx.jit
        def step(model, optimizer, x):
            loss, grads = nnx.value_and_grad(lambda m: jnp.sum(m(x, seq_lengths=lengths)[0] ** 2))(model)
            optimizer.update(model, grads)
            return loss

        losses = [float(step(model, optimizer, x)) for _ in range(2)]
        graphdef, state = nnx.split(model)
        merged = nnx.merge(graphdef, state)
        np.testing.assert_array_equal(merged(x)[0], model(x)[0])
    assert_close(losses, losses_t, what="losses")
    assert_trees_close(jaxrnn.nnx.to_torch(model), {k: v.numpy() for k, v in lstm_t.state_dict().items()},
                       what="parameters after 2 steps")


def test_tree_mode_dropout_takes_a_key_at_call_time():
    """Tree mode cannot advance the module's stream inside a transform; a key at call time draws
    the masks instead: the same key, the same masks; eval mode, none."""
    x = jnp.asarray(np.random.default_rng(2).standard_normal((6, 4, 3)))
    with nnx.set_graph_mode(False):
        gru = jaxrnn.nnx.GRU(3, 5, 3, dropout=0.5, rngs=nnx.Rngs(0))
        first = jax.jit(lambda x, key: gru(x, rngs=key)[0])(x, jax.random.key(1))
        again = gru(x, rngs=jax.random.key(1))[0]
        other = gru(x, rngs=jax.random.key(2))[0]
        gru.eval()
        plain = gru(x)[0]
    np.testing.assert_allclose(first, again, rtol=1e-12)
    assert not np.allclose(first, other) and not np.allclose(first, plain)
