"""Mending a mode table with the k-nearest-neighbour graph of its points: smoothing, then merging.

Knows nothing about GANs: it takes points (n, d) with their slots z (n,), moves points to the slot
their neighbours hold (:func:`propagate`) and says which slots belong together
(:func:`modularity_merges`).

Smoothing is label propagation (Zhu & Ghahramani 2002, in its hard form): every point takes the
slot most of its neighbours hold, its own slot breaking ties, until nothing moves. A Gibbs sample
of a Gaussian mixture cuts through a class wherever a Gaussian's edge falls, and early in a run
the Gaussians follow where they were placed, not the classes: on MNIST at K = 40 the first
round's table has purity 0.64, while 95% of each embedding's neighbours share its class. A few
rounds of propagation bring that table to 0.93 (docs/RESULTS.md, MIC-GANs' mode count).

Merging: two slots are merged when their points are each other's nearest neighbours more
often than chance says they would be: on the graph that links every point to its `neighbours`
nearest others, the edges between slots i and j are compared with the configuration model's
expectation a_i a_j / 2m (a_i: the edge ends in slot i, 2m: all of them), and the pair with the
largest excess is merged while one has any, which is greedy modularity maximisation over the
slots (Newman 2004; Clauset, Newman & Moore 2004) started from the slots instead of from single
points. The gain of merging i and j is

    dQ_ij = 2 (W_ij / 2m - gamma a_i a_j / (2m)^2),

W the (K, K) matrix of edges between slots (each undirected edge counted from both ends).
gamma = 1 is the null model itself. A lower resolution merges pairs that touch less than the
null model expects: twins with a clean border (two styles Q embeds side by side) share fewer
links than two random slots of their size would, yet several times more than two classes do.
MIC-GANs uses 0.5 (docs/RESULTS.md, MIC-GANs' mode count).

Why a graph and not the likelihood: a slot pair that splits one class of images along a smooth
style (two slants of a 4) fits a Gaussian mixture better than one Gaussian does, by thousands
of nats on tens of thousands of points, so the DP posterior keeps both (docs/RESULTS.md, MIC-GANs'
mode count); but the two halves touch all along their border, and their points are each other's
neighbours there, while two classes meet only where images are ambiguous. The graph counts that
contact, and it cares only about which points are near, not about the shape of a cluster.

All of it is vectorised: the neighbours in row chunks of one distance matrix product each, the
votes by one scatter-add per sweep, the slot graph by one bincount, the merges as (K, K) updates
(K merges at most).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

__all__ = ["knn", "vote", "propagate", "slot_graph", "modularity_merges", "Merges", "mend_table", "merge_slots"]

_CHUNK_FLOATS = 1 << 23  # a (chunk, n) distance block: <= 32 MiB of float32


def knn(x: Tensor, k: int, ref: Optional[Tensor] = None) -> Tensor:
    """The k nearest other rows of x (n, d) for every row of x, by Euclidean distance; or, given
    `ref` (m, d), the k nearest rows of ref for every row of x (a row of x that is also in ref
    finds itself). (n, k) int64, nearest first. Exact; row chunks of one matrix product each, on
    x's device."""
    n, m = x.shape[0], (x if ref is None else ref).shape[0]
    if not 1 <= k < (n if ref is None else m + 1):
        raise ValueError(f"k must be in [1, {m - 1 if ref is None else m}], got {k}")
    y = (x if ref is None else ref).float()
    mean = y.mean(0)  # the expanded distance below loses less to cancellation
    y = y - mean
    x = y if ref is None else x.float() - mean
    y_sq, x_sq = y.pow(2).sum(1), x.pow(2).sum(1)
    out = torch.empty(n, k, dtype=torch.int64, device=x.device)
    step = max(1, _CHUNK_FLOATS // m)
    for a in range(0, n, step):
        d = torch.addmm(y_sq[None], x[a:a + step], y.t(), alpha=-2.0).add_(x_sq[a:a + step, None])
        if ref is None:
            rows = torch.arange(d.shape[0], device=x.device)
            d[rows, rows + a] = float("inf")  # not its own neighbour
        out[a:a + step] = d.topk(k, dim=1, largest=False).indices
    return out


def vote(nb: Tensor, labels: Tensor, K: int, own: Optional[Tensor] = None) -> Tensor:
    """Each row's most common slot among its neighbours' `labels` (nb (n, k) indexes labels);
    with `own` (n,), a row's own slot breaks a tie, else the lowest slot does. (n,) int64."""
    votes = torch.zeros(nb.shape[0], K, dtype=torch.int64, device=nb.device)
    votes.scatter_add_(1, labels[nb], torch.full(nb.shape, 2, dtype=torch.int64, device=nb.device))
    if own is not None:
        votes.scatter_add_(1, own[:, None], torch.ones_like(own[:, None]))
    return votes.argmax(1)


def propagate(nb: Tensor, z: Tensor, K: int, sweeps: int) -> Tensor:
    """Label propagation on the kNN graph nb (n, k) of the points with slots z (n,): every point
    takes the slot most of its neighbours hold, its own breaking ties, all at once, for at most
    `sweeps` sweeps or until nothing moves (module docstring). (n,) int64."""
    z = z.long()
    for _ in range(sweeps):
        new = vote(nb, z, K, own=z)
        if torch.equal(new, z):
            break
        z = new
    return z


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


def mend_table(x: Tensor, z: Tensor, K: int, neighbours: int = 10, sweeps: int = 0, merging: bool = True,
               gamma: float = 1.0, merge_first: bool = False) -> tuple[Tensor, Merges]:
    """The slots z (n,) of the points x (n, d) mended on their kNN graph (`neighbours` per point):
    `sweeps` of label propagation and, when `merging`, greedy modularity merges (module docstring),
    the merges read from the propagated table, or with `merge_first` from z itself, the merged
    table then propagated. Propagation moves the border between two twins to where it cuts the
    fewest links, which hides the contact the merges count; z, a Gibbs sample, keeps it. Returns
    the propagated slots and the merges; apply with `merges.slot[slots]`. Fewer points than
    neighbours + 1 make no graph: nothing changes."""
    z = z.to(x.device).long()
    kept = Merges(torch.arange(K, device=x.device), [])
    if x.shape[0] <= neighbours:
        return z, kept
    nb = knn(x, neighbours)
    if merging and merge_first:
        merges = modularity_merges(slot_graph(nb, z, K), torch.bincount(z, minlength=K), gamma)
        return propagate(nb, merges.slot[z], K, sweeps), merges
    z = propagate(nb, z, K, sweeps)
    if not merging:
        return z, kept
    return z, modularity_merges(slot_graph(nb, z, K), torch.bincount(z, minlength=K), gamma)


def merge_slots(x: Tensor, z: Tensor, K: int, neighbours: int = 10, gamma: float = 1.0) -> Merges:
    """Which slots of the points x (n, d) with slots z (n,) are one cluster: the kNN graph of x
    (`neighbours` per point), the slot graph, and greedy modularity merges (module docstring).
    Apply with `merges.slot[z]`."""
    return mend_table(x, z, K, neighbours, gamma=gamma)[1]
