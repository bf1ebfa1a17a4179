"""``jaxrnn.utils.rnn`` against ``torch.nn.utils.rnn``: packing, padding, and the layers of every face
on a PackedSequence (forward, h_n and every gradient, float64 at 1e-10), jit, and the error messages."""

from __future__ import annotations

import itertools
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.utils.rnn as torch_utils
from _compare import assert_close, assert_trees_close
from _torch_rnn import torch_params
from flax import nnx
from jax.experimental import checkify

import jaxrnn
from jaxrnn import functional as F
from jaxrnn.utils.rnn import PackedSequence, pack_padded_sequence, pack_sequence, pad_packed_sequence, pad_sequence

T, N, I, H = 6, 5, 3, 4
SORTED = np.array([6, 6, 4, 2, 1])  # non-increasing, with a tie and the extremes T and 1
UNSORTED = np.array([3, 6, 1, 6, 4])  # any order, with a tie and the extremes

KINDS = ("rnn_tanh", "lstm", "gru")
FACES = ("functional", "linen", "nnx")
_TORCH = {"rnn_tanh": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
_LINEN = {"rnn_tanh": jaxrnn.RNN, "lstm": jaxrnn.LSTM, "gru": jaxrnn.GRU}
_FUNCTIONAL = {"rnn_tanh": F.rnn, "lstm": F.lstm, "gru": F.gru}
_NNX = {"rnn_tanh": jaxrnn.nnx.RNN, "lstm": jaxrnn.nnx.LSTM, "gru": jaxrnn.nnx.GRU}

# (kind, num_layers, bidirectional, batch_first, h0 given, enforce_sorted, face): every 7th of the
# product (7 is coprime with each option's period, so each option takes each value evenly)
CASES = list(itertools.product(KINDS, (1, 2), (False, True), (False, True), (False, True), (True, False), FACES))[::7]


def _case_id(case) -> str:
    kind, layers, bidi, batch_first, with_h0, enforce_sorted, face = case
    return "-".join([kind, f"L{layers}", "bi" if bidi else "uni", "bf" if batch_first else "tm",
                     "h0" if with_h0 else "noh0", "sorted" if enforce_sorted else "unsorted", face])


def _torch_layer(kind: str, layers: int, bidi: bool, batch_first: bool, seed: int) -> torch.nn.RNNBase:
    torch.manual_seed(seed)
    return _TORCH[kind](I, H, layers, batch_first=batch_first, bidirectional=bidi).double()


def _torch_packed(layer: torch.nn.RNNBase, x, h0, lengths, enforce_sorted, out_w, hn_w) -> dict:
    """torch's pack -> layer -> pad (total_length=T) and the gradients of a weighted sum of output and h_n."""
    lstm = isinstance(layer, torch.nn.LSTM)
    x_t = torch.tensor(x, requires_grad=True)
    h0_t = None if h0 is None else tuple(torch.tensor(a, requires_grad=True) for a in h0)
    layer.zero_grad()
    packed = torch_utils.pack_padded_sequence(x_t, torch.as_tensor(lengths), batch_first=layer.batch_first,
                                              enforce_sorted=enforce_sorted)
    out, h_n = layer(packed, None if h0_t is None else (h0_t if lstm else h0_t[0]))
    out, out_lengths = torch_utils.pad_packed_sequence(out, batch_first=layer.batch_first, total_length=T)
    h_n = tuple(h_n) if lstm else (h_n,)
    loss = (out * torch.tensor(out_w)).sum() + sum((a * torch.tensor(w)).sum() for a, w in zip(h_n, hn_w))
    loss.backward()
    return {"output": out.detach().numpy(), "h_n": [a.detach().numpy() for a in h_n], "lengths": out_lengths.numpy(),
            "grad_x": x_t.grad.numpy(), "grad_h0": None if h0_t is None else [a.grad.numpy() for a in h0_t],
            "grad_params": {k: p.grad.numpy() for k, p in layer.named_parameters()}}


def _run(face: str, kind: str, layer: torch.nn.RNNBase):
    """The twin of torch's ``layer`` in ``face``: ``(params, forward, torch_keys)``, where
    ``forward(params, packed, hx) -> (output, h_n)`` and ``torch_keys(grads)`` names the gradients
    as ``layer.named_parameters()``. A new face is one more branch here."""
    if face == "functional":
        return torch_params(layer), _FUNCTIONAL[kind], lambda grads: grads
    if face == "linen":
        module = _LINEN[kind](I, H, layer.num_layers, batch_first=layer.batch_first, bidirectional=layer.bidirectional,
                              param_dtype=jnp.float64)

        def forward(params, packed, hx):
            return module.apply({"params": params}, packed, hx)

        return jaxrnn.from_torch(layer.state_dict(), module)["params"], forward, jaxrnn.to_torch
    if face == "nnx":
        graphdef, state = nnx.split(jaxrnn.nnx.from_torch(layer.state_dict(), _NNX[kind](
            I, H, layer.num_layers, batch_first=layer.batch_first, bidirectional=layer.bidirectional,
            rngs=nnx.Rngs(0))))

        def forward(params, packed, hx):
            return nnx.merge(graphdef, params)(packed, hx)

        return state, forward, jaxrnn.nnx.to_torch
    raise AssertionError(f"unknown face {face!r}")


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_packed_layer_matches_torch(case):
    kind, layers, bidi, batch_first, with_h0, enforce_sorted, face = case
    seed = zlib.crc32(repr(case).encode())
    rng = np.random.default_rng(seed)
    layer = _torch_layer(kind, layers, bidi, batch_first, seed)
    rows, lstm = layers * (2 if bidi else 1), kind == "lstm"
    lengths = SORTED if enforce_sorted else UNSORTED
    x = rng.standard_normal((N, T, I) if batch_first else (T, N, I))
    h0 = [rng.standard_normal((rows, N, H)) for _ in range(2 if lstm else 1)]
    out_w = rng.standard_normal(x.shape[:-1] + (H * (2 if bidi else 1),))
    hn_w = [rng.standard_normal((rows, N, H)) for _ in h0]
    expected = _torch_packed(layer, x, h0 if with_h0 else None, lengths, enforce_sorted, out_w, hn_w)
    params, forward, torch_keys = _run(face, kind, layer)

    def loss(params, x, h0, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
        hx = (tuple(h0) if lstm else h0[0]) if with_h0 else None
        out, h_n = forward(params, packed, hx)
        assert isinstance(out, PackedSequence) and out.padded.shape[:2] == (T, N)  # time-major, whatever batch_first
        padded, out_lengths = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
        h_n = list(h_n) if lstm else [h_n]
        total = jnp.sum(padded * out_w) + sum(jnp.sum(a * w) for a, w in zip(h_n, hn_w))
        return total, (padded, h_n, out_lengths)

    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))
    (_, (out, h_n, out_lengths)), (g_params, g_x, g_h0) = step(params, x, h0, jnp.asarray(lengths))
    assert_close(out, expected["output"], "float64", "output")
    for name, a, e in zip(("h_n", "c_n"), h_n, expected["h_n"]):
        assert_close(a, e, "float64", name)
    np.testing.assert_array_equal(out_lengths, expected["lengths"])
    assert_close(g_x, expected["grad_x"], "float64", "grad x")
    if with_h0:
        for a, e in zip(g_h0, expected["grad_h0"]):
            assert_close(a, e, "float64", "grad h0")
    else:
        assert not any(np.any(np.asarray(a)) for a in g_h0), "h0 that is not passed must get no gradient"
    assert_trees_close(torch_keys(g_params), expected["grad_params"], "float64", "grad params")


