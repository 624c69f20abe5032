"""DiffAugment, lazy R1, bf16 autocast and the time budget: what they do, and that a run with them
still resumes bit for bit."""

from __future__ import annotations

import json

import pytest
import torch

from selfcond.config import resolve
from selfcond.train import Trainer, checkpoint, start_run
from selfcond.train.augment import augment, cutout, translation


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_translation_moves_each_image_by_its_own_shift_with_zeros_shifted_in():
    x = torch.arange(2 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8) + 1  # no zeros inside
    y = translation(x, gen(3))
    assert y.shape == x.shape
    for i in range(2):  # each output is the input moved by some (dy, dx) within 1 px (1/8 of 8)
        hits = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                if torch.equal(y[i], torch.nn.functional.pad(x[i], (1, 1, 1, 1))[:, 1 + dy:9 + dy, 1 + dx:9 + dx])]
        assert len(hits) == 1


def test_cutout_zeros_one_square_of_half_the_side():
    x = torch.ones(64, 1, 16, 16)
    y = cutout(x, gen(1))
    zeros = (y == 0).flatten(1).sum(1)
    assert zeros.max() == 64 and zeros.min() > 0  # an 8 x 8 square, clipped at the border
    assert ((y == 0) | (y == 1)).all()


def test_augment_is_deterministic_and_differentiable():
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    a = augment(x, "color,translation,cutout", gen(5))
    assert torch.equal(a, augment(x, "color,translation,cutout", gen(5)))
    assert not torch.equal(a, augment(x, "color,translation,cutout", gen(6)))
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert augment(x, "", gen()) is x


def tiny(**over):
    return resolve(overrides={"method.k": 4, "model.g_width": 8, "model.d_width": 8, "model.z_dim": 16,
                              "model.embed_dim": 8, "train.batch": 8, "train.threads": 1, "data.holdout": 0.9,
                              "method.recluster_every": 3, "train.snapshot_every": 4, "train.eval_samples": 200, **over})


@pytest.mark.parametrize("over", [{"train.augment": "color,translation,cutout"},
                                  {"train.amp": True}, {"train.r1": 1.0, "train.r1_every": 3}])
def test_a_run_with_the_option_resumes_bit_for_bit(tmp_path, over):
    straight = Trainer(tiny(**{"train.steps": 8}, **over))
    straight.train(progress=False)
    first = start_run(tiny(**{"train.steps": 4}, **over), tmp_path)
    first.train(progress=False)
    resumed = Trainer(tiny(**{"train.steps": 8}, **over), first.run_dir)
    resumed.load_state_dict(checkpoint.read(first.run_dir))
    resumed.train(progress=False)
    for a, b in zip(straight.G.state_dict().values(), resumed.G.state_dict().values()):
        assert torch.equal(a, b)
    plain = Trainer(tiny(**{"train.steps": 8}))
    plain.train(progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(plain.G.state_dict().values(), straight.G.state_dict().values()))


def test_lazy_r1_is_computed_every_n_steps_and_weighted_n_times(monkeypatch):
    calls = []
    grad = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: calls.append(1) or grad(*a, **k))
    t = Trainer(tiny(**{"train.steps": 9, "train.r1": 2.0, "train.r1_every": 3}))
    t.start()
    for _ in range(9):
        t.train_step()
    assert len(calls) == 3  # steps 0, 3, 6


def test_a_time_budget_ends_the_run_with_a_snapshot(tmp_path):
    t = start_run(tiny(**{"train.steps": 10**6, "train.minutes": 0.02, "train.snapshot_every": 10**6,
                          "train.log_every": 10**6}), tmp_path)
    t.train(progress=False)
    assert 0 < t.step < 10**6
    assert (t.run_dir / f"checkpoint-{t.step:08d}.pt").is_file()
    assert json.loads((t.run_dir / "stats.jsonl").read_text().splitlines()[-1])["step"] == t.step
    assert "event=time_budget" in (t.run_dir / "log.txt").read_text()


def test_unknown_augment_policy_and_2d_augmentation_are_refused():
    from selfcond.errors import UserError

    with pytest.raises(UserError, match="unknown policy 'flip'"):
        resolve(overrides={"train.augment": "color,flip"})
    with pytest.raises(UserError, match="the data are 2D points"):
        resolve(overrides={"data.name": "ring", "train.augment": "color"})
