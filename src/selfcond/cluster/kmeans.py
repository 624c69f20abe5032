"""k-means (Lloyd) with greedy k-means++ seeding, in plain torch: what Self-Conditioned GAN
clusters D's features with.

Knows nothing about GANs: it clusters rows of a float tensor on whatever device the
tensor already lives on (CPU or CUDA). Everything is vectorised; the only Python loops
run over iterations / centres, never over points (the kernels are in :mod:`.lloyd`).

All randomness comes from the ``torch.Generator`` the caller passes, so the same input
and the same generator seed give bit-identical results on a given device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import Tensor

from selfcond.cluster.lloyd import _assign, _sq_dist_to, _sums_counts, lloyd

__all__ = ["KMeansResult", "assign", "kmeans_plusplus", "centers_from_labels", "kmeans"]


@dataclass
class KMeansResult:
    centers: Tensor  # (k, d) float32
    labels: Tensor  # (n,) int64
    inertia: float  # sum of squared distances to the assigned centre
    n_iter: int  # Lloyd iterations run


# ----------------------------------------------------------------------------- helpers


def _check_x(x: Tensor) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"x must be 2-D (n, d), got shape {tuple(x.shape)}")
    if x.dtype != torch.float32:
        x = x.float()
    return x.contiguous()


def _check_k(k: int, n: int) -> int:
    if isinstance(k, bool) or int(k) != k:
        raise ValueError(f"k must be an integer, got {k!r}")
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got k={k}")
    if k > n:
        raise ValueError(f"k must be <= the number of points n={n}, got k={k}")
    return k


def _generator(gen: Optional[torch.Generator], device: torch.device) -> torch.Generator:
    # Callers should pass their own generator; without one we still want reproducible
    # output, so use a fresh generator with a fixed seed rather than the global RNG.
    if gen is None:
        gen = torch.Generator(device=device)
        gen.manual_seed(0)
    return gen


def _rand(size: int, gen: torch.Generator, device: torch.device) -> Tensor:
    # Draw on the generator's own device (torch requires it) and move to the data's
    # device, so a CPU generator also works for CUDA data. float64 so searchsorted
    # against a float64 cumsum has no rounding bias.
    return torch.rand(size, generator=gen, device=gen.device, dtype=torch.float64).to(device)


def _d2_sample(weights: Tensor, gen: torch.Generator, n_samples: int) -> Tensor:
    """Indices drawn with probability proportional to ``weights`` (n,), with replacement.

    Inverse-CDF on a float64 cumsum (like sklearn's stable_cumsum + searchsorted); falls
    back to uniform when every weight is zero.
    """
    n = weights.shape[0]
    cum = torch.cumsum(weights.to(torch.float64), 0)
    total = cum[-1]
    if not bool(total > 0):
        cum = torch.arange(1, n + 1, dtype=torch.float64, device=weights.device)
        total = cum[-1]
    r = _rand(n_samples, gen, weights.device) * total
    # side="right": first index whose cumsum exceeds r, so zero-weight points (the
    # existing centres) are never picked.
    idx = torch.searchsorted(cum, r, right=True)
    return idx.clamp_(max=n - 1)


# ----------------------------------------------------------------------------- public API


def assign(x: Tensor, centers: Tensor, chunk: Optional[int] = None) -> tuple[Tensor, Tensor]:
    """Nearest centre for every row of ``x``.

    Args:
        x: (n, d) points.
        centers: (k, d) centres.
        chunk: points per block; default keeps each (chunk, k) block near 32 MiB.

    Returns:
        labels (n,) int64 and squared distance to that centre (n,) float32.
        Distances are ``||x||^2 - 2 x c^T + ||c||^2`` via a matrix product, clamped at 0.
    """
    x = _check_x(x)
    centers = _check_x(centers).to(x.device)
    if centers.shape[1] != x.shape[1]:
        raise ValueError(f"centers have d={centers.shape[1]} but x has d={x.shape[1]}")
    if centers.shape[0] < 1:
        raise ValueError("need at least one centre")
    x_sq = (x * x).sum(1)
    return _assign(x, x_sq, centers, chunk)


def kmeans_plusplus(
    x: Tensor,
    k: int,
    generator: Optional[torch.Generator] = None,
    n_local_trials: Optional[int] = None,
) -> Tensor:
    """Greedy k-means++ seeding, as scikit-learn does it.

    First centre uniform; each next centre: draw ``n_local_trials`` (default
    ``2 + int(log k)``) candidates with probability proportional to the squared distance
    to the nearest chosen centre, keep the one that lowers the potential most.

    Args:
        x: (n, d) points. k: number of centres. generator: source of randomness.

    Returns:
        (k, d) float32 centres (rows of x).
    """
    x = _check_x(x)
    k = _check_k(k, x.shape[0])
    gen = _generator(generator, x.device)
    return x[_kmeans_plusplus_idx(x, (x * x).sum(1), k, gen, n_local_trials)]


def _kmeans_plusplus_idx(x: Tensor, x_sq: Tensor, k: int, gen: torch.Generator,
                         n_local_trials: Optional[int]) -> Tensor:
    """Greedy k-means++ seeding -> (k,) row indices of x."""
    n = x.shape[0]
    t = max(1, int(2 + int(math.log(k)) if n_local_trials is None else n_local_trials))
    dev = x.device
    chosen = torch.empty(k, dtype=torch.int64, device=dev)
    chosen[0] = torch.randint(n, (1,), generator=gen, device=gen.device).to(dev)[0]
    closest = _sq_dist_to(x, x_sq, x[chosen[:1]])[:, 0]  # (n,) d^2 to the nearest centre so far
    for c in range(1, k):
        # d^2 sampling of t candidates: inverse CDF on a float64 cumsum (like sklearn's
        # stable_cumsum + searchsorted).
        cum = torch.cumsum(closest.to(torch.float64), 0)
        if not bool(cum[-1] > 0):  # all-zero potential (fewer distinct points than k): uniform
            cum = torch.arange(1, n + 1, dtype=torch.float64, device=dev)
        r = _rand(t, gen, dev) * cum[-1]
        # right=True: first index whose cumsum exceeds r, so zero-weight points (the
        # existing centres) are not picked.
        cand = torch.searchsorted(cum, r, right=True).clamp_(max=n - 1)  # (t,)
        dc = torch.minimum(_sq_dist_to(x, x_sq, x[cand]), closest.unsqueeze(1))  # (n, t)
        best = torch.argmin(dc.sum(0, dtype=torch.float64))
        chosen[c] = cand[best]
        closest = dc[:, best].contiguous()
    return chosen


def centers_from_labels(
    x: Tensor, labels: Tensor, k: int, generator: Optional[torch.Generator] = None
) -> Tensor:
    """Centres as the means of ``x`` under ``labels`` (warm start from a previous partition).

    Args:
        x: (n, d) points. labels: (n,) ints in [0, k). k: number of centres.

    Returns:
        (k, d) float32. A cluster with no points is re-seeded, one at a time, with a point
        drawn with probability proportional to its squared distance to the nearest
        centre so far (k-means++ style), so all k centres are finite and distinct.
    """
    x = _check_x(x)
    n = x.shape[0]
    k = _check_k(k, n)
    labels = torch.as_tensor(labels, device=x.device).long().reshape(-1)
    if labels.shape[0] != n:
        raise ValueError(f"labels has {labels.shape[0]} entries but x has {n} rows")
    if bool((labels < 0).any()) or bool((labels >= k).any()):
        raise ValueError(f"labels must lie in [0, {k})")
    sums, counts = _sums_counts(x, labels, k)
    centers = sums / counts.clamp(min=1).unsqueeze(1).to(x.dtype)
    empty = torch.nonzero(counts == 0).flatten().tolist()
    if empty:
        gen = _generator(generator, x.device)
        x_sq = (x * x).sum(1)
        full = torch.nonzero(counts > 0).flatten()
        closest = _sq_dist_to(x, x_sq, centers[full]).min(1).values
        for j in empty:  # loop over empty clusters only (few), not over points
            i = _d2_sample(closest, gen, 1)
            centers[j] = x[i[0]]
            closest = torch.minimum(closest, _sq_dist_to(x, x_sq, centers[j : j + 1])[:, 0])
    return centers


def kmeans(
    x: Tensor,
    k: int,
    init: Union[str, Tensor] = "k-means++",
    max_iter: int = 100,
    tol: float = 1e-4,
    generator: Optional[torch.Generator] = None,
) -> KMeansResult:
    """Lloyd's k-means (exact; accelerated with triangle-inequality bounds).

    Args:
        x: (n, d) points (any float dtype; computed in float32 on x's device).
        k: number of clusters, 1 <= k <= n.
        init: ``"k-means++"`` or a (k, d) tensor of starting centres (warm start).
        max_iter: maximum Lloyd iterations.
        tol: stop when the sum of squared centre moves is <= ``tol * mean(var(x, 0))``
            (scikit-learn's relative tolerance).
        generator: torch.Generator for all randomness (the seeding).

    Returns:
        KMeansResult(centers (k, d), labels (n,), inertia, n_iter); labels are the
        nearest-centre assignment for the returned centres.
    """
    x = _check_x(x)
    n, d = x.shape
    k = _check_k(k, n)
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    gen = _generator(generator, x.device)

    # Centre the data (k-means is translation invariant): post-ReLU features have a large
    # common offset, and removing it keeps ||x||^2 - 2xc + ||c||^2 from cancelling badly
    # in float32. Costs one copy of x.
    mean = x.mean(0, keepdim=True)
    xc = x - mean
    x_sq = (xc * xc).sum(1)
    tol_abs = float(tol) * float(xc.var(0, unbiased=False).mean())

    if isinstance(init, str):
        if init != "k-means++":
            raise ValueError(f"init must be 'k-means++' or a (k, d) tensor, got {init!r}")
        start = xc[_kmeans_plusplus_idx(xc, x_sq, k, gen, None)]
    else:
        c0 = torch.as_tensor(init).to(device=x.device, dtype=torch.float32)
        if tuple(c0.shape) != (k, d):
            raise ValueError(f"init centres must have shape ({k}, {d}), got {tuple(c0.shape)}")
        start = c0 - mean
    centers, labels, inertia, n_iter = lloyd(xc, x_sq, start.clone(), int(max_iter), tol_abs)
    return KMeansResult(centers=centers + mean, labels=labels, inertia=inertia, n_iter=n_iter)
