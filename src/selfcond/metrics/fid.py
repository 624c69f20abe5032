"""The Fréchet distance between Gaussian fits of two feature sets (FID's formula).

`fid_cls` uses the penultimate features of the project's own classifier (metrics/classifier.py):
comparable between runs of selfcond on the same dataset, not to Inception FID.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg


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
