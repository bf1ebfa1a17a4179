"""bfloat16 and float8 weights, which numpy cannot take from torch: from_torch keeps them exactly in their
dtype (ml_dtypes'), to_torch's arrays go back to torch bit for bit, safetensors files of them load; dtypes
no numpy type holds are a TypeError naming the key."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.torch
import torch
from _compare import assert_close

import jaxrnn
from jaxrnn.interop import load_safetensors, save_safetensors

NARROW = ["bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu"]
BITS = {1: (torch.uint8, np.uint8), 2: (torch.uint16, np.uint16)}


def _every_value(name: str) -> torch.Tensor:
    """Every bit pattern of the torch dtype ``name``, as a tensor of that dtype."""
    dtype = getattr(torch, name)
    width = torch.empty(0, dtype=dtype).element_size()
    return torch.arange(2 ** (8 * width), dtype=torch.int32).to(BITS[width][0]).view(dtype)


def _assert_same_numbers(tensor: torch.Tensor, array) -> None:
    """Same dtype name, same bits wherever the value is a number, NaN where torch has NaN."""
    array = np.asarray(array)
    assert array.dtype.name == str(tensor.dtype).removeprefix("torch."), (array.dtype, tensor.dtype)
    nan = torch.isnan(tensor.float()).numpy()
    np.testing.assert_array_equal(np.isnan(array.astype(np.float32)), nan)
    torch_bits, numpy_bits = BITS[tensor.element_size()]
    np.testing.assert_array_equal(array.view(numpy_bits)[~nan], tensor.view(torch_bits).numpy()[~nan])


@pytest.mark.parametrize("name", [n for n in NARROW if hasattr(torch, n)])
def test_from_torch_keeps_every_narrow_float_exactly(name):
    tensor = _every_value(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NaN patterns convert without a warning
        variables = jaxrnn.from_torch({"w": tensor})
    assert variables["params"]["w"].dtype == jnp.dtype(name)
    _assert_same_numbers(tensor, variables["params"]["w"])
    # and back: to_torch's array, viewed as torch's documented way, is torch's tensor again
    exported = jaxrnn.to_torch(variables)["w"]
    back = torch.from_numpy(exported.view(BITS[tensor.element_size()][1])).view(tensor.dtype)
    _assert_same_numbers(back, exported)
    nan = torch.isnan(tensor.float())
    assert torch.equal(back[~nan].float(), tensor[~nan].float())


def _lstm_t() -> torch.nn.LSTM:
    torch.manual_seed(0)
    return torch.nn.LSTM(3, 8, num_layers=2, batch_first=True).to(torch.bfloat16)


def test_bfloat16_state_dict_runs_in_jax_close_to_torch():
    lstm_t = _lstm_t()
    lstm = jaxrnn.LSTM(3, 8, num_layers=2, batch_first=True)
    variables = jaxrnn.from_torch(lstm_t.state_dict(), lstm)
    for key, tensor in lstm_t.state_dict().items():
        _assert_same_numbers(tensor, jaxrnn.to_torch(variables)[key])
    x = np.random.default_rng(0).standard_normal((2, 7, 3))
    out, state = lstm.apply(variables, jnp.asarray(x, jnp.bfloat16))
    assert out.dtype == state.h.dtype == jnp.bfloat16
    # the same bfloat16 weights, in float64 on both sides: exact; in bfloat16: bfloat16's rounding
    want, _ = lstm_t.double()(torch.from_numpy(x).to(torch.bfloat16).double())
    out64, _ = lstm.apply(jax.tree.map(lambda a: a.astype(jnp.float64), variables),
                          jnp.asarray(x, jnp.bfloat16).astype(jnp.float64))
    assert_close(out64, want.detach().numpy())
    np.testing.assert_allclose(np.asarray(out, np.float64), want.detach().numpy(), atol=3e-2)


def test_to_torch_bfloat16_loads_into_a_bfloat16_torch_model():
    lstm = jaxrnn.LSTM(3, 8, num_layers=2, batch_first=True)
    x = jax.random.normal(jax.random.key(1), (2, 7, 3))
    variables = jax.tree.map(lambda a: a.astype(jnp.bfloat16), lstm.init(jax.random.key(0), x))
    lstm_t = _lstm_t()
    lstm_t.load_state_dict({k: torch.from_numpy(v.view(np.uint16)).view(torch.bfloat16)
                            for k, v in jaxrnn.to_torch(variables).items()})  # strict
    for key, tensor in lstm_t.state_dict().items():
        assert tensor.dtype == torch.bfloat16, key
        _assert_same_numbers(tensor, jaxrnn.to_torch(variables)[key])


def test_safetensors_of_a_bfloat16_torch_model_loads_as_bfloat16(tmp_path):
    lstm_t = _lstm_t()
    path = tmp_path / "bf16.safetensors"
    safetensors.torch.save_file(lstm_t.state_dict(), path)
    variables = load_safetensors(path, jaxrnn.LSTM(3, 8, num_layers=2, batch_first=True))
    for key, tensor in lstm_t.state_dict().items():
        _assert_same_numbers(tensor, jaxrnn.to_torch(variables)[key])
    save_safetensors(variables, tmp_path / "again.safetensors")
    for key, tensor in safetensors.torch.load_file(tmp_path / "again.safetensors").items():
        assert torch.equal(tensor.view(torch.uint16), lstm_t.state_dict()[key].view(torch.uint16)), key


def test_safetensors_of_float8_says_how_to_read_it(tmp_path):
    rnn_t = torch.nn.RNN(3, 4)
    sd = {k: v.to(torch.float8_e4m3fn) for k, v in rnn_t.state_dict().items()}
    path = tmp_path / "f8.safetensors"
    safetensors.torch.save_file(sd, path)
    with pytest.raises(TypeError, match=r"load_safetensors: .* stores \{'bias_hh_l0': 'F8_E4M3', .*\}, which "
                                        r"safetensors' numpy loader cannot read; read it with torch"):
        load_safetensors(path, jaxrnn.RNN(3, 4))
    variables = jaxrnn.from_torch(safetensors.torch.load_file(path), jaxrnn.RNN(3, 4))  # the way it suggests
    for key, tensor in sd.items():
        _assert_same_numbers(tensor, jaxrnn.to_torch(variables)[key])


@pytest.mark.parametrize("dtype", ["complex32", "float4_e2m1fn_x2"])
@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
def test_dtypes_numpy_cannot_hold_are_a_type_error_naming_the_key(dtype):
    if not hasattr(torch, dtype):
        pytest.skip(f"torch {torch.__version__} has no {dtype}")
    tensor = torch.zeros(4, dtype=torch.uint8).view(getattr(torch, dtype)) if dtype.startswith("float4") else (
        torch.arange(4.0).to(torch.complex32))
    with pytest.raises(TypeError, match=rf"from_torch: state_dict\['rnn.weight_ih_l0'\], a torch.{dtype} tensor, "
                                        r"does not convert to numpy \(.*\); make it a dense tensor of a dtype numpy "
                                        r"holds first, e.g. state_dict\['rnn.weight_ih_l0'\].float\(\)"):
        jaxrnn.from_torch({"rnn.bias_ih_l0": torch.arange(3.0), "rnn.weight_ih_l0": tensor})


def test_meta_and_sparse_tensors_are_a_type_error_naming_the_key():
    with torch.device("meta"):
        rnn_t = torch.nn.RNN(3, 4)
    with pytest.raises(TypeError, match=r"state_dict\['weight_ih_l0'\], a torch.float32 tensor, does not convert to "
                                        r"numpy \(Cannot copy out of meta tensor"):
        jaxrnn.from_torch(rnn_t.state_dict(), jaxrnn.RNN(3, 4))
    with pytest.raises(TypeError, match=r"state_dict\['w'\], a torch.float32 tensor, does not convert to numpy "
                                        r"\(can't convert Sparse layout"):
        jaxrnn.from_torch({"w": torch.arange(4.0).to_sparse()})