def test_sweep_covers_every_option():
    for position, values in enumerate((KINDS, (1, 2), (False, True), (False, True), (False, True), (True, False),
                                       FACES)):
        assert {case[position] for case in CASES} == set(values), position
    assert 30 <= len(CASES) <= 20 * len(FACES)


# --------------------------------------------------------------------------- packing, against torch


@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("features", [(), (2,), (3, 2)], ids=["scalar", "F", "FxG"])
def test_pack_padded_sequence_matches_torch(features, batch_first, enforce_sorted):
    rng = np.random.default_rng(len(features) * 4 + 2 * batch_first + enforce_sorted)
    lengths = SORTED if enforce_sorted else UNSORTED
    x = rng.standard_normal(((N, T) if batch_first else (T, N)) + features)
    ours = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    theirs = torch_utils.pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), batch_first=batch_first,
                                              enforce_sorted=enforce_sorted)
    np.testing.assert_array_equal(ours.data, theirs.data.numpy())
    np.testing.assert_array_equal(ours.batch_sizes, theirs.batch_sizes.numpy())
    assert ours.batch_sizes.dtype == np.int64
    if enforce_sorted:
        assert ours.sorted_indices is None and ours.unsorted_indices is None and theirs.sorted_indices is None
    else:
        np.testing.assert_array_equal(ours.sorted_indices, theirs.sorted_indices.numpy())
        np.testing.assert_array_equal(ours.unsorted_indices, theirs.unsorted_indices.numpy())
    # storage: time-major in the original order, zeros past each length
    time_major = np.swapaxes(x, 0, 1) if batch_first else x
    valid = (np.arange(T)[:, None] < lengths[None, :]).reshape((T, N) + (1,) * len(features))
    np.testing.assert_array_equal(ours.padded, np.where(valid, time_major, 0.0))


