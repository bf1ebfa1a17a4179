"""from_torch / to_torch: torch state dicts and Flax variables are the same numbers under other names."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from _torch_rnn import state_dict_numpy

import jaxrnn


def test_rnn_state_dict_roundtrip_through_torch_is_identical():
    rnn = jaxrnn.RNN(3, 5, num_layers=2, bidirectional=True)
    variables = rnn.init(jax.random.key(0), jax.random.normal(jax.random.key(1), (4, 2, 3)))
    rnn_t = torch.nn.RNN(3, 5, num_layers=2, bidirectional=True)
    rnn_t.load_state_dict({k: torch.from_numpy(v) for k, v in jaxrnn.to_torch(variables).items()})
    back = jaxrnn.from_torch(rnn_t.state_dict(), rnn)
    assert jax.tree.structure(back) == jax.tree.structure(variables)
    jax.tree.map(np.testing.assert_array_equal, back, variables)


def test_to_torch_keys_and_shapes_are_torchs():
    rnn_t = torch.nn.RNN(3, 5, num_layers=3, bidirectional=True, bias=True)
    rnn = jaxrnn.RNN(3, 5, num_layers=3, bidirectional=True)
    exported = jaxrnn.to_torch(rnn.init(jax.random.key(0), jnp.zeros((2, 1, 3))))
    assert {k: v.shape for k, v in exported.items()} == {k: tuple(v.shape) for k, v in rnn_t.state_dict().items()}


def test_from_torch_takes_numpy_arrays():
    rnn_t = torch.nn.RNN(2, 3)
    numpy_sd = state_dict_numpy(rnn_t)
    variables = jaxrnn.from_torch(numpy_sd, jaxrnn.RNN(2, 3))
    np.testing.assert_array_equal(variables["params"]["l0"]["weight_hh"], numpy_sd["weight_hh_l0"])


def test_from_torch_names_unknown_key():
    sd = state_dict_numpy(torch.nn.RNN(2, 3))
    sd["weight_ih_l1"] = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match=r"does not fit RNN:\n  unexpected key\(s\): \['weight_ih_l1'\]$"):
        jaxrnn.from_torch(sd, jaxrnn.RNN(2, 3))


def test_from_torch_names_missing_key():
    sd = state_dict_numpy(torch.nn.RNN(2, 3, bidirectional=True))
    del sd["bias_hh_l0_reverse"]
    with pytest.raises(ValueError, match=r"does not fit RNN:\n  missing key\(s\): \['bias_hh_l0_reverse'\]$"):
        jaxrnn.from_torch(sd, jaxrnn.RNN(2, 3, bidirectional=True))


def test_from_torch_names_key_with_wrong_shape():
    sd = state_dict_numpy(torch.nn.RNN(4, 3))
    with pytest.raises(ValueError, match=r"'weight_ih_l0' has shape \(3, 4\), but RNN expects \(3, 2\)"):
        jaxrnn.from_torch(sd, jaxrnn.RNN(2, 3))


def test_from_torch_refuses_non_mapping_and_non_arrays():
    with pytest.raises(TypeError, match="`state_dict` must be a mapping"):
        jaxrnn.from_torch([("weight_ih_l0", np.zeros((3, 2)))])
    with pytest.raises(TypeError, match=r"state_dict\['weight_ih_l0'\] must be an array or tensor, got list"):
        jaxrnn.from_torch({"weight_ih_l0": [[0.0, 1.0]]})


def test_to_torch_on_grads_matches_torch_grad_names():
    rnn_t = torch.nn.RNN(2, 3, num_layers=2).double()
    rnn = jaxrnn.RNN(2, 3, num_layers=2)
    variables = jaxrnn.from_torch(rnn_t.state_dict(), rnn)
    x = np.random.default_rng(0).standard_normal((5, 2, 2))
    grads = jax.grad(lambda p: jnp.sum(rnn.apply({"params": p}, x)[0] ** 2))(variables["params"])
    out, _ = rnn_t(torch.from_numpy(x))
    (out**2).sum().backward()
    exported = jaxrnn.to_torch(grads)
    assert list(exported) == [k for k, _ in rnn_t.named_parameters()]
    for key, p in rnn_t.named_parameters():
        np.testing.assert_allclose(exported[key], p.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=key)


def test_from_torch_checks_any_flax_module_given_an_example_or_variables():
    import flax.linen as fnn

    class Wrapper(fnn.Module):
        @fnn.compact
        def __call__(self, x):
            return jaxrnn.RNN(2, 3, name="rnn")(x)[0]

    sd = {f"rnn.{k}": v for k, v in state_dict_numpy(torch.nn.RNN(2, 3)).items()}
    x = np.zeros((4, 1, 2), np.float32)
    variables = jaxrnn.from_torch(sd, Wrapper(), x)
    np.testing.assert_array_equal(variables["params"]["rnn"]["l0"]["weight_ih"], sd["rnn.weight_ih_l0"])
    template = Wrapper().init(jax.random.key(0), x)
    jax.tree.map(np.testing.assert_array_equal, jaxrnn.from_torch(sd, template), variables)
    with pytest.raises(
        TypeError, match=r"give an example input for Wrapper, as in from_torch\(state_dict, module, x\)"
    ):
        jaxrnn.from_torch(sd, Wrapper())
    del sd["rnn.bias_hh_l0"]
    with pytest.raises(ValueError, match=r"the given variables:\n  missing key\(s\): \['rnn.bias_hh_l0'\]$"):
        jaxrnn.from_torch(sd, template)
