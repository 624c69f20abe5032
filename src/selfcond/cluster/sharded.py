"""k-means over points split between ranks (torchrun): each rank holds its own rows, and the ranks
exchange only per-centre statistics, never the points.

The global point order is rank 0's rows, then rank 1's, and so on. Every rank calls every function
here with its own rows and the same generator state (the partition's shared stream), and gets the
same centres; labels come back for its own rows. Outside a process group the one shard is all the
data, so these functions are also plain (unbounded) Lloyd and k-means++ on one process.

- k-means++ seeding: the same draws as :func:`selfcond.cluster.kmeans.kmeans_plusplus` on the
  concatenated rows (a draw on the global float64 cumsum is resolved on the rank that owns it), the
  chosen rows all-reduced from their owners;
- Lloyd: the E step on each rank's rows; the M step from all-reduced sums (k, d) and counts (k,);
  empty clusters take the points farthest from their centres over all ranks, as in one process.

Sums are added in another order than in one process, so centres agree with the one-process
k-means to float32 rounding, and labels wherever no point lies on a tie (tested on 2 ranks in
tests/cluster/test_sharded.py).
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
import torch.distributed as td
from torch import Tensor

from selfcond.cluster.kmeans import KMeansResult, _check_x, _generator, _rand
from selfcond.cluster.lloyd import _assign, _exact_d2, _sq_dist_to, _sums_counts

__all__ = ["kmeans_sharded", "centers_from_labels_sharded", "gather_rows", "rows_of", "broadcast", "block", "sharded", "total",
           "gibbs_sharded", "refit_sharded"]


def _active() -> bool:
    return td.is_available() and td.is_initialized() and td.get_world_size() > 1


sharded = _active  # whether the caller is one of several ranks


def block(n: int) -> slice:
    """This rank's contiguous share of n items (the first n % world ranks take one more)."""
    if not _active():
        return slice(0, n)
    rank, world = td.get_rank(), td.get_world_size()
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return slice(lo, lo + base + (rank < extra))


def broadcast(t: Tensor) -> Tensor:
    """Rank 0's `t` on every rank (in place)."""
    if _active():
        td.broadcast(t, 0)
    return t


def _sum(t: Tensor) -> Tensor:
    """`t` summed over the ranks (a new tensor; `t` itself when alone)."""
    if _active():
        t = t.clone()
        td.all_reduce(t)
    return t


def total(t: Tensor) -> Tensor:
    """`t` summed over the ranks (counts of per-rank rows)."""
    return _sum(t)


def _all_gather(t: Tensor) -> list[Tensor]:
    """Every rank's `t` (same shape on every rank), in rank order."""
    if not _active():
        return [t]
    out = [torch.empty_like(t) for _ in range(td.get_world_size())]
    td.all_gather(out, t.contiguous())
    return out


def gather_rows(t: Tensor) -> Tensor:
    """The concatenation of every rank's rows of `t` (n_r, ...), in rank order: for small per-point
    arrays (labels), never for features."""
    if not _active():
        return t
    sizes = torch.stack(_all_gather(torch.tensor([t.shape[0]], device=t.device))).flatten().tolist()
    pad = t.new_zeros((max(sizes), *t.shape[1:]))
    pad[:t.shape[0]] = t
    return torch.cat([p[:s] for p, s in zip(_all_gather(pad), sizes)])


def rows_of(x: Tensor, global_idx: Tensor) -> Tensor:
    """Rows `global_idx` (m,) of the concatenation of every rank's x (n_r, d), from their owners:
    (m, d) on every rank. For a sample of the rows, never for all of them."""
    return _Shards(x.shape[0], x.device).rows(x, global_idx)


class _Shards:
    """Where this rank's rows sit in the global order: offsets[r] .. offsets[r + 1]."""

    def __init__(self, n_local: int, device: torch.device):
        sizes = torch.stack(_all_gather(torch.tensor([n_local], device=device))).flatten().tolist()
        self.rank = td.get_rank() if _active() else 0
        self.offsets = [0]
        for s in sizes:
            self.offsets.append(self.offsets[-1] + s)
        self.n = self.offsets[-1]
        self.lo, self.hi = self.offsets[self.rank], self.offsets[self.rank + 1]

    def rows(self, x: Tensor, global_idx: Tensor) -> Tensor:
        """The rows of the global indices `global_idx` (m,), from their owners: (m, d) everywhere."""
        mine = (global_idx >= self.lo) & (global_idx < self.hi)
        out = torch.zeros(global_idx.shape[0], x.shape[1], dtype=x.dtype, device=x.device)
        out[mine] = x[global_idx[mine] - self.lo]
        return _sum(out)  # each row is non-zero on its owner alone