@pytest.mark.parametrize("total_length", [None, T, T + 3])
@pytest.mark.parametrize("padding_value", [0.0, -1.5])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths", [SORTED, UNSORTED], ids=["sorted", "unsorted"])
def test_pad_packed_sequence_matches_torch(lengths, batch_first, padding_value, total_length):
    rng = np.random.default_rng(7)
    short = np.minimum(lengths, T - 1)  # max length T - 1 < T: without total_length the result is shorter than x
    x = rng.standard_normal(((N, T) if batch_first else (T, N)) + (2,))
    enforce_sorted = bool(np.all(short[1:] <= short[:-1]))
    ours = pad_packed_sequence(pack_padded_sequence(x, short, batch_first, enforce_sorted), batch_first,
                               padding_value, total_length)
    theirs = torch_utils.pad_packed_sequence(
        torch_utils.pack_padded_sequence(torch.tensor(x), torch.tensor(short), batch_first, enforce_sorted),
        batch_first, padding_value, total_length)
    np.testing.assert_array_equal(ours[0], theirs[0].numpy())
    np.testing.assert_array_equal(ours[1], theirs[1].numpy())
    assert ours[1].dtype == np.int64


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_pad_sequence_and_pack_sequence_match_torch(batch_first, padding_side):
    rng = np.random.default_rng(3)
    sequences = [rng.standard_normal((n, 2, 3)) for n in (4, 6, 1, 4)]
    ours = pad_sequence(sequences, batch_first, -0.5, padding_side)
    theirs = torch_utils.pad_sequence([torch.tensor(s) for s in sequences], batch_first, -0.5, padding_side)
    np.testing.assert_array_equal(ours, theirs.numpy())
    for enforce_sorted, order in ((False, [0, 1, 2, 3]), (True, [1, 0, 3, 2])):
        chosen = [sequences[i] for i in order]
        ours_p = pack_sequence(chosen, enforce_sorted=enforce_sorted)
        theirs_p = torch_utils.pack_sequence([torch.tensor(s) for s in chosen], enforce_sorted=enforce_sorted)
        np.testing.assert_array_equal(ours_p.data, theirs_p.data.numpy())
        np.testing.assert_array_equal(ours_p.batch_sizes, theirs_p.batch_sizes.numpy())


def test_lengths_as_list_numpy_jax_and_torch_give_the_same_packing():
    x = np.random.default_rng(0).standard_normal((T, N, I))
    packs = [pack_padded_sequence(x, lengths, enforce_sorted=False)
             for lengths in (UNSORTED.tolist(), UNSORTED, jnp.asarray(UNSORTED), torch.tensor(UNSORTED))]
    for packed in packs:
        np.testing.assert_array_equal(packed.data, packs[0].data)
        np.testing.assert_array_equal(packed.sorted_indices, packs[0].sorted_indices)


def test_packing_zeroes_the_gradient_of_padded_positions():
    x = np.random.default_rng(1).standard_normal((N, T, I))
    grad = jax.grad(lambda x: jnp.sum(pack_padded_sequence(x, UNSORTED, True, False).padded ** 2))(x)
    valid = np.arange(T)[None, :, None] < UNSORTED[:, None, None]
    np.testing.assert_array_equal(grad, np.where(valid, 2 * x, 0.0))


