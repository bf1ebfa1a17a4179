"""The NNX face with NNX's toolbox: parameter paths that are torch's ``state_dict()`` keys, orbax
checkpoints restored into ``nnx.eval_shape``'s abstract model, ``nnx.split``/``merge`` under
``jax.jit``, ``nnx.vmap`` ensembles, ``nnx.scan`` over a stack of layers, the two ``impl``s
(values and forward-mode autodiff), and ``from_torch``/``to_torch``'s errors and contents.

Tolerances: a program against the very same program (restored weights, ``jax.jit`` of a pure
step against ``nnx.jit``) is compared bit for bit. A compiled program against the eager call, a
vmapped or scanned one against the plain one, or impl='scan' against impl='fused', runs the same
maths through other XLA programs, whose fusions and dot kernels may round differently: float64 at
1e-12 (rounding is ~1e-16 per op; the chains here are a few dozen ops long)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
import torch
from _compare import assert_close, assert_trees_close
from flax import nnx

import jaxrnn.nnx
import jaxrnn.nnx.models
import torchref.models

F64 = jnp.float64
CLOSE = dict(rtol=1e-12, atol=1e-12)
rng = np.random.default_rng(0)

# name: (class name, positional args, keyword args, example input of batch 4)
LESSON = {
    "RNNClassifier-lstm-2layers": ("RNNClassifier", (3, 6, 4), {"num_layers": 2, "cell": "lstm"},
                                   rng.standard_normal((4, 7, 3))),
    "RNNSeq2Seq-gru": ("RNNSeq2Seq", (3, 6, 3), {"cell": "gru"}, rng.standard_normal((4, 7, 3))),
    "SinPredictor-rnn": ("SinPredictor", (), {}, rng.standard_normal((4, 7, 1))),
    "CharRNN-bidirectional-rnn": ("CharRNN", (27, 8, 6, 5), {"bidirectional": True},
                                  rng.integers(0, 27, (4, 7))),
}


def _lesson(name: str, seed: int = 0):
    """(torch model, NNX model, input): the torchref model and the NNX one with the same arguments,
    built abstract (``nnx.eval_shape``: no init drawn, so none compiled; ``from_torch`` fills it)."""
    cls, args, kwargs, x = LESSON[name]
    torch.manual_seed(seed)
    model_t = getattr(torchref.models, cls)(*args, **kwargs).double()
    model = nnx.eval_shape(
        lambda: getattr(jaxrnn.nnx.models, cls)(*args, **kwargs, rngs=nnx.Rngs(seed), param_dtype=F64))
    return model_t, model, x


# a module's call, compiled once per module structure: eager calls compile every layer's time loop
# again at every call (seconds for a 2-layer LSTM on a small CPU), which the tests of other things
# than the eager call need not pay
CALL = nnx.jit(lambda model, x: model(x))


def _key(path) -> str:
    return ".".join(str(part) for part in path)


def _param_shapes(model) -> dict[str, tuple]:
    return {_key(path): tuple(v.shape) for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


def _equal_trees(a, b) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b), strict=True):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))


# --------------------------------------------------------------------------------------------
# (a) parameter paths are torch's state_dict keys


@pytest.mark.parametrize("name", [*LESSON, "LSTM-proj-bidirectional-2layers"])
def test_param_paths_and_shapes_match_torch_state_dict(name):
    """``nnx.state(model, nnx.Param)``'s paths joined by '.' are the torch model's ``state_dict()``
    keys, with the same shapes; loading torch's weights, ``to_torch`` gives them back, a recurrent
    layer's in torch's order (``nnx.state`` sorts submodules by name, so 'fc' comes before 'rnn'
    and a Linear's 'bias' before its 'weight': the other keys are in that order, not torch's)."""
    if name in LESSON:
        model_t, model, _ = _lesson(name)
    else:
        torch.manual_seed(0)
        model_t = torch.nn.LSTM(3, 6, 2, bidirectional=True, proj_size=4).double()
        model = nnx.eval_shape(lambda: jaxrnn.nnx.LSTM(3, 6, 2, bidirectional=True, proj_size=4,
                                                       rngs=nnx.Rngs(0), param_dtype=F64))
    shapes_t = {k: tuple(v.shape) for k, v in model_t.state_dict().items()}
    assert _param_shapes(model) == shapes_t
    jaxrnn.nnx.from_torch(model_t.state_dict(), model)
    params = jaxrnn.nnx.to_torch(model)
    recurrent = [k for k in shapes_t if "_l0" in k or "_l1" in k]
    assert [k for k in params if k in recurrent] == recurrent
    assert_trees_close(params, {k: v.numpy() for k, v in model_t.state_dict().items()}, what=name)


# --------------------------------------------------------------------------------------------
# (b) orbax


def _restore(path, build):
    """orbax's restore into the abstract model of ``build`` (``nnx.eval_shape``), as Flax's NNX
    checkpointing guide does: split the abstract model, restore its state, merge."""
    graphdef, abstract_state = nnx.split(nnx.eval_shape(build))
    return nnx.merge(graphdef, ocp.StandardCheckpointer().restore(path, abstract_state))


def _save(path, state) -> None:
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(path, state)
    checkpointer.wait_until_finished()


def test_orbax_round_trip_of_a_lesson_model_is_bit_for_bit(tmp_path):
    """The state of a lesson model (torch's weights, all nnx.Param) saved by orbax and restored
    into an abstract model: the same parameters and outputs, bit for bit."""
    model_t, model, x = _lesson("CharRNN-bidirectional-rnn", seed=1)
    jaxrnn.nnx.from_torch(model_t.state_dict(), model)
    _save(tmp_path / "state", nnx.state(model))
    cls, args, kwargs, _ = LESSON["CharRNN-bidirectional-rnn"]
    restored = _restore(tmp_path / "state",
                        lambda: jaxrnn.nnx.models.CharRNN(*args, **kwargs, rngs=nnx.Rngs(0), param_dtype=F64))
    _equal_trees(nnx.state(restored), nnx.state(model))
    out = np.asarray(CALL(restored, jnp.asarray(x)))
    np.testing.assert_array_equal(out, np.asarray(CALL(model, jnp.asarray(x))))
    with torch.no_grad():
        assert_close(out, model_t(torch.from_numpy(x)).numpy(), what="restored vs torch")


def test_orbax_round_trip_of_the_full_state_keeps_the_dropout_stream(tmp_path):
    """The full state of a layer with dropout (its parameters and its ``'dropout'`` stream's key and
    count, an RngState) goes through orbax as it is: restored into an abstract layer built with
    another seed, it has the saved parameters and stream, so its next train-mode call draws the
    masks the original's next call draws (the same output bit for bit)."""
    def build(seed):
        return jaxrnn.nnx.RNN(3, 5, 2, dropout=0.4, batch_first=True, rngs=nnx.Rngs(seed), param_dtype=F64)

    model = build(2)
    x = jnp.asarray(rng.standard_normal((4, 7, 3)))
    CALL(model, x)  # advance the stream: the count saved is not the initial one
    state = nnx.state(model)
    assert "rngs" in state and int(model.rngs.count[...]) == 1
    _save(tmp_path / "full", state)
    restored = _restore(tmp_path / "full", lambda: build(0))
    _equal_trees(nnx.state(restored), nnx.state(model))
    assert restored.deterministic is False and int(restored.rngs.count[...]) == 1
    for a, b in zip(jax.tree.leaves(CALL(restored, x)), jax.tree.leaves(CALL(model, x)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(restored.rngs.count[...]) == 2  # the stream advanced under nnx.jit
    # the abstract layer's own seed left no trace
    assert not np.array_equal(np.asarray(CALL(restored, x)[0]), np.asarray(CALL(build(0), x)[0]))


# --------------------------------------------------------------------------------------------
# (c) split / merge under jax.jit


def test_split_merge_under_jax_jit_matches_nnx_jit_and_the_eager_call():
    """A pure forward on ``nnx.split``'s (graphdef, state) under ``jax.jit`` is ``nnx.jit``'s
    program: equal bit for bit. Against the eager call (other XLA programs): 1e-12."""
    model_t, model, x = _lesson("CharRNN-bidirectional-rnn", seed=3)
    jaxrnn.nnx.from_torch(model_t.state_dict(), model)
    x = jnp.asarray(x)
    graphdef, state = nnx.split(model)
    out_jit = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))(state, x)
    out_nnx_jit = CALL(model, x)
    out_eager = model(x)
    np.testing.assert_array_equal(np.asarray(out_jit), np.asarray(out_nnx_jit))
    np.testing.assert_allclose(np.asarray(out_jit), np.asarray(out_eager), **CLOSE)
    assert np.abs(np.asarray(out_eager)).max() > 0.05


# --------------------------------------------------------------------------------------------
# (d) an nnx.vmap ensemble and (e) nnx.scan over layers


def test_nnx_vmap_ensemble_matches_each_member_alone():
    """Three RNNClassifiers (GRU) made by ``nnx.split_rngs(splits=3)`` +
    ``nnx.vmap(in_axes=(0,), out_axes=0)`` (NNX's ensemble pattern): the vmapped forward gives, for
    each member, what that member (its slice of the state, merged) computes alone; the members
    differ (each drew its own init)."""

    @nnx.split_rngs(splits=3)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def create(rngs):
        return jaxrnn.nnx.models.RNNClassifier(5, 5, 4, cell="gru", rngs=rngs, param_dtype=F64)

    @nnx.vmap(in_axes=(0, None), out_axes=0)
    def forward(model, x):
        return model(x)

    ensemble = create(nnx.Rngs(0))
    assert ensemble.rnn.weight_ih_l0.shape == (3, 15, 5)
    x = jnp.asarray(rng.standard_normal((4, 7, 5)))
    out = np.asarray(forward(ensemble, x))
    assert out.shape == (3, 4, 4)
    graphdef, state = nnx.split(ensemble)
    for i in range(3):
        member = nnx.merge(graphdef, jax.tree.map(lambda a, i=i: a[i], state))
        np.testing.assert_allclose(out[i], np.asarray(CALL(member, x)), **CLOSE, err_msg=f"member {i}")
    assert not np.allclose(out[0], out[1]) and not np.allclose(out[1], out[2])


def test_nnx_scan_over_stacked_layers_matches_the_python_loop():
    """Three ``GRU(H, H, batch_first=True)`` layers created with ``nnx.vmap`` (stacked parameters)
    applied in sequence by ``nnx.scan`` over the stack (the sequence is the carry) equal the Python
    loop over the three layers taken out of the stack. (H = 5, the ensemble's GRU: the eager vmapped
    init compiled there is reused.)"""
    hidden = 5

    @nnx.split_rngs(splits=3)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def create(rngs):
        return jaxrnn.nnx.GRU(hidden, hidden, batch_first=True, rngs=rngs, param_dtype=F64)

    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
    def through(h, layer):
        return layer(h)[0]

    stack = create(nnx.Rngs(1))
    x = jnp.asarray(rng.standard_normal((4, 7, hidden)))
    scanned = np.asarray(through(x, stack))
    graphdef, state = nnx.split(stack)
    h = x
    for i in range(3):
        h = nnx.merge(graphdef, jax.tree.map(lambda a, i=i: a[i], state))(h)[0]
    np.testing.assert_allclose(scanned, np.asarray(h), **CLOSE)
    one = nnx.merge(graphdef, jax.tree.map(lambda a: a[0], state))(x)[0]
    assert not np.allclose(scanned, np.asarray(one))  # all three layers ran


# --------------------------------------------------------------------------------------------
# (f) impl='scan' and impl='fused'

IMPL_CASES = {"rnn": jaxrnn.nnx.RNN, "lstm": jaxrnn.nnx.LSTM, "gru": jaxrnn.nnx.GRU}


def _twins(cell: str):
    """The same bidirectional layer (2 layers for the RNN, 1 for the others, to spare compilation:
    impl picks each direction's time loop, the layers around it are shared code) as impl='fused' and
    impl='scan', holding random weights U(-0.5, 0.5) (built abstract and loaded with ``from_torch``:
    no init to compile)."""
    cls, layers = IMPL_CASES[cell], 2 if cell == "rnn" else 1
    fused, scan = (nnx.eval_shape(lambda impl=impl: cls(3, 4, layers, bidirectional=True, rngs=nnx.Rngs(0),
                                                        param_dtype=F64, impl=impl))
                   for impl in ("fused", "scan"))
    weights = {k: rng.uniform(-0.5, 0.5, shape) for k, shape in _param_shapes(fused).items()}
    return jaxrnn.nnx.from_torch(weights, fused), jaxrnn.nnx.from_torch(weights, scan)


@nnx.jit
def _both_impls(fused, scan, x, lengths, tangent, cotangent):
    """Both layers' results without and with lengths, impl='scan''s jvp, and impl='fused''s vjp."""
    results = [fused(x), scan(x), fused(x, seq_lengths=lengths), scan(x, seq_lengths=lengths)]
    primal, out_tangent = jax.jvp(lambda x: scan(x)[0], (x,), (tangent,))
    _, pullback = jax.vjp(lambda x: fused(x)[0], x)
    return results, primal, out_tangent, pullback(cotangent)[0]


@pytest.mark.parametrize("cell", list(IMPL_CASES))
def test_impl_scan_matches_impl_fused_with_lengths_and_forward_mode(cell):
    """On the same weights, impl='scan' (``nnx.scan`` over the cells) and impl='fused' give the same
    output and final state (1e-12), also with seq_lengths (padded outputs zero). Forward mode:
    ``jax.jvp`` runs on impl='scan', and its tangent J t agrees with the fused layer's reverse mode
    by the dot-product test <J t, u> = <t, J^T u> for random t, u; on impl='fused' it raises the
    TypeError that says to pass impl='scan'."""
    fused, scan = _twins(cell)
    assert (fused.impl, scan.impl) == ("fused", "scan")
    x = jnp.asarray(rng.standard_normal((6, 3, 3)))
    lengths = jnp.asarray([6, 2, 4])
    tangent = jnp.asarray(rng.standard_normal(x.shape))
    cotangent = jnp.asarray(rng.standard_normal((6, 3, 8)))
    results, primal, out_tangent, in_cotangent = _both_impls(fused, scan, x, lengths, tangent, cotangent)
    for what, a, b in (("", results[0], results[1]), (" with seq_lengths", results[2], results[3])):
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_allclose(np.asarray(v), np.asarray(u), **CLOSE, err_msg=f"{cell}{what}")
    padded = np.asarray(results[2][0])
    assert np.all(padded[2:, 1] == 0) and np.all(padded[:2, 1] != 0)
    assert not np.allclose(padded, np.asarray(results[0][0]))  # the lengths changed the result
    np.testing.assert_allclose(np.asarray(primal), np.asarray(results[0][0]), **CLOSE)
    np.testing.assert_allclose(np.vdot(np.asarray(out_tangent), np.asarray(cotangent)),
                               np.vdot(np.asarray(tangent), np.asarray(in_cotangent)), **CLOSE)
    with pytest.raises(TypeError, match=r"forward-mode autodiff \(jax.jvp, jax.jacfwd\) of impl='fused' is not "
                                        r"supported.* Pass impl='scan'"):
        jax.jvp(lambda x: fused(x)[0], (x,), (tangent,))


# --------------------------------------------------------------------------------------------
# (g) from_torch's errors, strip_prefix, to_torch's contents


def _classifier():
    """A torchref RNNClassifier and an NNX one holding other weights (random, loaded into the
    abstract model)."""
    torch.manual_seed(4)
    model_t = torchref.models.RNNClassifier(3, 5, 4).double()
    model = nnx.eval_shape(lambda: jaxrnn.nnx.models.RNNClassifier(3, 5, 4, rngs=nnx.Rngs(0), param_dtype=F64))
    weights = {k: rng.uniform(-0.5, 0.5, shape) for k, shape in _param_shapes(model).items()}
    return model_t, jaxrnn.nnx.from_torch(weights, model)


def test_from_torch_errors_name_the_keys_and_leave_the_model_unchanged():
    """An unknown key, a missing key and a wrong shape are each one ValueError naming the key; all
    three at once are one ValueError listing them all; a prefixed state dict gets the hint; after a
    refused load the model still holds its own weights."""
    model_t, model = _classifier()
    sd = dict(model_t.state_dict())
    before = jaxrnn.nnx.to_torch(model)
    head = r"^from_torch: state_dict does not fit RNNClassifier:\n  "
    with pytest.raises(ValueError, match=head + r"unexpected key\(s\): \['rnn.weight_ih_l1'\]$"):
        jaxrnn.nnx.from_torch({**sd, "rnn.weight_ih_l1": torch.zeros(5, 5)}, model)
    with pytest.raises(ValueError, match=head + r"missing key\(s\): \['fc.bias'\]$"):
        jaxrnn.nnx.from_torch({k: v for k, v in sd.items() if k != "fc.bias"}, model)
    with pytest.raises(ValueError, match=head + r"'fc.weight' has shape \(4, 6\), but RNNClassifier expects "
                                                r"\(4, 5\)$"):
        jaxrnn.nnx.from_torch({**sd, "fc.weight": torch.zeros(4, 6)}, model)
    broken = {**{k: v for k, v in sd.items() if k != "rnn.bias_hh_l0"}, "extra": torch.zeros(1),
              "fc.weight": torch.zeros(4, 6)}
    with pytest.raises(ValueError, match=head + r"missing key\(s\): \['rnn.bias_hh_l0'\]\n  unexpected key\(s\): "
                                                r"\['extra'\]\n  'fc.weight' has shape \(4, 6\), but "
                                                r"RNNClassifier expects \(4, 5\)$"):
        jaxrnn.nnx.from_torch(broken, model)
    with pytest.raises(ValueError, match=r"hint: the keys differ by a prefix: state_dict has 'module.', "
                                         r"RNNClassifier expects none; pass strip_prefix='module.'$"):
        jaxrnn.nnx.from_torch({"module." + k: v for k, v in sd.items()}, model)
    assert_trees_close(jaxrnn.nnx.to_torch(model), before, what="after the refused loads")
    assert not np.allclose(before["fc.weight"], sd["fc.weight"].numpy())
    with pytest.raises(TypeError, match="from_torch: `model` must be an NNX module, got dict"):
        jaxrnn.nnx.from_torch(sd, {})


def test_from_torch_strip_prefix_loads_a_data_parallel_state_dict_and_to_torch_prefix_gives_it_back():
    model_t, model = _classifier()
    prefixed = {"module." + k: v for k, v in model_t.state_dict().items()}
    assert jaxrnn.nnx.from_torch(prefixed, model, strip_prefix="module.") is model
    x = rng.standard_normal((4, 7, 3))
    with torch.no_grad():
        assert_close(model(jnp.asarray(x)), model_t(torch.from_numpy(x)).numpy(), what="loaded model vs torch")
    assert_trees_close(jaxrnn.nnx.to_torch(model, prefix="module."), {k: v.numpy() for k, v in prefixed.items()},
                       what="to_torch(prefix='module.')")


def test_to_torch_of_a_dropout_layer_holds_no_rng_entries():
    """A layer with dropout holds an RngState (its stream's key and count) next to its parameters;
    ``to_torch`` of the module, and of its full ``nnx.state``, gives torch's keys alone, which a
    torch layer loads with strict=True."""
    torch.manual_seed(5)
    layer_t = torch.nn.GRU(3, 4, 2, dropout=0.3).double()
    expected = {k: v.numpy().copy() for k, v in layer_t.state_dict().items()}
    layer = nnx.eval_shape(lambda: jaxrnn.nnx.GRU(3, 4, 2, dropout=0.3, rngs=nnx.Rngs(0), param_dtype=F64))
    jaxrnn.nnx.from_torch(layer_t.state_dict(), layer)
    assert nnx.to_flat_state(nnx.state(layer, nnx.RngState))  # there is rng state to leave out
    for tree in (layer, nnx.state(layer)):
        params = jaxrnn.nnx.to_torch(tree)
        assert list(params) == list(expected)
        assert_trees_close(params, expected, what="to_torch")
        with torch.no_grad():
            for p in layer_t.parameters():
                p.zero_()
        layer_t.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()}, strict=True)
        assert_trees_close({k: v.numpy() for k, v in layer_t.state_dict().items()}, expected, what="loaded by torch")
