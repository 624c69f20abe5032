"""Distances between sets of features beyond the Fréchet distance (fid.py): KID, and precision,
recall, density and coverage. Plain tensors, any extractor.

- KID (Bińkowski et al. 2018) as stylegan2-ada computes it: the unbiased MMD² with the cubic
  polynomial kernel k(x, y) = (x·y / d + 1)³, averaged over `subsets` random subsets of at most
  `subset_size` features from each side.
- Precision and recall (Kynkäänniemi et al. 2019): each real feature's ball reaches its k-th
  nearest other real feature (k = 3); precision = the share of fakes inside some real ball, recall
  = the share of reals inside some fake ball (balls of the fakes' own k-th neighbours).
- Density and coverage (Naeem et al. 2020), on the real balls: density = the mean number of real
  balls holding a fake, over k; coverage = the share of real balls holding at least one fake.
"""

from __future__ import annotations

import torch

_CHUNK = 1024  # rows of a distance block: 1024 x 50,000 float32 = 200 MB


def kid(fake: torch.Tensor, real: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> float:
    """fake (m, d), real (n, d) -> KID (the MMD² estimate; often quoted x 1000)."""
    x_all, y_all = fake.double(), real.double()
    d = x_all.shape[1]
    m = min(x_all.shape[0], y_all.shape[0], subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 features on each side")
    g = torch.Generator().manual_seed(seed)
    t = 0.0
    for _ in range(subsets):
        x = x_all[torch.randperm(x_all.shape[0], generator=g)[:m]]
        y = y_all[torch.randperm(y_all.shape[0], generator=g)[:m]]
        a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        b = (x @ y.T / d + 1) ** 3
        t += float((a.sum() - torch.diagonal(a).sum()) / (m - 1) - b.sum() * 2 / m)
    return t / subsets / m


def _kth_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    """(n,) distance from each row of x to its k-th nearest other row."""
    out = torch.empty(x.shape[0], dtype=x.dtype)
    for i in range(0, x.shape[0], _CHUNK):
        d = torch.cdist(x[i:i + _CHUNK], x)
        out[i:i + _CHUNK] = d.kthvalue(k + 1, dim=1).values  # the first is the row itself, at 0
    return out


def _balls(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """For points (p, d) and balls (centres (c, d), radii (c,)), without a (p, c) matrix: whether each
    point lies in some ball (p,), whether each ball holds some point (c,), and the number of
    (point, ball) pairs with the point inside."""
    in_some = torch.empty(points.shape[0], dtype=torch.bool)
    holds = torch.zeros(centres.shape[0], dtype=torch.bool)
    pairs = 0
    for i in range(0, points.shape[0], _CHUNK):
        inside = torch.cdist(points[i:i + _CHUNK], centres) <= radii[None]
        in_some[i:i + _CHUNK] = inside.any(1)
        holds |= inside.any(0)
        pairs += int(inside.sum())
    return in_some, holds, pairs


def prdc(fake: torch.Tensor, real: torch.Tensor, k: int = 3) -> dict:
    """fake (m, d), real (n, d) -> {"precision", "recall", "density", "coverage"}."""
    fake, real = fake.float().cpu(), real.float().cpu()
    if min(fake.shape[0], real.shape[0]) <= k:
        raise ValueError(f"precision and recall with k = {k} need more than {k} features on each side")
    fake_in_real, real_covered, pairs = _balls(fake, real, _kth_radius(real, k))
    real_in_fake, _, _ = _balls(real, fake, _kth_radius(fake, k))
    return {"precision": float(fake_in_real.float().mean()), "recall": float(real_in_fake.float().mean()),
            "density": pairs / (k * fake.shape[0]), "coverage": float(real_covered.float().mean())}
