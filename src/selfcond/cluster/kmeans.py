"""k-means (Lloyd) with greedy k-means++ seeding, in plain torch.

Knows nothing about GANs: it clusters rows of a float tensor on whatever device the
tensor already lives on (CPU or CUDA). Everything is vectorised; the only Python loops
run over iterations / centres, never over points.

All randomness comes from the ``torch.Generator`` the caller passes, so the same input
and the same generator seed give bit-identical results on a given device.

Distributed note: one Lloyd update is expressed as per-centre ``sums`` (k, d) and
``counts`` (k,) (see :func:`_sums_counts`). A sharded (DDP) version only has to
all-reduce those two tensors (and the scalar inertia / shift) between the E and M steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import Tensor

__all__ = ["KMeansResult", "assign", "kmeans_plusplus", "centers_from_labels", "kmeans"]

# Target size of one (chunk, k) distance block: 2**23 float32 = 32 MiB.
_BLOCK_FLOATS = 1 << 23
# Rebuild the Lloyd sums from scratch this often (incremental updates otherwise).
_FULL_SUMS_EVERY = 10
# Elkan bounds need an (n, k) float32 matrix; above this many entries use Hamerly.
_ELKAN_MAX_FLOATS = 1 << 25


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


def _default_chunk(k: int) -> int:
    return max(1, _BLOCK_FLOATS // max(1, k))


def _assign(
    x: Tensor, x_sq: Tensor, centers: Tensor, chunk: Optional[int], second: bool = False
) -> tuple[Tensor, ...]:
    """Nearest centre with precomputed ``x_sq = ||x||^2`` (n,): labels (n,), d2 (n,), and with
    ``second`` also the squared distance to the second-nearest centre (inf when k == 1)."""
    n = x.shape[0]
    k = centers.shape[0]
    chunk = _default_chunk(k) if chunk is None else max(1, int(chunk))
    c_sq = (centers * centers).sum(1)  # (k,)
    ct = centers.t()
    labels = torch.empty(n, dtype=torch.int64, device=x.device)
    d2 = torch.empty(n, dtype=x.dtype, device=x.device)
    d2b = torch.full((n,), float("inf"), dtype=x.dtype, device=x.device) if second else None
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        # ||c||^2 - 2 x c^T in one BLAS call; ||x||^2 is constant per row so it is not
        # needed for the argmin and is added only to the minimum afterwards.
        part = torch.addmm(c_sq.unsqueeze(0), x[s:e], ct, beta=1.0, alpha=-2.0)
        val, idx = part.min(dim=1)
        labels[s:e] = idx
        # Cancellation in ||x||^2 - 2xc + ||c||^2 can go slightly negative in float32.
        d2[s:e] = (val + x_sq[s:e]).clamp_(min=0.0)
        if second and k > 1:
            # Second minimum: blank out the first (cheaper than topk(2) on CPU).
            part.scatter_(1, idx.unsqueeze(1), float("inf"))
            d2b[s:e] = (part.min(dim=1).values + x_sq[s:e]).clamp_(min=0.0)
    return (labels, d2, d2b) if second else (labels, d2)


def _exact_d2(x: Tensor, centers: Tensor, labels: Tensor) -> Tensor:
    """||x_i - c_{labels_i}||^2 from the differences (no cancellation).

    Small row blocks so the gathered centres and the difference stay in cache.
    """
    n = x.shape[0]
    out = torch.empty(n, dtype=x.dtype, device=x.device)
    step = 256 if x.device.type == "cpu" else max(1, _BLOCK_FLOATS // max(1, x.shape[1]))
    for s in range(0, n, step):
        e = min(n, s + step)
        diff = centers.index_select(0, labels[s:e]).sub_(x[s:e])
        out[s:e] = diff.mul_(diff).sum(1)
    return out


def _dist_rows(x: Tensor, x_sq: Tensor, centers: Tensor) -> Tensor:
    """(n, k) Euclidean distances from every point to every centre, in row chunks.

    sqrt is monotone, so argmin over this is argmin over squared distances (up to
    rounding ties, which go to the lowest index).
    """
    n = x.shape[0]
    k = centers.shape[0]
    chunk = _default_chunk(k)
    c_sq = (centers * centers).sum(1).unsqueeze(0)
    ct = centers.t()
    out = torch.empty(n, k, dtype=x.dtype, device=x.device)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        o = out[s:e]
        torch.addmm(c_sq, x[s:e], ct, beta=1.0, alpha=-2.0, out=o)
        o.add_(x_sq[s:e].unsqueeze(1)).clamp_(min=0.0).sqrt_()
    return out


def _sq_dist_to(x: Tensor, x_sq: Tensor, pts: Tensor, chunk: Optional[int] = None) -> Tensor:
    """Squared distances (n, m) from every row of x to every row of pts (m small)."""
    n = x.shape[0]
    m = pts.shape[0]
    chunk = _default_chunk(m) if chunk is None else chunk
    p_sq = (pts * pts).sum(1)
    out = torch.empty(n, m, dtype=x.dtype, device=x.device)
    pt = pts.t()
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        torch.addmm(p_sq.unsqueeze(0), x[s:e], pt, beta=1.0, alpha=-2.0, out=out[s:e])
    out.add_(x_sq.unsqueeze(1)).clamp_(min=0.0)
    return out


def _sums_counts(x: Tensor, labels: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Per-centre sums (k, d) and counts (k,) -- the all-reducible sufficient statistics."""
    sums = torch.zeros(k, x.shape[1], dtype=x.dtype, device=x.device)
    sums.index_add_(0, labels, x)
    counts = torch.bincount(labels, minlength=k)
    return sums, counts


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
    n = x.shape[0]
    k = _check_k(k, n)
    gen = _generator(generator, x.device)
    return _kmeans_plusplus(x, (x * x).sum(1), k, gen, n_local_trials)[0]


