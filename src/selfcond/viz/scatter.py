"""Scatter plot of generated 2D points over the true means, coloured by condition."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def scatter_png(x, y, means, title: str = "") -> bytes:
    """x: (n, 2) points, y: (n,) condition of each point, means: (K, 2). Returns PNG bytes."""
    x, y, means = np.asarray(x), np.asarray(y), np.asarray(means)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    # True means as open rings under the samples, so collapsed or missing modes stay visible.
    ax.scatter(means[:, 0], means[:, 1], marker="o", facecolors="none", edgecolors="0.6", s=60,
               linewidths=0.8, zorder=1)
    ax.scatter(x[:, 0], x[:, 1], c=y % 20, cmap="tab20", s=3, alpha=0.7, linewidths=0, zorder=2)
    span = np.abs(means).max() * 1.3 + 0.1
    ax.set_xlim(-span, span)
    ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
