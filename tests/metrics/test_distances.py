"""KID and precision/recall/density/coverage against closed forms and hand-computed cases."""

import pytest
import torch

from selfcond.metrics import distances
from selfcond.metrics.distances import kid, prdc


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    a, b = torch.randn(2000, 16, generator=gen(0)), torch.randn(2000, 16, generator=gen(1))
    same = kid(a, b)
    assert abs(same) < 2e-3  # an unbiased estimate of 0
    assert kid(a, b + 1.0) > 50 * max(abs(same), 1e-4)


def test_kid_of_two_points_by_hand():
    """x = y = {e1, e2} in 2-D, m = 2: k(e_i, e_i) = (1/2 + 1)^3 = 3.375, k(e1, e2) = 1. The
    within-set sums leave the diagonal out (2 * 1 per set, / (m - 1)), the cross sum keeps it
    (2 * 3.375 + 2 * 1, * 2 / m): ((2 + 2) - 8.75) / m = -2.375, whatever the subsets' order."""
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert kid(x, x, subsets=3) == pytest.approx(-2.375, abs=1e-12)


def test_precision_recall_density_coverage_by_hand():
    """1-D, k = 1: every real ball has radius 1 (its nearest other real)."""
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0]])
    fake = torch.tensor([[0.5], [10.0], [3.0], [11.0]])
    out = prdc(fake, real, k=1)
    assert out["precision"] == 0.5  # 0.5 and 3.0 lie in real balls; 10 and 11 in none
    # fake balls (k = 1): 0.5 -> 2.5, 10 -> 1, 3 -> 2.5, 11 -> 1; reals within: 0, 1, 2, 3 of 0.5 or 3.0; 4 of 3.0
    assert out["recall"] == 1.0
    # pairs (fake in real ball): 0.5 in balls of 0 and 1; 3.0 in balls of 2, 3, 4 -> 5 pairs / (1 * 4 fakes)
    assert out["density"] == pytest.approx(5 / 4)
    assert out["coverage"] == 1.0  # every real ball holds a fake


def test_identical_sets_have_full_precision_recall_and_coverage():
    x = torch.randn(300, 8, generator=gen(2))
    out = prdc(x, x.clone())
    assert out["precision"] == out["recall"] == out["coverage"] == 1.0 and out["density"] >= 1.0
    far = prdc(x + 100, x)
    assert far["precision"] == far["recall"] == far["coverage"] == far["density"] == 0.0


def test_chunking_changes_nothing(monkeypatch):
    a, b = torch.randn(500, 6, generator=gen(3)), torch.randn(400, 6, generator=gen(4)) + 0.3
    whole = prdc(a, b)
    monkeypatch.setattr(distances, "_CHUNK", 37)
    assert prdc(a, b) == whole
