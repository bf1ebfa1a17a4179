"""Keys that do not fit: from_torch reports missing, unexpected and wrongly shaped keys in one message, as
torch's load_state_dict does, with a hint for a prefix; strip_prefix and key_map rename before the check;
to_torch(prefix=...) adds one back; load_safetensors / load_torch take example inputs and name themselves."""

from __future__ import annotations

import re

import flax.linen as fnn
import jax
import numpy as np
import pytest
import safetensors.torch
import torch
from _compare import assert_close

import jaxrnn
from jaxrnn.interop import load_safetensors, save_safetensors


class Encoder(fnn.Module):
    """jaxrnn.LSTM and a torch-layout Linear, the LSTM named ``encoder`` where torch's model says ``rnn``."""

    rnn_name: str = "encoder"

    @fnn.compact
    def __call__(self, x):
        out, _ = jaxrnn.LSTM(3, 5, num_layers=2, batch_first=True, name=self.rnn_name)(x)
        return jaxrnn.Linear(5, 2, name="fc")(out[:, -1])


class EncoderT(torch.nn.Module):
    def __init__(self, fc_in=5):
        super().__init__()
        self.rnn = torch.nn.LSTM(3, 5, num_layers=2, batch_first=True)
        self.fc = torch.nn.Linear(fc_in, 2)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


X = np.random.default_rng(0).standard_normal((4, 6, 3))


def _torch_model() -> EncoderT:
    torch.manual_seed(0)
    return EncoderT().double()


def _torch_out(model_t: torch.nn.Module) -> np.ndarray:
    return model_t(torch.from_numpy(X)).detach().numpy()


def test_missing_unexpected_and_shapes_come_in_one_message_with_a_prefix_hint():
    torch.manual_seed(0)
    sd = EncoderT(fc_in=7).state_dict()  # rnn.* where Encoder has encoder.*, and fc.weight of the wrong shape
    lstm_keys = ["bias_hh_l0", "bias_hh_l1", "bias_ih_l0", "bias_ih_l1",
                 "weight_hh_l0", "weight_hh_l1", "weight_ih_l0", "weight_ih_l1"]
    expected = "\n  ".join([
        "from_torch: state_dict does not fit Encoder:",
        f"missing key(s): {['encoder.' + k for k in lstm_keys]}",
        f"unexpected key(s): {['rnn.' + k for k in lstm_keys]}",
        "'fc.weight' has shape (2, 7), but Encoder expects (2, 5)",
        "hint: the keys differ by a prefix: state_dict has 'rnn.', Encoder expects 'encoder.'; "
        "pass key_map={'rnn': 'encoder'}",
    ])
    with pytest.raises(ValueError) as err:
        jaxrnn.from_torch(sd, Encoder(), X)
    assert str(err.value) == expected


def test_key_map_renames_a_submodule_and_the_output_matches_torch():
    model_t = _torch_model()
    by_prefix = jaxrnn.from_torch(model_t.state_dict(), Encoder(), X, key_map={"rnn": "encoder"})
    by_function = jaxrnn.from_torch(model_t.state_dict(), Encoder(), X,
                                    key_map=lambda k: "encoder" + k[3:] if k.startswith("rnn.") else k)
    assert jax.tree.structure(by_function) == jax.tree.structure(by_prefix)
    jax.tree.map(np.testing.assert_array_equal, by_function, by_prefix)
    np.testing.assert_array_equal(by_prefix["params"]["encoder"]["l1"]["weight_hh"],
                                  model_t.rnn.weight_hh_l1.detach().numpy())
    assert_close(Encoder().apply(by_prefix, X), _torch_out(model_t))
    # the longest prefix wins: a whole key named in key_map beats its submodule's entry
    swapped = jaxrnn.from_torch(model_t.state_dict(), Encoder(), X, key_map={
        "rnn": "encoder", "rnn.weight_hh_l0": "encoder.weight_hh_l1", "rnn.weight_hh_l1": "encoder.weight_hh_l0"})
    np.testing.assert_array_equal(swapped["params"]["encoder"]["l0"]["weight_hh"],
                                  model_t.rnn.weight_hh_l1.detach().numpy())
    np.testing.assert_array_equal(swapped["params"]["encoder"]["l1"]["weight_ih"],
                                  model_t.rnn.weight_ih_l1.detach().numpy())


