"""The run's plots, as PNG bytes: one matplotlib convention for all of them (a bare Figure drawn
on the Agg canvas, no pyplot, so no global state inside a training process). Each function takes
plain numbers; reading them from a run's files is the report's job."""

from __future__ import annotations

import io

import numpy as np

DPI = 100
PI_TOP = 20  # modes drawn one by one in the π plot; the others are summed into "other"


def figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def to_png(fig, **savefig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, **savefig)
    return buf.getvalue()


def losses_png(lines: dict[str, tuple[list, list]]) -> bytes | None:
    """{name: (steps, values)} as lines over steps; None when there is nothing to draw."""
    if not any(xs for xs, _ in lines.values()):
        return None
    fig = figure(5.6, 3.2)
    ax = fig.add_subplot()
    for key, (xs, ys) in lines.items():
        if xs:
            ax.plot(xs, ys, marker="." if len(xs) < 30 else None, lw=1.2, label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("losses (mean over each log interval)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return to_png(fig)


def modes_alive_png(xs: list, ys: list) -> bytes | None:
    if not xs:
        return None
    fig = figure(5.6, 3.2)
    ax = fig.add_subplot()
    ax.step(xs, ys, where="post", lw=1.4, marker="." if len(xs) < 30 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("modes alive")
    ax.set_ylim(bottom=0, top=max(ys) * 1.1 + 1)
    ax.set_title("modes alive", fontsize=10)
    ax.grid(alpha=0.3)
    return to_png(fig)


def pi_png(steps: list, rows: list[list[float]]) -> bytes | None:
    """Stacked area of π per mode over time (one row of π per step): the PI_TOP largest modes of
    the latest π by themselves, the rest summed as "other"."""
    if not steps:
        return None
    k = max(len(r) for r in rows)
    pi = np.zeros((len(rows), k))
    for i, r in enumerate(rows):
        pi[i, :len(r)] = r
    order = np.argsort(-pi[-1], kind="stable")
    order = [m for m in order if pi[:, m].any()]  # modes that never held any mass are left out
    top, rest = order[:PI_TOP], order[PI_TOP:]
    layers = [pi[:, m] for m in top]
    labels = [f"mode {m}" for m in top]
    if rest:
        layers.append(pi[:, rest].sum(axis=1))
        labels.append(f"other {len(rest)}")
    fig = figure(5.6, 3.2)
    ax = fig.add_subplot()
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    colors = [cmap(i % 20) for i in range(len(top))] + (["0.75"] if rest else [])
    if len(steps) > 1:
        ax.stackplot(steps, *layers, labels=labels, colors=colors, linewidth=0.3, edgecolor="white")
        ax.set_xlim(steps[0], steps[-1])
    else:  # one snapshot so far: a single stacked bar
        bottom = 0.0
        for layer, label, color in zip(layers, labels, colors):
            ax.bar(steps, layer, bottom=bottom, width=max(steps[0], 1) * 0.2, label=label, color=color,
                   edgecolor="white", linewidth=0.3)
            bottom += layer
    ax.set_ylim(0, max(1.0, float(pi.sum(axis=1).max())))
    ax.set_xlabel("step")
    ax.set_ylabel("π")
    ax.set_title(f"π per mode over time ({len(order)} modes with mass)", fontsize=10)
    if len(labels) <= 12:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return to_png(fig)


def metrics_png(panels: dict[str, tuple[tuple[list, list], tuple[list, list]]]) -> bytes | None:
    """One small panel per metric: {key: ((steps, values) at snapshots, (steps, values) from
    `selfcond evaluate` and other sources, drawn as separate markers)}."""
    if not panels:
        return None
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig = figure(5.6, 1.0 + 1.6 * nrows)
    fig.suptitle("metrics at snapshots", fontsize=10)
    for i, (key, ((xs, ys), (ex, ey))) in enumerate(panels.items()):
        ax = fig.add_subplot(nrows, cols, i + 1)
        if xs:
            ax.plot(xs, ys, marker=".", lw=1.2)
        if ex:
            ax.plot(ex, ey, ls="none", marker="x", color="C3", label="evaluate")
        ax.set_title(key, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    return to_png(fig)


def mode_label_png(modes: list[int], counts: np.ndarray) -> bytes | None:
    """Heatmap of each mode's share of real images per true label: counts (len(modes), classes),
    one row per mode (named by `modes`)."""
    if not modes:
        return None
    share = counts / counts.sum(axis=1, keepdims=True)
    ncls = counts.shape[1]
    fig = figure(5.6, min(1.4 + 0.22 * len(modes), 10))
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(ncls))
    ax.set_yticks(range(len(modes)), [str(m) for m in modes])
    ax.tick_params(labelsize=7)
    ax.set_xlabel("true label")
    ax.set_ylabel("mode (by π)")
    ax.set_title("share of each mode's real images per label", fontsize=10)
    if counts.size <= 400:
        for (i, j), c in np.ndenumerate(counts):
            if c:
                ax.text(j, i, f"{int(c)}", ha="center", va="center", fontsize=6,
                        color="white" if share[i, j] > 0.6 else "black")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return to_png(fig)


def scatter_png(x, y, means=None, title: str = "") -> bytes:
    """Generated 2D points x (n, 2), coloured by their condition y (n,), over the true means (K, 2)
    when there are any."""
    x, y = np.asarray(x), np.asarray(y)
    fig = figure(5, 5)
    fig.set_layout_engine(None)
    ax = fig.add_subplot()
    if means is not None:  # true means as open rings under the samples: missing modes stay visible
        means = np.asarray(means)
        ax.scatter(means[:, 0], means[:, 1], marker="o", facecolors="none", edgecolors="0.6", s=60,
                   linewidths=0.8, zorder=1)
    ax.scatter(x[:, 0], x[:, 1], c=y % 20, cmap="tab20", s=3, alpha=0.7, linewidths=0, zorder=2)
    span = np.abs(means if means is not None else x).max() * 1.3 + 0.1
    ax.set_xlim(-span, span)
    ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    return to_png(fig, bbox_inches="tight")
