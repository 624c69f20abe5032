"""The Gaussians over encoder embeddings that MIC-GANs classifies images with (step d).

Plain tensors, any device: means (K, D), covariances (K, D, D), log-weights (K,). Started at the
vertices of a simplex (one-hot means in a K-dim embedding, covariance 0.1 I), refitted after
each Gibbs round as the posterior mean of (mu, Sigma) under the NIW prior of
:mod:`selfcond.cluster.niw`; densities in log space from Cholesky factors.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from selfcond.cluster.niw import EPS, NIWPrior, posterior, suff_stats

__all__ = ["GaussianMixture"]

_F64 = torch.float64
_CHUNK_FLOATS = 1 << 22  # (K, D, chunk) temporaries of log_prob: <= 32 MiB


class GaussianMixture:
    """K full-covariance Gaussians. means (K, D), covs (K, D, D), log_weights (K,), float64.

    log_weights are log(n_k / N) after :meth:`refit` (-inf for an empty slot), uniform before.
    """

    def __init__(self, means: Tensor, covs: Tensor, log_weights: Optional[Tensor] = None):
        self.means = torch.as_tensor(means).to(_F64)
        self.covs = torch.as_tensor(covs).to(device=self.means.device, dtype=_F64)
        k, d = self.means.shape
        if tuple(self.covs.shape) != (k, d, d):
            raise ValueError(f"covs must be ({k}, {d}, {d}), got {tuple(self.covs.shape)}")
        if log_weights is None:
            log_weights = torch.full((k,), -math.log(k), dtype=_F64)
        self.log_weights = torch.as_tensor(log_weights).to(device=self.means.device, dtype=_F64)

    @property
    def k(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @classmethod
    def simplex_init(cls, K: int, dim: Optional[int] = None, var: float = 0.1, device=None):
        """Means one-hot (vertices of a simplex; dim >= K, default K), covariances var · I."""
        dim = K if dim is None else int(dim)
        if dim < K:
            raise ValueError(f"a simplex of {K} one-hot means needs dim >= K, got dim={dim}")
        means = torch.eye(K, dim, dtype=_F64, device=device)
        covs = var * torch.eye(dim, dtype=_F64, device=device).expand(K, dim, dim).clone()
        return cls(means, covs)

    def to(self, device) -> "GaussianMixture":
        return GaussianMixture(
            self.means.to(device), self.covs.to(device), self.log_weights.to(device))

    def refit(self, x: Tensor, z: Tensor, prior: NIWPrior, eps: float = EPS) -> "GaussianMixture":
        """In place: each occupied slot k takes the NIW posterior mean of its (mu, Sigma) given
        x[z == k]: mu = m_n, Sigma = psi_n / (nu_n - D - 1) (psi_n floored by eps · I; needs
        nu0 > D + 1). Empty slots keep their parameters. x (N, D), z (N,) in [0, K)."""
        if prior.nu0 <= self.dim + 1:
            raise ValueError(f"the posterior mean of Sigma needs nu0 > D + 1, got {prior.nu0}")
        x = x.to(self.means.device)
        n, s, S = suff_stats(x, z.to(x.device), self.k)
        _, nu, m, psi = posterior(prior.to(x.device), n, s, S, eps)
        live = n > 0.5
        self.means = torch.where(live[:, None], m, self.means)
        cov = psi / (nu - self.dim - 1)[:, None, None]
        self.covs = torch.where(live[:, None, None], cov, self.covs)
        self.log_weights = torch.log(n / n.sum().clamp(min=1.0))
        return self

    def log_prob(self, x: Tensor) -> Tensor:
        """log N(x_i | mu_k, Sigma_k): (N, K) float64, from Cholesky factors."""
        x = x.to(device=self.means.device, dtype=_F64)
        chol = torch.linalg.cholesky(self.covs)  # (K, D, D)
        logdet = 2 * torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(1)
        norm = (logdet + self.dim * math.log(2 * math.pi))[:, None]
        out = torch.empty(x.shape[0], self.k, dtype=_F64, device=x.device)
        step = max(1, _CHUNK_FLOATS // (self.k * self.dim))
        for a in range(0, x.shape[0], step):  # chunks bound the (K, D, chunk) temporaries
            diff = x[a : a + step].t()[None] - self.means[:, :, None]  # (K, D, chunk)
            y = torch.linalg.solve_triangular(chol, diff, upper=False)
            out[a : a + step] = (-0.5 * (y.square().sum(1) + norm)).t()
        return out

    def assign(self, x: Tensor, log_pi: Optional[Tensor] = None) -> Tensor:
        """argmax_k of log N(x | k) (+ log_pi (K,) when given): (N,) int64."""
        lp = self.log_prob(x)
        if log_pi is not None:
            lp = lp + torch.as_tensor(log_pi, device=lp.device, dtype=_F64)
        return lp.argmax(1)

    def state_dict(self) -> dict:
        return {"means": self.means.clone(), "covs": self.covs.clone(),
                "log_weights": self.log_weights.clone()}

    def load_state_dict(self, state: dict) -> None:
        other = GaussianMixture(state["means"], state["covs"], state["log_weights"])
        dev = self.means.device
        self.means, self.covs, self.log_weights = (
            other.means.to(dev), other.covs.to(dev), other.log_weights.to(dev))
