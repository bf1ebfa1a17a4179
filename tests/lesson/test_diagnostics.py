"""jaxrnn.diagnostics: gradient_flow against torch autograd and closed forms; the section-5 physics
(jaxrnn.lesson.section5, built on it)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from _compare import assert_close

import jaxrnn
import jaxrnn.models
import torchref.models
from jaxrnn import diagnostics
from jaxrnn.lesson.section5 import run_gradflow, section5_gradient_flow

rng = np.random.default_rng(0)


def _torch_step_norms(x_t: torch.Tensor, loss: torch.Tensor, time_axis: int) -> np.ndarray:
    loss.backward()
    grad = x_t.grad.numpy()
    others = tuple(a for a in range(grad.ndim) if a != time_axis)
    return np.sqrt(np.sum(grad**2, axis=others))


LAYERS = {"rnn": (torch.nn.RNN, jaxrnn.RNN), "lstm": (torch.nn.LSTM, jaxrnn.LSTM), "gru": (torch.nn.GRU, jaxrnn.GRU)}


@pytest.mark.parametrize("cell", sorted(LAYERS))
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True)])
def test_gradient_flow_matches_torch_autograd_layers(cell, batch_first, num_layers, bidirectional):
    """Per-step norms of d sum(h_n of the last layer) / dx, torch.nn.* autograd on the same weights, float64."""
    torch_cls, jax_cls = LAYERS[cell]
    torch.manual_seed(1)
    kwargs = dict(num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first)
    layer_t = torch_cls(3, 7, **kwargs).double()
    layer = jax_cls(3, 7, **kwargs)
    variables = jaxrnn.from_torch(layer_t.state_dict(), layer)
    batch, steps = 4, 11
    x = rng.standard_normal((batch, steps, 3) if batch_first else (steps, batch, 3))
    x_t = torch.tensor(x, requires_grad=True)
    _, state = layer_t(x_t)
    h_n = state[0] if cell == "lstm" else state
    directions = 2 if bidirectional else 1
    expected = _torch_step_norms(x_t, h_n[-directions:].sum(), 1 if batch_first else 0)

    got = diagnostics.gradient_flow(layer, variables, x)
    assert got.shape == (steps,) and got.dtype == np.float64
    assert_close(got, expected, what=f"{cell} batch_first={batch_first}")
    assert np.all(expected > 0)


def test_gradient_flow_unbatched_layer_matches_torch():
    torch.manual_seed(2)
    layer_t = torch.nn.GRU(2, 5).double()
    layer = jaxrnn.GRU(2, 5)
    variables = jaxrnn.from_torch(layer_t.state_dict(), layer)
    x = rng.standard_normal((9, 2))  # (time, features), batch_first does not apply
    x_t = torch.tensor(x, requires_grad=True)
    _, h_n = layer_t(x_t)
    assert_close(diagnostics.gradient_flow(layer, variables, x), _torch_step_norms(x_t, h_n[-1].sum(), 0))


MODELS = {
    # name: (constructor args, kwargs, x, torch's default loss on the output)
    "RNNClassifier-lstm": ((4, 6, 3), {"cell": "lstm", "num_layers": 2}, lambda out: out.sum()),
    "RNNSeq2Seq": ((4, 6, 3), {}, lambda out: out[:, -1].sum()),
    "RNNSeq2Seq-gru": ((4, 6, 3), {"cell": "gru"}, lambda out: out[:, -1].sum()),
    "SinPredictor": ((), {}, lambda out: out.sum()),
}


@pytest.mark.parametrize("case", sorted(MODELS))
def test_gradient_flow_matches_torch_autograd_models(case):
    """The lesson's models (batch-first): a (batch, T, ·) output is summed at its last step only."""
    args, kwargs, torch_loss = MODELS[case]
    name = case.split("-")[0]
    torch.manual_seed(3)
    model_t = getattr(torchref.models, name)(*args, **kwargs).double()
    model = getattr(jaxrnn.models, name)(*args, **kwargs)
    variables = jaxrnn.from_torch(model_t.state_dict(), model)
    x = rng.standard_normal((5, 13, 1 if name == "SinPredictor" else 4))
    x_t = torch.tensor(x, requires_grad=True)
    expected = _torch_step_norms(x_t, torch_loss(model_t(x_t)), 1)
    assert_close(diagnostics.gradient_flow(model, variables, x), expected, what=case)


