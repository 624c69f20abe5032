import math

import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from selfcond.cluster.kmeans import (
    KMeansResult,
    assign,
    centers_from_labels,
    kmeans,
    kmeans_plusplus,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny problems: thread start-up/spin costs dominate (badly so on a busy 2-core box).
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def mixture(n=4000, k=8, d=5, spread=0.5, seed=0):
    """Well-separated Gaussian mixture: centres 10 apart or more, std `spread`."""
    g = gen(seed)
    # Corners of a cube scaled by 10 in the first 3 dims, random offsets in the rest.
    bits = [[(i >> b) & 1 for b in range(3)] for i in range(k)]
    corners = torch.tensor(bits, dtype=torch.float32)
    centres = torch.cat([10.0 * corners, torch.randn(k, d - 3, generator=g)], 1)
    y = torch.arange(n) % k
    x = centres[y] + spread * torch.randn(n, d, generator=g)
    return x, y, centres


@pytest.fixture(scope="module")
def blobs():
    return mixture()


def test_recovers_mixture(blobs):
    x, y, true = blobs
    res = kmeans(x, 8, generator=gen(0))
    assert isinstance(res, KMeansResult)
    assert res.centers.shape == (8, 5) and res.centers.dtype == torch.float32
    assert res.labels.shape == (4000,) and res.labels.dtype == torch.int64
    # every true centre has a found centre nearby (sample mean error ~ 0.5/sqrt(500))
    dist = torch.cdist(true, res.centers)
    assert dist.min(1).values.max() < 0.1
    assert adjusted_rand_score(y.numpy(), res.labels.numpy()) == 1.0
    # inertia is the sum of squared distances to the assigned centre
    direct = ((x - res.centers[res.labels]) ** 2).sum().item()
    assert res.inertia == pytest.approx(direct, rel=1e-4)
    assert 1 <= res.n_iter <= 100


def test_assign_matches_bruteforce():
    g = gen(1)
    x = torch.randn(1000, 12, generator=g) * 3 + 5
    c = torch.randn(7, 12, generator=g) * 3 + 5
    lab, d2 = assign(x, c, chunk=97)  # chunking must not change anything
    full = torch.cdist(x.double(), c.double()) ** 2
    assert torch.equal(lab, full.argmin(1))
    assert torch.allclose(d2.double(), full.min(1).values, rtol=1e-4, atol=1e-3)
    assert (d2 >= 0).all()
    lab2, _ = assign(x, c)
    assert torch.equal(lab, lab2)


def test_warm_start_keeps_labels(blobs):
    x, _, _ = blobs
    first = kmeans(x, 8, generator=gen(0))
    again = kmeans(x, 8, init=first.centers, generator=gen(5))
    assert torch.equal(again.labels, first.labels)
    assert again.n_iter <= 2
    assert torch.allclose(again.centers, first.centers, atol=1e-4)
    # slightly perturbed data (e.g. features after a few more training steps)
    xp = x + 0.02 * torch.randn(x.shape, generator=gen(9))
    moved = kmeans(xp, 8, init=first.centers, generator=gen(5))
    assert torch.equal(moved.labels, first.labels)
    assert moved.n_iter <= 2


def test_centers_from_labels_means_and_reseeds(blobs):
    x, y, _ = blobs
    # exact means when all clusters are present
    c = centers_from_labels(x, y, 8)
    for j in range(8):
        assert torch.allclose(c[j], x[y == j].mean(0), atol=1e-5)
    # cluster 3 missing (its points merged into 2), cluster 7 too
    lab = y.clone()
    lab[lab == 3] = 2
    lab[lab == 7] = 0
    c = centers_from_labels(x, lab, 8, generator=gen(0))
    assert c.shape == (8, 5) and torch.isfinite(c).all()
    d = torch.cdist(c, c) + torch.eye(8) * 1e9
    assert d.min() > 1e-3  # all distinct
    for j in (1, 4, 5, 6):  # untouched clusters keep their means
        assert torch.allclose(c[j], x[y == j].mean(0), atol=1e-5)
    # reseeded centres are data points, and warm start from them works
    for j in (3, 7):
        assert (x == c[j]).all(1).any()
    res = kmeans(x, 8, init=c, generator=gen(0))
    assert torch.bincount(res.labels, minlength=8).min() > 0
    # deterministic given the generator
    assert torch.equal(c, centers_from_labels(x, lab, 8, generator=gen(0)))
    with pytest.raises(ValueError):
        centers_from_labels(x, lab, 2)  # labels out of range


def test_empty_cluster_during_lloyd_is_relocated(blobs):
    x, _, true = blobs
    init = true.clone()
    init[1] = init[0]  # duplicate centre: one of the pair gets no points
    res = kmeans(x, 8, init=init, generator=gen(0))
    counts = torch.bincount(res.labels, minlength=8)
    assert counts.min() > 0
    d = torch.cdist(res.centers, res.centers) + torch.eye(8) * 1e9
    assert d.min() > 1e-3


def test_kmeans_plusplus_seeding(blobs):
    x, _, _ = blobs
    c = kmeans_plusplus(x, 8, generator=gen(3))
    assert c.shape == (8, 5)
    # seeds are data points, all distinct, and on well-separated data one per blob
    assert all((x == row).all(1).any() for row in c)
    assert torch.equal(c, kmeans_plusplus(x, 8, generator=gen(3)))
    lab, _ = assign(c, mixture()[2])
    assert len(set(lab.tolist())) == 8


def test_deterministic_given_seed():
    x = torch.randn(2000, 8, generator=gen(2))
    a = kmeans(x, 12, generator=gen(7))
    b = kmeans(x, 12, generator=gen(7))
    assert torch.equal(a.centers, b.centers)
    assert torch.equal(a.labels, b.labels)
    assert a.inertia == b.inertia and a.n_iter == b.n_iter
    c = kmeans(x, 12, generator=gen(8))
    assert not torch.equal(a.centers, c.centers)  # another seed, another seeding


def test_one_run_is_near_sklearns_best_of_ten():
    """The partition's call (one k-means++ seeding, then Lloyd) against the paper's call,
    scikit-learn's best of 10 seedings, on structureless data where seedings differ most."""
    x = torch.randn(3000, 16, generator=gen(4))
    with threadpool_limits(limits=1):
        sk = KMeans(n_clusters=10, n_init=10, random_state=0).fit(x.numpy())
    ratios = [kmeans(x, 10, generator=gen(s)).inertia / sk.inertia_ for s in range(5)]
    assert max(ratios) < 1.01 and min(ratios) < 1.005, ratios


def test_float64_and_offset_input():
    # large common offset (like post-ReLU features) must not hurt the assignment
    x, y, _ = mixture(seed=3)
    res = kmeans((x + 1000.0).double(), 8, generator=gen(0))
    assert res.centers.dtype == torch.float32
    assert adjusted_rand_score(y.numpy(), res.labels.numpy()) == 1.0


def test_k_equals_n_and_k_one():
    x = torch.randn(6, 3, generator=gen(0))
    res = kmeans(x, 6, generator=gen(0))
    assert res.inertia == pytest.approx(0.0, abs=1e-5)
    assert sorted(res.labels.tolist()) == list(range(6))
    one = kmeans(x, 1, generator=gen(0))
    assert torch.allclose(one.centers[0], x.mean(0), atol=1e-6)
    assert torch.equal(one.labels, torch.zeros(6, dtype=torch.int64))


@pytest.mark.parametrize("k", [0, -1, 11])
def test_bad_k_raises(k):
    x = torch.randn(10, 2)
    with pytest.raises(ValueError, match="k must be"):
        kmeans(x, k, generator=gen(0))
    with pytest.raises(ValueError, match="k must be"):
        kmeans_plusplus(x, k, generator=gen(0))
    with pytest.raises(ValueError, match="k must be"):
        centers_from_labels(x, torch.zeros(10, dtype=torch.int64), k)


def test_bad_init_raises():
    x = torch.randn(10, 2)
    with pytest.raises(ValueError):
        kmeans(x, 3, init="random")
    with pytest.raises(ValueError):
        kmeans(x, 3, init=torch.zeros(4, 2))


def test_generator_none_is_reproducible():
    x = torch.randn(500, 4, generator=gen(0))
    assert torch.equal(kmeans(x, 5).centers, kmeans(x, 5).centers)
    assert not math.isnan(kmeans(x, 5).inertia)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_device():
    x, y, _ = mixture()
    xc = x.cuda()
    res = kmeans(xc, 8, generator=torch.Generator(device="cuda").manual_seed(0))
    assert res.centers.is_cuda and res.labels.is_cuda
    assert adjusted_rand_score(y.numpy(), res.labels.cpu().numpy()) == 1.0
    # a CPU generator also works with CUDA data
    res2 = kmeans(xc, 8, generator=gen(0))
    assert res2.labels.is_cuda
