import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_t
from sklearn.metrics import adjusted_rand_score

from selfcond.cluster.crp import block_size, gibbs
from selfcond.cluster.crp_exact import gibbs_exact, log_joint, log_predictive, log_weights
from selfcond.cluster.niw import NIWPrior, posterior, suff_stats


def gen(seed):
    return torch.Generator().manual_seed(seed)


def sample(x, z, k, alpha, prior, sweeps=1, generator=None, block=0, exact=False):
    """The exact sequential sampler, or the fast sweep in blocks of `block`."""
    if exact:
        return gibbs_exact(x, z, k, alpha, prior, sweeps, generator)
    return gibbs(x, z, k, alpha, prior, sweeps, generator, block)


def blobs(n, centers, std, seed=0):
    c = torch.tensor(centers, dtype=torch.float32)
    y = torch.arange(n) % len(c)
    return c[y] + std * torch.randn(n, c.shape[1], generator=gen(seed)), y


def live(z, k):
    return int((torch.bincount(z, minlength=k) > 0).sum())


def random_prior(d, seed):
    g = gen(seed)
    a = torch.randn(d, d, generator=g)
    return NIWPrior(torch.randn(d, generator=g), 0.3, d + 1.5, a @ a.T + 0.5 * torch.eye(d))


# ----------------------------------------------------------------------------- densities


def test_isotropic_prior_mean_covariance():
    p = NIWPrior.isotropic(4, var=0.25, nu0=9.0)
    assert torch.allclose(p.psi0 / (p.nu0 - 4 - 1), 0.25 * torch.eye(4, dtype=torch.float64))
    assert NIWPrior.isotropic(3).nu0 == 5.0
    with pytest.raises(ValueError):
        NIWPrior.isotropic(3, nu0=4.0)  # E[Sigma] needs nu0 > D + 1


def test_suff_stats_and_posterior_closed_form():
    x, _ = blobs(40, [[0, 0, 0], [2, 1, 0]], 0.5)
    z = torch.arange(40) % 3  # slot 2 gets points, slots 3, 4 stay empty
    n, s, S = suff_stats(x, z, 5)
    xd = x.double()
    for k in range(5):
        xk = xd[z == k]
        assert n[k] == len(xk)
        assert torch.allclose(s[k], xk.sum(0)) and torch.allclose(S[k], xk.T @ xk)
    p = random_prior(3, 1)
    kappa, nu, m, psi = posterior(p, n, s, S, eps=0.0)
    xk = xd[z == 1]
    nk, xbar = len(xk), xk.mean(0)
    scatter = (xk - xbar).T @ (xk - xbar)
    dm = (xbar - p.mu0)[:, None]
    expect = p.psi0 + scatter + p.kappa0 * nk / (p.kappa0 + nk) * (dm @ dm.T)
    assert torch.allclose(psi[1], expect, atol=1e-10)
    assert torch.allclose(m[1], (p.kappa0 * p.mu0 + nk * xbar) / (p.kappa0 + nk))
    assert kappa[1] == p.kappa0 + nk and nu[1] == p.nu0 + nk
    assert torch.allclose(psi[4], p.psi0) and torch.allclose(m[4], p.mu0)  # empty: the prior


def test_log_predictive_is_the_niw_student_t():
    d = 3
    p = random_prior(d, 2)
    x, _ = blobs(30, [[1, 0, -1]], 0.7, seed=3)
    z = (torch.arange(30) >= 12).long()  # slot 0: 12 points, slot 1: 18, slot 2: empty
    n, s, S = suff_stats(x, z, 3)
    q = torch.randn(5, d, generator=gen(4)).double()
    lp = log_predictive(q, n, s, S, p, eps=0.0)
    kappa, nu, m, psi = posterior(p, n, s, S, eps=0.0)
    for k in range(3):
        df = float(nu[k]) - d + 1
        shape = (psi[k] * (kappa[k] + 1) / (kappa[k] * df)).numpy()
        ref = multivariate_t(loc=m[k].numpy(), shape=shape, df=df).logpdf(q.numpy())
        np.testing.assert_allclose(lp[:, k].numpy(), ref, rtol=0, atol=1e-9)