def test_strip_prefix_reads_a_dataparallel_state_dict_as_the_plain_one():
    model_t = _torch_model()
    parallel = torch.nn.DataParallel(model_t)  # on CPU it only wraps: keys become module.rnn.*, module.fc.*
    assert all(k.startswith("module.") for k in parallel.state_dict())
    plain = jaxrnn.from_torch(model_t.state_dict(), Encoder("rnn"), X)
    stripped = jaxrnn.from_torch(parallel.state_dict(), Encoder("rnn"), X, strip_prefix="module.")
    assert jax.tree.structure(stripped) == jax.tree.structure(plain)
    jax.tree.map(np.testing.assert_array_equal, stripped, plain)
    assert_close(Encoder("rnn").apply(stripped, X), parallel(torch.from_numpy(X)).detach().numpy())
    with pytest.raises(ValueError, match=re.escape(
        "hint: the keys differ by a prefix: state_dict has 'module.', Encoder expects none; "
        "pass strip_prefix='module.'"
    )):
        jaxrnn.from_torch(parallel.state_dict(), Encoder("rnn"), X)


def test_strip_prefix_is_torchs_consume_prefix_in_state_dict_if_present():
    model_t = _torch_model()
    mixed = {("module." + k if k.startswith("rnn.") else k): v for k, v in model_t.state_dict().items()}
    theirs = dict(mixed)
    torch.nn.modules.utils.consume_prefix_in_state_dict_if_present(theirs, "module.")
    ours = jaxrnn.from_torch(mixed, Encoder("rnn"), X, strip_prefix="module.")
    jax.tree.map(np.testing.assert_array_equal, ours, jaxrnn.from_torch(theirs, Encoder("rnn"), X))
    # strip_prefix then key_map, both before the check
    both = jaxrnn.from_torch(mixed, Encoder(), X, strip_prefix="module.", key_map={"rnn.": "encoder."})
    assert_close(Encoder().apply(both, X), _torch_out(model_t))


def test_hint_for_a_module_that_expects_an_extra_prefix():
    class Wrapper(fnn.Module):
        @fnn.compact
        def __call__(self, x):
            return jaxrnn.GRU(3, 4, name="rnn")(x)[0]

    rnn_t = torch.nn.GRU(3, 4).double()
    with pytest.raises(ValueError, match=re.escape(
        "state_dict has none, Wrapper expects 'rnn.'; pass key_map={'': 'rnn'}"
    )):
        jaxrnn.from_torch(rnn_t.state_dict(), Wrapper(), X)
    variables = jaxrnn.from_torch(rnn_t.state_dict(), Wrapper(), X, key_map={"": "rnn"})
    assert_close(Wrapper().apply(variables, X), rnn_t(torch.from_numpy(X))[0].detach().numpy())


def test_hint_for_two_submodules_renamed_and_none_for_unrelated_keys():
    class Renamed(fnn.Module):
        @fnn.compact
        def __call__(self, x):
            out, _ = jaxrnn.LSTM(3, 5, num_layers=2, batch_first=True, name="encoder")(x)
            return jaxrnn.Linear(5, 2, name="head")(out[:, -1])

    sd = _torch_model().state_dict()
    with pytest.raises(ValueError, match=re.escape("pass key_map={'rnn': 'encoder', 'fc': 'head'}")):
        jaxrnn.from_torch(sd, Renamed(), X)
    assert_close(Renamed().apply(jaxrnn.from_torch(sd, Renamed(), X, key_map={"rnn": "encoder", "fc": "head"}), X),
                 _torch_out(_torch_model()))
    extra = dict(sd, **{"rnn.weight_ih_l2": torch.zeros(20, 5, dtype=torch.float64)})  # a layer too many
    with pytest.raises(ValueError) as err:
        jaxrnn.from_torch(extra, Encoder("rnn"), X)
    assert str(err.value) == "from_torch: state_dict does not fit Encoder:\n  unexpected key(s): ['rnn.weight_ih_l2']"


def test_long_key_lists_are_cut_after_ten():
    rnn_t = torch.nn.LSTM(3, 4, num_layers=3, bidirectional=True)  # 24 parameters
    keys = sorted(rnn_t.state_dict())
    with pytest.raises(ValueError) as err:
        jaxrnn.from_torch({"module." + k: v for k, v in rnn_t.state_dict().items()},
                          jaxrnn.LSTM(3, 4, num_layers=3, bidirectional=True))
    assert str(err.value).splitlines()[1:3] == [
        f"  missing key(s): {keys[:10]} and 14 more",
        f"  unexpected key(s): {['module.' + k for k in keys[:10]]} and 14 more",
    ]


