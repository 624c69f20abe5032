"""The Fréchet distance between Gaussian fits of two feature sets (FID's formula).

`fid_cls` uses the penultimate features of the project's own classifier (metrics/classifier.py):
comparable between runs of selfcond on the same dataset, not to Inception FID.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg

from selfcond.metrics.base import has_labels, metric


def gaussian_fit(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """features (n, d) -> (mean (d,), covariance (d, d)) in float64."""
    f = features.detach().double().cpu().numpy()
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    When S1 S2 is near singular, sqrtm can return inf or complex noise: then both covariances get
    eps * I (as the reference FID code does); the imaginary part must be negligible.
    """
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.abs(covmean.imag).max():.3g} in sqrtm")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid_from_features(a: torch.Tensor, b: torch.Tensor) -> float:
    return frechet_distance(*gaussian_fit(a), *gaussian_fit(b))


def fakes_and_reals(ctx, n: int, apply) -> tuple[torch.Tensor, torch.Tensor]:
    """`apply` (features) of up to 10,000 samples (modes from π) and of as many random real images,
    from generators of their own: the two sets every Fréchet distance compares."""
    n = min(n, 10000)
    fake, _ = ctx.sample(n, ctx.generator(3), apply=apply)
    idx = torch.randperm(len(ctx.dataset), generator=ctx.generator(4), device=ctx.device)[:n]
    return fake, apply(ctx.dataset.images(idx, ctx.device))


@metric("fid_cls", ("fid_cls",), lambda ctx: has_labels(ctx) and ctx.data.name != "stacked-mnist",
        at_snapshot=False)
def _fid_cls(ctx, n: int) -> dict:
    from selfcond.metrics.classifier import for_dataset, predict

    model, _ = for_dataset(ctx.data, ctx.device)
    return {"fid_cls": fid_from_features(*fakes_and_reals(ctx, n, lambda x: predict(model, x, features=True)))}
