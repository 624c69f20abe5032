"""Keep cluster ids stable across re-clusterings by Hungarian matching.

After the features are re-clustered, cluster ``j`` of the new partition has nothing to
do with condition ``j`` the generator was trained on. Matching new clusters to old ones
by maximum overlap lets the caller relabel so each condition keeps its meaning.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["overlap_matrix", "match_clusters"]


def _as_labels(labels, k: int, name: str) -> Tensor:
    t = torch.as_tensor(labels).reshape(-1).long()
    if t.numel() and (bool((t < 0).any()) or bool((t >= k).any())):
        raise ValueError(f"{name} must lie in [0, {k})")
    return t


def overlap_matrix(new_labels, old_labels, k: int) -> Tensor:
    """(k, k) int64 counts: entry [i, j] = #points with new label i and old label j.

    Built in one ``bincount`` over ``new * k + old`` (no loop over points).
    """
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = int(k)
    new = _as_labels(new_labels, k, "new_labels")
    old = _as_labels(old_labels, k, "old_labels").to(new.device)
    if new.shape != old.shape:
        raise ValueError(f"new_labels has {new.numel()} entries but old_labels has {old.numel()}")
    return torch.bincount(new * k + old, minlength=k * k).reshape(k, k)


def match_clusters(new_labels, old_labels, k: int) -> Tensor:
    """Permutation mapping new cluster ids to old ones, maximising total overlap.

    Args:
        new_labels: (n,) ints in [0, k) from the new clustering (any device).
        old_labels: (n,) ints in [0, k) from the previous clustering.
        k: number of clusters.

    Returns:
        perm (k,) int64 on ``new_labels``' device, a permutation of 0..k-1 with
        ``perm[new_label]`` = the old label it corresponds to, so
        ``perm[new_labels]`` relabels the new partition consistently with the old one.
    """
    from scipy.optimize import linear_sum_assignment  # slow to import: only when matching

    device = torch.as_tensor(new_labels).device
    overlap = overlap_matrix(new_labels, old_labels, k)
    # scipy's Hungarian solver runs on the CPU; k x k is tiny. maximize=True picks the
    # assignment with the largest total number of shared points.
    rows, cols = linear_sum_assignment(overlap.cpu().numpy(), maximize=True)
    perm = np.empty(int(k), dtype=np.int64)
    perm[rows] = cols
    return torch.from_numpy(perm).to(device)
