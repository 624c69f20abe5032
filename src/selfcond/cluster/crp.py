"""Collapsed Gibbs sampling of mode assignments under a truncated Dirichlet process.

Step (c) of the MIC-GANs Adversarial Chinese Restaurant Process, done as a real DP mixture:
a concentration ``alpha``, new modes can open in empty slots, densities in log space, and the
whole data set sampled in vectorised blocks. Knows nothing about GANs: it takes an (N, D)
tensor of embeddings and an (N,) assignment to K slots, on any device.

Model. Each occupied slot k has a Gaussian (mu_k, Sigma_k) with a Normal-Inverse-Wishart
prior NIW(mu0, kappa0, nu0, psi0); the Gaussians are integrated out (fully collapsed). The
partition of the N points follows a CRP(alpha), and its m blocks are spread uniformly over
the K slots (truncation). The sampler targets exactly

    P(z) ∝ CRP(partition(z); alpha) · (K - m)!/K! · Π_{occupied k} ML(x_{z=k})

    CRP(partition; alpha) = alpha^m Γ(alpha)/Γ(alpha + N) · Π_{occupied k} (n_k - 1)!
    ML(X) = π^{-nD/2} Γ_D(nu_n/2)/Γ_D(nu0/2) · |psi0|^{nu0/2}/|psi_n|^{nu_n/2}
            · (kappa0/kappa_n)^{D/2}

(:func:`log_joint`). The conditional of point i given the others, slot k:

    live slot  (n_{-i,k} > 0):  n_{-i,k}        · t(x_i | predictive of slot k without i)
    empty slot (n_{-i,k} = 0):  alpha / E_{-i}  · t(x_i | prior predictive)

with E_{-i} the number of empty slots counted without i. The predictive is the multivariate
Student-t with nu_n - D + 1 degrees of freedom, location m_n and scale
psi_n (kappa_n + 1) / (kappa_n (nu_n - D + 1)). The posterior parameters after n points with
sum s and sum of outer products S:

    kappa_n = kappa0 + n,  nu_n = nu0 + n,  m_n = (kappa0 mu0 + s) / kappa_n,
    psi_n = psi0 + S + kappa0 mu0 mu0^T - kappa_n m_n m_n^T.

Numerics: statistics and densities in float64; log-determinants and Mahalanobis distances from
Cholesky factors. Covariance floor: every scale matrix psi_n (psi0 included) gets ``EPS`` · I
added before its factorisation; since psi_n - psi0 does not depend on the floor, this is the
same model with prior scale psi0 + EPS · I, so the samplers still target exactly the
distribution above (with that prior). The data are centred on their mean (and mu0 shifted with
them), which changes no density but keeps S - kappa_n m_n m_n^T from cancelling.

Two samplers (:func:`gibbs`):

- ``exact=True``: sequential collapsed Gibbs, point by point in a random order. The predictive
  of a point's own slot without it is a closed-form rank-1 downdate of the slot's current
  factors (matrix determinant lemma and Sherman-Morrison), so slot factors are refactored only
  when a point changes slot (the two changed slots). Runs in NumPy on the CPU whatever the
  device (a per-point loop is latency-bound; kernel launches would dominate on a GPU).
- ``exact=False`` (default, the fast sweep): points visited in blocks of ``block`` (random order
  per sweep). A block's points are removed from the statistics, all of them are drawn at once
  from their conditionals given the rest of the data (a (B, K) matrix of log weights), then
  added back with their new labels. Within a block points do not see each other's moves: an
  approximation of the kind of asynchronous / parallel Gibbs, whose error shrinks as
  block / N shrinks; block=1 is exactly the sequential sampler (same draws, same result). The
  default block is N / 16 and any block is capped at ceil(N / 8), so every point is drawn given
  at least 7/8 of the data (a block holding all points would see only the prior). Larger
  blocks pay, on a GPU most (:func:`block_size`).
  The per-point work is one matrix product: each point's features [1, x, upper triangle of
  x x'] against each slot's packed quadratic form, in float64 on data centred on their mean.

Distributed note: all statistics live in one (K, 1 + D + D(D+1)/2) tensor of sums [n, s, S]
(upper triangle of S), so a sharded version all-reduces that tensor between blocks.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import NamedTuple, Optional

import numpy as np
import torch
from torch import Tensor

from selfcond.cluster.kmeans import _generator

__all__ = [
    "EPS",
    "NIWPrior",
    "suff_stats",
    "posterior",
    "log_predictive",
    "log_weights",
    "log_marginal",
    "log_joint",
    "gibbs",
    "block_size",
]

EPS = 1e-6  # covariance floor added to every NIW scale matrix (see module docstring)
_F64 = torch.float64
_CHUNK_FLOATS = 1 << 19  # stats in chunks of <= 4 MiB of features (cache-sized)
_BLOCK_FLOATS = 1 << 23  # the default block's features: <= 64 MiB


@dataclass
class NIWPrior:
    """Normal-Inverse-Wishart prior on a slot's (mu, Sigma): Sigma ~ IW(psi0, nu0),
    mu | Sigma ~ N(mu0, Sigma / kappa0). mu0 (D,), psi0 (D, D); stored as float64."""

    mu0: Tensor
    kappa0: float
    nu0: float
    psi0: Tensor

    def __post_init__(self):
        self.mu0 = torch.as_tensor(self.mu0).to(_F64).reshape(-1)
        self.psi0 = torch.as_tensor(self.psi0).to(device=self.mu0.device, dtype=_F64)
        d = self.mu0.shape[0]
        if tuple(self.psi0.shape) != (d, d):
            raise ValueError(f"psi0 must be ({d}, {d}), got {tuple(self.psi0.shape)}")
        self.kappa0, self.nu0 = float(self.kappa0), float(self.nu0)
        if self.kappa0 <= 0:
            raise ValueError(f"kappa0 must be > 0, got {self.kappa0}")
        if self.nu0 <= d - 1:
            raise ValueError(f"nu0 must be > D - 1 = {d - 1}, got {self.nu0}")

    @property
    def dim(self) -> int:
        return self.mu0.shape[0]

    @classmethod
    def isotropic(
        cls,
        dim: int,
        var: float = 0.1,
        kappa0: float = 0.01,
        nu0: Optional[float] = None,
        mu0: Optional[Tensor] = None,
    ) -> "NIWPrior":
        """Prior whose mean covariance E[Sigma] is var · I: psi0 = var (nu0 - D - 1) I,
        nu0 = D + 2 by default (the smallest integer for which E[Sigma] exists), mu0 = 0."""
        nu0 = dim + 2.0 if nu0 is None else float(nu0)
        if nu0 <= dim + 1:
            raise ValueError(f"nu0 must be > D + 1 = {dim + 1} for E[Sigma] to exist, got {nu0}")
        mu0 = torch.zeros(dim, dtype=_F64) if mu0 is None else mu0
        psi0 = var * (nu0 - dim - 1) * torch.eye(dim, dtype=_F64)
        return cls(mu0, kappa0, nu0, psi0)

    def to(self, device) -> "NIWPrior":
        return replace(self, mu0=self.mu0.to(device), psi0=self.psi0.to(device))

    def _shifted(self, c: Tensor) -> "NIWPrior":
        # The prior for data x - c: the model is translation-equivariant.
        return replace(self, mu0=self.mu0 - c)


# ----------------------------------------------------------------------------- statistics


@functools.lru_cache(maxsize=None)
def _sym(d: int, device: str) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Packing of symmetric (D, D) matrices as their upper triangle (row-major, the order of
    :func:`_qfeats`): row and column of each packed entry, the packed position of every entry
    of a flattened (D, D) matrix, the weights (1 diagonal, 2 off) of a quadratic form, and the
    flat (D*D) positions of the upper triangle."""
    iu = torch.triu_indices(d, d, device=device)
    pos = torch.empty(d, d, dtype=torch.int64, device=device)
    pos[iu[0], iu[1]] = pos[iu[1], iu[0]] = torch.arange(iu.shape[1], device=device)
    return iu[0], iu[1], pos.view(-1), 2.0 - (iu[0] == iu[1]).to(_F64), iu[0] * d + iu[1]


