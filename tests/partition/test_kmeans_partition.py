import torch

from selfcond.data.base import Batch
from selfcond.config import resolve
from selfcond.train import Trainer


def small_trainer(**over):
    cfg = resolve(overrides={"data.name": "ring", "method.name": "scgan", "method.k": 8,
                             "method.cluster_samples": 2000, "train.threads": 1,
                             "model.g_width": 32, "model.d_width": 32, **over})
    t = Trainer(cfg)
    t.start()
    return t


def test_start_clusters_the_random_d_and_pi_is_the_cluster_sizes():
    t = small_trainer()
    p = t.partition
    assert p.centers.shape == (8, 32) and p.cluster_labels.shape == (2000,)
    torch.testing.assert_close(p.pi, torch.bincount(p.cluster_labels, minlength=8).double() / 2000)
    # fake conditions follow π
    draws = p.sample(40000, torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=8).double() / 40000
    assert (freq - p.pi).abs().max() < 0.01


def test_real_batches_are_labelled_like_the_clustered_samples():
    """Between refreshes a sample's mode is its nearest centre under the frozen D: the clustered
    samples themselves get exactly their k-means labels back."""
    t = small_trainer()
    p = t.partition
    labels = p.labels(Batch(p.x_cluster, None, None))
    assert torch.equal(labels, p.cluster_labels)


def test_refresh_keeps_the_meaning_of_each_condition():
    """With D unchanged, a warm-started refresh returns the same clustering under the same ids;
    after D trains a little, most samples keep their id (matching undoes any relabelling)."""
    t = small_trainer()
    p = t.partition
    before = p.cluster_labels.clone()
    info = p.refresh(t.context, 1)
    assert torch.equal(p.cluster_labels, before) and info["relabelled"] == 0.0
    for _ in range(30):
        t.train_step()
    info = p.refresh(t.context, 2)
    assert info["relabelled"] < 0.2, info


def test_the_frozen_d_does_not_follow_training():
    t = small_trainer()
    frozen = {k: v.clone() for k, v in t.partition.frozen.state_dict().items()}
    for _ in range(5):
        t.train_step()
    for k, v in t.partition.frozen.state_dict().items():
        assert torch.equal(v, frozen[k])
    assert not torch.equal(t.D.state_dict()["trunk.0.lin.weight"], frozen["trunk.0.lin.weight"])