def test_conditionals_are_ratios_of_the_joint():
    """log_weights (the sampler's conditional) = log_joint over the K choices of one point."""
    n_pts, d, k, alpha = 12, 3, 5, 0.7
    x = torch.randn(n_pts, d, generator=gen(0)) * torch.tensor([1.0, 0.3, 2.0]) + 0.5
    p = random_prior(d, 0)
    z = torch.randint(3, (n_pts,), generator=gen(1))  # slots 3 and 4 empty
    z[0] = 3  # and one singleton
    for i in range(n_pts):
        lj = torch.tensor([log_joint(x, torch.where(torch.arange(n_pts) == i, j, z), k, alpha, p)
                           for j in range(k)], dtype=torch.float64)
        rest = torch.arange(n_pts) != i
        lw = log_weights(x[i : i + 1], *suff_stats(x[rest], z[rest], k), alpha, p)[0]
        assert torch.allclose(lw - lw.logsumexp(0), lj - lj.logsumexp(0), atol=1e-10)


def test_log_joint_invariant_to_relabelling():
    x, _ = blobs(30, [[0, 0], [3, 0]], 0.3)
    z = torch.randint(3, (30,), generator=gen(0))
    p = NIWPrior.isotropic(2)
    ref = log_joint(x, z, 6, 1.3, p)
    for perm in ([2, 0, 1], [5, 4, 3], [0, 5, 1]):  # also onto slots that were empty
        assert math.isclose(log_joint(x, torch.tensor(perm)[z], 6, 1.3, p), ref, rel_tol=1e-12)


def test_degenerate_cluster_stays_finite():
    # 50 identical points and a prior scale of zero: only the floor keeps psi_n definite.
    x = torch.cat([torch.ones(50, 2), torch.randn(50, 2, generator=gen(0)) + 5.0])
    p = NIWPrior(torch.zeros(2), 0.01, 4.0, torch.zeros(2, 2))
    z = (torch.arange(100) >= 50).long()
    lw = log_weights(x[:3], *suff_stats(x[3:], z[3:], 4), 1.0, p)
    assert torch.isfinite(lw).all()
    assert lw[:, 0].argmax() == 0 and bool((lw[:, 0] > lw[:, 1]).all())
    assert math.isfinite(log_joint(x, z, 4, 1.0, p))
    for exact in (True, False):
        out = sample(x, z, 4, 1.0, p, sweeps=2, generator=gen(0), block=8, exact=exact)
        assert torch.equal(out[:50], out[:1].expand(50))  # the duplicates stay together


# ----------------------------------------------------------------------------- samplers


@pytest.fixture(scope="module")
def tiny():
    """4 points in 1-D, K=3: the exact posterior by enumerating all 81 assignments."""
    x = torch.tensor([[-1.0], [-0.7], [0.8], [1.2]])
    k, alpha, p = 3, 1.0, NIWPrior.isotropic(1, var=0.3, kappa0=0.1)
    states = list(itertools.product(range(k), repeat=4))
    lj = np.array([log_joint(x, torch.tensor(s), k, alpha, p) for s in states])
    post = np.exp(lj - lj.max())
    post /= post.sum()
    return x, k, alpha, p, states, post


def _canon(s):
    first = {}
    return tuple(first.setdefault(v, len(first)) for v in s)


