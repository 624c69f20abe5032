"""How well modes match true classes: purity, NMI, ARI (scikit-learn), modes found."""

from __future__ import annotations

import numpy as np
import torch

from selfcond.metrics.base import has_labels, metric


def contingency(modes, labels, k: int, classes: int) -> np.ndarray:
    """(k, classes) count table: row = mode, column = true label."""
    modes, labels = np.asarray(modes), np.asarray(labels)
    return np.bincount(modes * classes + labels, minlength=k * classes).reshape(k, classes)


def cluster_scores(modes, labels, k: int, classes: int, pi=None, top: int | None = None) -> dict:
    """modes, labels: (N,) int arrays. purity = sum over modes of the largest class count / N.

    With `pi` and `top` (the true number of classes), also the purity over the `top` modes with the
    largest π (what MIC-GANs reports), and `k_found` = modes with π > 1%.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score  # slow to import: only when scores are computed

    modes = torch.as_tensor(modes).cpu().numpy()
    labels = torch.as_tensor(labels).cpu().numpy()
    table = contingency(modes, labels, k, classes)
    out = {"purity": float(table.max(1).sum() / len(modes)),
           "nmi": float(normalized_mutual_info_score(labels, modes)),
           "ari": float(adjusted_rand_score(labels, modes))}
    if pi is not None:
        pi = torch.as_tensor(pi).cpu().numpy()
        out["k_found"] = int((pi > 0.01).sum())
        if top:
            keep = np.argsort(-pi)[:top]
            sub = table[keep]
            out["purity_top"] = float(sub.max(1).sum() / max(sub.sum(), 1))
    return out


@metric("clusters", ("purity", "nmi", "ari", "k_found", "purity_top"),
        lambda ctx: has_labels(ctx) and ctx.partition.table is not None)
def _clusters(ctx, n: int) -> dict:
    classes, p = ctx.dataset.num_classes, ctx.partition
    return cluster_scores(p.table, ctx.dataset.labels, p.k, classes, pi=p.pi, top=classes)