def test_gradient_flow_custom_loss_matches_jacrev_and_is_causal():
    """loss_fn on the output at step 6: the norms are jax.jacrev's, and zero after step 6."""
    rnn = jaxrnn.RNN(3, 8, batch_first=True)
    x = rng.standard_normal((2, 12, 3))
    variables = rnn.init(jax.random.key(0), x)

    def loss_fn(result):
        output, _ = result
        return jnp.sum(output[:, 6] * jnp.arange(1.0, 9.0)[None, :])

    got = diagnostics.gradient_flow(rnn, variables, x, loss_fn=loss_fn)
    jac = jax.jacrev(lambda xx: loss_fn(rnn.apply(variables, xx)))(jnp.asarray(x))
    assert_close(got, np.sqrt(np.sum(np.asarray(jac) ** 2, axis=(0, 2))))
    assert np.all(got[7:] == 0.0) and np.all(got[:7] > 0)


def test_gradient_flow_equals_the_jacobian_product_in_the_linear_regime():
    """Section 5's product, in closed form: with zero biases and tiny inputs tanh' = 1 to ~1e-12, so
    dL/dx(t) = W_ih^T (W_hh^T)^(T-1-t) 1 for every sequence and g(t) = sqrt(batch) ||that||."""
    rnn = jaxrnn.RNN(3, 6, batch_first=True, param_dtype=jnp.float64)
    x = 1e-7 * rng.standard_normal((4, 15, 3))
    variables = rnn.init(jax.random.key(1), x)
    params = dict(variables["params"]["l0"], bias_ih=jnp.zeros(6), bias_hh=jnp.zeros(6))
    variables = {"params": {"l0": params}}
    w_ih, w_hh = np.asarray(params["weight_ih"], np.float64), np.asarray(params["weight_hh"], np.float64)
    expected = [
        math.sqrt(4) * np.linalg.norm(w_ih.T @ np.linalg.matrix_power(w_hh.T, 14 - t) @ np.ones(6)) for t in range(15)
    ]
    np.testing.assert_allclose(diagnostics.gradient_flow(rnn, variables, x), expected, rtol=1e-9)


def test_spectral_radius_and_rescaling():
    rnn = jaxrnn.RNN(2, 10, num_layers=2, param_dtype=jnp.float64)
    variables = rnn.init(jax.random.key(0), rng.standard_normal((3, 1, 2)))
    scaled = diagnostics.with_spectral_radius(variables, 0.5)
    for layer in ("l0", "l1"):
        w, w2 = np.asarray(variables["params"][layer]["weight_hh"]), np.asarray(scaled["params"][layer]["weight_hh"])
        eig = np.max(np.abs(np.linalg.eigvals(w)))
        assert diagnostics.spectral_radius(w2) == pytest.approx(0.5, rel=1e-12)
        np.testing.assert_allclose(w2, w * (0.5 / eig), rtol=1e-12)  # a pure rescaling
        np.testing.assert_array_equal(scaled["params"][layer]["weight_ih"], variables["params"][layer]["weight_ih"])
    assert diagnostics.spectral_radius(np.diag([0.3, -0.9, 0.5])) == pytest.approx(0.9)


# --- the physics of section 5, on the lesson's picture itself


@pytest.fixture(scope="module")
def section5():
    return section5_gradient_flow(seq_len=60, seed=0)


def test_small_spectral_radius_vanishes(section5):
    """ρ(W_hh) = 0.5: 50 steps back the gradient norm is more than 10 orders of magnitude smaller,
    and it falls at every step of the way (geometric decay)."""
    norms = section5["rnn_rho0p5"].norms
    assert diagnostics.norm_ratio(norms, 50) < 1e-10
    back = norms[::-1]
    assert np.all(back[5:51] < back[:46])  # smaller than 5 steps later, all the way back
    # the rate: the mean decay per step lies near ρ (times tanh' <= 1)
    rate = (back[50] / back[10]) ** (1 / 40)
    assert 0.05 < rate < 0.5


def test_large_spectral_radius_grows(section5):
    """ρ(W_hh) = 3 (tanh): the gradient norm 50 steps back is orders of magnitude larger than at the
    end; ρ = 2 grows less (tanh saturates), still more than tenfold."""
    norms = section5["rnn_rho3"].norms
    assert diagnostics.norm_ratio(norms, 50) > 1e4
    assert norms[::-1][50] > norms[::-1][25] > norms[::-1][0]
    assert diagnostics.norm_ratio(section5["rnn_rho2"].norms, 50) > 10


def test_relu_rnn_with_large_radius_explodes():
    """The linear-regime picture with relu (no saturation): ρ = 2 grows, ρ = 0.5 vanishes."""
    rnn = jaxrnn.RNN(4, 32, nonlinearity="relu", batch_first=True)
    x = rng.standard_normal((8, 60, 4))
    variables = rnn.init(jax.random.key(0), x)
    big = diagnostics.gradient_flow(rnn, diagnostics.with_spectral_radius(variables, 2.0), x)
    small = diagnostics.gradient_flow(rnn, diagnostics.with_spectral_radius(variables, 0.5), x)
    assert diagnostics.norm_ratio(big, 50) > 1e2
    assert diagnostics.norm_ratio(small, 50) < 1e-12


