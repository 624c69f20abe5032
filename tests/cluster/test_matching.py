import pytest
import torch

from selfcond.cluster.matching import match_clusters, overlap_matrix


def gen(seed):
    return torch.Generator().manual_seed(seed)


def permuted(n=5000, k=10, seed=0):
    g = gen(seed)
    old = torch.randint(k, (n,), generator=g)
    sigma = torch.randperm(k, generator=g)  # old label j is called sigma[j] now
    new = sigma[old]
    return old, new, sigma


def test_overlap_matrix_counts():
    new = torch.tensor([0, 0, 1, 2, 2, 2])
    old = torch.tensor([1, 1, 0, 2, 2, 0])
    m = overlap_matrix(new, old, 3)
    expected = torch.zeros(3, 3, dtype=torch.int64)
    for a, b in zip(new.tolist(), old.tolist()):
        expected[a, b] += 1
    assert torch.equal(m, expected)


def test_recovers_known_permutation():
    old, new, sigma = permuted()
    perm = match_clusters(new, old, 10)
    assert perm.dtype == torch.int64 and perm.shape == (10,)
    assert torch.equal(perm, torch.argsort(sigma))  # inverse of sigma
    assert torch.equal(perm[new], old)  # relabelling restores every point


def test_recovers_permutation_with_noise():
    old, new, sigma = permuted(seed=1)
    g = gen(2)
    flip = torch.rand(new.shape, generator=g) < 0.10
    noisy = new.clone()
    noisy[flip] = torch.randint(10, (int(flip.sum()),), generator=g)
    perm = match_clusters(noisy, old, 10)
    assert torch.equal(perm, torch.argsort(sigma))
    agree = (perm[noisy] == old).float().mean().item()
    assert agree > 0.88


def test_permutation_even_with_empty_clusters():
    # clusters 3 and 4 unused on both sides: still a full permutation of 0..k-1
    old = torch.tensor([0, 0, 1, 1, 2, 2])
    new = torch.tensor([2, 2, 0, 0, 1, 1])
    perm = match_clusters(new, old, 5)
    assert sorted(perm.tolist()) == list(range(5))
    assert perm[:3].tolist() == [1, 2, 0]


def test_accepts_numpy_and_keeps_device():
    old, new, sigma = permuted(n=300, k=4, seed=3)
    perm = match_clusters(new.numpy(), old.numpy(), 4)
    assert torch.equal(perm, torch.argsort(sigma))
    assert perm.device == new.device


def test_bad_labels_raise():
    with pytest.raises(ValueError):
        match_clusters(torch.tensor([0, 5]), torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError):
        match_clusters(torch.tensor([0, 1, 2]), torch.tensor([0, 1]), 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device():
    old, new, sigma = permuted()
    perm = match_clusters(new.cuda(), old.cuda(), 10)
    assert perm.is_cuda
    assert torch.equal(perm.cpu(), torch.argsort(sigma))