def test_repr_names_the_fields():
    packed = pack_padded_sequence(np.zeros((T, N, I)), UNSORTED, enforce_sorted=False)
    assert repr(packed) == (f"PackedSequence(padded={packed.padded.dtype}[{T}, {N}, {I}], lengths=[3, 6, 1, 6, 4], "
                            "sorted_indices=[1, 3, 4, 0, 2], unsorted_indices=[3, 0, 4, 1, 2])")
    assert "sorted_indices=None" in repr(pack_padded_sequence(np.zeros((T, N, I)), SORTED))


# --------------------------------------------------------------------------- layers: linen's init, jit


@pytest.mark.parametrize("kind", KINDS)
def test_linen_init_on_a_packed_sequence_equals_init_on_its_padded(kind):
    x = np.random.default_rng(2).standard_normal((N, T, I))
    module = _LINEN[kind](I, H, 2, batch_first=True, bidirectional=True)
    packed = pack_padded_sequence(x, UNSORTED, batch_first=True, enforce_sorted=False)
    on_packed, on_padded = module.init(jax.random.key(0), packed), module.init(jax.random.key(0), x)
    assert_trees_close(jaxrnn.to_torch(on_packed["params"]), jaxrnn.to_torch(on_padded["params"]))
    out, _ = module.apply(on_packed, packed)
    padded, _ = module.apply(on_padded, x, seq_lengths=UNSORTED)
    assert_close(pad_packed_sequence(out, batch_first=True, total_length=T)[0], padded)


def test_packed_sequence_passes_through_jit():
    x = np.random.default_rng(4).standard_normal((N, T, I))
    packed = pack_padded_sequence(x, UNSORTED, batch_first=True, enforce_sorted=False)
    params = F.init_params(jax.random.key(0), "gru", I, H, dtype=jnp.float64)
    out = jax.jit(lambda p, s: F.gru(p, s)[0])(params, packed)  # argument and result
    assert isinstance(out, PackedSequence)
    eager, _ = F.gru(params, packed)
    assert_close(out.data, eager.data)
    np.testing.assert_array_equal(out.batch_sizes, packed.batch_sizes)
    np.testing.assert_array_equal(out.unsorted_indices, packed.unsorted_indices)
    with pytest.raises(ValueError, match=r"pad_packed_sequence: without `total_length`.*traced.*pass total_length"):
        jax.jit(lambda s: pad_packed_sequence(s))(packed)
    with pytest.raises(ValueError, match=r"PackedSequence: `data` needs concrete lengths"):
        jax.jit(lambda s: s.data)(packed)
    padded, lengths = jax.jit(lambda s: pad_packed_sequence(s, batch_first=True, total_length=T))(out)
    assert_close(padded, pad_packed_sequence(eager, batch_first=True)[0])
    np.testing.assert_array_equal(lengths, UNSORTED)
    # lengths closed over stay known inside jit: no total_length needed
    closed = jax.jit(lambda x: pad_packed_sequence(pack_padded_sequence(x, UNSORTED, True, False), True)[0])(x)
    assert_close(closed, pad_packed_sequence(packed, batch_first=True)[0])


def test_traced_lengths_are_checked_under_checkify():
    x = np.random.default_rng(5).standard_normal((T, N, I))

    def pack(lengths, enforce_sorted):
        return pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted).padded

    checked = jax.jit(checkify.checkify(pack, errors=checkify.user_checks), static_argnums=1)
    checked(jnp.asarray(UNSORTED), False)[0].throw()
    with pytest.raises(checkify.JaxRuntimeError, match=r"`lengths` must lie in \[1, 6\].*min 0 and max 6"):
        checked(jnp.asarray([0, 6, 1, 6, 4]), False)[0].throw()
    with pytest.raises(checkify.JaxRuntimeError, match=r"sorted in decreasing order"):
        checked(jnp.asarray(UNSORTED), True)[0].throw()


# --------------------------------------------------------------------------- errors


def _x():
    return np.random.default_rng(6).standard_normal((T, N, I))