def _kmeans_plusplus(
    x: Tensor,
    x_sq: Tensor,
    k: int,
    gen: torch.Generator,
    n_local_trials: Optional[int],
    m: int = 1,
) -> Tensor:
    """``m`` independent greedy k-means++ seedings at once -> (m, k, d) centres."""
    return x[_kmeans_plusplus_idx(x, x_sq, k, gen, n_local_trials, m)]


def _kmeans_plusplus_idx(
    x: Tensor,
    x_sq: Tensor,
    k: int,
    gen: torch.Generator,
    n_local_trials: Optional[int],
    m: int = 1,
) -> Tensor:
    """``m`` independent greedy k-means++ seedings at once -> (m, k) row indices of x.

    Batching the runs matters on CPU: each step's (n, t) distance product is thin and
    memory-bound (it streams all of x), so doing the m*t candidates of all runs in one
    product reads x once per step instead of m times.
    """
    n, d = x.shape
    if n_local_trials is None:
        n_local_trials = 2 + int(math.log(k))
    t = max(1, int(n_local_trials))
    dev = x.device
    rows = torch.arange(m, device=dev)
    chosen = torch.empty(m, k, dtype=torch.int64, device=dev)
    chosen[:, 0] = torch.randint(n, (m,), generator=gen, device=gen.device).to(dev)
    closest = _sq_dist_to(x, x_sq, x[chosen[:, 0]])  # (n, m) d^2 to nearest centre so far
    for c in range(1, k):
        # d^2 sampling of t candidates per run: inverse CDF on a float64 cumsum (like
        # sklearn's stable_cumsum + searchsorted).
        cum = torch.cumsum(closest.t().to(torch.float64), 1)  # (m, n)
        total = cum[:, -1:]
        # All-zero potential (fewer distinct points than k): fall back to uniform.
        flat = total[:, 0] <= 0
        if bool(flat.any()):
            cum[flat] = torch.arange(1, n + 1, dtype=torch.float64, device=dev)
            total = cum[:, -1:]
        r = _rand(m * t, gen, dev).view(m, t) * total
        # right=True: first index whose cumsum exceeds r, so zero-weight points (the
        # existing centres) are not picked.
        cand = torch.searchsorted(cum, r, right=True).clamp_(max=n - 1)  # (m, t)
        # All m*t candidates at once: (n, m, t) distances, then the potential of each.
        dc = _sq_dist_to(x, x_sq, x[cand.reshape(-1)]).view(n, m, t)
        dc = torch.minimum(dc, closest.unsqueeze(2))
        pot = dc.sum(0, dtype=torch.float64)  # (m, t)
        best = torch.argmin(pot, dim=1)  # (m,)
        chosen[:, c] = cand[rows, best]
        closest = dc[:, rows, best].contiguous()
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
    n_init: int = 1,
    seed_dims: Optional[int] = None,
) -> KMeansResult:
    """Lloyd's k-means (exact; accelerated with triangle-inequality bounds).

    Args:
        x: (n, d) points (any float dtype; computed in float32 on x's device).
        k: number of clusters, 1 <= k <= n.
        init: ``"k-means++"`` or a (k, d) tensor of starting centres (warm start).
        max_iter: maximum Lloyd iterations per run.
        tol: stop when the sum of squared centre moves is <= ``tol * mean(var(x, 0))``
            (scikit-learn's relative tolerance).
        generator: torch.Generator for all randomness (seeding, PCA sketch).
        n_init: number of k-means++ runs; the lowest inertia wins (1 for given centres).
        seed_dims: if set (and < d), run the k-means++ *seeding* on the data projected
            onto its top ``seed_dims`` principal directions (randomized PCA). Seeds are
            still data points and Lloyd still runs in the full space. For wide, noisy
            features (e.g. 2048-d network activations) the d^2 sampling in the full
            space is dominated by isotropic noise and is close to uniform; in the
            principal subspace it spreads seeds over the real modes, which gives
            lower final inertia per run and makes seeding ~d/seed_dims times cheaper.
            None (default) seeds exactly like scikit-learn.

    Returns:
        KMeansResult(centers (k, d), labels (n,), inertia, n_iter); labels are the
        nearest-centre assignment for the returned centres.
    """
    x = _check_x(x)
    n, d = x.shape
    k = _check_k(k, n)
    if int(n_init) < 1:
        raise ValueError(f"n_init must be >= 1, got {n_init}")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if seed_dims is not None and int(seed_dims) < 1:
        raise ValueError(f"seed_dims must be >= 1 or None, got {seed_dims}")
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
        runs = int(n_init)
        # All seedings first, in one batched pass; then one Lloyd run per seed.
        if seed_dims is not None and int(seed_dims) < min(n, d):
            basis = _pca_basis(xc, int(seed_dims), gen)  # (d, r)
            proj = (xc @ basis).contiguous()
            idx = _kmeans_plusplus_idx(proj, (proj * proj).sum(1), k, gen, None, m=runs)
            del proj
        else:
            idx = _kmeans_plusplus_idx(xc, x_sq, k, gen, None, m=runs)
        starts = xc[idx]  # (runs, k, d)
    else:
        c0 = torch.as_tensor(init).to(device=x.device, dtype=torch.float32)
        if tuple(c0.shape) != (k, d):
            raise ValueError(f"init centres must have shape ({k}, {d}), got {tuple(c0.shape)}")
        starts = (c0 - mean).unsqueeze(0)
        runs = 1  # a given start is deterministic; repeating it is pointless

    best: Optional[KMeansResult] = None
    for i in range(runs):
        res = _lloyd(xc, x_sq, starts[i].clone(), int(max_iter), tol_abs)
        if best is None or res.inertia < best.inertia:
            best = res
    assert best is not None
    best.centers = best.centers + mean
    return best