def test_key_map_function_drops_keys_and_renames_are_checked():
    model_t = _torch_model()
    sd = dict(model_t.state_dict(), **{"aux.weight": torch.arange(6.0).reshape(2, 3)})
    variables = jaxrnn.from_torch(sd, Encoder("rnn"), X, key_map=lambda k: None if k.startswith("aux.") else k)
    assert_close(Encoder("rnn").apply(variables, X), _torch_out(model_t))
    with pytest.raises(ValueError, match=r"\(keys after strip_prefix / key_map\):\n  missing key\(s\): \['fc.bias'\]"):
        jaxrnn.from_torch(model_t.state_dict(), Encoder("rnn"), X, key_map=lambda k: None if k == "fc.bias" else k)
    with pytest.raises(ValueError, match=r"from_torch: 'fc.weight' and 'head.weight' are both renamed to 'fc.weight'"):
        jaxrnn.from_torch(dict(sd, **{"head.weight": sd["fc.weight"]}), Encoder("rnn"), X, key_map={"head": "fc"})
    with pytest.raises(TypeError, match=r"`key_map` must return a str or None, got 3 for 'rnn.weight_ih_l0'"):
        jaxrnn.from_torch(sd, Encoder("rnn"), X, key_map=lambda k: 3)
    with pytest.raises(TypeError, match=r"from_torch: `key_map` must map str to str, got 'rnn': None"):
        jaxrnn.from_torch(sd, Encoder("rnn"), X, key_map={"rnn": None})
    with pytest.raises(TypeError, match=r"from_torch: `key_map` must be a mapping of prefixes or .*got list"):
        jaxrnn.from_torch(sd, Encoder("rnn"), X, key_map=["rnn", "encoder"])
    with pytest.raises(TypeError, match=r"from_torch: `strip_prefix` must be a str such as 'module.', got 0"):
        jaxrnn.from_torch(sd, Encoder("rnn"), X, strip_prefix=0)
    with pytest.raises(TypeError, match=r"from_torch: `module` must be a Flax module or a variables tree, got int"):
        jaxrnn.from_torch(sd, 3)


def test_to_torch_prefix_loads_into_a_dataparallel_model():
    variables = Encoder("rnn").init(jax.random.key(0), X)
    parallel = torch.nn.DataParallel(EncoderT().double())
    exported = jaxrnn.to_torch(variables, prefix="module.")
    assert list(exported) == list(parallel.state_dict())
    parallel.load_state_dict({k: torch.from_numpy(v) for k, v in exported.items()})  # strict
    assert_close(Encoder("rnn").apply(variables, X), parallel(torch.from_numpy(X)).detach().numpy())
    with pytest.raises(TypeError, match=r"to_torch: `prefix` must be a str such as 'module.', got None"):
        jaxrnn.to_torch(variables, prefix=None)


def test_load_safetensors_and_load_torch_take_example_inputs(tmp_path):
    model_t = _torch_model()
    path = tmp_path / "torch.safetensors"
    safetensors.torch.save_file(model_t.state_dict(), path)
    variables = load_safetensors(path, Encoder(), X, key_map={"rnn": "encoder"})
    assert_close(Encoder().apply(variables, X), _torch_out(model_t))
    with pytest.warns(DeprecationWarning, match="load_torch is deprecated"):
        old = jaxrnn.load_torch(path, Encoder(), X, key_map={"rnn": "encoder"})
    jax.tree.map(np.testing.assert_array_equal, old, variables)
    # and back: save_safetensors -> load_safetensors with the example input gives the same numbers
    save_safetensors(variables, tmp_path / "jax.safetensors")
    again = load_safetensors(tmp_path / "jax.safetensors", Encoder(), X)
    assert jax.tree.structure(again) == jax.tree.structure(variables)
    jax.tree.map(np.testing.assert_array_equal, again, variables)


def test_load_errors_name_the_function_called(tmp_path):
    path = tmp_path / "torch.safetensors"
    safetensors.torch.save_file(_torch_model().state_dict(), path)
    with pytest.raises(TypeError, match=r"^load_safetensors: give an example input for Encoder, "
                                        r"as in load_safetensors\(path, module, x\)"):
        load_safetensors(path, Encoder())
    with pytest.raises(ValueError, match=rf"(?s)^load_safetensors: {re.escape(str(path))} does not fit Encoder:\n"
                                         r"  missing key\(s\): \['encoder.bias_hh_l0'.*"
                                         r"hint: the keys differ by a prefix: the file has 'rnn.', Encoder expects "
                                         r"'encoder.'; pass key_map=\{'rnn': 'encoder'\}$"):
        load_safetensors(path, Encoder(), X)
    with pytest.raises(TypeError, match=r"^load_safetensors: `key_map` must map str to str"):
        load_safetensors(tmp_path / "absent.safetensors", Encoder(), X, key_map={"rnn": 1})  # before reading
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match=r"^load_torch: .* does not fit Encoder"):
        jaxrnn.load_torch(path, Encoder(), X)