def _d2_draw(shards: _Shards, closest: Tensor, gen: torch.Generator, t: int) -> Tensor:
    """t global indices drawn with probability proportional to `closest` over all ranks: the draws
    of one process on the concatenated weights (uniform when every weight is zero)."""
    dev = closest.device
    local = torch.cumsum(closest.to(torch.float64), 0)
    totals = torch.cat(_all_gather(local[-1:] if local.numel() else torch.zeros(1, dtype=torch.float64,
                                                                                  device=dev)))
    total = float(totals.sum())
    r = _rand(t, gen, dev)
    if not total > 0:
        return (r * shards.n).floor().long().clamp_(max=shards.n - 1)
    r = r * total
    before = float(totals[:shards.rank].sum())  # weight on the ranks before this one
    mine = (r >= before) & (r < before + float(totals[shards.rank]))
    out = torch.zeros(t, dtype=torch.int64, device=dev)
    if bool(mine.any()):
        out[mine] = torch.searchsorted(local, r[mine] - before, right=True).clamp_(max=local.numel() - 1) + shards.lo
    if shards.rank == len(shards.offsets) - 2:  # rounding past the last cumsum: the last point
        out[r >= total] = shards.n - 1
    return _sum(out)


def _plusplus(x: Tensor, x_sq: Tensor, k: int, gen: torch.Generator, shards: _Shards) -> Tensor:
    """Greedy k-means++ over the ranks' rows -> (k, d) centres, the same on every rank."""
    dev = x.device
    t = max(1, int(2 + int(math.log(k))))
    first = torch.randint(shards.n, (1,), generator=gen, device=gen.device).to(dev)
    centers = [shards.rows(x, first)]
    closest = _sq_dist_to(x, x_sq, centers[0])[:, 0]
    for _ in range(1, k):
        cand = _d2_draw(shards, closest, gen, t)
        pts = shards.rows(x, cand)  # (t, d)
        dc = torch.minimum(_sq_dist_to(x, x_sq, pts), closest.unsqueeze(1))  # (n_local, t)
        best = int(torch.argmin(_sum(dc.sum(0, dtype=torch.float64))))
        centers.append(pts[best:best + 1])
        closest = dc[:, best].contiguous()
    return torch.cat(centers)


def _farthest(x: Tensor, d2: Tensor, m: int) -> tuple[Tensor, Tensor]:
    """The m points farthest from their centres over all ranks: (their rows (m, d), on this rank
    (m,) bool with their local index (m,), -1 elsewhere)."""
    dev = x.device
    take = min(m, d2.shape[0])
    val = torch.full((m,), -1.0, dtype=d2.dtype, device=dev)
    idx = torch.full((m,), -1, dtype=torch.int64, device=dev)
    if take:
        top = torch.topk(d2, take)
        val[:take], idx[:take] = top.values, top.indices
    vals = torch.cat(_all_gather(val))  # (world * m,)
    order = torch.topk(vals, m).indices  # ties -> lower rank first is not guaranteed, but the same everywhere
    rank = td.get_rank() if _active() else 0
    owner = order // m
    local = torch.where(owner == rank, idx[order % m], torch.full_like(order, -1))
    rows = torch.zeros(m, x.shape[1], dtype=x.dtype, device=dev)
    mine = local >= 0
    rows[mine] = x[local[mine]]
    return _sum(rows), local


