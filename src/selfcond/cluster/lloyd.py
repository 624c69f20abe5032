"""The inner loops of k-means: chunked distance kernels and Lloyd iterations accelerated with
Elkan/Hamerly bounds (same labels as plain Lloyd, fewer distance computations). Plain tensors on
any device; the only Python loops run over chunks and iterations, never over points.

Distributed note: one Lloyd update is expressed as per-centre ``sums`` (k, d) and ``counts`` (k,)
(:func:`_sums_counts`); a sharded (DDP) version all-reduces those two tensors between E and M steps.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

# Target size of one (chunk, k) distance block: 2**23 float32 = 32 MiB.
_BLOCK_FLOATS = 1 << 23
# Rebuild the Lloyd sums from scratch this often (incremental updates otherwise).
_FULL_SUMS_EVERY = 10
# Elkan bounds need an (n, k) float32 matrix; above this many entries use Hamerly.
_ELKAN_MAX_FLOATS = 1 << 25


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


def lloyd(
    x: Tensor, x_sq: Tensor, centers: Tensor, max_iter: int, tol_abs: float
) -> tuple[Tensor, Tensor, float, int]:
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
    return centers, labels, inertia, n_iter


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