def _chain_tv(tiny, sweeps, **kw):
    x, k, alpha, p, states, post = tiny
    g, z, freq = gen(7), torch.zeros(4, dtype=torch.long), {}
    for _ in range(sweeps):
        z = sample(x, z, k, alpha, p, generator=g, **kw)
        freq[tuple(z.tolist())] = freq.get(tuple(z.tolist()), 0) + 1
    emp = np.array([freq.get(s, 0) for s in states]) / sweeps
    parts = sorted({_canon(s) for s in states})
    member = np.array([[_canon(s) == q for s in states] for q in parts], dtype=float)
    tv = lambda a, b: 0.5 * np.abs(a - b).sum()  # noqa: E731
    return tv(emp, post), tv(member @ emp, member @ post)


def test_exact_sampler_matches_enumerated_posterior(tiny):
    tv_labels, tv_parts = _chain_tv(tiny, 6000, exact=True)
    assert tv_parts < 0.03  # measured ~0.01-0.02
    assert tv_labels < 0.06  # 81 labelled states, same chain: measured ~0.035


def test_block_sampler_block1_is_the_exact_sampler(tiny):
    x, k, alpha, p, *_ = tiny
    ge, gb = gen(3), gen(3)
    ze = zb = torch.zeros(4, dtype=torch.long)
    for _ in range(200):  # same draws, same conditionals: the same chain
        ze = sample(x, ze, k, alpha, p, generator=ge, exact=True)
        zb = gibbs(x, zb, k, alpha, p, generator=gb, block=1)
        assert torch.equal(ze, zb)
    _, tv_parts = _chain_tv(tiny, 2500, block=1)
    assert tv_parts < 0.04


@pytest.mark.parametrize("exact,block", [(True, 1), (False, 64)])
def test_recovers_well_separated_mixture_from_random_start(exact, block):
    x, y = blobs(600, [[0, 0], [3, 0], [0, 3], [3, 3]], 0.1)
    p = NIWPrior.isotropic(2, var=0.1, nu0=14.0)
    z0 = torch.randint(10, (600,), generator=gen(1))  # K=10 > 4 true modes, all mixed
    z = sample(x, z0, 10, 1.0, p, sweeps=30, generator=gen(2), block=block, exact=exact)
    assert live(z, 10) == 4
    assert adjusted_rand_score(y, z) > 0.99


def test_default_block_is_a_sixteenth_of_the_data():
    # The block's error grows with block / N, so the default is a share of N, not a count.
    assert [block_size(n, 15) for n in (1, 16, 17, 10_000, 60_000)] == [1, 1, 2, 625, 3750]
    assert block_size(60_000, 15, 4096) == 4096 and block_size(60_000, 15, 10**6) == 7500  # cap N / 8
    # Memory bounds the default: 64 MiB of packed features (1,326 per point at D = 50).
    assert block_size(10**6, 50) == (1 << 23) // 1326 and block_size(10**6, 500) == 1024
    x, y = blobs(320, [[0, 0], [3, 0], [0, 3]], 0.3)
    p = NIWPrior.isotropic(2, var=0.1, nu0=14.0)
    z0 = torch.randint(0, 6, y.shape, generator=gen(1))
    auto = gibbs(x, z0, 6, 1.0, p, sweeps=2, generator=gen(3))
    assert torch.equal(auto, gibbs(x, z0, 6, 1.0, p, sweeps=2, generator=gen(3), block=20))
    assert not torch.equal(auto, gibbs(x, z0, 6, 1.0, p, sweeps=2, generator=gen(3), block=40))


@pytest.mark.parametrize("exact", [True, False])
def test_new_mode_opens(exact):
    """All points start in one slot; the second mode has to open in an empty slot (the
    published MIC-GANs code has no alpha and cannot do this). Evenly spread clusters, so no
    tail points; still, the posterior itself keeps a passing singleton slot some of the time
    (~17% of sweeps here: alpha / #empty times the prior predictive), so we count the slots
    that hold a mode (> 10% of the points) and allow a few stray points elsewhere."""
    x = torch.cat([torch.linspace(-0.2, 0.2, 100), torch.linspace(2.8, 3.2, 100)])[:, None]
    y = (torch.arange(200) >= 100).long()
    p = NIWPrior.isotropic(1, var=0.1, nu0=13.0)
    z = sample(x, torch.zeros(200, dtype=torch.long), 5, 1.0, p, sweeps=40, generator=gen(0),
               block=16, exact=exact)
    counts = torch.bincount(z, minlength=5)
    assert int((counts > 20).sum()) == 2
    assert int(counts.sort(descending=True).values[2:].sum()) <= 10
    assert adjusted_rand_score(y, z) > 0.9


