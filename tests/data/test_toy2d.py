import math

import torch

from selfcond.data.toy2d import grid, ring


def test_ring_and_grid_means_and_variance():
    r = ring()
    assert r.num_classes == 8
    torch.testing.assert_close(r.means[2], torch.tensor([0.0, 1.0]), atol=1e-6, rtol=0)
    assert math.isclose(r.variance, 1e-4)
    g = grid()
    assert g.num_classes == 25 and math.isclose(g.variance, 0.0025)
    assert set(g.means[:, 0].tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}


def test_samples_lie_around_their_true_mode_and_cover_all_modes():
    g = grid()
    x, y = g.sample(20000, torch.Generator().manual_seed(0))
    err = x - g.means[y]
    assert abs(err.std().item() - g.std) < 0.002 and abs(err.mean().item()) < 0.002
    assert torch.bincount(y, minlength=25).min() > 600


def test_sampling_is_reproducible_from_the_generator():
    r = ring()
    a = r.batch(64, torch.Generator().manual_seed(3))
    b = r.batch(64, torch.Generator().manual_seed(3))
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and a.index is None
