import math

import pytest
import torch

from selfcond.config import resolve
from selfcond.train.loop import Trainer


def micgan_trainer(**over):
    cfg = resolve(overrides={"data.name": "ring", "method.name": "micgan", "method.k": 8,
                             "method.cluster_samples": 500, "method.q_steps": 5, "train.threads": 1,
                             "model.g_width": 32, "model.d_width": 32, **over})
    t = Trainer(cfg)
    t.start()
    return t


def poison(net: torch.nn.Module) -> None:
    """Every output of `net` becomes NaN."""
    with torch.no_grad():
        next(net.parameters()).fill_(float("nan"))


@pytest.mark.parametrize("ema", [0.999, 0.0])
def test_encoder_learns_from_the_generator_that_samples(ema):
    """Q trains on the images users get: G's moving average when there is one, else G. A NaN in the
    other generator must not reach Q."""
    t = micgan_trainer(**{"train.ema": ema})
    sampler = t.g_eval
    assert (sampler is t.G) == (ema == 0)
    if ema:
        poison(t.G)  # the live G is not what Q learns from
        assert math.isfinite(t.partition._train_q(t))
        assert all(torch.isfinite(p).all() for p in t.partition.Q.parameters())
    poison(sampler)
    assert math.isnan(t.partition._train_q(t))


def test_a_round_labels_every_clustered_point_and_sets_pi_from_the_counts():
    t = micgan_trainer()
    p = t.partition
    out = p.refresh(t, step=p.m.init_steps)
    assert out["epoch"] == 1 and p.conditional
    assert p.z.shape == (500,) and int(p.counts.sum()) == 500
    torch.testing.assert_close(p.pi, torch.bincount(p.z, minlength=8).double() / 500)
