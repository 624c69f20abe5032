"""The exact collapsed Gibbs sampler and the target's densities: the reference the fast sweep
(:mod:`selfcond.cluster.crp`) is tested and benchmarked against. Training never calls it.

- :func:`gibbs_exact`: sequential collapsed Gibbs, point by point in a random order. The
  predictive of a point's own slot without it is a closed-form rank-1 downdate of the slot's
  current factors (matrix determinant lemma and Sherman-Morrison), so slot factors are refactored
  only when a point changes slot (the two changed slots). Runs in NumPy on the CPU whatever the
  device (a per-point loop is latency-bound; kernel launches would dominate on a GPU). It draws
  from the generator exactly as the fast sweep does, so ``gibbs(..., block=1)`` gives the same
  chain.
- :func:`log_joint`: the unnormalised log posterior of an assignment (the samplers' target, see
  :mod:`selfcond.cluster.crp`); :func:`log_marginal`, :func:`log_predictive`, :func:`log_weights`:
  its parts, for tests that enumerate tiny problems.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from selfcond.cluster.crp import prepare
from selfcond.cluster.niw import (_F64, EPS, NIWPrior, _check_xz, _Consts, _count_table, _crp_const, _log_t,
                                  _pack, _qfeats, _quad, _stats, _unpack, posterior)

__all__ = ["gibbs_exact", "log_joint", "log_marginal", "log_predictive", "log_weights"]


def gibbs_exact(x: Tensor, z: Tensor, K: int, alpha: float, prior: NIWPrior, sweeps: int = 1,
                generator: Optional[torch.Generator] = None) -> Tensor:
    """Sequential collapsed Gibbs sweeps (arguments as :func:`selfcond.cluster.crp.gibbs`):
    (N,) int64 new assignment on x's device."""
    xc, z, consts, draws = prepare(x, z, K, alpha, prior, generator)
    n_pts, d = x.shape
    xs, zs = xc.cpu(), z.cpu().clone()  # NumPy on the CPU, z updated in place through shared memory
    t = _stats(xs, zs, K + 1)  # row K stays zero: the prior, shared by empty slots
    n, sm, S = (a.numpy().copy() for a in _unpack(t, d))
    cc = _Consts(consts.kappa0, consts.nu0, consts.k0mu0.cpu(), consts.base.cpu())
    tab = _count_table(cc, d, n_pts, float(alpha), "cpu").numpy()
    for _ in range(int(sweeps)):
        perm, u = draws()
        _exact_sweep(xs.numpy(), zs.numpy(), n, sm, S, cc, tab, perm.cpu().numpy(), u.cpu().numpy())
    return zs.to(x.device)


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