def _n_feats(d: int) -> int:
    """Packed statistics / features per point in dimension d: [1, x, upper triangle of x x^T]."""
    return 1 + d + d * (d + 1) // 2


def _qfeats(x: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """(B, D) float64 -> (B, 1 + D + D(D+1)/2) rows [1, x, upper triangle of x x^T].

    Summed per slot they are the statistics [n, s, S]; dotted with a slot's packed quadratic
    form they give every point's Mahalanobis distance in one matrix product."""
    b, d = x.shape
    f = x.new_empty(b, _n_feats(d)) if out is None else out
    f[:, 0] = 1.0
    f[:, 1 : 1 + d] = x
    o = 1 + d
    for a in range(d):  # written in place: no concatenation copy
        torch.mul(x[:, a:], x[:, a : a + 1], out=f[:, o : o + d - a])
        o += d - a
    return f


def _unpack(t: Tensor, d: int) -> tuple[Tensor, Tensor, Tensor]:
    """Packed (K, 1 + D + D(D+1)/2) sums -> n (K,), s (K, D), S (K, D, D)."""
    pos = _sym(d, str(t.device))[2]  # index_select: cheaper than advanced indexing per block
    return t[:, 0], t[:, 1 : 1 + d], t[:, 1 + d :].index_select(1, pos).view(-1, d, d)


def _pack(n: Tensor, s: Tensor, S: Tensor) -> Tensor:
    iu0, iu1 = _sym(s.shape[1], str(s.device))[:2]
    return torch.cat([n[:, None], s, S[:, iu0, iu1]], 1).to(_F64)


def _slot_sums(z: Tensor, f: Tensor, k: int) -> Tensor:
    """(K, P) sums of the rows of f (B, P) per slot z (B,). index_add on the CPU; elsewhere a
    one-hot matrix product, because CUDA's index_add adds with atomics and its rounding varies
    from run to run (the same seed must give the same chain)."""
    if f.device.type == "cpu":
        return f.new_zeros(k, f.shape[1]).index_add_(0, z, f)
    return (z == torch.arange(k, device=f.device)[:, None]).to(f.dtype) @ f


def _stats(x: Tensor, z: Tensor, k: int) -> Tensor:
    """(K, 1 + D + D(D+1)/2) float64 packed sums [n, s, S] per slot; index_add over chunks."""
    n, d = x.shape
    p = _n_feats(d)
    t = torch.zeros(k, p, dtype=_F64, device=x.device)
    step = max(1, _CHUNK_FLOATS // p)
    buf = torch.empty(min(n, step), p, dtype=_F64, device=x.device)
    for a in range(0, n, step):  # chunks bound memory; never one point at a time
        xa = x[a : a + step].to(_F64)
        t += _slot_sums(z[a : a + step], _qfeats(xa, out=buf[: xa.shape[0]]), k)
    return t


def suff_stats(x: Tensor, z: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-slot count n (K,), sum s (K, D) and sum of outer products S (K, D, D), float64."""
    x, z = _check_xz(x, z, k)
    return _unpack(_stats(x, z, k), x.shape[1])


class _Consts(NamedTuple):
    """What the prior contributes to every slot's posterior, computed once per call."""

    kappa0: float
    nu0: float
    k0mu0: Tensor  # (D,) kappa0 mu0
    base: Tensor  # (D, D) psi0 + kappa0 mu0 mu0^T + eps I

    @staticmethod
    def of(prior: NIWPrior, eps: float, device) -> "_Consts":
        mu0 = prior.mu0.to(device)
        eye = torch.eye(prior.dim, dtype=_F64, device=device)
        base = prior.psi0.to(device) + prior.kappa0 * torch.outer(mu0, mu0) + eps * eye
        return _Consts(prior.kappa0, prior.nu0, prior.kappa0 * mu0, base)


def _posterior(c: _Consts, n: Tensor, s: Tensor, S: Tensor) -> tuple[Tensor, ...]:
    km = s + c.k0mu0  # kappa_n m_n
    kappa = c.kappa0 + n
    m = km / kappa[:, None]
    # psi_n = S + psi0 + kappa0 mu0 mu0' - kappa_n m_n m_n' (+ eps I, in base); exactly symmetric
    psi = torch.baddbmm(S + c.base, km[:, :, None], m[:, None, :], alpha=-1.0)
    return kappa, c.nu0 + n, m, psi


def posterior(
    prior: NIWPrior, n: Tensor, s: Tensor, S: Tensor, eps: float = EPS
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """NIW posterior parameters per slot from its statistics (empty slot: the prior).

    Args: n (K,), s (K, D), S (K, D, D), as from :func:`suff_stats`.
    Returns: kappa_n (K,), nu_n (K,), m_n (K, D), psi_n (K, D, D) (with the floor eps · I).
    """
    n, s, S = n.to(_F64), s.to(_F64), S.to(_F64)
    return _posterior(_Consts.of(prior, eps, n.device), n, s, S)


def _count_table(c: _Consts, d: int, n_max: int, alpha: float, device) -> Tensor:
    """Everything of a slot's predictive that depends on its count n only, for n = 0..n_max:
    (n_max + 1, 4) float64 columns [lt0, half, g, lcnt] with, for nut = nu0 + n - D + 1,
    kappa = kappa0 + n and predictive scale f psi_n (f = (kappa + 1) / (kappa nut)):
    log t(x) = lt0 - sum(log diag chol psi_n) - half log1p(g q), q = (x - m)' psi_n^-1 (x - m);
    lcnt = log n, or log alpha for n = 0 (the CRP weight before dividing by #empty)."""
    n = torch.arange(n_max + 1, dtype=_F64, device=device)
    nut = c.nu0 + n - (d - 1)
    kappa = c.kappa0 + n
    half = (nut + d) / 2
    lt0 = (torch.lgamma(half) - torch.lgamma(nut / 2) - 0.5 * d * torch.log(nut * math.pi)
           - 0.5 * d * torch.log((kappa + 1) / (kappa * nut)))
    lcnt = torch.log(n.clamp(min=1.0))
    lcnt[0] = math.log(alpha)
    return torch.stack([lt0, half, kappa / (kappa + 1), lcnt], 1)


class _Quad(NamedTuple):
    """Each slot's Student-t predictive as log t(x) = const - half * log1p(Q . f(x)), where
    f(x) = [1, x, upper triangle of x x^T] (_qfeats) and Q . f(x) = g q(x), q the Mahalanobis
    distance under psi_n and g = kappa / (kappa + 1) folded in (one matrix product per block)."""

    Q: Tensor  # (K, P) g [m'Pm, -2Pm, P (upper triangle, off-diagonal x2)], P = psi_n^-1
    const: Tensor  # (K,) normaliser, -1/2 log|scale| included
    half: Tensor  # (K,)
    lcnt: Tensor  # (K,) log CRP weight before dividing by #empty


def _quad(c: _Consts, t: Tensor, tab: Tensor) -> _Quad:
    """Predictive of every slot from its packed statistics t (K, P); tab from _count_table.
    Runs once per block of the fast sweep: few, fused operations (each costs ~2 us on a CPU)."""
    d = c.k0mu0.shape[0]
    k = t.shape[0]
    _, _, _, w, upper = _sym(d, str(t.device))
    n = t[:, 0]
    row = tab.index_select(0, n.long())  # [lt0, half, g, lcnt] by count
    _, _, m, psi = _posterior(c, *_unpack(t, d))
    # cholesky_ex: no host sync on a GPU; psi_n >= psi0 + eps I is positive definite.
    chol = torch.linalg.cholesky_ex(psi)[0]
    prec = torch.cholesky_inverse(chol)
    pm = torch.bmm(prec, m[:, :, None]).view(k, d)
    Q = torch.cat([(pm * m).sum(1, keepdim=True), pm * -2.0,
                   prec.reshape(k, d * d).index_select(1, upper).mul_(w)], 1).mul_(row[:, 2:3])
    const = row[:, 0] - torch.diagonal(chol, dim1=1, dim2=2).log().sum(1)
    return _Quad(Q, const, row[:, 1], row[:, 3])


def _log_t(q: _Quad, feats: Tensor, const: Optional[Tensor] = None) -> Tensor:
    """(B, P) features -> (K, B) log predictive densities (const (K,) replaces q.const). The
    expanded quadratic form loses ~|x|^2 / scale digits to cancellation: nothing in float64
    with centred data."""
    const = q.const if const is None else const
    d2 = torch.mm(q.Q, feats.t()).log1p_()
    return d2.mul_(q.half[:, None].neg()).add_(const[:, None])  # addcmul: slower on CPU


def _crp_const(q: _Quad, n: Tensor) -> Tensor:
    """(K,) q.const + the log CRP weight: log n_k, or log(alpha / #empty) for an empty slot."""
    empty = n < 0.5
    log_e = empty.sum().clamp_(min=1).log()  # no host sync
    return torch.where(empty, q.lcnt - log_e, q.lcnt).add_(q.const)


def _eval(x: Tensor, n: Tensor, s: Tensor, S: Tensor, alpha: float, prior: NIWPrior, eps: float):
    """The public density functions: everything centred on the query points' mean first."""
    x = x.to(device=n.device, dtype=_F64)
    n, s, S = n.to(_F64), s.to(_F64), S.to(_F64)
    c = x.mean(0)
    sc = s - n[:, None] * c
    S = S - s[:, :, None] * c - c[:, None] * sc[:, None, :]  # sum (x - c)(x - c)'
    t = _pack(n, sc, S)
    consts = _Consts.of(prior.to(n.device)._shifted(c), eps, n.device)
    tab = _count_table(consts, prior.dim, int(n.max()), alpha, n.device)
    return _quad(consts, t, tab), n, _qfeats(x - c)


def log_predictive(
    x: Tensor, n: Tensor, s: Tensor, S: Tensor, prior: NIWPrior, eps: float = EPS
) -> Tensor:
    """log p(x_b | slot k's members) for points not in the statistics: (B, K) float64.
    An empty slot (n = 0) gives the prior predictive."""
    q, _, f = _eval(x, n, s, S, 1.0, prior, eps)
    return _log_t(q, f).t()


def log_weights(
    x: Tensor, n: Tensor, s: Tensor, S: Tensor, alpha: float, prior: NIWPrior, eps: float = EPS
) -> Tensor:
    """Unnormalised log conditional weights (B, K) of points x (B, D) that are not in the
    statistics: log n_k + log t_k(x) for live slots, log(alpha / #empty) + log t_0(x) for empty."""
    q, cnt, f = _eval(x, n, s, S, float(alpha), prior, eps)
    return _log_t(q, f, _crp_const(q, cnt)).t()


def log_marginal(prior: NIWPrior, n: Tensor, s: Tensor, S: Tensor, eps: float = EPS) -> Tensor:
    """(K,) NIW log marginal likelihood of each slot's members (0 for an empty slot)."""
    d = prior.dim
    kappa, nu, _, psi = posterior(prior, n, s, S, eps)
    z0 = torch.zeros(1, dtype=_F64, device=kappa.device)
    _, _, _, psi0 = posterior(prior, z0, z0.new_zeros(1, d), z0.new_zeros(1, d, d), eps)
    ld = torch.linalg.cholesky(torch.cat([psi, psi0]))
    ld = 2 * torch.log(torch.diagonal(ld, dim1=1, dim2=2)).sum(1)
    return (
        -0.5 * n.to(_F64) * d * math.log(math.pi)
        + torch.mvlgamma(nu / 2, d) - torch.mvlgamma(torch.tensor(prior.nu0 / 2, dtype=_F64), d)
        + 0.5 * prior.nu0 * ld[-1] - 0.5 * nu * ld[:-1]
        + 0.5 * d * (math.log(prior.kappa0) - torch.log(kappa))
    )


def log_joint(x: Tensor, z: Tensor, K: int, alpha: float, prior: NIWPrior) -> float:
    """Unnormalised log P(z | x) of the module docstring (the sampler's target)."""
    x, z = _check_xz(x, z, K)
    c = x.to(_F64).mean(0)
    xc = x.to(_F64) - c
    n, s, S = _unpack(_stats(xc, z, K), x.shape[1])
    live = n > 0.5
    m = int(live.sum())
    big_n = x.shape[0]
    lg = math.lgamma
    crp = m * math.log(alpha) + lg(alpha) - lg(alpha + big_n)
    crp += float(torch.lgamma(n[live]).sum())
    labels = lg(K - m + 1) - lg(K + 1)
    ml = float(log_marginal(prior.to(x.device)._shifted(c), n, s, S)[live].sum())
    return crp + labels + ml


# ----------------------------------------------------------------------------- samplers


def _check_xz(x: Tensor, z: Tensor, k: int) -> tuple[Tensor, Tensor]:
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise ValueError(f"x must be a 2-D (N, D) tensor, got {getattr(x, 'shape', type(x))}")
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"K must be an integer >= 1, got {k!r}")
    z = torch.as_tensor(z, device=x.device).reshape(-1).long()
    if z.shape[0] != x.shape[0]:
        raise ValueError(f"z has {z.shape[0]} entries but x has {x.shape[0]} rows")
    if z.numel() and (bool((z < 0).any()) or bool((z >= k).any())):
        raise ValueError(f"z must lie in [0, {k})")
    return x, z


def gibbs(
    x: Tensor,
    z: Tensor,
    K: int,
    alpha: float,
    prior: NIWPrior,
    sweeps: int = 1,
    generator: Optional[torch.Generator] = None,
    block: int = 0,
    exact: bool = False,
    fixed_loglik: Optional[Tensor] = None,
) -> Tensor:
    """Collapsed Gibbs sweeps over the slot assignment of every point.

    Args:
        x: (N, D) embeddings, any float dtype, any device.
        z: (N,) int current slots in [0, K); the chain warm-starts from it (not mutated).
        K: number of slots (truncation). alpha: DP concentration (> 0).
        prior: NIWPrior of dimension D.
        sweeps: passes over all points, each in a fresh random order.
        generator: all randomness (a random order and one uniform per point per sweep);
            None uses a fixed seed. The same seed gives the same result on a device.
        block: points sampled at once in the fast sweep (1 = exact semantics); 0 (the default)
            = ceil(N / 16), see :func:`block_size`; at most ceil(N / 8) are used.
        exact: sequential point-by-point sampler instead (see module docstring).
        fixed_loglik: (N, K) log N(x_i | mu_k, Sigma_k) under Gaussians fitted before this call
            (MIC-GANs' step (c)). Slots occupied at the start then use these fixed Gaussians
            instead of their collapsed predictive, until they empty; empty slots still use the
            prior predictive, so new modes can open. Fast sampler only (block=1 for sequential
            semantics). Established modes keep their shape even when the encoder's embeddings
            do not yet separate them, where the collapsed sampler would merge them.

    Returns:
        (N,) int64 new assignment on x's device.
    """
    x, z = _check_xz(x, z, K)
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    if int(block) < 0:
        raise ValueError(f"block must be >= 0 (0 = N / 16), got {block}")
    if prior.dim != x.shape[1]:
        raise ValueError(f"prior has D={prior.dim} but x has D={x.shape[1]}")
    dev = x.device
    gen = _generator(generator, dev)
    xc = x.to(_F64)
    c = xc.mean(0)
    xc = xc - c
    prior = prior.to(dev)._shifted(c)
    consts = _Consts.of(prior, EPS, dev)
    n_pts, d = x.shape

    def draws():  # generator consumption is the same for both samplers
        perm = torch.randperm(n_pts, generator=gen, device=gen.device).to(dev)
        u = torch.rand(n_pts, generator=gen, device=gen.device, dtype=_F64).to(dev)
        return perm, u

    if fixed_loglik is not None:
        if exact:
            raise ValueError("fixed_loglik needs the fast sampler (use block=1 for sequential semantics)")
        if tuple(fixed_loglik.shape) != (n_pts, K):
            raise ValueError(f"fixed_loglik must be ({n_pts}, {K}), got {tuple(fixed_loglik.shape)}")
    if exact:  # NumPy on the CPU, z updated in place through the shared memory
        xs, zs = xc.cpu(), z.cpu().clone()
        t = _stats(xs, zs, K + 1)  # row K stays zero: the prior, shared by empty slots
        n, sm, S = (a.numpy().copy() for a in _unpack(t, x.shape[1]))
        cc = _Consts.of(prior, EPS, "cpu")
        tab = _count_table(cc, d, n_pts, float(alpha), "cpu").numpy()
        for _ in range(int(sweeps)):
            perm, u = draws()
            _exact_sweep(xs.numpy(), zs.numpy(), n, sm, S, cc, tab,
                         perm.cpu().numpy(), u.cpu().numpy())
        return zs.to(dev)

    block = block_size(n_pts, d, block)
    if fixed_loglik is not None:
        fixed_loglik = fixed_loglik.to(device=dev, dtype=_F64)
    # Inference mode: no autograd bookkeeping on the many small per-block operations (~10%
    # on a CPU); the clone hands the caller an ordinary tensor it may modify in place.
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


def _exact_sweep(
    x: np.ndarray, z: np.ndarray, n: np.ndarray, s: np.ndarray, S: np.ndarray,
    c: _Consts, tab: np.ndarray, order: np.ndarray, u: np.ndarray,
) -> None:
    """One sequential sweep in place over z (N,) and the stats n (K+1,), s (K+1, D),
    S (K+1, D, D), whose last row stays zero (the prior, shared by all empty slots).

    Each slot keeps the factors of psi_n *with* its current members: m (K+1, D),
    linv = chol(psi_n)^-1 (K+1, D, D), logdet psi_n (K+1,). Removing point i from its slot is
    psi^- = psi - c v v' with v = x - m, c = kappa / (kappa - 1), so with q = v' psi^-1 v:
    (x - m^-)' (psi^-)^-1 (x - m^-) = c^2 q / (1 - c q) and log|psi^-| = log|psi| + log(1 - c q).
    Slots are refactored only when a point actually moves.
    """
    lt0, half, gk, lcnt_tab = tab.T  # by count, see _count_table
    k = n.shape[0] - 1
    k0p, k0mu0, base = c.kappa0, c.k0mu0.numpy(), c.base.numpy()
    m = np.empty((k + 1, x.shape[1]))
    linv = np.empty((k + 1, x.shape[1], x.shape[1]))
    logdet = np.empty(k + 1)
    A = np.empty(k + 1)  # log t = A - B * log1p(G * q), q = v' psi^-1 v
    B = np.empty(k + 1)
    G = np.empty(k + 1)

    def refactor(rows) -> None:
        nr = n[rows].astype(np.int64)
        kap = k0p + n[rows]
        mm = (s[rows] + k0mu0) / kap[:, None]
        outer = mm[:, :, None] * mm[:, None, :]
        L = np.linalg.cholesky(S[rows] + base - kap[:, None, None] * outer)
        m[rows], linv[rows] = mm, np.linalg.inv(L)
        logdet[rows] = ld = 2 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(1)
        A[rows], B[rows], G[rows] = lt0[nr] - 0.5 * ld, half[nr], gk[nr]

    refactor(np.arange(k + 1))
    live = n[:k] > 0.5
    n_empty = int(k - live.sum())
    lcnt = np.log(np.maximum(n[:k], 1.0))
    log_alpha = float(lcnt_tab[0])
    for j in range(x.shape[0]):
        i = order[j]
        xi, k0 = x[i], int(z[i])
        y = np.matmul(linv, (xi - m)[:, :, None])  # (K+1, D, 1)
        lp = A - B * np.log1p(G * (y * y).sum((1, 2)))
        lw = lp[:k] + lcnt
        nk = int(n[k0])
        if nk > 1:  # own slot without i: rank-1 downdate in closed form
            qq = float((y[k0] * y[k0]).sum())
            ck = (k0p + nk) / (k0p + nk - 1)
            om = max(1.0 - ck * qq, 1e-300)
            quad = gk[nk - 1] * ck * ck * qq / om
            lw[k0] = (lt0[nk - 1] - 0.5 * (logdet[k0] + math.log(om))
                      - half[nk - 1] * math.log1p(quad) + math.log(nk - 1))
            e_i = n_empty
        else:
            e_i = n_empty + 1  # i alone: its slot is empty without it
        if e_i:
            w_new = lp[k] + log_alpha - math.log(e_i)
            lw[~live] = w_new
            if nk == 1:
                lw[k0] = w_new
        cdf = np.cumsum(np.exp(lw - lw.max()))
        k1 = min(int(np.searchsorted(cdf, u[j] * cdf[-1], side="right")), k - 1)
        if k1 == k0:
            continue  # nothing changed: stats and factors are those we started with
        z[i] = k1
        fi = np.outer(xi, xi)
        n[k0] -= 1
        n[k1] += 1
        s[k1] += xi
        S[k1] += fi
        if nk == 1:  # slot emptied: exact zeros
            s[k0] = 0.0
            S[k0] = 0.0
            live[k0] = False
            n_empty += 1
        else:
            s[k0] -= xi
            S[k0] -= fi
        if not live[k1]:
            live[k1] = True
            n_empty -= 1
        lcnt[k0] = math.log(max(n[k0], 1.0))
        lcnt[k1] = math.log(n[k1])
        refactor(np.array([k0, k1]))
