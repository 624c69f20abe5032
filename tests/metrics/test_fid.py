import numpy as np
import pytest
import torch

from selfcond.metrics.fid import fid_from_features, frechet_distance, gaussian_fit


def test_one_dimensional_closed_form():
    # For 1-D Gaussians: (m1 - m2)^2 + s1 + s2 - 2 sqrt(s1 s2) = (m1 - m2)^2 + (sd1 - sd2)^2.
    assert frechet_distance(1.0, 4.0, -2.0, 9.0) == pytest.approx(9.0 + 1.0, abs=1e-9)


def test_commuting_covariances_closed_form():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    a, b = rng.uniform(0.5, 3, 5), rng.uniform(0.5, 3, 5)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T  # same eigenvectors: sqrtm(S1 S2) = Q sqrt(ab) Q^T
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_identical_sets_are_zero_and_singular_covariance_is_finite():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 8, generator=g)
    assert abs(fid_from_features(x, x)) < 1e-6
    flat = torch.zeros(100, 8)  # zero covariance: sqrtm of a singular matrix
    assert np.isfinite(fid_from_features(flat, x))
    mu, cov = gaussian_fit(x)
    assert mu.shape == (8,) and cov.shape == (8, 8)


def test_shifted_samples_match_squared_shift():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20000, 3, generator=g, dtype=torch.float64)
    assert fid_from_features(x, x + torch.tensor([3.0, 0.0, 4.0], dtype=torch.float64)) == pytest.approx(25.0, rel=1e-6)
