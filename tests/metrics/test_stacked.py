import math

import pytest
import torch
from torch import nn

from selfcond.metrics.stacked import mode_stats, stacked_labels


def test_mode_stats_uniform_and_collapsed():
    uniform = torch.arange(1000).repeat(3)
    s = mode_stats(uniform)
    assert s["modes"] == 1000 and s["rkl"] == pytest.approx(0.0, abs=1e-12)
    one = mode_stats(torch.full((500,), 7))
    assert one["modes"] == 1 and one["rkl"] == pytest.approx(math.log(1000))
    assert one["rkl_log10"] == pytest.approx(3.0)
    half = mode_stats(torch.tensor([1, 2] * 10))  # two modes, half each: ln(500)
    assert half["modes"] == 2 and half["rkl"] == pytest.approx(math.log(500))


def test_rkl_digits_splits_the_kl_into_channel_shares():
    # Channel 0 always shows 3, the others are uniform and independent: all the KL is channel 0's.
    one_digit = torch.tensor([300 + 10 * g + b for g in range(10) for b in range(10)])
    s = mode_stats(one_digit)
    assert s["rkl"] == pytest.approx(math.log(10)) and s["rkl_digits"] == pytest.approx(math.log(10))
    # Every channel uniform, but only the 10 triples (d, d, d): the KL is all in the combination.
    diagonal = mode_stats(torch.tensor([111 * d for d in range(10)]))
    assert diagonal["rkl"] == pytest.approx(math.log(100)) and diagonal["rkl_digits"] == pytest.approx(0.0)


class MeanDigit(nn.Module):
    """A stand-in classifier: digit = round(mean pixel value mapped from [-1, 1] to 0..9)."""

    def forward(self, x):
        d = ((x.mean((1, 2, 3)) + 1) * 4.5).round().long().clamp(0, 9)
        return nn.functional.one_hot(d, 10).float()


def test_stacked_labels_reads_each_channel():
    digits = torch.tensor([[7, 4, 2], [0, 0, 9], [3, 8, 1]])
    x = (digits.float() / 4.5 - 1).view(3, 3, 1, 1).expand(3, 3, 8, 8)
    assert stacked_labels(MeanDigit(), x).tolist() == [742, 9, 381]