def _pca_basis(x: Tensor, r: int, gen: torch.Generator, n_power: int = 2) -> Tensor:
    """(d, r) orthonormal top principal directions of centred ``x`` (n, d).

    Randomized range finder with power iterations (Halko, Martinsson & Tropp 2011), like
    ``torch.pca_lowrank`` but drawing its Gaussian sketch from ``gen`` (pca_lowrank uses
    the global RNG, which would break reproducibility). Cost ~ (2 + 2 n_power) products
    of x with a (d, r + 10) matrix.
    """
    n, d = x.shape
    q = min(r + 10, n, d)
    omega = torch.randn(d, q, generator=gen, device=gen.device, dtype=x.dtype).to(x.device)
    y = x @ omega  # (n, q)
    for _ in range(n_power):
        # Re-orthonormalise between products so float32 does not lose the small directions.
        y = torch.linalg.qr(y).Q
        z = torch.linalg.qr(x.t() @ y).Q  # (d, q)
        y = x @ z
    qn = torch.linalg.qr(y).Q  # (n, q) basis of the dominant column space
    b = qn.t() @ x  # (q, d)
    _, _, vh = torch.linalg.svd(b, full_matrices=False)
    return vh[: min(r, q)].t().contiguous()


def _lloyd(
    x: Tensor, x_sq: Tensor, centers: Tensor, max_iter: int, tol_abs: float
) -> KMeansResult:
    """Lloyd iterations from ``centers`` on centred data, accelerated with Elkan bounds.

    The result is the same as plain Lloyd (nearest centre, then means), but after the
    first E step a point's distances are only recomputed when its bounds cannot prove
    that its label is unchanged. Per point we keep ``u`` >= distance to its own centre
    and lower bounds on the distance to every other centre; when centre j moves by
    ``delta[j]`` these become ``u + delta[own]`` and ``lower[:, j] - delta[j]``
    (triangle inequality). Elkan keeps one lower bound per (point, centre), an (n, k)
    matrix; above ``_ELKAN_MAX_FLOATS`` entries we fall back to Hamerly's single lower
    bound per point (``lower - max delta``), which prunes less but needs O(n) memory.
    Late iterations move centres very little, so only a few % of points are recomputed.

    The M step works from per-centre ``sums`` (k, d) and ``counts`` (k,), updated only
    for points whose label changed (a DDP version would all-reduce these), and rebuilt
    from scratch every ``_FULL_SUMS_EVERY`` iterations so float32 drift cannot build up.

    Deterministic given the start: empty clusters go to the points farthest from their
    centre, like scikit-learn.
    """
    n = x.shape[0]
    k = centers.shape[0]
    if k > 1 and n * k <= _ELKAN_MAX_FLOATS:
        lower = _dist_rows(x, x_sq, centers)  # (n, k) exact distances (first E step)
        labels = lower.argmin(1)
        u = lower.gather(1, labels.unsqueeze(1)).squeeze(1)
    else:
        labels, d2, d2b = _assign(x, x_sq, centers, None, second=True)  # first E step: everything
        u = d2.sqrt_()
        lower = d2b.sqrt_()
    # Bound comparisons get slack for float32 rounding in ||x||^2 - 2xc + ||c||^2:
    # a label is kept only if (lower^2 - u^2) exceeds ~1e-5 * (||x||^2 + max ||c||^2).
    slack_base = 1e-5 * x_sq
    sums, counts = _sums_counts(x, labels, k)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        if n_iter % _FULL_SUMS_EVERY == 0:
            sums, counts = _sums_counts(x, labels, k)
        # M step.
        m_sums, m_counts = sums, counts
        empty = counts == 0
        n_empty = int(empty.sum())
        if n_empty:
            # Like sklearn: move empty centres onto the points farthest from their
            # centre, and take those points out of their old clusters' statistics
            # (for this M step only; the running sums keep following the labels).
            far = torch.topk(_exact_d2(x, centers, labels), n_empty).indices
            m_sums, m_counts = sums.clone(), counts.clone()
            m_sums.index_add_(0, labels[far], -x[far])
            m_counts.index_add_(0, labels[far], -torch.ones_like(far))
            m_sums[empty] = x[far]
            m_counts[empty] = 1
        new = m_sums / m_counts.clamp(min=1).unsqueeze(1).to(x.dtype)
        # A cluster that lost its only point to relocation (duplicates) keeps its centre.
        lost = m_counts == 0
        if bool(lost.any()):
            new[lost] = centers[lost]
        move2 = ((new - centers) ** 2).sum(1)  # (k,) squared move of each centre
        shift = float(move2.sum())
        centers = new
        if shift == 0.0:
            break  # labels are already the nearest-centre labels of `centers`
        # E step, pruned by the bounds; keeps sums/counts in step with the labels.
        delta = move2.sqrt_()
        _bounded_e_step(x, x_sq, centers, labels, u, lower, delta, slack_base, sums, counts)
        if shift <= tol_abs:
            break  # converged (sklearn's criterion); labels already match `centers`
    inertia = float(_exact_d2(x, centers, labels).sum(dtype=torch.float64))
    return KMeansResult(centers=centers, labels=labels, inertia=inertia, n_iter=n_iter)