def centers_from_labels_sharded(x: Tensor, labels: Tensor, k: int,
                                generator: Optional[torch.Generator] = None) -> Tensor:
    """:func:`selfcond.cluster.kmeans.centers_from_labels` over the ranks: each cluster's mean over all
    ranks' rows; an empty cluster is re-seeded by k-means++'s d^2 draw over all ranks."""
    x = _check_x(x)
    shards = _Shards(x.shape[0], x.device)
    sums, counts = _sums_counts(x, labels.long(), k)
    sums, counts = _sum(sums), _sum(counts)
    centers = sums / counts.clamp(min=1).unsqueeze(1).to(x.dtype)
    empty = torch.nonzero(counts == 0).flatten().tolist()
    if empty:
        gen = _generator(generator, x.device)
        x_sq = (x * x).sum(1)
        full = torch.nonzero(counts > 0).flatten()
        closest = _sq_dist_to(x, x_sq, centers[full]).min(1).values
        for j in empty:
            centers[j] = shards.rows(x, _d2_draw(shards, closest, gen, 1))[0]
            closest = torch.minimum(closest, _sq_dist_to(x, x_sq, centers[j:j + 1])[:, 0])
    return centers


def kmeans_sharded(x: Tensor, k: int, init: Union[str, Tensor] = "k-means++", max_iter: int = 100,
                   tol: float = 1e-4, generator: Optional[torch.Generator] = None) -> KMeansResult:
    """Lloyd's k-means on the union of every rank's rows `x` (n_r, d).

    Returns KMeansResult with the centres (k, d) and inertia of all ranks (the same everywhere) and
    the labels (n_r,) of this rank's rows. Arguments as :func:`selfcond.cluster.kmeans.kmeans`.
    """
    x = _check_x(x)
    dev, d = x.device, x.shape[1]
    shards = _Shards(x.shape[0], dev)
    if not 1 <= int(k) <= shards.n:
        raise ValueError(f"k must lie in [1, {shards.n}] (the points over all ranks), got k={k}")
    gen = _generator(generator, dev)
    # Centred as in one process (float32 cancellation), the mean and variance over all ranks.
    stats = _sum(torch.cat([x.double().sum(0), torch.tensor([float(x.shape[0])], dtype=torch.float64,
                                                            device=dev)]))
    mean = (stats[:d] / stats[d]).float().unsqueeze(0)
    xc = x - mean
    x_sq = (xc * xc).sum(1)
    var = _sum(xc.double().pow(2).sum(0)) / stats[d]
    tol_abs = float(tol) * float(var.mean())
    if isinstance(init, str):
        if init != "k-means++":
            raise ValueError(f"init must be 'k-means++' or a (k, d) tensor, got {init!r}")
        centers = _plusplus(xc, x_sq, k, gen, shards)
    else:
        centers = torch.as_tensor(init).to(device=dev, dtype=torch.float32) - mean
    labels, d2 = _assign(xc, x_sq, centers, None)
    n_iter = 0
    for n_iter in range(1, int(max_iter) + 1):
        sums, counts = _sums_counts(xc, labels, k)
        sums, counts = _sum(sums), _sum(counts)
        empty = counts == 0
        n_empty = int(empty.sum())
        if n_empty:  # as in one process: empty centres onto the farthest points, taken from their clusters
            rows, local = _farthest(xc, _exact_d2(xc, centers, labels), n_empty)
            out_sums = torch.zeros_like(sums)
            out_counts = torch.zeros_like(counts)
            mine = local >= 0
            out_sums.index_add_(0, labels[local[mine]], xc[local[mine]])
            out_counts.index_add_(0, labels[local[mine]], torch.ones_like(local[mine]))
            sums, counts = sums - _sum(out_sums), counts - _sum(out_counts)
            sums[empty], counts[empty] = rows, 1
        new = sums / counts.clamp(min=1).unsqueeze(1).to(xc.dtype)
        lost = counts == 0
        if bool(lost.any()):
            new[lost] = centers[lost]
        shift = float(((new - centers) ** 2).sum())
        centers = new
        labels, d2 = _assign(xc, x_sq, centers, None)
        if shift <= tol_abs:
            break
    inertia = float(_sum(_exact_d2(xc, centers, labels).sum(dtype=torch.float64).reshape(1)))
    return KMeansResult(centers=centers + mean, labels=labels, inertia=inertia, n_iter=n_iter)


# ----------------------------------------------------------------------------- the DP mixture