def test_gated_cells_decay_slower_than_small_radius_rnn(section5):
    """At PyTorch's init LSTM and GRU keep far more gradient 50 steps back than the ρ = 0.5 RNN
    (and than the default RNN, whose ρ is about 1/sqrt(3))."""
    small = diagnostics.norm_ratio(section5["rnn_rho0p5"].norms, 50)
    for key in ("lstm", "gru"):
        ratio = diagnostics.norm_ratio(section5[key].norms, 50)
        assert ratio > 1e4 * small, key
        assert ratio > 10 * diagnostics.norm_ratio(section5["rnn"].norms, 50), key
    assert 0.4 < section5["rnn"].spectral_radius < 0.8
    assert section5["rnn_rho2"].spectral_radius == 2.0
    assert diagnostics.spectral_radius(np.eye(3) * 2.0) == 2.0


def test_run_gradflow_writes_figure_and_metrics(tmp_path):
    metrics = run_gradflow(tmp_path, quick=True)
    assert (tmp_path / "gradflow.png").stat().st_size > 10_000
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["gradflow.rnn_rho0p5.ratio_d50"] < 1e-10 < 1e4 < metrics["gradflow.rnn_rho3.ratio_d50"]
    assert metrics["gradflow.lstm.ratio_d50"] > metrics["gradflow.rnn_rho0p5.ratio_d50"]
    assert metrics["gradflow.rnn.ratio_d50"] == pytest.approx(
        metrics["gradflow.rnn.norm_d50"] / metrics["gradflow.rnn.norm_d0"], rel=1e-12
    )


def test_plot_gradient_flow_writes_png(tmp_path):
    norms = np.geomspace(1e-20, 1.0, 30)
    path = diagnostics.plot_gradient_flow({"decay": norms, "flat": np.full(30, 0.5), "zeros": np.zeros(30)},
                                          tmp_path / "g.png", mark=10)
    assert path.stat().st_size > 5_000


# --- errors


def test_errors_name_the_argument():
    rnn = jaxrnn.RNN(3, 4, batch_first=True)
    x = rng.standard_normal((2, 5, 3))
    variables = rnn.init(jax.random.key(0), x)
    with pytest.raises(TypeError, match="`model` must be a flax.linen Module, got function"):
        diagnostics.gradient_flow(lambda v, x: x, variables, x)
    with pytest.raises(TypeError, match="`variables` must be a mapping with a 'params' entry"):
        diagnostics.gradient_flow(rnn, variables["params"], x)
    with pytest.raises(TypeError, match="`x` must have a floating dtype .* got int64"):
        diagnostics.gradient_flow(rnn, variables, np.arange(30).reshape(2, 5, 3))
    with pytest.raises(TypeError, match="`x` must be an array, got list"):
        diagnostics.gradient_flow(rnn, variables, [[1.0]])
    with pytest.raises(TypeError, match="`loss_fn` must be a function"):
        diagnostics.gradient_flow(rnn, variables, x, loss_fn=3)
    with pytest.raises(ValueError, match=r"`loss_fn` must return a scalar, got shape \(2, 5, 4\)"):
        diagnostics.gradient_flow(rnn, variables, x, loss_fn=lambda out: out[0])
    model = jaxrnn.models.RNNClassifier(3, 4, 2)
    with pytest.raises(ValueError, match=r"`x` must be \(batch, time, features\) for RNNClassifier, got shape \(5,\)"):
        diagnostics.gradient_flow(model, model.init(jax.random.key(0), x), x[0, :, 0])
    with pytest.raises(ValueError, match="`radius` must be a positive finite number, got -1"):
        diagnostics.with_spectral_radius(variables, -1.0)
    with pytest.raises(TypeError, match="`radius` must be a positive number, got True"):
        diagnostics.with_spectral_radius(variables, True)
    lstm = jaxrnn.LSTM(3, 4)
    with pytest.raises(ValueError, match="hold no square `weight_hh`"):
        diagnostics.with_spectral_radius(lstm.init(jax.random.key(0), x), 0.5)
    with pytest.raises(ValueError, match=r"`matrix` must be square 2D, got shape \(2, 3\)"):
        diagnostics.spectral_radius(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"`distance` must lie in \[0, 4\], got 5"):
        diagnostics.norm_ratio(np.arange(1.0, 6.0), 5)
    with pytest.raises(ValueError, match="`runs` must be a non-empty mapping"):
        diagnostics.plot_gradient_flow({}, "unused.png")
    with pytest.raises(ValueError, match="`seq_len` must be a positive int, got 0"):
        section5_gradient_flow(seq_len=0)
