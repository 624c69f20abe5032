"""Collapsed Gibbs sampling of mode assignments under a truncated Dirichlet process.

Step (c) of the MIC-GANs Adversarial Chinese Restaurant Process, done as a real DP mixture:
a concentration ``alpha``, new modes can open in empty slots, densities in log space, and the
whole data set sampled in vectorised blocks. Knows nothing about GANs: it takes an (N, D)
tensor of embeddings and an (N,) assignment to K slots, on any device.

The target, for slot assignments z of N points to K slots (truncation), with the NIW model of
:mod:`selfcond.cluster.niw` per occupied slot and a CRP(alpha) partition whose m blocks are
spread uniformly over the K slots:

    P(z) ∝ CRP(partition(z); alpha) · (K - m)!/K! · Π_{occupied k} ML(x_{z=k})

    CRP(partition; alpha) = alpha^m Γ(alpha)/Γ(alpha + N) · Π_{occupied k} (n_k - 1)!
    ML(X) = π^{-nD/2} Γ_D(nu_n/2)/Γ_D(nu0/2) · |psi0|^{nu0/2}/|psi_n|^{nu_n/2}
            · (kappa0/kappa_n)^{D/2}

(:func:`selfcond.cluster.crp_exact.log_joint`). The conditional of point i given the others, slot k:

    live slot  (n_{-i,k} > 0):  n_{-i,k}        · t(x_i | predictive of slot k without i)
    empty slot (n_{-i,k} = 0):  alpha / E_{-i}  · t(x_i | prior predictive)

with E_{-i} the number of empty slots counted without i.

The sampler (:func:`gibbs`, the fast sweep): points visited in blocks of ``block`` (random order
per sweep). A block's points are removed from the statistics, all of them are drawn at once
from their conditionals given the rest of the data (a (B, K) matrix of log weights), then
added back with their new labels. Within a block points do not see each other's moves: an
approximation of the kind of asynchronous / parallel Gibbs, whose error shrinks as
block / N shrinks; block=1 is exactly the sequential sampler of
:mod:`selfcond.cluster.crp_exact` (same draws, same result), which the tests check against the
exact posterior. The default block is N / 16 and any block is capped at ceil(N / 8), so every
point is drawn given at least 7/8 of the data (a block holding all points would see only the
prior). Larger blocks pay, on a GPU most (:func:`block_size`). The per-point work is one matrix
product: each point's features [1, x, upper triangle of x x'] against each slot's packed
quadratic form, in float64 on data centred on their mean.

Distributed note: a sharded version all-reduces the (K, P) statistics tensor between blocks.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from selfcond.cluster.kmeans import _generator
from selfcond.cluster.niw import (_BLOCK_FLOATS, _CHUNK_FLOATS, _F64, EPS, NIWPrior, _check_xz, _Consts,
                                  _count_table, _crp_const, _log_t, _n_feats, _qfeats, _quad, _slot_sums,
                                  _stats)

__all__ = ["gibbs", "block_size"]


def prepare(x: Tensor, z: Tensor, K: int, alpha: float, prior: NIWPrior,
            generator: Optional[torch.Generator]) -> tuple[Tensor, Tensor, _Consts, Callable]:
    """What both samplers start from: checked inputs, data centred on their mean in float64, the
    prior shifted with them, and `draws()` -> (a random order (N,), one uniform per point (N,)),
    one call per sweep, so the samplers consume the generator alike."""
    x, z = _check_xz(x, z, K)
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    if prior.dim != x.shape[1]:
        raise ValueError(f"prior has D={prior.dim} but x has D={x.shape[1]}")
    dev = x.device
    gen = _generator(generator, dev)
    xc = x.to(_F64)
    c = xc.mean(0)
    xc = xc - c
    consts = _Consts.of(prior.to(dev)._shifted(c), EPS, dev)
    n_pts = x.shape[0]

    def draws():
        perm = torch.randperm(n_pts, generator=gen, device=gen.device).to(dev)
        u = torch.rand(n_pts, generator=gen, device=gen.device, dtype=_F64).to(dev)
        return perm, u

    return xc, z, consts, draws


def gibbs(
    x: Tensor,
    z: Tensor,
    K: int,
    alpha: float,
    prior: NIWPrior,
    sweeps: int = 1,
    generator: Optional[torch.Generator] = None,
    block: int = 0,
    fixed_loglik: Optional[Tensor] = None,
) -> Tensor:
    """Collapsed Gibbs sweeps over the slot assignment of every point, in blocks.

    Args:
        x: (N, D) embeddings, any float dtype, any device.
        z: (N,) int current slots in [0, K); the chain warm-starts from it (not mutated).
        K: number of slots (truncation). alpha: DP concentration (> 0).
        prior: NIWPrior of dimension D.
        sweeps: passes over all points, each in a fresh random order.
        generator: all randomness (a random order and one uniform per point per sweep);
            None uses a fixed seed. The same seed gives the same result on a device.
        block: points sampled at once (1 = exact sequential semantics); 0 (the default)
            = ceil(N / 16), see :func:`block_size`; at most ceil(N / 8) are used.
        fixed_loglik: (N, K) log N(x_i | mu_k, Sigma_k) under Gaussians fitted before this call
            (MIC-GANs' step (c)). Slots occupied at the start then use these fixed Gaussians
            instead of their collapsed predictive, until they empty; empty slots still use the
            prior predictive, so new modes can open. Established modes keep their shape even when
            the encoder's embeddings do not yet separate them, where the collapsed sampler would
            merge them.

    Returns:
        (N,) int64 new assignment on x's device.
    """
    if int(block) < 0:
        raise ValueError(f"block must be >= 0 (0 = N / 16), got {block}")
    xc, z, consts, draws = prepare(x, z, K, alpha, prior, generator)
    n_pts, d = x.shape
    if fixed_loglik is not None:
        if tuple(fixed_loglik.shape) != (n_pts, K):
            raise ValueError(f"fixed_loglik must be ({n_pts}, {K}), got {tuple(fixed_loglik.shape)}")
        fixed_loglik = fixed_loglik.to(device=x.device, dtype=_F64)
    block = block_size(n_pts, d, block)
    # Inference mode: no autograd bookkeeping on the many small per-block operations; the clone
    # hands the caller an ordinary tensor it may modify in place.
    with torch.inference_mode():
        z = _fast_sweeps(xc, z, K, float(alpha), consts, int(sweeps), draws, block, fixed_loglik)
    return z.clone()


def block_size(n: int, d: int, block: int = 0) -> int:
    """The block the fast sweep uses on n points of dimension d: ``block``, or for 0 ceil(n / 16)
    (at most 64 MiB of the block's packed float64 features, at least 1,024 points); capped at
    ceil(n / 8) so that every block sees most of the data (a block of all points would see only
    the prior).

    The block's error grows with block / n, not with the block itself, so the default is a share
    of the data: at 1/16 and 1/8 the chains were within the exact sampler's chain-to-chain spread
    (docs/RESULTS.md, `bench gibbs-blocks`), and fewer, larger blocks are what makes the sweep
    fast (each block is a fixed handful of operations; on a GPU almost nothing else)."""
    if not block:
        block = min(-(-n // 16), max(1024, _BLOCK_FLOATS // _n_feats(d)))
    return max(1, min(int(block), -(-n // 8)))


def _fast_sweeps(xc: Tensor, z: Tensor, K: int, alpha: float, consts: _Consts, sweeps: int,
                 draws, block: int, fixed_loglik: Optional[Tensor]) -> Tensor:
    """The block sampler of :func:`gibbs` on centred float64 data xc (N, D); z (N,) is the start."""
    n_pts, d = xc.shape
    dev = xc.device
    p = _n_feats(d)
    chunk = block * max(1, _CHUNK_FLOATS // (block * p))  # features made for whole chunks
    fbuf = torch.empty(min(chunk, n_pts), p, dtype=_F64, device=dev)  # reused buffers
    xp = torch.empty_like(xc)
    tab = _count_table(consts, d, n_pts, alpha, dev)
    t = _stats(xc, z, K)
    z = z.clone()
    fixed = None if fixed_loglik is None else t[:, 0] > 0.5  # slots keeping their fitted Gaussian
    for _ in range(sweeps):
        perm, u = draws()
        torch.index_select(xc, 0, perm, out=xp)  # this sweep's order, contiguous
        zp = z[perm]
        flp = None if fixed is None else fixed_loglik[perm]
        for c0 in range(0, n_pts, chunk):
            fch = _qfeats(xp[c0 : c0 + chunk], out=fbuf[: min(chunk, n_pts - c0)])
            for b0 in range(0, fch.shape[0], block):
                a, fb = c0 + b0, fch[b0 : b0 + block]
                # The block leaves the statistics; emptied slots get exact zeros, not dust.
                t.sub_(_slot_sums(zp[a : a + block], fb, K))
                t.mul_(t[:, :1] > 0.5)
                q = _quad(consts, t, tab)
                lw = _log_t(q, fb, _crp_const(q, t[:, 0]))
                if fixed is not None:  # a slot that empties loses its fitted Gaussian for good
                    fixed &= t[:, 0] > 0.5
                    lw = torch.where(fixed[:, None], q.lcnt[:, None] + flp[a : a + block].t(), lw)
                znew = _sample(lw, u[a : a + block])
                t.add_(_slot_sums(znew, fb, K))
                zp[a : a + block] = znew
        z[perm] = zp
    return z


def _sample(lw: Tensor, u: Tensor) -> Tensor:
    """One draw per column of log weights lw (K, B), by inverse CDF with uniforms u (B,)."""
    cdf = lw.sub_(lw.amax(0)).exp_().cumsum_(0)  # lw is overwritten
    # First slot whose cdf exceeds u * total: zero-weight slots (flat cdf) are never chosen.
    # Compared in place (0./1. into cdf): no (K, B) bool tensor to allocate and widen.
    return cdf.le_(u * cdf[-1]).sum(0).clamp_(max=lw.shape[0] - 1).long()
