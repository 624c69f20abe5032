"""The Normal-Inverse-Wishart model under the MIC-GANs mode sampler: the prior, per-slot
sufficient statistics and the collapsed Student-t predictive, in a packed form that makes every
point's density under every slot one matrix product. Knows nothing about GANs.

Model. Each occupied slot k has a Gaussian (mu_k, Sigma_k) with a Normal-Inverse-Wishart
prior NIW(mu0, kappa0, nu0, psi0); the Gaussians are integrated out (fully collapsed). The
predictive of a slot is the multivariate Student-t with nu_n - D + 1 degrees of freedom,
location m_n and scale psi_n (kappa_n + 1) / (kappa_n (nu_n - D + 1)). The posterior parameters
after n points with sum s and sum of outer products S:

    kappa_n = kappa0 + n,  nu_n = nu0 + n,  m_n = (kappa0 mu0 + s) / kappa_n,
    psi_n = psi0 + S + kappa0 mu0 mu0^T - kappa_n m_n m_n^T.

Numerics: statistics and densities in float64; log-determinants and Mahalanobis distances from
Cholesky factors. Covariance floor: every scale matrix psi_n (psi0 included) gets ``EPS`` · I
added before its factorisation; since psi_n - psi0 does not depend on the floor, this is the
same model with prior scale psi0 + EPS · I. Callers centre the data on their mean (and shift
mu0 with them), which changes no density but keeps S - kappa_n m_n m_n^T from cancelling.

Distributed note: all statistics live in one (K, 1 + D + D(D+1)/2) tensor of sums [n, s, S]
(upper triangle of S), so a sharded version all-reduces that tensor.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import NamedTuple, Optional

import torch
from torch import Tensor

__all__ = ["EPS", "NIWPrior", "suff_stats", "posterior"]

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