def test_block_larger_than_data_is_capped():
    # One block holding every point would draw from the prior alone; the cap prevents it.
    x, y = blobs(300, [[0, 0], [3, 0], [0, 3]], 0.1)
    p = NIWPrior.isotropic(2, var=0.1, nu0=14.0)
    z = gibbs(x, y, 6, 1.0, p, sweeps=3, generator=gen(0), block=10**6)
    assert adjusted_rand_score(y, z) > 0.99


@pytest.mark.parametrize("exact", [True, False])
def test_deterministic_and_input_untouched(exact):
    x, _ = blobs(500, [[0, 0, 0], [1, 1, 0]], 0.4)
    p = NIWPrior.isotropic(3)
    z0 = torch.randint(4, (500,), generator=gen(0))
    keep = z0.clone()
    a = sample(x, z0, 4, 1.0, p, sweeps=2, generator=gen(5), block=50, exact=exact)
    b = sample(x, z0, 4, 1.0, p, sweeps=2, generator=gen(5), block=50, exact=exact)
    c = sample(x, z0, 4, 1.0, p, sweeps=2, generator=gen(6), block=50, exact=exact)
    assert torch.equal(z0, keep)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == torch.int64 and a.device == x.device and a.shape == (500,)


def test_rejects_bad_input():
    x = torch.randn(10, 2)
    p = NIWPrior.isotropic(2)
    with pytest.raises(ValueError):
        gibbs(x, torch.full((10,), 3), 3, 1.0, p)
    with pytest.raises(ValueError):
        gibbs(x, torch.zeros(10, dtype=torch.long), 3, 0.0, p)
    with pytest.raises(ValueError):
        gibbs(x, torch.zeros(10, dtype=torch.long), 3, 1.0, NIWPrior.isotropic(3))
    with pytest.raises(ValueError):
        gibbs(x, torch.zeros(9, dtype=torch.long), 3, 1.0, p)


def test_fixed_gaussians_decide_for_occupied_slots():
    """MIC-GANs' likelihood: an occupied slot scores points with its fitted Gaussian, not with the
    predictive of its current members. 200 points near 1.0 sit in slot 0 (whose fitted Gaussian is
    at -1) and one sits in slot 1 (fitted at 1): with the fixed Gaussians they all move to slot 1;
    the collapsed sampler keeps them in slot 0, which fits them perfectly well."""
    g = torch.Generator().manual_seed(0)
    x = 1.0 + 0.05 * torch.randn(201, 1, generator=g, dtype=torch.float64)
    z = torch.zeros(201, dtype=torch.long)
    z[0] = 1
    prior = NIWPrior.isotropic(1, var=0.01)
    means = torch.tensor([[-1.0], [1.0], [0.0]], dtype=torch.float64)
    var = 0.05 ** 2  # the fitted Gaussians have the data's spread
    loglik = -0.5 * (x - means.t()) ** 2 / var - 0.5 * math.log(2 * math.pi * var)  # log N(x | m_k, var)
    fixed = gibbs(x, z, 3, 1.0, prior, sweeps=20, generator=torch.Generator().manual_seed(1),
                  block=16, fixed_loglik=loglik)
    assert (fixed == 1).float().mean() > 0.99
    collapsed = gibbs(x, z, 3, 1.0, prior, sweeps=2, generator=torch.Generator().manual_seed(1), block=16)
    assert (collapsed == 0).float().mean() > 0.9