def gibbs_sharded(x: Tensor, z: Tensor, K: int, alpha: float, prior, sweeps: int = 1,
                  generator: Optional[torch.Generator] = None, block: int = 0,
                  fixed_loglik: Optional[Tensor] = None) -> Tensor:
    """:func:`selfcond.cluster.crp.gibbs` over every rank's rows: x (n_r, D), z (n_r,) and
    fixed_loglik (n_r, K) are this rank's; returns this rank's new slots (n_r,).

    The chain is the one-process chain on the concatenated rows: every rank draws the same global
    order and uniforms from the shared generator and walks the same global blocks; each block's
    points are drawn by the ranks that own them, and the slots' statistics (K, P) are all-reduced
    as the block leaves and rejoins them, so every point is drawn given all the others exactly as in
    one process (block = 1 is the exact sequential sampler, tests/cluster/test_sharded.py)."""
    from selfcond.cluster import crp
    from selfcond.cluster.niw import _F64, EPS, _check_xz, _Consts, _count_table, _crp_const, _log_t, _qfeats
    from selfcond.cluster.niw import _quad, _slot_sums, _stats

    if int(block) < 0:
        raise ValueError(f"block must be >= 0 (0 = N / 16), got {block}")
    x, z = _check_xz(x, z, K)
    dev, d = x.device, x.shape[1]
    shards = _Shards(x.shape[0], dev)
    gen = _generator(generator, dev)
    xc = x.to(_F64)
    c = (_sum(xc.sum(0)) / shards.n)
    xc = xc - c
    consts = _Consts.of(prior.to(dev)._shifted(c), EPS, dev)
    block = crp.block_size(shards.n, d, block)
    fixed_loglik = None if fixed_loglik is None else fixed_loglik.to(device=dev, dtype=_F64)
    with torch.inference_mode():
        tab = _count_table(consts, d, shards.n, float(alpha), dev)
        t = _sum(_stats(xc, z, K))
        z = z.clone()
        fixed = None if fixed_loglik is None else t[:, 0] > 0.5
        for _ in range(int(sweeps)):
            perm = torch.randperm(shards.n, generator=gen, device=gen.device).to(dev)
            u = torch.rand(shards.n, generator=gen, device=gen.device, dtype=_F64).to(dev)
            for a in range(0, shards.n, block):
                pos = perm[a:a + block]
                mine = (pos >= shards.lo) & (pos < shards.hi)
                li = pos[mine] - shards.lo  # this rank's points of the block
                fb = _qfeats(xc[li])
                t.sub_(_sum(_slot_sums(z[li], fb, K)))
                t.mul_(t[:, :1] > 0.5)
                q = _quad(consts, t, tab)
                lw = _log_t(q, fb, _crp_const(q, t[:, 0]))
                if fixed is not None:
                    fixed &= t[:, 0] > 0.5
                    lw = torch.where(fixed[:, None], q.lcnt[:, None] + fixed_loglik[li].t(), lw)
                znew = crp._sample(lw, u[a:a + block][mine])
                t.add_(_sum(_slot_sums(znew, fb, K)))
                z[li] = znew
    return z.clone()


def refit_sharded(gmm, x: Tensor, z: Tensor, prior, eps: Optional[float] = None):
    """:meth:`selfcond.cluster.gmm.GaussianMixture.refit` from the sufficient statistics of every
    rank's rows (n, s, S all-reduced): the same mixture on every rank."""
    from selfcond.cluster.niw import EPS, posterior, suff_stats

    eps = EPS if eps is None else eps
    if prior.nu0 <= gmm.dim + 1:
        raise ValueError(f"the posterior mean of Sigma needs nu0 > D + 1, got {prior.nu0}")
    x = x.to(gmm.means.device)
    n, s, S = (_sum(v) for v in suff_stats(x, z.to(x.device), gmm.k))
    _, nu, m, psi = posterior(prior.to(x.device), n, s, S, eps)
    live = n > 0.5
    gmm.means = torch.where(live[:, None], m, gmm.means)
    gmm.covs = torch.where(live[:, None, None], psi / (nu - gmm.dim - 1)[:, None, None], gmm.covs)
    gmm.log_weights = torch.log(n / n.sum().clamp(min=1.0))
    return gmm
