import math

import torch

from selfcond.data.toy2d import grid, ring
from selfcond.metrics.modes2d import modes2d


def test_perfect_samples_cover_all_modes_with_zero_kl():
    g = grid()
    x, _ = g.sample(50000, torch.Generator().manual_seed(0))
    m = modes2d(x, g.means, g.std)
    assert m["modes"] == 25
    assert m["hq"] > 0.99  # 3 std per coordinate: 0.9973^2 of a Gaussian
    assert m["rkl"] < 0.002


def test_points_exactly_on_the_means():
    r = ring()
    x = r.means.repeat(10, 1)
    assert modes2d(x, r.means, r.std) == {"modes": 8, "hq": 1.0, "rkl": 0.0}


def test_one_collapsed_mode():
    r = ring()
    x = r.means[3].repeat(1000, 1)
    m = modes2d(x, r.means, r.std)
    assert m["modes"] == 1 and m["hq"] == 1.0
    assert math.isclose(m["rkl"], math.log(8), rel_tol=1e-9)


def test_off_mode_points_count_for_kl_but_not_quality():
    r = ring()
    on = r.means[:4]  # one sample on each of modes 0..3
    off = r.means[4:8] * 0.9  # 4 samples 0.1 away from modes 4..7: nearest is still their mode
    m = modes2d(torch.cat([on, off]), r.means, r.std)
    assert m["modes"] == 4 and m["hq"] == 0.5
    assert abs(m["rkl"]) < 1e-12  # nearest-mean shares are uniform


def test_threshold_is_three_std_per_coordinate():
    g = grid()
    just_in = g.means[0] + torch.tensor([2.9 * g.std, -2.9 * g.std])
    just_out = g.means[1] + torch.tensor([3.1 * g.std, 0.0])
    m = modes2d(torch.stack([just_in, just_out]), g.means, g.std)
    assert m["hq"] == 0.5 and m["modes"] == 1
    # KL with 2 of 25 modes each holding half the samples: ln(25/2)
    assert math.isclose(m["rkl"], math.log(12.5), rel_tol=1e-9)
