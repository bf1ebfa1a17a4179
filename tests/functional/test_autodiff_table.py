"""Every documented autodiff use on every cell and impl, against derivatives taken another way.

The table of the layers' docstrings: on ``impl='scan'`` every mode works; on ``impl='fused'``
reverse mode (``jax.grad``, ``jax.vjp``, ``jax.jacrev``, grad of grad) and forward over reverse
(``jax.hessian``, ``jax.jvp`` of ``jax.grad``) work, and forward mode (``jax.jvp``,
``jax.jacfwd``) raises a TypeError naming ``impl='scan'`` (never a compiler crash); the linear
map of ``jax.linearize`` runs forward, and JAX raises its own TypeError when it is called;
a projected LSTM runs the scan reference either way, so every mode works there.

Each result is compared (float64, 1e-10) with the same derivative taken by a different mode on
the scan reference: a reverse-mode result with the forward-mode Jacobian, a forward-mode result
with the reverse-mode Jacobian of the engine, a second derivative with forward over forward.
The configuration is a bidirectional layer on full-length sequences (where ``jax.hessian``
through the engine's LSTM once crashed XLA's CPU compiler; derivatives with ``seq_lengths`` are
held to each other in ``test_autodiff_modes``); which face runs it (``jaxrnn.functional``, the
linen layer or the NNX layer) is picked by a hash of the case.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _compare import assert_close
from _torch_rnn import face_of
from flax import nnx

import jaxrnn
from jaxrnn import functional as F

MODES = ("rnn_tanh", "rnn_relu", "lstm", "lstm_proj", "gru")
FORWARD = ("jvp", "jacfwd")
"""The forward-mode uses: an error on impl='fused' (but the projected LSTM)."""
USES = ("grad", "vjp", "jacrev", "linearize", "grad_of_grad", "hessian", "jvp_of_grad") + FORWARD

T, N, I, H, P = 3, 2, 2, 3, 2


def _setup(mode: str):
    rng = np.random.default_rng(MODES.index(mode))
    cell = "lstm" if mode == "lstm_proj" else mode
    params = F.init_params(jax.random.key(MODES.index(mode)), cell, I, H, 1, bidirectional=True,
                           proj_size=P if mode == "lstm_proj" else 0, dtype=jnp.float64)
    x = jnp.asarray(rng.standard_normal((T, N, I)))
    return cell, params, x, rng


def _layer(mode: str, face: str, impl: str):
    """``g(w_hh) -> every output leaf, flattened``: the layer as a function of its ``weight_hh_l0``."""
    cell, params, x, _ = _setup(mode)

    if face == "functional":
        fn = {"rnn_tanh": F.rnn, "rnn_relu": functools.partial(F.rnn, nonlinearity="relu"), "lstm": F.lstm,
              "gru": F.gru}[cell]

        def run(w):
            return fn({**params, "weight_hh_l0": w}, x, impl=impl)
    elif face == "nnx":
        kwargs = dict(bidirectional=True, impl=impl, rngs=nnx.Rngs(0))
        layer = {"rnn_tanh": functools.partial(jaxrnn.nnx.RNN, nonlinearity="tanh"),
                 "rnn_relu": functools.partial(jaxrnn.nnx.RNN, nonlinearity="relu"),
                 "lstm": functools.partial(jaxrnn.nnx.LSTM, proj_size=P if mode == "lstm_proj" else 0),
                 "gru": jaxrnn.nnx.GRU}[cell](I, H, **kwargs)
        graphdef, state = nnx.split(jaxrnn.nnx.from_torch(params, layer))

        def run(w):  # a fresh module inside the transform, holding w
            held = jax.tree_util.tree_map_with_path(
                lambda path, a: w if jax.tree_util.DictKey("weight_hh_l0") in path else a, state)
            return nnx.merge(graphdef, held)(x)
    else:
        kwargs = dict(bidirectional=True, param_dtype=jnp.float64, impl=impl)
        module = {"rnn_tanh": functools.partial(jaxrnn.RNN, nonlinearity="tanh"),
                  "rnn_relu": functools.partial(jaxrnn.RNN, nonlinearity="relu"),
                  "lstm": functools.partial(jaxrnn.LSTM, proj_size=P if mode == "lstm_proj" else 0),
                  "gru": jaxrnn.GRU}[cell](I, H, **kwargs)
        variables = jaxrnn.from_torch(params, module, x)

        def run(w):
            tree = jax.tree.map(lambda a: a, variables)
            tree["params"]["l0"]["weight_hh"] = w
            return module.apply(tree, x)

    return lambda w: jnp.concatenate([leaf.ravel() for leaf in jax.tree.leaves(run(w))])


@functools.cache
def _jacrev_of_engine(mode: str):
    return jax.jit(jax.jacrev(_layer(mode, "functional", "fused")))


@functools.cache
def _reference(mode: str):
    """(w, u, J, Hess of <u, g>): the Jacobian by forward mode on the scan reference (checked
    against reverse mode on the engine here) and the Hessian by forward over forward."""
    _, params, _, rng = _setup(mode)
    w = params["weight_hh_l0"]
    g = _layer(mode, "functional", "scan")
    u = jnp.asarray(rng.standard_normal(g(w).shape))
    jac = jax.jit(jax.jacfwd(g))(w)
    assert_close(_jacrev_of_engine(mode)(w), jac, what="jacrev(fused) vs jacfwd(scan)")
    hess = jax.jit(jax.jacfwd(jax.jacfwd(lambda w: jnp.dot(u, g(w)))))(w)
    return w, u, jac, hess


@pytest.mark.parametrize("use", USES)
@pytest.mark.parametrize("impl", ["fused", "scan"])
@pytest.mark.parametrize("mode", MODES)
def test_autodiff_use_matches_another_mode_or_names_scan(mode, impl, use):
    face = face_of((mode, impl, use))
    w, u, jac, hess = _reference(mode)
    g = _layer(mode, face, impl)

    def f(w):
        return jnp.dot(u, g(w))

    v = jnp.asarray(np.random.default_rng(7).standard_normal(w.shape))
    grad_ref = jnp.tensordot(u, jac, axes=1)
    if use in FORWARD and impl == "fused" and mode != "lstm_proj":
        with pytest.raises(TypeError, match=r"impl='scan'"):
            jax.jvp(g, (w,), (v,)) if use == "jvp" else jax.jacfwd(g)(w)
        with pytest.raises(TypeError, match=r"impl='scan'"):  # under jit JAX would only fail when lowering
            jax.jit(lambda w: jax.jvp(g, (w,), (v,)))(w)
        return
    if use == "grad":
        assert_close(jax.grad(f)(w), grad_ref, what=use)
    elif use == "vjp":
        out, pullback = jax.vjp(g, w)
        assert_close(out, _layer(mode, "functional", "scan")(w), what="primal")
        assert_close(pullback(u)[0], grad_ref, what=use)
    elif use == "jacrev":
        assert_close(jax.jacrev(g)(w), jac, what=use)
    elif use == "linearize":
        _, lin = jax.linearize(g, w)
        if impl == "fused" and mode != "lstm_proj":  # its linear map runs forward: JAX's own error
            with pytest.raises(TypeError, match="forward-mode autodiff"):
                lin(v)
            return
        assert_close(lin(v), jnp.tensordot(jac, v, axes=2), what=use)
    elif use == "grad_of_grad":
        outer = jax.grad(lambda w: jnp.vdot(v, jax.grad(f)(w)))(w)
        assert_close(outer, jnp.tensordot(hess, v, axes=2), what=use)
    elif use == "hessian":
        assert_close(jax.hessian(f)(w), hess, what=use)
    elif use == "jvp_of_grad":
        assert_close(jax.jvp(jax.grad(f), (w,), (v,))[1], jnp.tensordot(hess, v, axes=2), what=use)
    else:  # forward mode, against reverse mode on the engine (the projected LSTM: on its scan)
        jac_rev = _jacrev_of_engine(mode)(w)
        if use == "jvp":
            assert_close(jax.jvp(g, (w,), (v,))[1], jnp.tensordot(jac_rev, v, axes=2), what=use)
        else:
            assert_close(jax.jacfwd(g)(w), jac_rev, what=use)


@pytest.mark.parametrize("mode", MODES)
def test_hessian_of_a_loss_through_the_default_layer_matches_scan(mode):
    """The reported case: ``jax.hessian`` of a loss of the output alone, eagerly, through the
    default (fused) layer, which once crashed XLA's CPU compiler for the LSTM."""
    cell, params, x, _ = _setup(mode)
    fn = {"rnn_tanh": F.rnn, "rnn_relu": functools.partial(F.rnn, nonlinearity="relu"), "lstm": F.lstm,
          "gru": F.gru}[cell]

    def loss(w, impl):
        return jnp.sum(jnp.sin(fn({**params, "weight_hh_l0": w}, x, impl=impl)[0]))

    w = params["weight_hh_l0"]
    reference = jax.jit(jax.jacfwd(jax.jacfwd(functools.partial(loss, impl="scan"))))(w)
    assert_close(jax.hessian(functools.partial(loss, impl="fused"))(w), reference, what="hessian")