def test_pack_padded_sequence_errors():
    with pytest.raises(ValueError, match=r"sorted in decreasing order when `enforce_sorted` is True.*enforce_sorted="
                                         r"False.*Got lengths \[3, 6, 1, 6, 4\]"):
        pack_padded_sequence(_x(), UNSORTED)
    with pytest.raises(ValueError, match=r"pack_padded_sequence: `lengths` must lie in \[1, 6\] \(torch: every length "
                                         r"must be greater than 0.*got min 0 and max 6"):
        pack_padded_sequence(_x(), [6, 6, 4, 2, 0])
    with pytest.raises(ValueError, match=r"`lengths` must lie in \[1, 6\].*got min 1 and max 7"):
        pack_padded_sequence(_x(), [7, 6, 4, 2, 1])
    with pytest.raises(TypeError, match=r"pack_padded_sequence: `lengths` must be integers, got dtype float64"):
        pack_padded_sequence(_x(), np.array([6.0, 6, 4, 2, 1]))
    with pytest.raises(ValueError, match=r"pack_padded_sequence: expected `lengths` of shape \(5,\).*got shape \(4,\)"):
        pack_padded_sequence(_x(), [6, 6, 4, 2])
    with pytest.raises(ValueError, match=r"expected `lengths` of shape \(6,\)"):  # batch_first: batch is axis 0
        pack_padded_sequence(_x(), SORTED, batch_first=True)
    with pytest.raises(ValueError, match=r"pack_padded_sequence: expected `input` of at least 2 dimensions"):
        pack_padded_sequence(np.zeros(T), [T])
    with pytest.raises(ValueError, match=r"pack_sequence: `lengths` array must be sorted in decreasing order"):
        pack_sequence([np.zeros(2), np.zeros(3)])


def test_pad_packed_sequence_errors():
    packed = pack_padded_sequence(_x(), UNSORTED, enforce_sorted=False)
    with pytest.raises(ValueError, match=r"pad_packed_sequence: expected `total_length` to be at least the length of "
                                         r"the longest sequence.*total_length=5 and max sequence length being 6"):
        pad_packed_sequence(packed, total_length=5)
    with pytest.raises(TypeError, match=r"pad_packed_sequence: `sequence` must be a PackedSequence, got ndarray"):
        pad_packed_sequence(_x())
    with pytest.raises(ValueError, match=r"pad_sequence: every sequence must be \(L, \*\) with the same trailing"):
        pad_sequence([np.zeros((2, 3)), np.zeros((2, 4))])


@pytest.mark.parametrize("face", FACES)
def test_seq_lengths_with_a_packed_sequence_is_refused(face):
    packed = pack_padded_sequence(_x(), UNSORTED, enforce_sorted=False)
    params = F.init_params(jax.random.key(0), "lstm", I, H)
    match = r"lstm: got `seq_lengths` and a PackedSequence x, whose lengths come with it" if face == "functional" \
        else r"LSTM: got `seq_lengths` and a PackedSequence x"
    with pytest.raises(TypeError, match=match):
        if face == "functional":
            F.lstm(params, packed, seq_lengths=UNSORTED)
        elif face == "linen":
            module = jaxrnn.LSTM(I, H)
            module.apply(module.init(jax.random.key(0), packed), packed, seq_lengths=UNSORTED)
        else:
            jaxrnn.nnx.LSTM(I, H, rngs=nnx.Rngs(0))(packed, seq_lengths=UNSORTED)


def test_packed_unbatched_data_is_refused():
    params = F.init_params(jax.random.key(0), "gru", I, H)
    with pytest.raises(ValueError, match=r"gru: a PackedSequence x must hold a batch, padded \(time, batch, "
                                         r"input_size\), got padded of shape \(6, 5, 3, 1\)"):
        F.gru(params, pack_padded_sequence(_x()[..., None], UNSORTED, enforce_sorted=False))


@pytest.mark.parametrize("face", FACES)
def test_cells_refuse_a_packed_sequence(face):
    packed = pack_padded_sequence(_x(), UNSORTED, enforce_sorted=False)
    owner = "lstm_cell" if face == "functional" else "LSTMCell"
    with pytest.raises(TypeError, match=rf"{owner}: a cell takes one step, x of shape \(batch, input_size\).*not a "
                                        "PackedSequence"):
        if face == "functional":
            params = {k.removesuffix("_l0"): v for k, v in F.init_params(jax.random.key(0), "lstm", I, H).items()}
            F.lstm_cell(params, packed)
        elif face == "linen":
            cell = jaxrnn.LSTMCell(I, H)
            cell.init(jax.random.key(0), packed)
        else:
            jaxrnn.nnx.LSTMCell(I, H, rngs=nnx.Rngs(0))(packed)
