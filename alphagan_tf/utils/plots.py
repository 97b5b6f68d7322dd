"""Pictures of architecture weights: heatmaps per edge kind and their history."""

from __future__ import annotations

import io
import math
import os
from typing import Sequence

import numpy as np


def _pyplot():
    # matplotlib: loaded only to draw
    import matplotlib

    matplotlib.use("Agg")
    # matplotlib: loaded only to draw
    import matplotlib.pyplot as plt

    return plt


def alpha_heatmap_png(
    weights: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], title: str
) -> bytes:
    """A heatmap of softmax(alpha) [edges, ops] with values printed, as PNG bytes."""
    plt = _pyplot()
    weights = np.asarray(weights)
    fig, ax = plt.subplots(
        figsize=(1.2 + 0.9 * len(col_labels), 0.8 + 0.35 * len(row_labels)), dpi=100
    )
    ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(float(weights.max()), 1e-6), aspect="auto")
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(row_labels)), row_labels, fontsize=8)
    for i in range(weights.shape[0]):
        best = int(np.argmax(weights[i]))
        for j in range(weights.shape[1]):
            ax.text(j, i, f"{weights[i, j]:.3f}", ha="center", va="center", fontsize=7,
                    color="red" if j == best else "white")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def plot_alpha_history(history: Sequence[dict], path: str) -> str:
    """One small panel per edge: softmax(alpha) of each op over the epochs.

    Args:
        history: entries {"epoch": int, "alphas": {edge: {"ops": [...], "softmax": [...]}}}.
        path: the PNG to write (atomically).
    """
    plt = _pyplot()
    if not history:
        raise ValueError("No search history to plot. Received: an empty history")
    edges = list(history[-1]["alphas"].keys())
    columns = 6
    rows = math.ceil(len(edges) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.0 * columns, 2.3 * rows), dpi=90,
                             squeeze=False)
    epochs = [h["epoch"] for h in history]
    for k, edge in enumerate(edges):
        ax = axes[k // columns][k % columns]
        ops = history[-1]["alphas"][edge]["ops"]
        series = np.array([h["alphas"][edge]["softmax"] for h in history])
        for j, op in enumerate(ops):
            ax.plot(epochs, series[:, j], label=op, linewidth=1.2)
        ax.axhline(1.0 / len(ops), color="grey", linewidth=0.6, linestyle=":")
        ax.set_title(edge, fontsize=8)
        ax.tick_params(labelsize=7)
        if k % columns == 0:
            ax.set_ylabel("softmax(alpha)", fontsize=7)
        if k == 0 or ops != history[-1]["alphas"][edges[k - 1]]["ops"]:
            ax.legend(fontsize=6, loc="upper left")
    for k in range(len(edges), rows * columns):
        axes[k // columns][k % columns].axis("off")
    fig.suptitle("Architecture weights over the search (dotted: uniform)", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path
