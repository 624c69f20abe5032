"""Merging modes that are one cluster: greedy modularity on a k-nearest-neighbour graph.

Knows nothing about GANs: it takes points (n, d) with their slots z (n,) and says which slots
belong together. Two slots are merged when their points are each other's nearest neighbours more
often than chance says they would be: on the graph that links every point to its `neighbours`
nearest others, the edges between slots i and j are compared with the configuration model's
expectation a_i a_j / 2m (a_i: the edge ends in slot i, 2m: all of them), and the pair with the
largest excess is merged while one has any, which is greedy modularity maximisation over the
slots (Newman 2004; Clauset, Newman & Moore 2004) started from the slots instead of from single
points. The gain of merging i and j is

    dQ_ij = 2 (W_ij / 2m - gamma a_i a_j / (2m)^2),

W the (K, K) matrix of edges between slots (each undirected edge counted from both ends). It
has no threshold to tune: gamma = 1 is the null model itself.

Why a graph and not the likelihood: a slot pair that splits one class of images along a smooth
style (two slants of a 4) fits a Gaussian mixture better than one Gaussian does, by thousands
of nats on tens of thousands of points, so the DP posterior keeps both (docs/RESULTS.md, MIC-GANs'
mode count); but the two halves touch all along their border, and their points are each other's
neighbours there, while two classes meet only where images are ambiguous. The graph counts that
contact, and it cares only about which points are near, not about the shape of a cluster.

All of it is vectorised: the neighbours in row chunks of one distance matrix product each, the
slot graph by one bincount, the merges as (K, K) updates (K merges at most).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

__all__ = ["knn", "slot_graph", "modularity_merges", "Merges", "merge_slots"]

_CHUNK_FLOATS = 1 << 23  # a (chunk, n) distance block: <= 32 MiB of float32


def knn(x: Tensor, k: int) -> Tensor:
    """The k nearest other rows of every row of x (n, d), by Euclidean distance: (n, k) int64,
    nearest first. Exact; row chunks of one matrix product each, on x's device."""
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, n - 1] = [1, {n - 1}], got {k}")
    x = x.float()
    x = x - x.mean(0)  # the expanded distance below loses less to cancellation
    sq = x.pow(2).sum(1)
    out = torch.empty(n, k, dtype=torch.int64, device=x.device)
    step = max(1, _CHUNK_FLOATS // n)
    for a in range(0, n, step):
        d = torch.addmm(sq[None], x[a:a + step], x.t(), alpha=-2.0).add_(sq[a:a + step, None])
        rows = torch.arange(d.shape[0], device=x.device)
        d[rows, rows + a] = float("inf")  # not its own neighbour
        out[a:a + step] = d.topk(k, dim=1, largest=False).indices
    return out


def slot_graph(nb: Tensor, z: Tensor, K: int) -> Tensor:
    """(K, K) float64 symmetric matrix of kNN edges between slots: W_ij counts the edges from a
    point of slot i to a neighbour in slot j, plus those from j to i. nb (n, k) from :func:`knn`
    over the same points as z (n,)."""
    src = z[:, None].expand_as(nb).reshape(-1)
    dst = z[nb.reshape(-1)]
    w = torch.bincount(src * K + dst, minlength=K * K).view(K, K).to(torch.float64)
    return w + w.t()


class Merges(NamedTuple):
    """slot: (K,) int64, the slot each slot's points go to (itself when kept); gains: the
    modularity gain of each merge, in order."""

    slot: Tensor
    gains: list[float]


def modularity_merges(W: Tensor, size: Optional[Tensor] = None, gamma: float = 1.0) -> Merges:
    """Greedy modularity merges of the slots of graph W (K, K): the pair with the largest gain
    dQ_ij (module docstring) merges while that gain is positive. `size` (K,) decides which of the
    two slots keeps the points (the larger; the lower index on a tie); by default the degree."""
    K = W.shape[0]
    W = W.to(torch.float64).clone()
    two_m = float(W.sum())
    size = W.sum(1) if size is None else size.to(device=W.device, dtype=torch.float64).clone()
    slot = torch.arange(K, device=W.device)
    gains: list[float] = []
    if two_m <= 0:
        return Merges(slot, gains)
    off = ~torch.eye(K, dtype=torch.bool, device=W.device)
    while True:
        a = W.sum(1)
        live = a > 0
        dq = 2.0 * (W / two_m - gamma * torch.outer(a, a) / two_m**2)
        dq.masked_fill_(~(off & live[:, None] & live[None]), -float("inf"))
        best = float(dq.max())
        if not best > 0:
            return Merges(slot, gains)
        i, j = divmod(int(dq.argmax()), K)
        if (size[j], -j) > (size[i], -i):
            i, j = j, i  # i keeps the points
        W[i] += W[j]
        W[:, i] += W[:, j]
        W[j] = 0
        W[:, j] = 0
        size[i] += size[j]
        size[j] = 0
        slot[slot == j] = i
        gains.append(best)


def merge_slots(x: Tensor, z: Tensor, K: int, neighbours: int = 10, gamma: float = 1.0) -> Merges:
    """Which slots of the points x (n, d) with slots z (n,) are one cluster: the kNN graph of x
    (`neighbours` per point), the slot graph, and greedy modularity merges (module docstring).
    Apply with `merges.slot[z]`."""
    z = z.to(x.device).long()
    if x.shape[0] <= neighbours:
        return Merges(torch.arange(K, device=x.device), [])
    W = slot_graph(knn(x, neighbours), z, K)
    return modularity_merges(W, torch.bincount(z, minlength=K), gamma)