def _bounded_e_step(
    x: Tensor,
    x_sq: Tensor,
    centers: Tensor,
    labels: Tensor,
    u: Tensor,
    lower: Tensor,
    delta: Tensor,
    slack_base: Tensor,
    sums: Tensor,
    counts: Tensor,
) -> None:
    """In place: after centres moved by ``delta`` (k,), fix labels/u/lower/sums/counts.

    ``lower`` is (n, k) (Elkan) or (n,) (Hamerly); see :func:`_lloyd`.
    """
    k = centers.shape[0]
    elkan = lower.dim() == 2
    u.add_(delta[labels])
    if elkan:
        lower.sub_(delta)
        # Smallest lower bound over the *other* centres: hide the own column for the min.
        own_col = labels.unsqueeze(1)
        own = lower.gather(1, own_col)
        lower.scatter_(1, own_col, float("inf"))
        other_lb = lower.min(1).values
        lower.scatter_(1, own_col, own)
    elif k > 1:
        # Largest move among the *other* centres: the top move unless it is your own.
        top = torch.topk(delta, 2)
        lower.sub_(torch.where(labels == top.indices[0], top.values[1], top.values[0]))
        other_lb = lower
    else:
        other_lb = lower  # inf: nothing to switch to
    if k > 1:
        # Half the distance to the nearest other centre also bounds a label change.
        c_sq = (centers * centers).sum(1)
        cc = c_sq.unsqueeze(1) + c_sq.unsqueeze(0) - 2.0 * (centers @ centers.t())
        cc.clamp_(min=0.0)
        cc.fill_diagonal_(float("inf"))
        half = 0.5 * cc.min(1).values.sqrt_()
        bound = torch.maximum(other_lb, half[labels])
    else:
        bound = other_lb
    slack = slack_base + 1e-5 * float((centers * centers).sum(1).max())
    need = torch.nonzero((bound - u) * (bound + u) <= slack).flatten()
    if need.numel() == 0:
        return
    xn = x[need]
    old = labels[need]
    if elkan:
        rows = _dist_rows(xn, x_sq[need], centers)  # (m, k)
        lab = rows.argmin(1)
        lower[need] = rows
        u[need] = rows.gather(1, lab.unsqueeze(1)).squeeze(1)
    else:
        lab, d2, d2b = _assign(xn, x_sq[need], centers, None, second=True)
        u[need] = d2.sqrt_()
        lower[need] = d2b.sqrt_()
    labels[need] = lab
    moved = torch.nonzero(lab != old).flatten()
    if moved.numel():
        xm = xn[moved]
        sums.index_add_(0, lab[moved], xm)
        sums.index_add_(0, old[moved], -xm)
        ones = torch.ones_like(moved)
        counts.index_add_(0, lab[moved], ones)
        counts.index_add_(0, old[moved], -ones)
