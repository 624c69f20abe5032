import io

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from selfcond.cluster.niw import NIWPrior
from selfcond.cluster.gmm import GaussianMixture


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_simplex_init():
    g = GaussianMixture.simplex_init(4)
    assert torch.equal(g.means, torch.eye(4, dtype=torch.float64))
    assert torch.allclose(g.covs, 0.1 * torch.eye(4, dtype=torch.float64).expand(4, 4, 4))
    assert torch.allclose(g.log_weights.exp().sum(), torch.tensor(1.0, dtype=torch.float64))
    wide = GaussianMixture.simplex_init(3, dim=5, var=0.2)
    assert wide.means.shape == (3, 5) and not wide.means[:, 3:].any()
    assert torch.allclose(wide.covs[2], 0.2 * torch.eye(5, dtype=torch.float64))
    with pytest.raises(ValueError):
        GaussianMixture.simplex_init(4, dim=3)


def test_log_prob_matches_scipy():
    g = gen(0)
    a = torch.randn(3, 4, 4, generator=g, dtype=torch.float64)
    gm = GaussianMixture(torch.randn(3, 4, generator=g), a @ a.transpose(1, 2) + 0.1 * torch.eye(4))
    x = torch.randn(200, 4, generator=g) * 2
    lp = gm.log_prob(x)
    assert lp.shape == (200, 3)
    for k in range(3):
        ref = multivariate_normal(gm.means[k].numpy(), gm.covs[k].numpy()).logpdf(x.double())
        np.testing.assert_allclose(lp[:, k].numpy(), ref, rtol=0, atol=1e-9)
    # Far points: log space stays finite where the published linear-space densities underflow.
    assert torch.isfinite(gm.log_prob(torch.full((1, 4), 1e3))).all()


def test_assign_is_argmax_with_optional_prior():
    gm = GaussianMixture.simplex_init(3)
    x = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.2, 0.8], [0.45, 0.55, 0.0]])
    assert gm.assign(x).tolist() == [0, 2, 1]
    # A strong enough prior tips the borderline point.
    assert gm.assign(x, log_pi=torch.tensor([5.0, 0.0, 0.0])).tolist()[2] == 0


def test_refit_recovers_gaussians_and_keeps_empty_slots():
    g = gen(1)
    means = torch.tensor([[0.0, 0.0, 0.0], [3.0, 0.0, 1.0], [0.0, 4.0, -1.0]])
    scales = torch.randn(3, 3, 3, generator=g) * 0.3
    covs = scales @ scales.transpose(1, 2) + 0.05 * torch.eye(3)
    z = torch.arange(30000) % 3
    noise = torch.randn(30000, 3, generator=g)
    x = means[z] + torch.einsum("nij,nj->ni", torch.linalg.cholesky(covs)[z], noise)
    # K=5 slots for 3 Gaussians: slots 3 and 4 stay empty
    gm = GaussianMixture(torch.randn(5, 3, generator=g), 0.1 * torch.eye(3).expand(5, 3, 3))
    keep = gm.state_dict()
    gm.refit(x, z, NIWPrior.isotropic(3))
    for k in range(3):  # the data's own mean and covariance (the prior is weak)...
        xk = x[z == k].double()
        assert torch.allclose(gm.means[k], xk.mean(0), atol=1e-4)
        assert torch.allclose(gm.covs[k], torch.cov(xk.T, correction=0), atol=1e-3)
    # ... so the generating ones, within sampling error (10,000 points each)
    assert torch.allclose(gm.means[:3].float(), means, atol=0.03)
    assert torch.allclose(gm.covs[:3].float(), covs, atol=0.06)
    assert torch.equal(gm.means[3:], keep["means"][3:])
    assert torch.equal(gm.covs[3:], keep["covs"][3:])
    assert torch.allclose(gm.log_weights[:3].exp(), torch.full((3,), 1 / 3, dtype=torch.float64))
    assert torch.isneginf(gm.log_weights[3:]).all()


def test_refit_degenerate_cluster_stays_finite():
    # All points of slot 0 identical, and a prior scale of zero: the floor keeps Sigma definite.
    x = torch.cat([torch.ones(100, 2), torch.randn(100, 2, generator=gen(2)) + 4])
    z = (torch.arange(200) >= 100).long()
    prior = NIWPrior(torch.zeros(2), 0.01, 4.0, torch.zeros(2, 2))
    gm = GaussianMixture.simplex_init(2).refit(x, z, prior)
    assert torch.isfinite(gm.covs).all()
    assert torch.linalg.eigvalsh(gm.covs[0]).min() > 0
    lp = gm.log_prob(x)
    assert torch.isfinite(lp).all()
    assert torch.equal(gm.assign(x), z)


def test_state_dict_roundtrip_weights_only():
    gm = GaussianMixture.simplex_init(3)
    gm.refit(torch.eye(3).repeat(10, 1) + 0.01, torch.arange(30) % 3, NIWPrior.isotropic(3))
    buf = io.BytesIO()
    torch.save(gm.state_dict(), buf)
    buf.seek(0)
    other = GaussianMixture.simplex_init(3)
    other.load_state_dict(torch.load(buf, weights_only=True))
    for key, value in gm.state_dict().items():
        assert torch.equal(other.state_dict()[key], value)
