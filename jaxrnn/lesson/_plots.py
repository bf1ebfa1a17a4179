"""The exercises' figures, written as PNG files with matplotlib (the optional extra ``plots``).

matplotlib is imported inside the functions (``jaxrnn._figures``), with the non-interactive Agg
backend, so that ``import jaxrnn`` never needs it. Each function takes plain numpy arrays and
lists (one curve per framework where both ran) and writes one file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .._figures import require_matplotlib, save_figure

# one look per framework, used by every figure: JAX solid, PyTorch dashed
STYLES = {"jax": dict(color="tab:blue", linestyle="-"), "torch": dict(color="tab:orange", linestyle="--")}
MARKERS = {"jax": "x", "torch": "+"}


def curves(
    path: Path,
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logy: bool = False,
    styles: Mapping[str, dict] | None = None,
    hline: tuple[float, str] | None = None,
) -> Path:
    """Line plot of named series against their index + 1 (epoch or step numbers), the legend
    right of the axes (outside them, so it never hides a curve).

    ``styles`` maps a series name to matplotlib line keywords; ``hline`` draws a dotted
    horizontal reference ``(value, label)``.
    """
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(8.5, 4))
    for name, values in series.items():
        ys = np.asarray(values, np.float64)
        ax.plot(np.arange(1, len(ys) + 1), ys, label=name, **(styles or {}).get(name, {}))
    if hline is not None:
        ax.axhline(hline[0], color="gray", linestyle=":", label=hline[1])
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.set_title(title, fontsize=10)
    ax.xaxis.set_major_locator(_integer_locator())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return save_figure(fig, path)


def _integer_locator():
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def sine_predictions(path: Path, x: np.ndarray, y: np.ndarray, predictions: Mapping[str, np.ndarray]) -> Path:
    """One panel per test sample: the input window, the true next value and each framework's
    prediction (their values in the panel's title), one legend for all panels below them.
    x (n, seq_len, 1), y (n,), predictions: framework -> (n,)."""
    plt = require_matplotlib()
    n, seq_len = x.shape[0], x.shape[1]
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.6), sharey=True, squeeze=False, layout="constrained")
    for i, ax in enumerate(axes[0]):
        ax.plot(np.arange(seq_len), x[i, :, 0], color="gray", marker=".", markersize=3, label="input window")
        ax.scatter([seq_len], [y[i]], s=90, facecolors="none", edgecolors="black", label="true next value",
                   zorder=3)
        for fw, pred in predictions.items():
            ax.scatter([seq_len], [pred[i]], marker=MARKERS[fw], s=70, color=STYLES[fw]["color"],
                       label=f"{fw} prediction", zorder=4)
        predicted = ", ".join(f"{fw} {pred[i]:+.4f}" for fw, pred in predictions.items())
        ax.set_title(f"test sample {i}: truth {y[i]:+.4f}\n{predicted}", fontsize=9)
        ax.set_xlabel("time step")
        ax.set_xlim(-1, seq_len + 1)
        ax.xaxis.set_major_locator(_integer_locator())
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("sin")
    fig.legend(*axes[0][0].get_legend_handles_labels(), fontsize=8, loc="outside lower center",
               ncol=2 + len(predictions))
    fig.suptitle("Exercise 2: next-value predictions on the test set", fontsize=10)
    return save_figure(fig, path)


def seq_len_sweep(
    path: Path,
    seq_lens: Sequence[int],
    mse: Mapping[str, Sequence[float]],
    input_grads: Mapping[int, np.ndarray],
    *,
    epochs: Sequence[int],
) -> Path:
    """Left: test MSE against seq_len per framework (log scale). Right: for each seq_len, the mean
    |dL/dx_t| of the trained model against the number of steps between t and the end (log scale),
    the vanishing gradient of section 5."""
    plt = require_matplotlib()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for fw, values in mse.items():
        left.plot(seq_lens, values, marker="o", label=fw, **STYLES[fw])
    left.set(xscale="log", yscale="log", xlabel="seq_len", ylabel="test MSE")
    left.set_xticks(list(seq_lens), [str(s) for s in seq_lens])
    left.set_xticks([], minor=True)
    same = len(set(epochs)) == 1
    trained = (f"{epochs[0]} epochs each" if same
               else "epochs " + ", ".join(f"{s}: {e}" for s, e in zip(seq_lens, epochs)))
    left.set_title(f"Test MSE against sequence length ({trained})", fontsize=10)
    left.grid(alpha=0.3, which="both")
    left.legend()
    for seq_len, grads in input_grads.items():
        distance = np.arange(len(grads))[::-1]  # steps before the last input
        right.plot(distance, grads, label=f"seq_len {seq_len}")
    right.set(yscale="log", xlabel="steps between input x_t and the end of the sequence", ylabel="mean |dL/dx_t|")
    right.set_title("How much each input step moves the loss (JAX, trained models)", fontsize=10)
    right.grid(alpha=0.3, which="both")
    if input_grads:
        right.legend()
    else:
        right.text(0.5, 0.5, "(JAX not run)", transform=right.transAxes, ha="center")
    return save_figure(fig, path)


def shapes(path: Path, output: np.ndarray, h_n: np.ndarray, hidden_size: int, num_layers: int) -> Path:
    """Where h_n sits in output for a bidirectional RNN: output[0] (time x 2H) next to h_n[:, 0]
    ((num_layers * 2) x H), the forward final state at the last step and the backward one at step 0."""
    plt = require_matplotlib()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    seq_len = output.shape[1]
    left.imshow(output[0].T, aspect="auto", cmap="coolwarm", vmin=-1, vmax=1)
    left.axhline(hidden_size - 0.5, color="black", linewidth=1)
    left.add_patch(_rect(plt, seq_len - 1.5, -0.5, 1, hidden_size, "lime"))
    left.add_patch(_rect(plt, -0.5, hidden_size - 0.5, 1, hidden_size, "magenta"))
    left.set(xlabel="time step", ylabel="feature: fwd 0..H-1 | bwd H..2H-1",
             title=f"output[0]: (seq_len={seq_len}) x (2 * hidden={2 * hidden_size})")
    left.xaxis.set_major_locator(_integer_locator())
    left.legend(handles=[_rect(plt, 0, 0, 1, 1, "lime"), _rect(plt, 0, 0, 1, 1, "magenta")],
                labels=["= h_n[-2]: forward, last step", "= h_n[-1]: backward, step 0"],
                fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    right.imshow(h_n[:, 0, :], aspect="auto", cmap="coolwarm", vmin=-1, vmax=1)
    labels = [f"layer {k} {'fwd' if d == 0 else 'bwd'}" for k in range(num_layers) for d in range(2)]
    right.set_yticks(range(len(labels)), labels)
    right.set(xlabel="hidden unit", title=f"h_n[:, 0]: (num_layers * 2 = {2 * num_layers}) x (hidden={hidden_size})")
    fig.suptitle("Exercise 1: bidirectional RNN, batch element 0", fontsize=10)
    return save_figure(fig, path)


def _rect(plt, x, y, w, h, color):
    return plt.Rectangle((x, y), w, h, fill=False, edgecolor=color, linewidth=2)


def tagging(path: Path, tokens: np.ndarray, labels: np.ndarray, predictions: Mapping[str, np.ndarray]) -> Path:
    """One panel per test sequence: the true labels (element % 3) as bars and each framework's
    predicted labels as markers, with the elements written under the steps."""
    plt = require_matplotlib()
    n, seq_len = tokens.shape
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.2 * n), squeeze=False)
    steps = np.arange(seq_len)
    for i, ax in enumerate(axes[:, 0]):
        ax.bar(steps, labels[i] + 0.001, color="lightgray", label="true label", width=0.8)
        offsets = {"jax": -0.15, "torch": 0.15}
        for fw, pred in predictions.items():
            wrong = int(np.sum(pred[i] != labels[i]))
            ax.scatter(steps + offsets[fw], pred[i], marker=MARKERS[fw], s=60, color=STYLES[fw]["color"],
                       label=f"{fw} prediction ({wrong} wrong)", zorder=3)
        ax.set_xticks(steps, [str(t) for t in tokens[i]])
        ax.set_yticks([0, 1, 2])
        ax.set_ylim(-0.4, 2.6)
        ax.set(ylabel="label", title=f"test sequence {i} (x-axis: the elements)")
        ax.legend(fontsize=7, loc="upper right", ncol=3)
    fig.suptitle("Exercise 5: predicted vs true labels (element % 3)", fontsize=10)
    return save_figure(fig, path)
